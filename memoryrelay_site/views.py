"""Plumbing views: health, the base viewset every resource uses, error handlers."""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import ratelimit
from .auth import ANY_SCOPE
from .db import consistent_read
from .deadlines import within
from .errors import NotFound, error_json_response, exception_response
from .serializers import is_uuid, iso_z
from .tasks import task_queue_state

STARTED_AT = time.time()


class HealthView(APIView):
    """200 ``healthy``; 200 ``degraded`` when the database answers but refuses writes (reads
    still work, so a load balancer keeps the server; monitors read ``status``), or when the
    task queue is ``stalled`` (work waits and no task worker runs) or any service an app
    adds is ``down`` (Redis out of reach, the embedding provider failing: writes are
    taken, their background work waits for it); 503
    ``unhealthy`` when the database cannot be reached or does not answer within
    MEMORYRELAY_HEALTH_TIMEOUT seconds. The probe uses a connection of its own."""

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
                    "task_queue": inline_serializer("TaskQueueHealth", {
                        "status": serializers.CharField(),
                        "backend": serializers.CharField(),
                        "pending": serializers.IntegerField(allow_null=True),
                        "oldest_pending_age_seconds": serializers.IntegerField(
                            allow_null=True),
                        "workers": serializers.IntegerField(allow_null=True),
                    }),
                },
            )
        },
    )
    def get(self, request):
        database = database_state(settings.MEMORYRELAY_HEALTH_TIMEOUT)
        # The task queue (memoryrelay_site.tasks): "up"/"down" among the services, and its
        # backlog beside them. Its database backend is down with the database.
        queue = task_queue_state(database_down=database == "down")
        services = {**self.services(database), "task_queue": queue["status"]}
        status = _STATUS_OF[database]
        if status == "healthy" and (queue["status"] == "stalled"
                                    or "down" in services.values()):
            # writes are taken; their background work (or their vectors) waits
            status = "degraded"
        body = {
            "status": status,
            "version": settings.VERSION,
            "api_version": "v1",
            "environment": settings.ENVIRONMENT,
            "timestamp": int(timezone.now().timestamp()),
            "uptime_seconds": int(time.time() - STARTED_AT),
            "services": services,
            "task_queue": queue,
        }
        return Response(body, status=503 if database == "down" else 200)


    def services(self, database: str) -> dict[str, str]:
        """The ``services`` map: the database here; an app above adds its own by subclassing
        (the memories app's health view, the one routed, names the embedding provider)."""
        return {"database": database}


_STATUS_OF = {"up": "healthy", "read_only": "degraded", "full": "degraded",
              "down": "unhealthy"}
SQLITE_MIN_FREE = 1 << 20  # bytes free beside the SQLite file, below which writes fail


def database_state(timeout: float) -> str:
    """``"up"``, ``"read_only"``, ``"full"`` (SQLite's disk) or ``"down"``, answered within
    ``timeout`` seconds even when PostgreSQL hangs: its probe runs in a thread of its own on
    a connection of its own, itself bounded by that connection's timeouts, so no probe
    outlives a few seconds."""
    if connection.vendor != "postgresql":
        return _probe_sqlite()
    try:
        return within(timeout, lambda: _probe_postgresql(timeout), late=TimeoutError())
    except TimeoutError:
        return "down"


def _probe_postgresql(timeout: float) -> str:
    from .pg import deadline_connection

    params = connection.get_connection_params()
    params["connect_timeout"] = max(int(timeout), 2)  # libpq's minimum
    params["options"] = f"-c statement_timeout={int(timeout * 1000)}"
    try:
        with deadline_connection(timeout).connect(**params, autocommit=True) as conn:
            read_only, recovering = conn.execute(
                "SELECT current_setting('transaction_read_only'), pg_is_in_recovery()"
            ).fetchone()
    except Exception:  # noqa: BLE001 - any failure to answer is "down"
        return "down"
    return "read_only" if read_only == "on" or recovering else "up"


def _probe_sqlite() -> str:
    """SQLite does not hang (a read in WAL mode takes no lock); the file may be read-only."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sqlite_master")
    except DatabaseError:
        return "down"
    path = str(connection.settings_dict["NAME"])
    if connection.is_in_memory_db() or not os.path.exists(path):
        return "up"
    folder = os.path.dirname(path) or "."
    if not (os.access(path, os.W_OK) and os.access(folder, os.W_OK)):
        return "read_only"
    # A full disk refuses every write (503 "out of resources") while reads go on.
    return "full" if shutil.disk_usage(folder).free < SQLITE_MIN_FREE else "up"


class ListMixin(mixins.ListModelMixin):
    """``list`` reads its page and ``total_count`` (and what the serializer reads for the
    page) from one snapshot (:func:`consistent_read`): a row committed between the count
    and the page would otherwise be listed under a total that leaves it out."""

    def list(self, request, *args, **kwargs):
        with consistent_read():
            return super().list(request, *args, **kwargs)


class AccountViewSet(viewsets.GenericViewSet):
    """Base of every resource viewset: ids in paths are UUIDs, anything else is a 404."""

    # A NUL cannot be stored by PostgreSQL, so no id, name or slug has one: a 404 at routing.
    lookup_value_regex = "[^/\x00]+"
    not_found_message = "Not found"

    def object_id(self) -> str:
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        if not is_uuid(value):
            raise NotFound(self.not_found_message)
        return value


def not_found(request, exception=None):
    return error_json_response(request, 404)


def server_error(request):
    """Django's handler500: an exception outside every view (or on an HTML page)."""
    exc = sys.exc_info()[1]
    return exception_response(request, exc) if exc else error_json_response(request, 500)


class QuotaView(APIView):
    """``GET /v1/quota``: the calling key's current rate-limit window (OpenClaw reads
    ``used``, ``limit`` and ``resetAt``). This request is not counted and never refused, so
    a key at its limit can still ask when the window resets; ``limit`` is null for an
    unlimited key, and ``used`` null when nothing is counted (an unlimited key, or the store
    down: requests are then served unlimited)."""

    rate_limit_cost = 0
    key_scope = ANY_SCOPE  # any key may ask about its own window, a write-only one too

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
            "resetAt": iso_z(datetime.fromtimestamp(reset, UTC)),
            "window_seconds": window,
        })
