"""Agent and session serializers: one resource serializer each for output, small input
serializers per action."""

from __future__ import annotations

from rest_framework import serializers

from memoryrelay_site.serializers import IsoDateTimeField, MetadataField, StrictCharField

from .models import Agent, Session


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


class AgentCreateInput(serializers.Serializer):
    """``name`` is required; SDK 0.3.0 sends its identifier as ``id`` with ``name: null``."""

    name = StrictCharField(max_length=255, required=False, allow_null=True, trim_whitespace=True)
    id = StrictCharField(max_length=255, required=False, allow_null=True, trim_whitespace=True)
    description = StrictCharField(
        max_length=1000, required=False, allow_null=True, allow_blank=True
    )
    metadata = MetadataField()

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
            "metadata", "memory_count", "started_at", "ended_at", "created_at", "updated_at",
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
