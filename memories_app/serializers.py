"""Memory serializers: the memory object (integer timestamps) and its inputs."""

from __future__ import annotations

from rest_framework import serializers

from memoryrelay_site.serializers import MetadataField, StrictCharField, UnixTimestampField

from .models import Memory, MemoryType, Tier, Visibility

CONTENT_MAX = 50_000


class MemorySerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    agent_id = serializers.UUIDField(read_only=True)
    session_id = serializers.UUIDField(read_only=True, allow_null=True)
    project_id = serializers.CharField(source="project", read_only=True, allow_null=True)
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

    def get_object(self, obj) -> str:
        return "memory"

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


class MemoryFieldsInput(serializers.Serializer):
    """Fields shared by create and update; ``null`` everywhere means "not given"."""

    metadata = MetadataField()
    memory_type = serializers.ChoiceField(
        choices=MemoryType.choices, required=False, allow_null=True
    )
    importance = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True
    )
    tier = serializers.ChoiceField(choices=Tier.choices, required=False, allow_null=True)
    visibility = serializers.ChoiceField(
        choices=Visibility.choices, required=False, allow_null=True
    )

    def validate_importance(self, value):
        if isinstance(self.initial_data.get("importance"), (bool, str)):
            raise serializers.ValidationError("must be a number")
        return value


class MemoryCreateInput(MemoryFieldsInput):
    content = ContentField()
    agent_id = StrictCharField(max_length=255)
    session_id = serializers.UUIDField(required=False, allow_null=True)
    project = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    deduplicate = serializers.BooleanField(required=False, default=False)
    dedup_threshold = serializers.FloatField(
        min_value=0.5, max_value=1.0, required=False, default=0.95
    )


class MemoryUpdateInput(MemoryFieldsInput):
    content = ContentField(required=False, allow_null=True)
