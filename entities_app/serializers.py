"""Entity serializers: the entity and link objects (ISO timestamps) and one small input
serializer per action, whose ``validated_data`` goes to the service whole."""

from __future__ import annotations

from rest_framework import serializers

from memoryrelay_site.serializers import (
    IsoDateTimeField,
    MetadataField,
    NumberField,
    StrictCharField,
    StrictUUIDField,
)

from .models import Entity, EntityLink
from .names import ENTITY_TYPES, TYPE_ALIASES, entity_type_of

NAME_MAX = 255
RELATIONSHIP_MAX = 64
TYPES_HELP = (f"One of {', '.join(ENTITY_TYPES)} (any case; "
              + ", ".join(f"{a} for {t}" for a, t in TYPE_ALIASES.items()) + ")")


class EntitySerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    memory_count = serializers.IntegerField(read_only=True, default=0,
                                            help_text="Live memories linked to the entity")
    relationship_count = serializers.IntegerField(
        read_only=True, default=0,
        help_text="Other live entities linked to at least one of those memories")
    type = serializers.CharField(source="entity_type", read_only=True,
                                 help_text="entity_type again, as OpenClaw reads it")
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = Entity
        fields = ["object", "id", "name", "entity_type", "type", "metadata", "memory_count",
                  "relationship_count", "created_at", "updated_at"]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "entity"


class EntityLinkSerializer(serializers.ModelSerializer):
    entity_id = serializers.UUIDField(read_only=True)
    memory_id = serializers.UUIDField(read_only=True)
    created_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = EntityLink
        fields = ["entity_id", "memory_id", "relationship", "relevance_score", "created_at"]
        read_only_fields = fields


def name_field(**kwargs):
    return StrictCharField(min_length=1, max_length=NAME_MAX, trim_whitespace=True, **kwargs)


def type_field():
    return StrictCharField(max_length=32, required=False, allow_null=True, help_text=TYPES_HELP)


class EntityFieldsInput(serializers.Serializer):
    """``entity_type`` may be spelled ``type`` (the MCP server and OpenClaw send that);
    ``null`` means "not given"."""

    entity_type = type_field()
    type = type_field()
    metadata = MetadataField()

    def validate(self, attrs):
        field = "entity_type" if attrs.get("entity_type") is not None else "type"
        given = attrs.pop("entity_type", None) or attrs.pop("type", None)
        attrs.pop("type", None)
        if given is not None:
            canonical = entity_type_of(given)
            if canonical is None:
                raise serializers.ValidationError({field: [f"{given!r} is not a valid type: "
                                                           + TYPES_HELP]})
            attrs["entity_type"] = canonical
        return attrs


class EntityCreateInput(EntityFieldsInput):
    name = name_field()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "entity_type" not in attrs:
            raise serializers.ValidationError({"entity_type": ["This field is required."]})
        return attrs


class EntityUpdateInput(EntityFieldsInput):
    name = name_field(required=False, allow_null=True)


class RelevanceField(NumberField):
    def __init__(self, **kwargs):
        super().__init__(strings=False, min_value=0.0, max_value=1.0, required=False,
                         allow_null=True, help_text="0-1, default 1.0", **kwargs)


class MemoryLinkInput(serializers.Serializer):
    """POST /v1/entities/{id}/link (SDK 0.3.0)."""

    memory_id = StrictUUIDField()
    relationship = StrictCharField(max_length=RELATIONSHIP_MAX, required=False, allow_null=True,
                                   allow_blank=True, help_text='Default "mentioned_in"')
    relevance_score = RelevanceField()

    def validate(self, attrs):
        attrs["relationship"] = attrs.get("relationship") or None
        return attrs


class EntityLinkInput(MemoryLinkInput):
    """POST /v1/entities/links."""

    entity_id = StrictUUIDField()
