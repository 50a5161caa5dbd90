"""Memory serializers: the memory object (integer timestamps) and its inputs."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from memoryrelay_site.serializers import (
    MetadataField,
    NumberField,
    PayloadTooLarge,
    ReusedFields,
    StrictCharField,
    StrictUUIDField,
    UnixTimestampField,
)
from sessions_app.models import Project

from .embeddings import get_provider
from .linked_entities import entities_of, with_entities
from .models import Memory, MemoryType, Tier, Visibility

CONTENT_MAX = 50_000


class MemoryEntitySerializer(serializers.Serializer):
    type = serializers.CharField(help_text="The entity's type")
    value = serializers.CharField(help_text="The entity's name")
    confidence = serializers.FloatField(help_text="The link's relevance, 0-1")


class MemoryListSerializer(serializers.ListSerializer):
    """A page of memories reads the entities of all of them in one query."""

    def to_representation(self, data):
        rows = data.all() if hasattr(data, "all") else data
        return super().to_representation(with_entities(list(rows)))


class MemorySerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    entities = serializers.SerializerMethodField(
        help_text="The live entities linked to the memory, highest relevance first")
    agent_id = serializers.UUIDField(read_only=True)
    session_id = serializers.UUIDField(read_only=True, allow_null=True)
    project_id = serializers.SerializerMethodField(
        help_text="The id of the registered project whose slug is the memory's project "
        "label; the label itself when no project of that slug is registered; null without "
        "a label")
    is_duplicate = serializers.SerializerMethodField()
    created_at = UnixTimestampField(read_only=True)
    updated_at = UnixTimestampField(read_only=True)

    class Meta:
        model = Memory
        fields = [
            "object", "id", "content", "agent_id", "session_id", "project_id", "metadata",
            "entities", "memory_type", "visibility", "importance", "tier", "is_duplicate",
            "created_at", "updated_at",
        ]
        read_only_fields = fields
        list_serializer_class = MemoryListSerializer

    def get_object(self, obj) -> str:
        return "memory"

    @extend_schema_field(MemoryEntitySerializer(many=True))
    def get_entities(self, obj) -> list[dict]:
        return entities_of(obj)

    def get_project_id(self, obj) -> str | None:
        if not obj.project:
            return None
        if hasattr(obj, "registered_project_pk"):  # every list reads it with_project_id()
            registered = obj.registered_project_pk
        else:
            registered = (Project.objects.by_slug(obj.project).filter(account=obj.account_id)
                          .values_list("pk", flat=True).first())
        return str(registered) if registered is not None else obj.project

    def get_is_duplicate(self, obj) -> bool:
        return bool(getattr(obj, "is_duplicate", False))


class ContentField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", CONTENT_MAX)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.strip():
            raise serializers.ValidationError("must not be blank")
        return value


class MemoryFieldsInput(ReusedFields, serializers.Serializer):
    """Fields shared by create and update; ``null`` everywhere means "not given"."""

    metadata = MetadataField()
    memory_type = serializers.ChoiceField(
        choices=MemoryType.choices, required=False, allow_null=True
    )
    importance = NumberField(
        strings=False, min_value=0.0, max_value=1.0, required=False, allow_null=True
    )
    tier = serializers.ChoiceField(choices=Tier.choices, required=False, allow_null=True)
    visibility = serializers.ChoiceField(
        choices=Visibility.choices, required=False, allow_null=True
    )


class MemoryCreateInput(MemoryFieldsInput):
    content = ContentField()
    agent_id = StrictCharField(max_length=255)
    session_id = StrictUUIDField(required=False, allow_null=True)
    project = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    project_id = StrictCharField(
        max_length=255, required=False, allow_null=True, allow_blank=True,
        help_text="A registered project's id: the memory gets its slug as project label")
    deduplicate = serializers.BooleanField(required=False, default=False)
    dedup_threshold = NumberField(
        min_value=0.5, max_value=1.0, required=False, default=0.95
    )
    auto_extract_entities = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="Find the people, organisations, technologies ... the memory mentions and "
        "link them as entities, after the write (null: the server's default)")


class MemoryUpdateInput(MemoryFieldsInput):
    content = ContentField(required=False, allow_null=True)


# --- search, batch, context ---------------------------------------------------------------


class ClampedIntegerField(serializers.IntegerField):
    """An integer whose values above the maximum are clamped (clients ask for 1000)."""

    def __init__(self, *, clamp_to: int, **kwargs):
        self.clamp_to = clamp_to
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return min(super().to_internal_value(data), self.clamp_to)


def score_field():
    return NumberField(min_value=0.0, max_value=1.0, required=False, allow_null=True)


class SearchInput(serializers.Serializer):
    query = ContentField(max_length=10_000)
    search_mode = serializers.ChoiceField(
        choices=["hybrid", "semantic", "keyword"], required=False, allow_null=True
    )
    agent_id = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    session_id = StrictUUIDField(required=False, allow_null=True)
    project = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True,
                              help_text="Only memories with this project label (slug)")
    limit = ClampedIntegerField(clamp_to=100, min_value=1, required=False, default=10)
    min_score = score_field()
    threshold = score_field()
    metadata_filter = MetadataField()
    tier = serializers.ChoiceField(choices=Tier.choices, required=False, allow_null=True)
    min_importance = score_field()
    include_confidential = serializers.BooleanField(required=False, default=False)
    entity = StrictCharField(
        max_length=255, required=False, allow_null=True, allow_blank=True,
        help_text="Only memories linked to this entity: its id, or its name in any spelling")


class SearchHitSerializer(serializers.Serializer):
    memory = MemorySerializer()
    score = serializers.FloatField(min_value=0.0, max_value=1.0)


class SearchOutput(serializers.Serializer):
    object = serializers.CharField(default="search_results")
    data = SearchHitSerializer(many=True)
    query = serializers.CharField()
    search_mode = serializers.CharField()


class BatchInput(serializers.Serializer):
    memories = serializers.ListField(
        child=serializers.JSONField(allow_null=True),  # a null item fails alone, as others
        min_length=1, max_length=100, allow_empty=False,
        help_text="Up to 100 memories (the fields of POST /v1/memories each). Their contents "
        "may need at most MEMORYRELAY_BATCH_MAX_TOKENS (default 8,192) tokens of the local "
        "embedding model, each memory counting at most 256 (about 30,000 characters of "
        "prose); a batch over it is a 413 payload_too_large on memories: send fewer or "
        "shorter memories per batch.",
    )
    agent_id = StrictCharField(max_length=255, required=False, allow_null=True)

    def validate_memories(self, items: list) -> list:
        """Refuses a batch whose embedding alone would cost more than one request may: the
        encoder's work grows with each memory's tokens (up to its 256-token window)."""
        contents = [item["content"] for item in items
                    if isinstance(item, dict) and isinstance(item.get("content"), str)]
        tokens = get_provider().count_tokens(contents)
        budget = settings.MEMORYRELAY_BATCH_MAX_TOKENS
        if tokens > budget:
            raise PayloadTooLarge(
                f"memories: the batch needs {tokens} tokens of embedding, at most {budget} "
                "per batch: send fewer or shorter memories per batch", field="memories")
        return items


class BatchItemInput(MemoryCreateInput):
    agent_id = StrictCharField(max_length=255, required=False, allow_null=True)


class BatchResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["success", "failed", "skipped"])
    id = serializers.UUIDField(allow_null=True)
    memory_id = serializers.UUIDField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    error_code = serializers.CharField(allow_null=True)
    content_preview = serializers.CharField()


class BatchOutput(serializers.Serializer):
    success = serializers.BooleanField()
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    results = BatchResultSerializer(many=True)


class ContextInput(serializers.Serializer):
    query = ContentField(max_length=10_000)
    limit = ClampedIntegerField(clamp_to=50, min_value=1, required=False, default=10)
    threshold = NumberField(min_value=0.0, max_value=1.0, required=False, default=0.5)
    max_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    agent_id = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)


class ContextOutput(serializers.Serializer):
    context = serializers.CharField(allow_blank=True)
    memories_used = serializers.IntegerField()
    total_chars = serializers.IntegerField()


# --- importance, maintenance, embed ---------------------------------------------------------


class ImportanceInput(serializers.Serializer):
    importance = NumberField(strings=False, min_value=0.0, max_value=1.0)
    tier = serializers.ChoiceField(
        choices=Tier.choices, required=False, allow_null=True,
        help_text="Omitted: follows importance (>=0.8 hot, >=0.4 warm, else cold)")


class MaintenanceInput(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["demote_cold"],
        help_text="demote_cold: each live memory neither written nor read (fetched by id, "
        "found by a search or a context build) for MEMORYRELAY_COLD_AFTER_DAYS days (default "
        "30) drops one tier, hot to warm or warm to cold")


class MaintenanceOutput(serializers.Serializer):
    action = serializers.CharField()
    demoted_count = serializers.IntegerField()


class EmbedInput(serializers.Serializer):
    text = ContentField(max_length=10_000)
    prefix = serializers.ChoiceField(
        choices=["search_query", "search_document"], required=False, allow_null=True,
        help_text="What the text is for; the server's model embeds both alike")


class EmbedOutput(serializers.Serializer):
    embedding = serializers.ListField(child=serializers.FloatField())
    model = serializers.CharField()
    dimension = serializers.IntegerField()


# --- /v2: asynchronous writes ---------------------------------------------------------------


class MemoryAsyncInput(MemoryCreateInput):
    """The body of POST /v1/memories, plus where to report the outcome."""

    webhook_url = serializers.URLField(max_length=2000, required=False, allow_null=True,
                                       allow_blank=True)


class MemoryAsyncOutput(ReusedFields, serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    job_id = serializers.CharField(allow_null=True)
    estimated_completion_seconds = serializers.IntegerField()


class MemoryStatusOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["pending", "processing", "ready", "failed"])
    created_at = UnixTimestampField()
    updated_at = UnixTimestampField()
    error = serializers.CharField(required=False)
    duplicate_of = serializers.UUIDField(
        required=False, help_text="deduplicate: the memory this one duplicated (it was "
        "then deleted, as POST /v1/memories stores nothing in that case)")

    def to_representation(self, memory):
        body = {"id": str(memory.pk), "status": memory.status,
                "created_at": int(memory.created_at.timestamp()),
                "updated_at": int(memory.updated_at.timestamp())}
        if memory.status == "failed" or memory.status_error:
            body["error"] = memory.status_error
        if memory.duplicate_of is not None:
            body["duplicate_of"] = str(memory.duplicate_of)
        return body
