"""Decision and pattern endpoints, and the project views that compose several apps
(context, impact analysis, shared patterns). Viewsets declare; services act."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.response import Response

from memories_app import search
from memories_app.linked_entities import with_entities
from memories_app.tiering import memories_mark_used
from memoryrelay_site.views import AccountViewSet, ListMixin
from sessions_app.serializers import DeletedOutput
from sessions_app.views import validated

from . import projects, services
from .filtersets import DecisionFilterSet, PatternFilterSet
from .models import Decision, Pattern
from .serializers import (
    DecisionCheckInput,
    DecisionCheckOutput,
    DecisionRecordInput,
    DecisionSerializer,
    DecisionSupersedeInput,
    ImpactInput,
    ImpactOutput,
    PatternAdoptInput,
    PatternCreateInput,
    PatternSearchInput,
    PatternSearchOutput,
    PatternSerializer,
    PatternSuggestInput,
    PatternSuggestOutput,
    ProjectContextOutput,
    SharedPatternsInput,
    SharedPatternsOutput,
)

DECISION_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                               description="Decision ID")


def deleted_body(row) -> dict:
    return DeletedOutput({"id": row.id, "deleted": True, "deleted_at": row.deleted_at}).data


@extend_schema_view(**{name: extend_schema(parameters=[DECISION_ID]) for name in (
    "retrieve", "destroy", "supersede")})
class DecisionViewSet(ListMixin, AccountViewSet):
    serializer_class = DecisionSerializer
    filterset_class = DecisionFilterSet
    not_found_message = "Decision not found"

    def get_queryset(self):
        return Decision.objects.live().for_account(self.request.user).without_vectors()

    def get_object(self) -> Decision:
        return services.decision_get(account=self.request.user, decision_id=self.object_id())

    @extend_schema(request=DecisionRecordInput, responses={201: DecisionSerializer})
    def create(self, request):
        data = validated(DecisionRecordInput, request.data)
        decision = services.decision_record(account=request.user, **data)
        return Response(DecisionSerializer(decision).data, status=201)

    @extend_schema(responses=DecisionSerializer)
    def retrieve(self, request, pk=None):
        return Response(DecisionSerializer(self.get_object()).data)

    @extend_schema(responses={200: DeletedOutput})
    def destroy(self, request, pk=None):
        return Response(deleted_body(services.decision_delete(decision=self.get_object())))

    @extend_schema(request=DecisionSupersedeInput, responses={201: DecisionSerializer})
    @action(detail=True, methods=["post"])
    def supersede(self, request, pk=None):
        old = self.get_object()
        data = validated(DecisionSupersedeInput, request.data)
        new = services.decision_supersede(account=request.user, decision=old, **data)
        return Response(DecisionSerializer(new).data, status=201)

    @extend_schema(parameters=[DecisionCheckInput], responses=DecisionCheckOutput)
    @action(detail=False, methods=["get"])
    def check(self, request):
        data = validated(DecisionCheckInput, request.query_params)
        hits = services.decision_check(account=request.user, text=data["query"],
                                       limit=data["limit"], threshold=data["threshold"],
                                       project=data.get("project") or None,
                                       include_superseded=data["include_superseded"])
        body = {"query": data["query"], "total": len(hits),
                "data": [{"decision": h.item, "score": search.shown(h.score)} for h in hits]}
        return Response(DecisionCheckOutput(body).data)


PATTERN_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                              description="Pattern ID")


@extend_schema_view(**{name: extend_schema(parameters=[PATTERN_ID]) for name in (
    "retrieve", "destroy", "adopt")})
class PatternViewSet(ListMixin, AccountViewSet):
    serializer_class = PatternSerializer
    filterset_class = PatternFilterSet
    not_found_message = "Pattern not found"

    def get_queryset(self):
        return (Pattern.objects.live().for_account(self.request.user).without_vectors()
                .with_adoption_count())

    def get_object(self) -> Pattern:
        return services.pattern_get(account=self.request.user, pattern_id=self.object_id())

    @extend_schema(request=PatternCreateInput, responses={201: PatternSerializer})
    def create(self, request):
        data = validated(PatternCreateInput, request.data)
        pattern = services.pattern_create(account=request.user, **data)
        return Response(PatternSerializer(pattern).data, status=201)

    @extend_schema(responses=PatternSerializer)
    def retrieve(self, request, pk=None):
        return Response(PatternSerializer(self.get_object()).data)

    @extend_schema(responses={200: DeletedOutput})
    def destroy(self, request, pk=None):
        return Response(deleted_body(services.pattern_delete(pattern=self.get_object())))

    @extend_schema(request=PatternAdoptInput, responses=PatternSerializer)
    @action(detail=True, methods=["post"])
    def adopt(self, request, pk=None):
        pattern = self.get_object()
        data = validated(PatternAdoptInput, request.data)
        pattern = services.pattern_adopt(account=request.user, pattern=pattern,
                                         project_slug=data["project"])
        return Response(PatternSerializer(pattern).data)

    @extend_schema(parameters=[PatternSearchInput], responses=PatternSearchOutput)
    @action(detail=False, methods=["get"])
    def search(self, request):
        data = validated(PatternSearchInput, request.query_params)
        hits = services.pattern_search(
            account=request.user, text=data["query"], project=data.get("project") or None,
            category=data.get("category") or None, limit=data["limit"],
            threshold=data["threshold"])
        body = {"query": data["query"], "total": len(hits),
                "data": [{"pattern": h.item, "score": search.shown(h.score)} for h in hits]}
        return Response(PatternSearchOutput(body).data)

    @extend_schema(parameters=[PatternSuggestInput], responses=PatternSuggestOutput)
    @action(detail=False, methods=["get"])
    def suggest(self, request):
        data = validated(PatternSuggestInput, request.query_params)
        patterns = services.pattern_suggest(account=request.user, project_slug=data["project"],
                                            limit=data["limit"])
        return Response(PatternSuggestOutput({"data": patterns, "project": data["project"],
                                              "total": len(patterns)}).data)


PROJECT_SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="Project slug")


class ProjectKnowledgeViewSet(AccountViewSet):
    """The project views composed from several apps, routed before the projects app's
    ``projects/{slug}`` (only these three routes: no list or detail here)."""

    action_scopes = {"impact_analysis": "read"}  # a question sent as POST

    lookup_field = "slug"
    not_found_message = "Project not found"
    # what OPTIONS describes for the one POST here (DRF's metadata builds it)
    serializer_class = ImpactInput

    @extend_schema(parameters=[PROJECT_SLUG], responses=ProjectContextOutput)
    @action(detail=True, methods=["get"])
    def context(self, request, slug=None):
        ctx = projects.project_context(account=request.user, slug=slug)
        body = ProjectContextOutput({
            "project": ctx.project, "hot_memories": ctx.hot_memories,
            "active_decisions": ctx.active_decisions, "adopted_patterns": ctx.adopted_patterns,
            "context": ctx.context, "total_chars": len(ctx.context),
            "truncated": ctx.truncated,
        }).data
        # Shown to an agent at every start: in use, so no maintenance demotes them out of it.
        memories_mark_used(memories=ctx.hot_memories)
        return Response(body)

    @extend_schema(request=ImpactInput, responses=ImpactOutput)
    @action(detail=False, methods=["post"], url_path="impact-analysis")
    def impact_analysis(self, request):
        data = validated(ImpactInput, request.data)
        _, affected = projects.project_impact(account=request.user, slug=data["project"],
                                              change=data["change_description"],
                                              threshold=data["threshold"])
        with_entities(hit.item for a in affected for hit in a.memories)
        rows = [{
            "project": a.project, "depth": a.depth, "relationship_types": a.via,
            "decisions": [{"decision": h.item, "score": search.shown(h.score)}
                          for h in a.decisions],
            "memories": [{"memory": h.item, "score": search.shown(h.score)}
                         for h in a.memories],
        } for a in affected]
        return Response(ImpactOutput({
            "project": data["project"], "change_description": data["change_description"],
            "affected_projects": rows, "total": len(rows)}).data)

    @extend_schema(parameters=[SharedPatternsInput], responses=SharedPatternsOutput)
    @action(detail=False, methods=["get"], url_path="shared-patterns")
    def shared_patterns(self, request):
        data = validated(SharedPatternsInput, request.query_params)
        _, _, patterns = projects.patterns_shared(account=request.user, slug_a=data["a"],
                                                  slug_b=data["b"])
        return Response(SharedPatternsOutput({"a": data["a"], "b": data["b"],
                                              "data": patterns, "total": len(patterns)}).data)
