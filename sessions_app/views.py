"""Agent and session endpoints. Viewsets declare; services act."""

from __future__ import annotations

import json

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from memoryrelay_site.db import consistent_read
from memoryrelay_site.pagination import MAX_LIMIT, ListPagination, parse_int
from memoryrelay_site.serializers import parse_bool
from memoryrelay_site.views import AccountViewSet, ListMixin

from . import projects, services
from .filtersets import SessionFilterSet
from .models import Agent, Project, Session
from .serializers import (
    AgentCreateInput,
    AgentSerializer,
    AgentStatsOutput,
    AgentUpdateInput,
    DeletedOutput,
    ProjectCreateInput,
    ProjectRelationshipInput,
    ProjectRelationshipSerializer,
    ProjectSerializer,
    ProjectUpdateInput,
    RelatedProjectsOutput,
    SessionCreateInput,
    SessionDeletedOutput,
    SessionDetailOutput,
    SessionEndInput,
    SessionGetOrCreateInput,
    SessionGetOrCreateOutput,
    SessionSerializer,
    SessionSummaryOutput,
)


def validated(serializer_class, data):
    """The body's fields, checked by ``serializer_class``. No body is an empty object (a
    document of ``null`` is refused when parsed)."""
    serializer = serializer_class(data=data if data is not None else {})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class NoBodyInput(serializers.Serializer):
    """These calls take no body; one that is sent must still be a JSON object (unknown keys
    ignored): reading it refuses a malformed or hostile body as every endpoint does."""


AGENT_REF = OpenApiParameter("id", str, OpenApiParameter.PATH, description="Agent UUID or name")


@extend_schema_view(**{name: extend_schema(parameters=[AGENT_REF]) for name in (
    "retrieve", "update", "partial_update", "destroy", "stats")})
class AgentViewSet(ListMixin, AccountViewSet):
    serializer_class = AgentSerializer

    def get_queryset(self):
        return Agent.objects.live().for_account(self.request.user).with_counts()

    def _agent(self) -> Agent:
        return services.agent_get(
            account=self.request.user, ref=self.kwargs["pk"], queryset=self.get_queryset()
        )

    @extend_schema(request=AgentCreateInput, responses={201: AgentSerializer, 200: AgentSerializer})
    def create(self, request):
        data = validated(AgentCreateInput, request.data)
        agent, created = services.agent_get_or_create(
            account=request.user, name=data["name"], description=data.get("description"),
            metadata=data.get("metadata"), config=data.get("config"),
        )
        # Read back with its counts; an agent deleted as soon as it was made is answered as
        # it was made (the delete came after), not a 404.
        agent = (self.get_queryset().filter(pk=agent.pk).first()
                 or Agent.objects.for_account(request.user).with_counts().get(pk=agent.pk))
        return Response(AgentSerializer(agent).data, status=201 if created else 200)

    def retrieve(self, request, pk=None):
        return Response(AgentSerializer(self._agent()).data)

    @extend_schema(request=AgentUpdateInput, responses=AgentSerializer)
    def update(self, request, pk=None):
        data = validated(AgentUpdateInput, request.data)
        agent = services.agent_update(agent=self._agent(), changes=data)
        return Response(AgentSerializer(self.get_queryset().get(pk=agent.pk)).data)

    @extend_schema(request=AgentUpdateInput, responses=AgentSerializer)
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(responses=AgentStatsOutput)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """The agent's counts, in the two shapes clients read: OpenClaw ``data``, the Node
        SDK the top-level fields. ``last_updated``: the agent's last write."""
        agent = self._agent()
        last = agent.last_active_at or agent.updated_at
        return Response(AgentStatsOutput({
            "object": "agent_stats", "agent_id": agent.id, "name": agent.name,
            "memory_count": agent.memory_count, "session_count": agent.session_count,
            "entity_count": agent.entity_count(), "last_updated": last,
            "data": {"total_memories": agent.memory_count, "last_updated": last},
        }).data)

    @extend_schema(responses={200: DeletedOutput})
    def destroy(self, request, pk=None):
        agent = services.agent_delete(agent=self._agent())
        return Response(DeletedOutput({"id": agent.id, "deleted": True,
                                       "deleted_at": agent.deleted_at}).data)


INCLUDE_MEMORIES = OpenApiParameter(
    "include_memories", OpenApiTypes.BOOL, description="Embed the session's memories"
)
MEMORIES_LIMIT = OpenApiParameter(
    "memories_limit", OpenApiTypes.INT,
    description=(
        "How many memories to embed, oldest first (default "
        f"{settings.MEMORYRELAY_INCLUDE_MEMORIES_DEFAULT}, at most "
        f"{settings.MEMORYRELAY_INCLUDE_MEMORIES_MAX}). Fewer come back once their content "
        "and metadata pass MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES (default 1 MiB; always at "
        "least one): memories_has_more is then true. Page further with memories_offset "
        "(plus the number received), or with GET /v1/memories?session_id=…"
    ),
)
MEMORIES_CHUNK = 32  # memories read from the database at a time
MEMORIES_OFFSET = OpenApiParameter(
    "memories_offset", {"type": "integer", "minimum": 0, "default": 0},
    description="Skip this many of the oldest memories",
)
SESSION_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                              description="Session ID")
CASCADE = OpenApiParameter(
    "cascade_memories", OpenApiTypes.BOOL, description="Soft-delete the session's memories too"
)


@extend_schema_view(
    retrieve=extend_schema(parameters=[SESSION_ID]), destroy=extend_schema(parameters=[SESSION_ID]),
    end=extend_schema(parameters=[SESSION_ID]), summarize=extend_schema(parameters=[SESSION_ID]),
)
class SessionViewSet(ListMixin, AccountViewSet):
    serializer_class = SessionSerializer
    filterset_class = SessionFilterSet
    not_found_message = "Session not found"
    # How an embedded memory is written: set by the memories app's subclass, which is the
    # viewset routed (this app never imports the memories app).
    memory_serializer_class = None

    def get_queryset(self):
        return Session.objects.live().for_account(self.request.user).with_memory_count()

    def _session(self) -> Session:
        return services.session_get(account=self.request.user, session_id=self.object_id())

    @extend_schema(request=SessionCreateInput, responses={201: SessionSerializer})
    def create(self, request):
        data = validated(SessionCreateInput, request.data)
        session = services.session_create(
            account=request.user, agent_ref=data.get("agent_id"),
            external_id=data.get("external_id"), project=data.get("project"),
            title=data.get("title"), metadata=data.get("metadata"),
        )
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[INCLUDE_MEMORIES, MEMORIES_LIMIT, MEMORIES_OFFSET],
                   responses=SessionDetailOutput)
    def retrieve(self, request, pk=None):
        params = request.query_params
        if not parse_bool(params, "include_memories"):
            return Response(SessionSerializer(self._session()).data)
        with consistent_read():  # memory_count counts the memories the page is cut from
            session = self._session()
            body = SessionSerializer(session).data
            body["memories"], body["memories_has_more"] = self._memories_of(session, params)
        return Response(body)

    def _memories_of(self, session: Session, params) -> tuple[list[dict], bool]:
        """The page of memories asked for, oldest first, cut short once their content and
        metadata pass MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES (always at least one). Rows are
        read a few at a time, so a cut page never loads the rows past the cut."""
        limit = parse_int(
            params, "memories_limit", settings.MEMORYRELAY_INCLUDE_MEMORIES_DEFAULT,
            minimum=1, maximum=settings.MEMORYRELAY_INCLUDE_MEMORIES_MAX,
        )
        offset = parse_int(params, "memories_offset", 0, minimum=0)
        rows = (
            session.memories.filter(deleted_at__isnull=True).without_vectors()
            .with_project_id()
            .order_by("created_at", "id")[offset : offset + limit]
        )
        budget, used, page = settings.MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES, 0, []
        for row in rows.iterator(chunk_size=MEMORIES_CHUNK):
            used += len(row.content.encode()) + len(json.dumps(row.metadata))
            if page and used > budget:
                break
            page.append(row)
        # Serialized as one list, so that what the serializer reads for every memory (their
        # entities) is read once for the page.
        body = list(self.memory_serializer_class(page, many=True).data)
        return body, offset + len(page) < session.memory_count

    @extend_schema(parameters=[CASCADE], responses={200: SessionDeletedOutput})
    def destroy(self, request, pk=None):
        cascade = parse_bool(request.query_params, "cascade_memories") or parse_bool(
            request.data if isinstance(request.data, dict) else {}, "cascade_memories"
        )
        session = services.session_delete(session=self._session(), cascade_memories=cascade)
        return Response(SessionDeletedOutput({
            "id": session.id, "deleted": True, "deleted_at": session.deleted_at,
            "cascade_memories": cascade,
        }).data)

    @extend_schema(request=SessionEndInput, responses=SessionSerializer)
    @action(detail=True, methods=["post", "put"])
    def end(self, request, pk=None):
        data = validated(SessionEndInput, request.data)
        session = services.session_end(
            session=self._session(), summary=data.get("summary"),
            metadata=data.get("metadata"), auto_summarize=data["auto_summarize"],
        )
        return Response(SessionSerializer(session).data)

    @extend_schema(request=None, responses=SessionSummaryOutput)
    @action(detail=True, methods=["post"])
    def summarize(self, request, pk=None):
        validated(NoBodyInput, request.data)
        result = services.session_summarize(session=self._session())
        return Response(SessionSummaryOutput({
            "session_id": result.session.id, "summary": result.summary,
            "memory_count": result.memory_count, "generated_at": result.generated_at,
        }).data)

    @extend_schema(request=SessionGetOrCreateInput,
                   responses={200: SessionGetOrCreateOutput, 201: SessionGetOrCreateOutput})
    @action(detail=False, methods=["post"], url_path="get-or-create")
    def get_or_create(self, request):
        data = validated(SessionGetOrCreateInput, request.data)
        session, created = services.session_get_or_create(
            account=request.user, external_id=data["external_id"],
            agent_ref=data.get("agent_id"), project=data.get("project"),
            title=data.get("title"), metadata=data.get("metadata"),
        )
        session.created = created
        session.contributors = services.session_contributors(session=session)
        return Response(SessionGetOrCreateOutput(session).data, status=201 if created else 200)


# --- Projects -------------------------------------------------------------------------------

PROJECT_SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="Project slug")
RELATED_LIMIT = OpenApiParameter(
    "limit", {"type": "integer", "minimum": 1, "default": 100},
    description="At most this many relationships, newest first (1-100, larger values are "
    "clamped); has_more tells whether there are more",
)


@extend_schema_view(**{name: extend_schema(parameters=[PROJECT_SLUG]) for name in (
    "retrieve", "update", "partial_update", "destroy", "relationships")},
    **{name: extend_schema(parameters=[PROJECT_SLUG, RELATED_LIMIT],
                           responses=RelatedProjectsOutput)
       for name in ("dependencies", "dependents", "related")})
class ProjectViewSet(ListMixin, AccountViewSet):
    """Projects, addressed by slug. Literal routes of other apps under ``projects/`` (such
    as ``projects/impact-analysis``) are routed before these."""

    serializer_class = ProjectSerializer
    lookup_field = "slug"
    not_found_message = "Project not found"

    def get_queryset(self):
        return Project.objects.live().for_account(self.request.user).with_memory_count()

    def get_object(self) -> Project:
        return projects.project_get(account=self.request.user, slug=self.kwargs["slug"],
                                    queryset=self.get_queryset())

    def _fresh(self, project: Project) -> Response:
        return Response(ProjectSerializer(self.get_queryset().get(pk=project.pk)).data)

    @extend_schema(request=ProjectCreateInput, responses={201: ProjectSerializer})
    def create(self, request):
        data = validated(ProjectCreateInput, request.data)
        project = projects.project_create(account=request.user, **data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, slug=None):
        return Response(ProjectSerializer(self.get_object()).data)

    @extend_schema(request=ProjectUpdateInput, responses=ProjectSerializer)
    def update(self, request, slug=None):
        data = validated(ProjectUpdateInput, request.data)
        return self._fresh(projects.project_update(project=self.get_object(), changes=data))

    @extend_schema(request=ProjectUpdateInput, responses=ProjectSerializer)
    def partial_update(self, request, slug=None):
        return self.update(request, slug)

    @extend_schema(responses={200: DeletedOutput})
    def destroy(self, request, slug=None):
        project = projects.project_delete(project=self.get_object())
        return Response(DeletedOutput({"id": project.id, "deleted": True,
                                       "deleted_at": project.deleted_at}).data)

    @extend_schema(request=ProjectRelationshipInput, responses={
        201: ProjectRelationshipSerializer, 200: ProjectRelationshipSerializer})
    @action(detail=True, methods=["post"])
    def relationships(self, request, slug=None):
        data = validated(ProjectRelationshipInput, request.data)
        relationship, created = projects.project_relate(
            project=self.get_object(), target_slug=data["target_project"],
            relationship_type=data["relationship_type"], metadata=data.get("metadata"),
        )
        return Response(ProjectRelationshipSerializer(relationship).data,
                        status=201 if created else 200)

    @action(detail=True, methods=["get"])
    def dependencies(self, request, slug=None):
        project = self.get_object()
        return self._edges(project, projects.project_dependencies(project=project))

    @action(detail=True, methods=["get"])
    def dependents(self, request, slug=None):
        project = self.get_object()
        return self._edges(project, projects.project_dependents(project=project))

    @action(detail=True, methods=["get"])
    def related(self, request, slug=None):
        project = self.get_object()
        return self._edges(project, projects.project_edges(project=project))

    def _edges(self, project: Project, rows) -> Response:
        """The relationships seen from ``project``, paged like every list (by default all of
        a page's 100): three queries however many there are."""
        pages = ListPagination(default_limit=MAX_LIMIT)
        with consistent_read():
            page = pages.paginate_queryset(rows, self.request)
            others = {r.target_id if r.source_id == project.pk else r.source_id for r in page}
            counted = {p.pk: p for p in
                       Project.objects.filter(pk__in=others).with_memory_count()}
        data = [{
            "relationship_id": r.id, "relationship_type": r.relationship_type,
            "direction": "outgoing" if r.source_id == project.pk else "incoming",
            "project": counted[r.target_id if r.source_id == project.pk else r.source_id],
            "metadata": r.metadata, "created_at": r.created_at,
        } for r in page]
        return Response(RelatedProjectsOutput({
            "object": "list", "project": project.slug, "data": data,
            "next_cursor": pages.next_cursor, "has_more": pages.has_more,
            "total_count": pages.total_count,
        }).data)
