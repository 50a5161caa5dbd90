"""Memory endpoints. Viewsets declare; services act."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from memoryrelay_site.views import AccountViewSet
from sessions_app.serializers import DeletedOutput
from sessions_app.views import validated

from . import services
from .filtersets import MemoryFilterSet
from .models import Memory
from .serializers import MemoryCreateInput, MemorySerializer, MemoryUpdateInput


MEMORY_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                             description="Memory ID")


@extend_schema_view(**{name: extend_schema(parameters=[MEMORY_ID]) for name in (
    "retrieve", "update", "partial_update", "destroy")})
class MemoryViewSet(mixins.ListModelMixin, AccountViewSet):
    serializer_class = MemorySerializer
    filterset_class = MemoryFilterSet
    not_found_message = "Memory not found"

    def get_queryset(self):
        return Memory.objects.live().for_account(self.request.user)

    def _memory(self) -> Memory:
        return services.memory_get(account=self.request.user, memory_id=self.object_id())

    @extend_schema(request=MemoryCreateInput, responses={201: MemorySerializer})
    def create(self, request):
        data = validated(MemoryCreateInput, request.data)
        memory = services.memory_create(
            account=request.user, agent_ref=data["agent_id"], content=data["content"],
            session_id=data.get("session_id"), project=data.get("project"),
            metadata=data.get("metadata"), memory_type=data.get("memory_type"),
            importance=data.get("importance"), tier=data.get("tier"),
            visibility=data.get("visibility"),
        )
        return Response(MemorySerializer(memory).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=MemorySerializer)
    def retrieve(self, request, pk=None):
        return Response(MemorySerializer(self._memory()).data)

    @extend_schema(request=MemoryUpdateInput, responses=MemorySerializer)
    def update(self, request, pk=None):
        memory = self._memory()
        data = validated(MemoryUpdateInput, request.data)
        memory = services.memory_update(memory=memory, changes=data)
        return Response(MemorySerializer(memory).data)

    @extend_schema(request=MemoryUpdateInput, responses=MemorySerializer)
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(responses=DeletedOutput)
    def destroy(self, request, pk=None):
        memory = services.memory_delete(memory=self._memory())
        return Response(DeletedOutput({"id": memory.id, "deleted": True,
                                       "deleted_at": memory.deleted_at}).data)
