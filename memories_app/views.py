"""Memory endpoints. Viewsets declare; services act."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryrelay_site.errors import Invalid, ServiceError, flatten_validation
from memoryrelay_site.views import AccountViewSet, ListMixin
from memoryrelay_site.views import HealthView as SiteHealthView
from sessions_app.serializers import DeletedOutput
from sessions_app.views import SessionViewSet as BaseSessionViewSet
from sessions_app.views import validated

from . import search, services, tiering
from .embeddings import get_provider, provider_state, text_embed
from .filtersets import MemoryFilterSet
from .linked_entities import with_entities
from .models import Memory
from .serializers import (
    BatchInput,
    BatchItemInput,
    BatchOutput,
    ContextInput,
    ContextOutput,
    EmbedInput,
    EmbedOutput,
    ImportanceInput,
    MaintenanceInput,
    MaintenanceOutput,
    MemoryCreateInput,
    MemorySerializer,
    MemoryUpdateInput,
    SearchInput,
    SearchOutput,
)

BATCH_TOO_LARGE = OpenApiResponse(
    {"$ref": "#/components/schemas/Error"},
    description="The body is over the size limit, or the memories need more tokens of the "
    "local embedding model than MEMORYRELAY_BATCH_MAX_TOKENS (8,192; each memory counts at "
    "most 256): details name memories. Send fewer or shorter memories per batch.",
)
MEMORY_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                             description="Memory ID")


@extend_schema_view(**{name: extend_schema(parameters=[MEMORY_ID]) for name in (
    "retrieve", "update", "partial_update", "destroy")})
class MemoryViewSet(ListMixin, AccountViewSet):
    serializer_class = MemorySerializer
    filterset_class = MemoryFilterSet
    not_found_message = "Memory not found"
    # Searches are sent as POST but only read; maintenance changes every memory it scores.
    action_scopes = {"search": "read", "context": "read", "maintenance": "admin"}

    def get_queryset(self):
        return (Memory.objects.live().for_account(self.request.user).without_vectors()
                .with_project_id())

    def _memory(self) -> Memory:
        return services.memory_get(account=self.request.user, memory_id=self.object_id())

    @extend_schema(request=MemoryCreateInput, responses={
        201: OpenApiResponse(MemorySerializer, description="Stored"),
        200: OpenApiResponse(MemorySerializer, description="deduplicate: the existing "
                             "near-identical memory, with is_duplicate true; nothing stored"),
    })
    def create(self, request):
        data = validated(MemoryCreateInput, request.data)
        memory = services.memory_create(account=request.user, **memory_create_arguments(data))
        duplicate = getattr(memory, "is_duplicate", False)
        return Response(MemorySerializer(memory).data, status=200 if duplicate else 201)

    @extend_schema(responses=MemorySerializer)
    def retrieve(self, request, pk=None):
        memory = self._memory()
        body = MemorySerializer(memory).data
        tiering.memories_mark_used(memories=[memory])
        return Response(body)

    @extend_schema(request=MemoryUpdateInput, responses=MemorySerializer)
    def update(self, request, pk=None):
        memory = self._memory()
        data = validated(MemoryUpdateInput, request.data)
        memory = services.memory_update(memory=memory, changes=data)
        return Response(MemorySerializer(memory).data)

    @extend_schema(request=MemoryUpdateInput, responses=MemorySerializer)
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(responses={200: DeletedOutput})
    def destroy(self, request, pk=None):
        memory = services.memory_delete(memory=self._memory())
        return Response(DeletedOutput({"id": memory.id, "deleted": True,
                                       "deleted_at": memory.deleted_at}).data)

    @extend_schema(request=SearchInput, responses=SearchOutput, parameters=[OpenApiParameter(
        "session_id", OpenApiTypes.UUID, OpenApiParameter.QUERY, required=False,
        description="The body's session_id, when the body has none (OpenClaw sends it here)")])
    @action(detail=False, methods=["post"])
    def search(self, request):
        body = request.data
        if (isinstance(body, dict) and "session_id" not in body
                and "session_id" in request.query_params):
            # OpenClaw's session-scoped recall sends the session in the query string alone
            body = {**body, "session_id": request.query_params["session_id"]}
        data = validated(SearchInput, body)
        mode = data.get("search_mode") or "hybrid"
        hits = services.memory_search(
            account=request.user, text=data["query"], mode=mode, limit=data["limit"],
            min_score=_first_given(data, "min_score", "threshold", default=0.0),
            agent_ref=data.get("agent_id"), session_id=data.get("session_id"),
            project=data.get("project") or None, tier=data.get("tier"),
            min_importance=data.get("min_importance"),
            metadata_filter=data.get("metadata_filter"),
            include_confidential=data["include_confidential"],
            entity=data.get("entity") or None, judged=True,
        )
        with_entities(h.memory for h in hits)
        body = {"object": "search_results", "query": data["query"], "search_mode": mode,
                "data": [{"memory": h.memory, "score": search.shown(h.score)} for h in hits]}
        body = SearchOutput(body).data
        tiering.memories_mark_used(memories=[h.memory for h in hits])
        return Response(body)

    @extend_schema(request=BatchInput, responses={200: BatchOutput, 413: BATCH_TOO_LARGE})
    @action(detail=False, methods=["post"])
    def batch(self, request):
        data = validated(BatchInput, request.data)
        items = [_batch_item(raw, data.get("agent_id")) for raw in data["memories"]]
        outcomes = services.memories_batch_create(account=request.user, items=items)
        return Response(BatchOutput(_batch_body(outcomes, data["memories"])).data)

    @extend_schema(request=ContextInput, responses=ContextOutput)
    @action(detail=False, methods=["post"])
    def context(self, request):
        data = validated(ContextInput, request.data)
        context = services.memory_context(
            account=request.user, text=data["query"], limit=data["limit"],
            threshold=data["threshold"], max_tokens=data.get("max_tokens"),
            agent_ref=data.get("agent_id") or None,
        )
        body = ContextOutput({"context": context.text, "memories_used": len(context.hits),
                              "total_chars": len(context.text)}).data
        tiering.memories_mark_used(memories=[h.memory for h in context.hits])
        return Response(body)

    @extend_schema(parameters=[MEMORY_ID], request=ImportanceInput, responses=MemorySerializer)
    @action(detail=True, methods=["put"])
    def importance(self, request, pk=None):
        """Promotes or demotes a memory: a new importance, and a tier that follows it unless
        given (the MCP server's memory_promote)."""
        memory = self._memory()
        data = validated(ImportanceInput, request.data)
        return Response(MemorySerializer(services.memory_update(memory=memory, changes=data)).data)

    @extend_schema(request=MaintenanceInput, responses=MaintenanceOutput)
    @action(detail=False, methods=["post"])
    def maintenance(self, request):
        data = validated(MaintenanceInput, request.data)
        count = tiering.memories_maintain(account=request.user, action=data["action"])
        return Response(MaintenanceOutput({"action": data["action"],
                                           "demoted_count": count}).data)


def _first_given(data: dict, *names: str, default):
    return next((data[n] for n in names if data.get(n) is not None), default)


def _batch_item(raw, default_agent: str | None) -> dict | ServiceError:
    """One batch item as memory_create arguments, or the error that rejects it."""
    if not isinstance(raw, dict):
        return Invalid("each item must be a JSON object", field="memories")
    serializer = BatchItemInput(data=raw)
    if not serializer.is_valid():
        first = flatten_validation(serializer.errors)[0]
        return Invalid(f"{first['field']}: {first['message']}", field=first["field"])
    data = serializer.validated_data
    agent = data.get("agent_id") or default_agent
    if not agent:
        return Invalid("agent_id: This field is required.", field="agent_id")
    return memory_create_arguments({**data, "agent_id": agent})


def memory_create_arguments(data: dict) -> dict:
    """A validated memory-create body (v1, v2 or a batch item) as memory_create arguments."""
    return {
        "agent_ref": data["agent_id"], "content": data["content"],
        "session_id": data.get("session_id"), "project": data.get("project"),
        "project_id": data.get("project_id"), "metadata": data.get("metadata"),
        "memory_type": data.get("memory_type"), "importance": data.get("importance"),
        "tier": data.get("tier"), "visibility": data.get("visibility"),
        "deduplicate": data["deduplicate"], "dedup_threshold": data["dedup_threshold"],
        "extract": data.get("auto_extract_entities"),
    }


def _batch_body(outcomes, raw_items) -> dict:
    results = []
    for outcome in outcomes:
        raw = raw_items[outcome.index]
        content = raw.get("content") if isinstance(raw, dict) else None
        memory_id = outcome.memory.pk if outcome.memory is not None else None
        results.append({
            "index": outcome.index, "status": outcome.status, "id": memory_id,
            "memory_id": memory_id, "error": outcome.error, "error_code": outcome.error_code,
            "content_preview": content[:100] if isinstance(content, str) else "",
        })
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("success", "failed",
                                                                      "skipped")}
    return {"success": counts["failed"] == 0, "total": len(outcomes),
            "succeeded": counts["success"], "failed": counts["failed"],
            "skipped": counts["skipped"], "results": results}


class EmbedView(APIView):
    """POST /v1/embed: a text's embedding by the server's provider (OpenClaw embeds its
    queries with it, to search a local cache with the server's own vectors)."""

    key_scope = "read"  # stores nothing

    @extend_schema(request=EmbedInput, responses=EmbedOutput)
    def post(self, request):
        data = validated(EmbedInput, request.data)
        vector = text_embed(text=data["text"])
        return Response(EmbedOutput({"embedding": [round(float(x), 7) for x in vector],
                                     "model": get_provider().name,
                                     "dimension": int(vector.shape[0])}).data)


class SessionViewSet(BaseSessionViewSet):
    """The sessions API, with ``include_memories`` writing full memory objects: declared
    here, where the memory serializer lives, and routed by this app."""

    memory_serializer_class = MemorySerializer


class HealthView(SiteHealthView):
    """``GET /v1/health``, composed here: the site's database probe, and the embedding
    provider this app runs and its state (``down`` makes the server ``degraded``)."""

    def services(self, database: str) -> dict[str, str]:
        return {**super().services(database), "embeddings": get_provider().describe(public=True),
                "embedding_provider": provider_state()}
