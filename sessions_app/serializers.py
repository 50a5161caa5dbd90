"""Agent and session serializers: one resource serializer each for output, small input
serializers per action."""

from __future__ import annotations

import re

from rest_framework import serializers

from memoryrelay_site.serializers import IsoDateTimeField, MetadataField, StrictCharField

from .models import (
    SLUG_PATTERN,
    Agent,
    Project,
    ProjectRelationship,
    RelationshipType,
    Session,
)


class AgentSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    memory_count = serializers.IntegerField(read_only=True, default=0)
    session_count = serializers.IntegerField(read_only=True, default=0)
    last_active_at = IsoDateTimeField(read_only=True, allow_null=True)
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = Agent
        fields = [
            "object", "id", "name", "description", "config", "metadata", "memory_count",
            "session_count", "last_active_at", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "agent"


class AgentStatsData(serializers.Serializer):
    total_memories = serializers.IntegerField()
    last_updated = IsoDateTimeField(allow_null=True)


class AgentStatsOutput(serializers.Serializer):
    object = serializers.CharField()
    agent_id = serializers.UUIDField()
    name = serializers.CharField()
    memory_count = serializers.IntegerField()
    session_count = serializers.IntegerField()
    entity_count = serializers.IntegerField(
        help_text="Live entities linked to the agent's live memories")
    last_updated = IsoDateTimeField(allow_null=True, help_text="The agent's last write")
    data = AgentStatsData(help_text="The same counts as OpenClaw reads them")


class AgentCreateInput(serializers.Serializer):
    """``name`` is required; SDK 0.3.0 sends its identifier as ``id`` with ``name: null``."""

    name = StrictCharField(max_length=255, required=False, allow_null=True, trim_whitespace=True)
    id = StrictCharField(max_length=255, required=False, allow_null=True, trim_whitespace=True)
    description = StrictCharField(
        max_length=1000, required=False, allow_null=True, allow_blank=True
    )
    metadata = MetadataField()
    config = MetadataField()

    def validate(self, attrs):
        attrs["name"] = attrs.get("name") or attrs.get("id")
        if not attrs["name"]:
            raise serializers.ValidationError({"name": ["This field is required."]})
        return attrs


class AgentUpdateInput(serializers.Serializer):
    name = StrictCharField(max_length=255, required=False, allow_null=True)
    description = StrictCharField(
        max_length=1000, required=False, allow_null=True, allow_blank=True
    )
    metadata = MetadataField()
    config = MetadataField()


class SessionSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    memory_count = serializers.IntegerField(read_only=True, default=0)
    started_at = IsoDateTimeField(read_only=True)
    ended_at = IsoDateTimeField(read_only=True, allow_null=True)
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = Session
        fields = [
            "id", "agent_id", "external_id", "project", "status", "title", "summary",
            "summary_method", "metadata", "memory_count", "started_at", "ended_at",
            "created_at", "updated_at",
        ]
        read_only_fields = fields


class SessionDetailOutput(SessionSerializer):
    """Schema of GET /v1/sessions/{id}: ``memories`` appears only with include_memories."""

    # Not read_only: the schema lists read-only fields as always present.
    memories = serializers.ListField(
        child=serializers.DictField(), required=False,
        help_text="Memory objects (as GET /v1/memories/{id} returns them), oldest first; "
        "only with include_memories=true",
    )
    memories_has_more = serializers.BooleanField(
        required=False,
        help_text="Only with include_memories=true: whether the session has memories past "
        "those embedded (the memories_limit was reached, or their size passed the "
        "server's byte budget); fetch them with memories_offset",
    )

    class Meta(SessionSerializer.Meta):
        fields = SessionSerializer.Meta.fields + ["memories", "memories_has_more"]
        read_only_fields = fields


class SessionGetOrCreateOutput(SessionSerializer):
    created = serializers.BooleanField(read_only=True)
    contributors = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(SessionSerializer.Meta):
        fields = SessionSerializer.Meta.fields + ["created", "contributors"]
        read_only_fields = fields


class SessionCreateInput(serializers.Serializer):
    agent_id = StrictCharField(max_length=255, required=False, allow_null=True)
    external_id = StrictCharField(
        max_length=255, min_length=1, required=False, allow_null=True, trim_whitespace=False
    )
    project = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    title = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField()


class SessionGetOrCreateInput(SessionCreateInput):
    external_id = StrictCharField(max_length=255, min_length=1, trim_whitespace=False)


class SessionEndInput(serializers.Serializer):
    summary = StrictCharField(
        max_length=50_000, required=False, allow_null=True, allow_blank=True,
        trim_whitespace=False,
    )
    metadata = MetadataField()
    auto_summarize = serializers.BooleanField(required=False, default=False)


class SessionSummaryOutput(serializers.Serializer):
    session_id = serializers.UUIDField()
    summary = serializers.CharField()
    memory_count = serializers.IntegerField()
    generated_at = IsoDateTimeField()


class DeletedOutput(serializers.Serializer):
    id = serializers.UUIDField()
    deleted = serializers.BooleanField()
    deleted_at = IsoDateTimeField()


class SessionDeletedOutput(DeletedOutput):
    cascade_memories = serializers.BooleanField()


# --- Projects -------------------------------------------------------------------------------


class ProjectSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    memory_count = serializers.IntegerField(read_only=True, default=0)
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = Project
        fields = [
            "object", "id", "slug", "name", "description", "stack", "repo_url", "metadata",
            "memory_count", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "project"


class SlugField(StrictCharField):
    default_error_messages = {
        "slug": "must be lowercase letters, digits and hyphens, starting with a letter or digit",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 100)
        kwargs.setdefault("min_length", 1)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not re.fullmatch(SLUG_PATTERN, value):
            self.fail("slug")
        return value


class ProjectUpdateInput(serializers.Serializer):
    """``null`` means "leave unchanged"; ``slug`` may be sent but never changes."""

    slug = SlugField(required=False, allow_null=True)
    name = StrictCharField(max_length=255, required=False, allow_null=True)
    description = StrictCharField(
        max_length=5000, required=False, allow_null=True, allow_blank=True,
        trim_whitespace=False,
    )
    stack = MetadataField(help_text="Technical stack: a JSON object of at most 10 KB")
    repo_url = StrictCharField(max_length=500, required=False, allow_null=True,
                               allow_blank=True)
    metadata = MetadataField()


class ProjectCreateInput(ProjectUpdateInput):
    slug = SlugField()
    name = StrictCharField(max_length=255)


class ProjectRelationshipInput(serializers.Serializer):
    target_project = SlugField(help_text="Slug of the project this one relates to")
    relationship_type = serializers.ChoiceField(choices=RelationshipType.choices)
    metadata = MetadataField()


class ProjectRefOutput(serializers.Serializer):
    id = serializers.UUIDField()
    slug = serializers.CharField()
    name = serializers.CharField()


class ProjectRelationshipSerializer(serializers.ModelSerializer):
    """A relationship as registered: ``source_project`` ``relationship_type``
    ``target_project`` (slugs), e.g. web depends_on api."""

    object = serializers.SerializerMethodField()
    source_project = serializers.CharField(source="source.slug", read_only=True)
    target_project = serializers.CharField(source="target.slug", read_only=True)
    source_project_id = serializers.UUIDField(source="source_id", read_only=True)
    target_project_id = serializers.UUIDField(source="target_id", read_only=True)
    created_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = ProjectRelationship
        fields = [
            "object", "id", "source_project", "target_project", "source_project_id",
            "target_project_id", "relationship_type", "metadata", "created_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "project_relationship"


class RelatedProjectOutput(serializers.Serializer):
    """One relationship seen from the project asked about: the other project, the type,
    and whether the edge leaves this project (``outgoing``) or arrives at it (``incoming``)."""

    relationship_id = serializers.UUIDField()
    relationship_type = serializers.ChoiceField(choices=RelationshipType.choices)
    direction = serializers.ChoiceField(choices=["outgoing", "incoming"])
    project = ProjectSerializer()
    metadata = serializers.DictField()
    created_at = IsoDateTimeField()


class RelatedProjectsOutput(serializers.Serializer):
    object = serializers.CharField(default="list")
    project = serializers.CharField(help_text="The slug asked about")
    data = RelatedProjectOutput(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()
    total_count = serializers.IntegerField()
