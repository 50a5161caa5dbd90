"""How each field is written to the file and read back: one rule per field type."""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.db import models

from memories_app.embeddings import DIMENSION
from memories_app.vectors import VectorField
from memoryrelay_site.errors import Invalid

# Not in the file: computed on import (the vector's width, a project's live slug, an
# entity's name key); read tracking (a restored memory counts as used when it was last
# written).
DERIVED = {"embedding_dimension", "last_accessed_at", "live_slug", "key"}
# Also not in the file, by model: the state of a memory's asynchronous write (POST
# /v2/memories) belongs to the server that took it; an imported memory is written as any
# other (``reembed`` fills a missing vector). A session's ``status`` is kept.
SERVER_STATE = {"memories_app.memory": {"status", "status_error", "status_attempts",
                                        "status_changed_at", "dedup_threshold",
                                        "duplicate_of", "webhook_url"}}
ACCOUNT_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "date_joined")


class ImportRefused(Invalid):
    """The file cannot be imported; nothing was written."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line else message, field="file")
        self.line = line


def fields_of(model) -> list[models.Field]:
    left_out = DERIVED | SERVER_STATE.get(model._meta.label_lower, set())
    fields = [f for f in model._meta.concrete_fields if f.name not in left_out]
    return sorted(fields, key=lambda f: (not f.primary_key, f.name != "account"))


def key(f: models.Field) -> str:
    """The field's name in the file: ``account`` holds a username, other links their id."""
    return f.name if f.name == "account" else f.attname


def dump(f: models.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(f, VectorField):
        return base64.b64encode(np.asarray(value, "<f4").tobytes()).decode("ascii")
    if isinstance(f, models.DateTimeField):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def dump_account(user, name: str) -> Any:
    value = getattr(user, name)
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


def load(f: models.Field, value: Any) -> Any:
    """The Python value of ``value`` read from the file, or ValueError saying why not."""
    if value is None:
        if not f.null:
            raise ValueError("may not be null")
        return None
    if isinstance(f, VectorField):
        return _load_vector(value)
    if isinstance(f, models.DateTimeField):
        return _load_datetime(value)
    if isinstance(f, models.UUIDField) or (f.is_relation and f.name != "account"):
        return uuid.UUID(str(value))
    if isinstance(f, models.FloatField):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise ValueError("must be a finite number")
        return float(value)
    if isinstance(f, models.JSONField) and callable(f.default):
        expected = type(f.default())
        if not isinstance(value, expected):
            raise ValueError(f"must be a JSON {'object' if expected is dict else 'array'}")
        return value
    if isinstance(f, (models.CharField, models.TextField)) and not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _load_vector(value: Any) -> np.ndarray:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not base64") from None
        vector = np.frombuffer(raw, "<f4") if len(raw) % 4 == 0 else np.zeros(0)
    elif isinstance(value, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        vector = np.asarray(value, np.float32)
    else:
        raise ValueError("must be base64 float32 or a list of numbers")
    if vector.shape != (DIMENSION,) or not np.isfinite(vector).all():
        raise ValueError(f"must hold {DIMENSION} finite float32 numbers")
    return vector.astype(np.float32)


def _load_datetime(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("must be an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry its UTC offset")
    try:
        return parsed.astimezone(UTC)  # as stored; a time past year 9999 in UTC is refused
    except OverflowError:
        raise ValueError("is out of range") from None


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(holds_nul(v) for v in value)
