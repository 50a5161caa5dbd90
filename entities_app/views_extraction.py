"""Entity extraction endpoints under ``/v1/memories``.

``POST /v1/memories/{id}/extract-entities`` queues (re-)extraction of one memory: 202
``{status: "queued", memory_id, extraction_method, extraction_model}``.
``GET /v1/memories/{id}/extraction-status``: ``{status, extraction_method,
extraction_model, updated_at, entity_count}``; ``status`` is ``not_started`` for a memory
extraction was never asked for, else ``pending``, ``processing``, ``done`` or ``failed``.
``POST /v1/memories/backfill-entities?limit=&agent_id=`` queues the memories never
processed (oldest first, ``limit`` 1-500, default 100): 202 ``{status: "queued", queued}``.
Another account's memory, a deleted one or a malformed id is a 404."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from memories_app.services import memory_get
from memoryrelay_site.errors import NotFound
from memoryrelay_site.pagination import parse_int
from memoryrelay_site.serializers import IsoDateTimeField, StrictCharField, is_uuid
from sessions_app.views import NoBodyInput, validated

from . import pipeline

BACKFILL_DEFAULT, BACKFILL_MAX = 100, 500
MEMORY_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                             description="Memory ID")


class ExtractionQueuedOutput(serializers.Serializer):
    status = serializers.CharField(help_text='"queued"')
    memory_id = serializers.UUIDField()
    extraction_method = serializers.CharField()
    extraction_model = serializers.CharField()


class ExtractionStatusOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        ["not_started", "pending", "processing", "done", "failed"])
    extraction_method = serializers.CharField(allow_null=True)
    extraction_model = serializers.CharField(allow_null=True)
    updated_at = IsoDateTimeField(allow_null=True)
    entity_count = serializers.IntegerField(help_text="Live entities linked to the memory")
    error = serializers.CharField(required=False, help_text="When failed")


class BackfillOutput(serializers.Serializer):
    status = serializers.CharField(help_text='"queued"')
    queued = serializers.IntegerField()


def _memory(request, memory_id: str):
    if not is_uuid(memory_id):
        raise NotFound("Memory not found")
    return memory_get(account=request.user, memory_id=memory_id)


class ExtractEntitiesView(APIView):
    @extend_schema(request=None, parameters=[MEMORY_ID],
                   responses={202: ExtractionQueuedOutput})
    def post(self, request, pk: str):
        validated(NoBodyInput, request.data)
        memory = _memory(request, pk)
        pipeline.extraction_request(memory_ids=[memory.pk])
        method, model = pipeline.extractor_named(memory)
        return Response({"status": "queued", "memory_id": str(memory.pk),
                         "extraction_method": method, "extraction_model": model},
                        status=202)


class ExtractionStatusView(APIView):
    @extend_schema(parameters=[MEMORY_ID], responses={200: ExtractionStatusOutput})
    def get(self, request, pk: str):
        memory = _memory(request, pk)
        row = pipeline.extraction_of(memory=memory)
        body = {"status": "not_started", "extraction_method": None, "extraction_model": None,
                "updated_at": None,
                "entity_count": pipeline.extraction_entity_count(memory=memory)}
        if row is not None:
            body.update(status=row.status, extraction_method=row.method or None,
                        extraction_model=row.model or None, updated_at=row.updated_at)
            if row.status == "failed":
                body["error"] = row.error
        return Response(ExtractionStatusOutput(body).data)


class BackfillInput(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    agent_id = StrictCharField(max_length=255, required=False, allow_null=True,
                               allow_blank=True)

    def validate_limit(self, value):
        if isinstance(self.initial_data.get("limit"), (bool, str)):
            raise serializers.ValidationError("must be an integer")
        return min(value, BACKFILL_MAX) if value is not None else None


class BackfillEntitiesView(APIView):
    @extend_schema(request=None, parameters=[
        OpenApiParameter("limit", int, description=f"1-{BACKFILL_MAX} (default "
                         f"{BACKFILL_DEFAULT}; larger values are clamped)"),
        OpenApiParameter("agent_id", str, description="Only this agent's memories (UUID or "
                         "name)"),
    ], responses={202: BackfillOutput})
    def post(self, request):
        # The SDKs send the query string; a JSON body may carry the same two (the query
        # wins). Reading it refuses a malformed or hostile body as every endpoint does.
        given = validated(BackfillInput, request.data)
        limit = parse_int(request.query_params, "limit",
                          given.get("limit") or BACKFILL_DEFAULT, minimum=1,
                          maximum=BACKFILL_MAX)
        agent = request.query_params.get("agent_id") or given.get("agent_id") or None
        queued = pipeline.entities_backfill(account=request.user, agent_ref=agent, limit=limit)
        return Response({"status": "queued", "queued": queued}, status=202)
