"""``/v2`` memory endpoints: asynchronous writes (POST /v2/memories) and their status.
Tenancy, rate limits and validation are those of POST /v1/memories; the embedding (and the
dedup, when asked) is done by a task (memories_app.tasks)."""

from __future__ import annotations

import logging

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryrelay_site.errors import NotFound
from memoryrelay_site.serializers import is_uuid
from memoryrelay_site.tasks import backend_name, log_not_queued, task_enqueue
from sessions_app.views import validated

from . import services
from .models import Memory
from .serializers import MemoryAsyncInput, MemoryAsyncOutput, MemoryStatusOutput
from .tasks import ESTIMATED_SECONDS, memory_embed
from .views import memory_create_arguments
from .webhooks import webhook_url_check

logger = logging.getLogger("memoryrelay.tasks")


class MemoryAsyncView(APIView):
    @extend_schema(request=MemoryAsyncInput, responses={202: OpenApiResponse(
        MemoryAsyncOutput, description="Stored, not yet embedded: it reads at once through "
        "GET /v1/memories/{id} and is searchable by meaning once its status is ready")})
    def post(self, request):
        data = validated(MemoryAsyncInput, request.data)
        if data.get("webhook_url"):
            webhook_url_check(data["webhook_url"])
        # On the database queue the request makes one insert: the pending memory is its
        # own queue entry, and every worker's dispatcher hands it to a task
        # (tasks.memory_embeds_dispatch). On RQ the task is queued once the memory is
        # committed (if Redis is down, the sweep queues it later).
        in_database = backend_name() == "database"
        memory = services.memory_create(
            account=request.user, **memory_create_arguments(data), pending=True,
            webhook_url=data.get("webhook_url") or "", queued=not in_database,
        )
        job_id = str(memory.pk)
        if not in_database:
            try:
                job_id = task_enqueue(memory_embed, str(memory.pk))
            except Exception as exc:  # noqa: BLE001 - Redis is down: the sweep queues it
                log_not_queued(f"memory {memory.pk}", exc, "the sweep queues it later")
                job_id = None
        return Response(MemoryAsyncOutput({
            "id": memory.pk, "status": memory.status, "job_id": job_id,
            "estimated_completion_seconds": ESTIMATED_SECONDS,
        }).data, status=202)


class MemoryStatusView(APIView):
    @extend_schema(parameters=[OpenApiParameter("memory_id", OpenApiTypes.UUID,
                                                OpenApiParameter.PATH)],
                   responses=MemoryStatusOutput)
    def get(self, request, memory_id: str):
        memory = None
        if is_uuid(memory_id):
            memory = (Memory.objects.for_account(request.user).without_vectors()
                      .filter(Q(deleted_at__isnull=True) | Q(duplicate_of__isnull=False),
                              pk=memory_id).first())
        if memory is None:
            raise NotFound("Memory not found")
        return Response(MemoryStatusOutput(memory).data)
