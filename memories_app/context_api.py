"""``POST /v2/context/build`` (the MCP server's ``context_build``) and ``POST /v2/context``
(OpenClaw's ``buildContextV2``): one view, its input and output. The bundle itself is built
by :func:`memories_app.context.context_bundle_build`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryrelay_site.serializers import StrictCharField, StrictUUIDField
from sessions_app.views import validated

from .context import DEFAULT_MAX_MEMORIES, context_bundle_build
from .serializers import ContentField

MAX_EXCLUDED = 1000


class ContextBundleInput(serializers.Serializer):
    query = ContentField(max_length=10_000)
    agent_id = StrictCharField(
        max_length=255, required=False, allow_null=True, allow_blank=True,
        help_text="Agent UUID or name: only its memories (omitted or null: the account's)")
    max_memories = serializers.IntegerField(min_value=1, max_value=100, required=False,
                                            allow_null=True, help_text="Default 20")
    max_tokens = serializers.IntegerField(
        min_value=100, max_value=128_000, required=False, allow_null=True,
        help_text="Token budget of the bundle (contents plus summary), tokens estimated as "
        "ceil(characters / 4); omitted: no token limit")
    search_mode = serializers.ChoiceField(choices=["hybrid", "semantic", "keyword"],
                                          required=False, allow_null=True)
    exclude_memory_ids = serializers.ListField(
        child=StrictUUIDField(), max_length=MAX_EXCLUDED, required=False,
        allow_null=True, help_text="Memories left out (multi-turn context building)")
    ai_enhanced = serializers.BooleanField(
        required=False, allow_null=True, default=False,
        help_text="Add an extractive summary of the bundle (offline, no LLM is called)")
    ranking_version = StrictCharField(
        max_length=50, required=False, allow_null=True, allow_blank=True,
        help_text="Accepted and ignored: one formula is served, named in the response")


class ContextBundleItem(serializers.Serializer):
    memory_id = serializers.UUIDField()
    content = serializers.CharField()
    score = serializers.FloatField(min_value=0.0, max_value=1.0)
    memory_type = serializers.CharField()


class ContextBundleOutput(serializers.Serializer):
    context = ContextBundleItem(many=True)
    summary = serializers.CharField(allow_null=True, allow_blank=True,
                                    help_text="null unless ai_enhanced")
    token_count = serializers.IntegerField()
    ranking_version = serializers.CharField()
    ai_enhanced = serializers.BooleanField()
    latency_ms = serializers.IntegerField()


class ContextBundleView(APIView):
    """The best memories for a query, ranked by relevance, importance and recency
    (``ranking_version`` composite-v1: 0.70 relevance + 0.20 importance + 0.10 recency,
    recency halving every 30 days), within ``max_memories`` and ``max_tokens``."""

    key_scope = "read"  # a search sent as POST

    @extend_schema(request=ContextBundleInput, responses=ContextBundleOutput)
    def post(self, request):
        data = validated(ContextBundleInput, request.data)
        bundle = context_bundle_build(
            account=request.user, query=data["query"], agent_ref=data.get("agent_id") or None,
            max_memories=data.get("max_memories") or DEFAULT_MAX_MEMORIES,
            max_tokens=data.get("max_tokens"), search_mode=data.get("search_mode") or "hybrid",
            exclude_memory_ids=data.get("exclude_memory_ids") or [],
            ai_enhanced=bool(data.get("ai_enhanced")),
        )
        return Response(ContextBundleOutput(bundle).data)
