"""Serializer fields shared by every app: strict strings, metadata, both timestamp styles."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .errors import Invalid, ServiceError
from .parsers import depth_of

METADATA_MAX_BYTES = 10 * 1024
METADATA_MAX_DEPTH = 32


class PayloadTooLarge(ServiceError):
    """A 413 about one field: a body within the size limit whose content is over a budget
    (a batch's embedding tokens)."""

    status = 413
    type = "payload_too_large"


_reused = threading.local()


class ReusedFields:
    """A serializer mixin that builds its fields once per class and thread instead of once per
    instance. DRF deep-copies every declared field (and a ModelSerializer introspects its
    model) for each serializer it creates: most of the time spent validating a small body or
    writing one object. Bound fields keep no request state but their parent, which each new
    instance takes over; one set per thread, since two threads validate at once. (A class must
    not be nested in itself for this: no serializer here is.)"""

    @property
    def fields(self):
        fields = self.__dict__.get("_reused_fields")
        if fields is not None:
            return fields
        per_thread = _reused.__dict__.setdefault("fields", {})
        fields = per_thread.get(type(self))
        if fields is None:
            fields = serializers.Serializer.fields.func(self)
            per_thread[type(self)] = fields
        else:
            fields.serializer = self
            for field in fields.values():
                field.parent = self
        self.__dict__["_reused_fields"] = fields
        return fields


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, booleans and objects instead of coercing them."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            raise serializers.ValidationError("must not contain NUL characters")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as text. DRF's UUIDField reads a JSON integer as ``UUID(int=n)``, and so
    ``true`` as ``00000000-…-0001``: a filter on ``"session_id": 0`` matched nothing instead
    of being refused."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class NumberField(serializers.FloatField):
    """A FloatField that refuses a boolean (``true`` is not the number 1.0: a threshold of
    ``true`` filtered out every hit) and, with ``strings=False``, a number given as text.
    Text stays accepted where a value can arrive as a query parameter."""

    def __init__(self, *, strings: bool = True, **kwargs):
        self.strings = strings
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, str) and not self.strings):
            raise serializers.ValidationError("must be a number")
        return super().to_internal_value(data)


@extend_schema_field({"type": "object", "additionalProperties": True,
                      "description": "A JSON object, at most 10 KB as JSON and "
                                     f"{METADATA_MAX_DEPTH} levels deep, with no NUL "
                                     "characters (\\u0000)"})
def metadata_size(data: dict) -> int:
    """Bytes of ``data`` as JSON, as :class:`MetadataField` counts them against
    METADATA_MAX_BYTES (what a merge of stored metadata is held to as well)."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


class MetadataField(serializers.JSONField):
    """A JSON object of at most 10 KB and 32 levels. ``null`` is allowed and means "not
    given"."""

    default_error_messages = {
        "not_object": "must be a JSON object",
        "too_large": f"must be at most {METADATA_MAX_BYTES} bytes as JSON",
        "too_deep": f"must be nested at most {METADATA_MAX_DEPTH} levels deep",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_object")
        if depth_of(data) > METADATA_MAX_DEPTH:
            self.fail("too_deep")
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        if len(encoded) > METADATA_MAX_BYTES:
            self.fail("too_large")
        if "\\u0000" in encoded.decode():
            raise serializers.ValidationError("must not contain NUL characters")
        return data


def iso_z(value: datetime) -> str:
    """``value`` as ISO 8601 in UTC to the second with a ``Z`` (``2026-03-17T10:00:00Z``);
    the year has its four digits also before 1000 (``strftime("%Y")`` drops the zeros)."""
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


class IsoDateTimeField(serializers.DateTimeField):
    """ISO 8601 in UTC with a ``Z``, as sessions and agents use (``2026-03-17T10:00:00Z``)."""

    def to_representation(self, value: datetime | None):
        return None if value is None else iso_z(value)


@extend_schema_field(OpenApiTypes.INT)
class UnixTimestampField(serializers.Field):
    """Integer Unix seconds, as memories use (``1710672000``)."""

    def to_representation(self, value: datetime | None):
        return int(value.timestamp()) if value is not None else None


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def parse_bool(params, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    lowered = str(raw).strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise Invalid(f"{name} must be true or false", field=name)
