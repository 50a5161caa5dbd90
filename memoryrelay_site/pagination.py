"""The one list body: ``{object, data, next_cursor, has_more, total_count}``.

Lists are newest first, ties broken by id. A page is chosen by ``limit`` with ``offset``,
or by an opaque ``cursor`` from a previous page's ``next_cursor`` (keyset pagination,
stable while rows are added).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from django.db.models import Q
from rest_framework import pagination
from rest_framework.response import Response

from .errors import Invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# The ceiling of every integer query parameter: past any row count, and far below the
# 64-bit integers SQL takes (a larger OFFSET is a database error).
MAX_QUERY_INT = 10**12
ORDERING = ("-created_at", "-id")


def parse_int(params, name: str, default: int, *, minimum: int,
              maximum: int = MAX_QUERY_INT) -> int:
    """An integer query parameter: 422 on the field when it is not one or below
    ``minimum``; larger than ``maximum`` is clamped."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise Invalid(f"{name} must be an integer", field=name) from None
    if value < minimum:
        raise Invalid(f"{name} must be at least {minimum}", field=name)
    return min(value, maximum)


def encode_cursor(created_at: datetime, pk) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "id": str(pk)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor of :func:`encode_cursor` holds. Anything else, however
    well-formed (base64 of JSON with other types, a naive or out-of-range time, an id that
    is not a UUID), is a 422 on ``cursor`` and never reaches the database."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at, pk = datetime.fromisoformat(data["t"]), uuid.UUID(data["id"])
        if at.tzinfo is None:
            raise ValueError("naive")
        return at.astimezone(UTC), pk
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError,
            binascii.Error):
        raise Invalid("cursor is not a cursor this server issued", field="cursor") from None


class ListPagination(pagination.BasePagination):
    def __init__(self, default_limit: int = DEFAULT_LIMIT):
        self.default_limit = default_limit

    def paginate_queryset(self, queryset, request, view=None):
        params = request.query_params
        limit = parse_int(params, "limit", self.default_limit, minimum=1, maximum=MAX_LIMIT)
        offset = parse_int(params, "offset", 0, minimum=0)
        queryset = queryset.order_by(*ORDERING)
        self.total_count = queryset.count()
        cursor = params.get("cursor")
        if cursor:
            created_at, pk = decode_cursor(cursor)
            queryset = queryset.filter(
                Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk)
            )
        rows = list(queryset[offset : offset + limit + 1])
        self.has_more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows and self.has_more else None
        self.next_cursor = encode_cursor(last.created_at, last.pk) if last else None
        return rows

    def get_paginated_response(self, data):
        return Response(
            {
                "object": "list",
                "data": data,
                "next_cursor": self.next_cursor,
                "has_more": self.has_more,
                "total_count": self.total_count,
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["object", "data", "next_cursor", "has_more", "total_count"],
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "data": schema,
                "next_cursor": {"type": "string", "nullable": True},
                "has_more": {"type": "boolean"},
                "total_count": {"type": "integer"},
            },
        }

    def get_schema_operation_parameters(self, view):
        def param(name, description, schema):
            return {"name": name, "in": "query", "required": False,
                    "description": description, "schema": schema}

        return [
            param("limit", "Results per page (1-100, larger values are clamped)",
                  {"type": "integer", "default": DEFAULT_LIMIT, "minimum": 1}),
            param("offset", "Number of results to skip",
                  {"type": "integer", "default": 0, "minimum": 0}),
            param("cursor", "Opaque cursor from a previous page's next_cursor",
                  {"type": "string"}),
        ]
