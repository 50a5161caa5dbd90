"""Decision and pattern serializers: the resource objects (ISO timestamps) and one small
input serializer per action, whose ``validated_data`` goes to the service whole."""

from __future__ import annotations

from rest_framework import serializers

from memories_app.serializers import ClampedIntegerField, MemorySerializer
from memoryrelay_site.serializers import (
    IsoDateTimeField,
    MetadataField,
    NumberField,
    StrictCharField,
    StrictUUIDField,
)
from sessions_app.serializers import ProjectRefOutput, ProjectSerializer

from .models import RECORDABLE_STATUSES, Decision, Pattern, PatternScope

TEXT_MAX = 50_000
TAGS_MAX, TAG_MAX = 20, 100
SLUG_MAX = 100
QUERY_MAX = 10_000


class TextField(StrictCharField):
    """A required text that is not blank, kept as sent."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.strip():
            raise serializers.ValidationError("must not be blank")
        return value


class TagsField(serializers.ListField):
    """At most 20 tags of 1–100 characters; repeats are dropped, order kept."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", StrictCharField(min_length=1, max_length=TAG_MAX))
        kwargs.setdefault("max_length", TAGS_MAX)
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return list(dict.fromkeys(super().to_internal_value(data)))


def optional_text(max_length: int = TEXT_MAX):
    return StrictCharField(max_length=max_length, required=False, allow_null=True,
                           allow_blank=True, trim_whitespace=False)


def optional_slug():
    return StrictCharField(max_length=SLUG_MAX, required=False, allow_null=True,
                           allow_blank=True)


# --- decisions ----------------------------------------------------------------------------


class DecisionSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    session_id = serializers.UUIDField(read_only=True, allow_null=True)
    superseded_by = serializers.UUIDField(source="superseded_by_id", read_only=True,
                                          allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = Decision
        fields = [
            "object", "id", "agent_id", "session_id", "project_slug", "title", "rationale",
            "alternatives", "status", "superseded_by", "tags", "metadata", "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "decision"


class DecisionRecordInput(serializers.Serializer):
    title = TextField(max_length=500)
    rationale = TextField(max_length=TEXT_MAX)
    alternatives = optional_text()
    status = serializers.ChoiceField(
        choices=RECORDABLE_STATUSES, required=False,
        allow_null=True, help_text="active (default) or experimental",
    )
    agent_id = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True,
                               help_text="The agent's UUID or name (a new name creates it)")
    session_id = StrictUUIDField(
        required=False, allow_null=True,
        help_text="A live session of the account (else 422); its project labels the decision "
        "when project_slug is not given")
    project_slug = optional_slug()
    project = optional_slug()  # the spelling of the other resources' project label
    tags = TagsField()
    metadata = MetadataField()

    def validate(self, attrs):
        attrs["project_slug"] = attrs.get("project_slug") or attrs.pop("project", None) or None
        attrs.pop("project", None)
        attrs["agent_ref"] = attrs.pop("agent_id", None) or None
        return attrs


class DecisionSupersedeInput(DecisionRecordInput):
    """The new decision; what it does not give (project, tags, agent) it keeps from the
    decision it supersedes."""


class DecisionCheckInput(serializers.Serializer):
    query = TextField(max_length=QUERY_MAX)
    limit = ClampedIntegerField(clamp_to=50, min_value=1, required=False, default=5,
                                help_text="1-50 (larger values are clamped), default 5")
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False,
                                       default=0.3, help_text="Minimum score, default 0.3")
    project = optional_slug()
    include_superseded = serializers.BooleanField(required=False, default=False)


class DecisionHitSerializer(serializers.Serializer):
    decision = DecisionSerializer()
    score = serializers.FloatField(min_value=0.0, max_value=1.0)


class DecisionCheckOutput(serializers.Serializer):
    data = DecisionHitSerializer(many=True)
    query = serializers.CharField()
    total = serializers.IntegerField()


# --- patterns -----------------------------------------------------------------------------


class PatternSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    source_project_id = serializers.UUIDField(read_only=True, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    adoption_count = serializers.IntegerField(read_only=True, default=0,
                                              help_text="Live projects that adopted it")
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = Pattern
        fields = [
            "object", "id", "title", "description", "scope", "category", "tags",
            "example_code", "source_project_id", "source_project_slug", "metadata",
            "adoption_count", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "pattern"


class PatternCreateInput(serializers.Serializer):
    title = TextField(max_length=500)
    description = TextField(max_length=TEXT_MAX)
    scope = serializers.ChoiceField(choices=PatternScope.choices, required=False,
                                    allow_null=True, help_text="global (default) or project")
    category = StrictCharField(max_length=100, required=False, allow_null=True,
                               allow_blank=True)
    tags = TagsField()
    example_code = optional_text()
    source_project = StrictCharField(
        max_length=SLUG_MAX, required=False, allow_null=True, allow_blank=True,
        help_text="Slug of the project it comes from (linked when registered)")
    metadata = MetadataField()


class PatternAdoptInput(serializers.Serializer):
    project = StrictCharField(max_length=SLUG_MAX, help_text="Slug of a registered project")


class PatternSearchInput(serializers.Serializer):
    query = TextField(max_length=QUERY_MAX)
    project = optional_slug()
    category = StrictCharField(max_length=100, required=False, allow_null=True,
                               allow_blank=True)
    limit = ClampedIntegerField(clamp_to=50, min_value=1, required=False, default=10,
                                help_text="1-50 (larger values are clamped), default 10")
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False,
                                       default=0.3, help_text="Minimum score, default 0.3")


class PatternHitSerializer(serializers.Serializer):
    pattern = PatternSerializer()
    score = serializers.FloatField(min_value=0.0, max_value=1.0)


class PatternSearchOutput(serializers.Serializer):
    data = PatternHitSerializer(many=True)
    query = serializers.CharField()
    total = serializers.IntegerField()


class PatternSuggestInput(serializers.Serializer):
    project = StrictCharField(max_length=SLUG_MAX)
    limit = ClampedIntegerField(clamp_to=50, min_value=1, required=False, default=10,
                                help_text="1-50 (larger values are clamped), default 10")


class PatternSuggestOutput(serializers.Serializer):
    data = PatternSerializer(many=True)
    project = serializers.CharField()
    total = serializers.IntegerField()


# --- project views ------------------------------------------------------------------------


class ProjectContextOutput(serializers.Serializer):
    object = serializers.CharField(default="project_context")
    project = ProjectSerializer()
    hot_memories = MemorySerializer(many=True, help_text=(
        "Hot-tier memories labelled with the project (not confidential), most important "
        "first, at most 20"))
    active_decisions = DecisionSerializer(many=True, help_text="Newest first, at most 20")
    adopted_patterns = PatternSerializer(many=True, help_text="Newest first, at most 20")
    # The same lists under the names the OpenClaw plugin reads when it starts an agent.
    recent_decisions = DecisionSerializer(many=True, source="active_decisions",
                                          help_text="active_decisions, as OpenClaw reads it")
    active_patterns = PatternSerializer(many=True, source="adopted_patterns",
                                        help_text="adopted_patterns, as OpenClaw reads it")
    context = serializers.CharField(allow_blank=True, help_text=(
        "Markdown for an LLM: the project, then its key memories, active decisions and "
        "adopted patterns, each text cut at 500 characters, the whole at most 16,000 "
        "characters (about 4,000 tokens)"))
    total_chars = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="Items were left out of context to stay "
                                                   "within its bound")


class ImpactInput(serializers.Serializer):
    project = StrictCharField(max_length=SLUG_MAX, help_text="Slug of the project changing")
    change_description = TextField(max_length=QUERY_MAX)
    threshold = NumberField(min_value=0.0, max_value=1.0, required=False, default=0.3,
                            help_text="Minimum score of a hit")


class MemoryHitSerializer(serializers.Serializer):
    memory = MemorySerializer()
    score = serializers.FloatField(min_value=0.0, max_value=1.0)


class AffectedProjectOutput(serializers.Serializer):
    project = ProjectRefOutput()
    depth = serializers.IntegerField(help_text="1: depends on the project directly; 2: on a "
                                               "direct dependent; …")
    relationship_types = serializers.ListField(child=serializers.CharField(), help_text=(
        "The types of the edges reaching it from the level above"))
    decisions = DecisionHitSerializer(many=True)
    memories = MemoryHitSerializer(many=True)


class ImpactOutput(serializers.Serializer):
    object = serializers.CharField(default="impact_analysis")
    project = serializers.CharField()
    change_description = serializers.CharField()
    affected_projects = AffectedProjectOutput(many=True)
    total = serializers.IntegerField()


class SharedPatternsInput(serializers.Serializer):
    a = StrictCharField(max_length=SLUG_MAX, help_text="Slug of the first project")
    b = StrictCharField(max_length=SLUG_MAX, help_text="Slug of the second project")


class SharedPatternsOutput(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    data = PatternSerializer(many=True)
    total = serializers.IntegerField()
