"""The entity graph endpoints: an entity's relationships and its neighbourhood.

``GET /v1/entities/{id}/relationships``: the live entities that share live memories with
it, most shared first, each with the count and the newest shared memory (a list body).
``GET /v1/entities/{id}/neighborhood?depth=&max_neighbors=``: ``{entity, nodes, edges}``
up to ``depth`` hops. Both read ``entities_app.graph``; another account's entity, a deleted
one or a malformed id is a 404.

The serializers below document the bodies; the views write the same shapes as plain dicts,
since a neighbourhood may hold a few thousand nodes and edges (the OpenAPI tests check the
bodies against the documented schemas).
"""

from __future__ import annotations

import base64
import binascii
import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryrelay_site.errors import Invalid
from memoryrelay_site.pagination import DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_INT, parse_int
from memoryrelay_site.serializers import UnixTimestampField, is_uuid

from . import graph, services
from .models import Entity
from .serializers import EntitySerializer

# --- documented shapes ------------------------------------------------------------------------


class GraphEntityOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    entity_type = serializers.CharField()


class GraphNodeOutput(GraphEntityOutput):
    depth = serializers.IntegerField(help_text="Hops from the entity asked for (itself: 0)")


class GraphEdgeOutput(serializers.Serializer):
    source = serializers.UUIDField(help_text="The node nearer the entity asked for")
    target = serializers.UUIDField()
    weight = serializers.IntegerField(help_text="Live memories the two entities share")


class SharedMemoryOutput(serializers.Serializer):
    id = serializers.UUIDField()
    content = serializers.CharField(
        help_text=f"The first {graph.SNIPPET_CHARS} characters, with … when cut")
    created_at = UnixTimestampField(help_text="Unix seconds, as memories")


class RelationshipOutput(serializers.Serializer):
    object = serializers.CharField(help_text='"entity_relationship"')
    entity = GraphEntityOutput()
    shared_memory_count = serializers.IntegerField(
        help_text="Live memories that mention both entities")
    latest_shared_memory = SharedMemoryOutput(allow_null=True, help_text="The newest of them")


class RelationshipListOutput(serializers.Serializer):
    object = serializers.CharField(help_text='"list"')
    data = RelationshipOutput(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()
    total_count = serializers.IntegerField()


class NeighborhoodOutput(serializers.Serializer):
    object = serializers.CharField(help_text='"entity_neighborhood"')
    entity = EntitySerializer()
    depth = serializers.IntegerField()
    max_neighbors = serializers.IntegerField()
    nodes = GraphNodeOutput(many=True, help_text="The entity first (depth 0), then each hop's "
                            "new entities in the order reached")
    edges = GraphEdgeOutput(many=True)


ENTITY_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                             description="Entity ID")


def _query(name, description, **schema):
    return OpenApiParameter(name, OpenApiTypes.INT if name != "cursor" else OpenApiTypes.STR,
                            OpenApiParameter.QUERY, required=False, description=description,
                            **schema)


# --- views ------------------------------------------------------------------------------------


class EntityGraphView(APIView):
    def entity(self, request, pk) -> Entity:
        entity = graph.entity_get(account=request.user, entity_id=pk) if is_uuid(pk) else None
        if entity is None:
            raise services.entity_not_found()
        return entity


class EntityRelationshipsView(EntityGraphView):
    @extend_schema(parameters=[
        ENTITY_ID,
        _query("limit", "Results per page (1-100, larger values are clamped)",
               default=DEFAULT_LIMIT),
        _query("offset", "Number of results to skip", default=0),
        _query("cursor", "Opaque cursor from a previous page's next_cursor"),
    ], responses=RelationshipListOutput)
    def get(self, request, pk):
        """The live entities mentioned in the same live memories as this one, most shared
        memories first (ties by id), each with the count and the newest shared memory."""
        entity = self.entity(request, pk)
        params = request.query_params
        limit = parse_int(params, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        offset = parse_int(params, "offset", 0, minimum=0)
        if params.get("cursor"):
            offset = decode_offset(params["cursor"])
        page = graph.entity_relationships(entity=entity, limit=limit, offset=offset)
        has_more = offset + len(page.rows) < page.total_count
        return Response({
            "object": "list",
            "data": [relationship_body(row) for row in page.rows],
            "next_cursor": encode_offset(offset + len(page.rows)) if has_more else None,
            "has_more": has_more,
            "total_count": page.total_count,
        })


class EntityNeighborhoodView(EntityGraphView):
    @extend_schema(parameters=[
        ENTITY_ID,
        _query("depth", f"Hops to follow, 1-{graph.MAX_DEPTH} (larger values are clamped)",
               default=1),
        _query("max_neighbors", f"Neighbours followed per node, 1-{graph.MAX_NEIGHBORS} "
               "(larger values are clamped)", default=graph.DEFAULT_NEIGHBORS),
    ], responses=NeighborhoodOutput)
    def get(self, request, pk):
        """The entity and the entities up to ``depth`` hops from it. Each node before the
        last hop adds its ``max_neighbors`` strongest neighbours (most shared live memories,
        ties by id); edges join them, weighted by the memories shared."""
        params = request.query_params
        # OpenClaw's entity_graph tool offers depths up to 5: deeper is clamped, and said
        depth = parse_int(params, "depth", 1, minimum=1, maximum=graph.MAX_DEPTH)
        max_neighbors = parse_int(params, "max_neighbors", graph.DEFAULT_NEIGHBORS, minimum=1,
                                  maximum=graph.MAX_NEIGHBORS)
        entity = self.entity(request, pk)
        found = graph.entity_neighborhood(entity=entity, depth=depth,
                                          max_neighbors=max_neighbors)
        return Response({
            "object": "entity_neighborhood",
            "entity": EntitySerializer(entity).data,
            "depth": depth,
            "max_neighbors": max_neighbors,
            "nodes": [{"id": n.id, "name": n.name, "entity_type": n.entity_type,
                       "depth": n.depth} for n in found.nodes],
            "edges": [{"source": e.source, "target": e.target, "weight": e.weight}
                      for e in found.edges],
        })


def relationship_body(row: graph.Relationship) -> dict:
    latest = row.latest_shared_memory
    return {
        "object": "entity_relationship",
        "entity": {"id": row.entity.id, "name": row.entity.name,
                   "entity_type": row.entity.entity_type},
        "shared_memory_count": row.shared_memory_count,
        "latest_shared_memory": latest and {
            "id": str(latest.id), "content": latest.content,
            "created_at": int(latest.created_at.timestamp())},
    }


# A relationships page is ordered by counts, not by time: its cursor is the offset of the next
# page, opaque to clients like every cursor.


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_offset(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        offset = data["o"]
        if not isinstance(offset, int) or isinstance(offset, bool) or not (
                0 <= offset <= MAX_QUERY_INT):
            raise ValueError(offset)
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        raise Invalid("cursor is not a cursor this server issued", field="cursor") from None
