"""Plumbing views: health, the base viewset every resource uses, error handlers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import ratelimit
from .errors import NotFound, error_json_response
from .serializers import is_uuid

STARTED_AT = time.time()


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        auth=[],
        responses={
            (200, "application/json"): inline_serializer(
                "Health",
                {
                    "status": serializers.CharField(),
                    "version": serializers.CharField(),
                    "api_version": serializers.CharField(),
                    "environment": serializers.CharField(),
                    "timestamp": serializers.IntegerField(),
                    "uptime_seconds": serializers.IntegerField(),
                    "services": serializers.DictField(child=serializers.CharField()),
                },
            )
        },
    )
    def get(self, request):
        database = "up" if _database_up() else "down"
        body = {
            "status": "healthy" if database == "up" else "unhealthy",
            "version": settings.VERSION,
            "api_version": "v1",
            "environment": settings.ENVIRONMENT,
            "timestamp": int(timezone.now().timestamp()),
            "uptime_seconds": int(time.time() - STARTED_AT),
            "services": self.services(database),
        }
        return Response(body, status=200 if database == "up" else 503)


    def services(self, database: str) -> dict[str, str]:
        """The ``services`` map: the database here; an app above adds its own by subclassing
        (the memories app's health view, the one routed, names the embedding provider)."""
        return {"database": database}


def _database_up() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False


class AccountViewSet(viewsets.GenericViewSet):
    """Base of every resource viewset: ids in paths are UUIDs, anything else is a 404."""

    lookup_value_regex = "[^/]+"
    not_found_message = "Not found"

    def object_id(self) -> str:
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        if not is_uuid(value):
            raise NotFound(self.not_found_message)
        return value


def not_found(request, exception=None):
    return error_json_response(request, 404)


def server_error(request):
    return error_json_response(request, 500)


class QuotaView(APIView):
    """``GET /v1/quota``: the calling key's current rate-limit window (OpenClaw reads
    ``used``, ``limit`` and ``resetAt``). This request is counted in ``used``; ``limit`` is
    null for an unlimited key, and ``used`` null when nothing is counted (an unlimited key,
    or the store down: requests are then served unlimited)."""

    @extend_schema(responses=inline_serializer("Quota", {
        "used": serializers.IntegerField(allow_null=True),
        "limit": serializers.IntegerField(allow_null=True),
        "remaining": serializers.IntegerField(allow_null=True),
        "resetAt": serializers.CharField(help_text="ISO 8601: when the window ends"),
        "window_seconds": serializers.IntegerField(),
    }))
    def get(self, request):
        limit = ratelimit.key_limit(request.auth) or None
        usage = getattr(request._request, "rate_limit", None)
        window = ratelimit.WINDOW_SECONDS
        reset = usage.reset if usage else (int(time.time() // window) + 1) * window
        return Response({
            "used": usage.used if usage else None,
            "limit": limit,
            "remaining": usage.remaining if usage else None,
            "resetAt": datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "window_seconds": window,
        })
