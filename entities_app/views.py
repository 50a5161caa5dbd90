"""Entity endpoints. Viewsets declare; services act."""

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

from memoryrelay_site.views import AccountViewSet, ListMixin
from sessions_app.serializers import DeletedOutput
from sessions_app.views import validated

from . import services
from .filtersets import EntityFilterSet
from .models import Entity
from .serializers import (
    EntityCreateInput,
    EntityLinkInput,
    EntityLinkSerializer,
    EntitySerializer,
    EntityUpdateInput,
    MemoryLinkInput,
)

ENTITY_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                             description="Entity ID")
TAKEN = OpenApiResponse({"$ref": "#/components/schemas/Error"}, description=(
    "Another live entity of the account has that name (by its key: \"ACME\" when \"Acme "
    "Corp\" exists) and type"))
LINKED = {201: OpenApiResponse(EntityLinkSerializer, description="Linked"),
          200: OpenApiResponse(EntityLinkSerializer, description="Linked already: the link, "
                               "with the relationship and score given")}


@extend_schema_view(**{name: extend_schema(parameters=[ENTITY_ID]) for name in (
    "retrieve", "update", "partial_update", "destroy", "link")})
class EntityViewSet(ListMixin, AccountViewSet):
    serializer_class = EntitySerializer
    filterset_class = EntityFilterSet
    not_found_message = "Entity not found"

    def get_queryset(self):
        return services.entities_visible(account=self.request.user)

    def get_object(self) -> Entity:
        return services.entity_get(account=self.request.user, entity_id=self.object_id())

    def _fresh(self, entity: Entity) -> dict:
        """The entity as the API shows it, counts included."""
        return EntitySerializer(services.entity_get(account=self.request.user,
                                                    entity_id=entity.pk)).data

    @extend_schema(request=EntityCreateInput, responses={
        201: OpenApiResponse(EntitySerializer, description="Created"),
        200: OpenApiResponse(EntitySerializer, description="An entity of that type whose "
                             "name has the same key exists: that entity, unchanged"),
    })
    def create(self, request):
        data = validated(EntityCreateInput, request.data)
        entity, created = services.entity_get_or_create(account=request.user, **data)
        if created:
            entity.memory_count = entity.relationship_count = 0
            return Response(EntitySerializer(entity).data, status=201)
        return Response(self._fresh(entity))

    @extend_schema(responses=EntitySerializer)
    def retrieve(self, request, pk=None):
        return Response(EntitySerializer(self.get_object()).data)

    @extend_schema(request=EntityUpdateInput, responses={200: EntitySerializer, 409: TAKEN})
    def update(self, request, pk=None):
        entity = self.get_object()
        data = validated(EntityUpdateInput, request.data)
        return Response(self._fresh(services.entity_update(entity=entity, changes=data)))

    @extend_schema(request=EntityUpdateInput, responses={200: EntitySerializer, 409: TAKEN})
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(responses={200: DeletedOutput})
    def destroy(self, request, pk=None):
        entity = services.entity_delete(entity=self.get_object())
        return Response(DeletedOutput({"id": entity.id, "deleted": True,
                                       "deleted_at": entity.deleted_at}).data)

    @extend_schema(request=EntityLinkInput, responses=LINKED)
    @action(detail=False, methods=["post"])
    def links(self, request):
        """Links an entity to a memory (both of the calling account: another id is a 422 on
        its field); linking again answers 200 with the link."""
        data = validated(EntityLinkInput, request.data)
        entity = services.entity_for_link(account=request.user, entity_id=data.pop("entity_id"))
        return self._link(entity, data, missing_entity=True)

    @extend_schema(request=MemoryLinkInput, responses=LINKED)
    @action(detail=True, methods=["post"])
    def link(self, request, pk=None):
        """Links this entity to a memory (SDK 0.3.0's spelling of POST /v1/entities/links)."""
        entity = self.get_object()
        return self._link(entity, validated(MemoryLinkInput, request.data))

    def _link(self, entity: Entity, data: dict, missing_entity: bool = False) -> Response:
        link, created = services.entity_link(
            account=self.request.user, entity=entity, **data,
            missing_entity=services.entity_for_link_missing() if missing_entity else None)
        return Response(EntityLinkSerializer(link).data, status=201 if created else 200)
