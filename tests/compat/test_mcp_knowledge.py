"""Replays, request for request, what the MCP server (memoryrelay/mcp-server, src/client.ts)
sends for its decision, pattern and project-knowledge tools, and parses each response with
models of what it reads (src/types.ts: Decision, DecisionCheckResult, Pattern,
PatternSearchResult, ListResponse; the project views are printed whole as JSON)."""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urlencode

import pytest
from pydantic import BaseModel, ConfigDict

from tests.knowledge_app.conftest import project, relate

AGENT = "alice-laptop"  # the server's configured agent id: a name never registered


class Strict(BaseModel):
    model_config = ConfigDict(extra="allow")


class Decision(Strict):
    id: str
    agent_id: str | None = None
    session_id: str | None = None
    project_slug: str | None = None
    title: str
    rationale: str
    alternatives: str | None = None
    status: Literal["active", "superseded", "reverted", "experimental"]
    superseded_by: str | None = None
    tags: list[str]
    metadata: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class DecisionCheckResult(Strict):
    decision: Decision
    score: float


class Pattern(Strict):
    id: str
    title: str
    description: str
    scope: str
    category: str | None = None
    tags: list[str]
    example_code: str | None = None
    source_project_id: str | None = None
    source_project_slug: str | None = None
    metadata: dict[str, Any] | None = None
    adoption_count: int
    created_at: str
    updated_at: str


class PatternSearchResult(Strict):
    pattern: Pattern
    score: float


class DecisionList(Strict):
    data: list[Decision]
    has_more: bool
    total_count: int | None = None
    next_cursor: str | None = None


class CheckResponse(Strict):
    data: list[DecisionCheckResult]
    query: str
    total: int


class PatternSearchResponse(Strict):
    data: list[PatternSearchResult]
    query: str
    total: int


class SuggestResponse(Strict):
    data: list[Pattern]
    project: str
    total: int


class MCP:
    """``MemoryRelayClient.request``: a Bearer key, a JSON body only when there is one,
    query strings built with URLSearchParams (only the parameters set)."""

    def __init__(self, client):
        self.client = client

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"HTTP_USER_AGENT": "@memoryrelay/mcp-server"}
        if body is None:
            response = getattr(self.client, method.lower())(path, **headers)
        else:
            response = self.client.generic(method, path, json.dumps(body),
                                           content_type="application/json", **headers)
        assert response.status_code < 300, (method, path, response.content)
        return response.json()

    # --- client.ts, tool by tool ----------------------------------------------------------

    def record_decision(self, title, rationale, alternatives=None, project=None, tags=None,
                        status=None):
        body = {"title": title, "rationale": rationale, "agent_id": AGENT}
        for key, value in (("alternatives", alternatives), ("project_slug", project),
                           ("tags", tags), ("status", status)):
            if value:
                body[key] = value
        return Decision(**self.request("POST", "/v1/decisions", body))

    def list_decisions(self, limit=None, project=None, status=None, tags=None):
        params = {k: v for k, v in (("limit", limit), ("project", project),
                                    ("status", status), ("tags", tags)) if v}
        return DecisionList(**self.request("GET", f"/v1/decisions?{urlencode(params)}"))

    def supersede_decision(self, decision_id, title, rationale, alternatives=None, tags=None):
        body = {"title": title, "rationale": rationale}
        if alternatives:
            body["alternatives"] = alternatives
        if tags:
            body["tags"] = tags
        return Decision(**self.request("POST", f"/v1/decisions/{decision_id}/supersede", body))

    def check_decisions(self, query, project=None, limit=None, threshold=None,
                        include_superseded=False):
        params = {"query": query}
        if limit:
            params["limit"] = str(limit)
        if threshold is not None:
            params["threshold"] = str(threshold)
        if project:
            params["project"] = project
        if include_superseded:
            params["include_superseded"] = "true"
        return CheckResponse(**self.request("GET", f"/v1/decisions/check?{urlencode(params)}"))

    def create_pattern(self, title, description, category=None, example_code=None,
                       scope=None, tags=None, source_project=None):
        body = {"title": title, "description": description}
        for key, value in (("category", category), ("example_code", example_code),
                           ("scope", scope), ("tags", tags), ("source_project", source_project)):
            if value:
                body[key] = value
        return Pattern(**self.request("POST", "/v1/patterns", body))

    def search_patterns(self, query, category=None, project=None, limit=None, threshold=None):
        params = {"query": query}
        if category:
            params["category"] = category
        if project:
            params["project"] = project
        if limit:
            params["limit"] = str(limit)
        if threshold is not None:
            params["threshold"] = str(threshold)
        return PatternSearchResponse(
            **self.request("GET", f"/v1/patterns/search?{urlencode(params)}"))

    def adopt_pattern(self, pattern_id, project):
        return Pattern(**self.request("POST", f"/v1/patterns/{pattern_id}/adopt",
                                      {"project": project}))

    def suggest_patterns(self, project, limit=None):
        params = {"project": project, **({"limit": str(limit)} if limit else {})}
        return SuggestResponse(**self.request("GET", f"/v1/patterns/suggest?{urlencode(params)}"))

    def project_context(self, slug):
        return self.request("GET", f"/v1/projects/{slug}/context")

    def project_impact(self, project, change_description):
        return self.request("POST", "/v1/projects/impact-analysis",
                            {"project": project, "change_description": change_description})

    def shared_patterns(self, a, b):
        return self.request("GET", f"/v1/projects/shared-patterns?{urlencode({'a': a, 'b': b})}")


@pytest.fixture
def mcp(client):
    return MCP(client)


def test_decision_tools_record_list_supersede_and_check(mcp):
    first = mcp.record_decision("Use PostgreSQL instead of MongoDB",
                                "Reporting needs joins; we also want pgvector.",
                                alternatives="MongoDB: no joins", project="my-api",
                                tags=["architecture", "database"])
    assert first.status == "active" and first.agent_id and first.project_slug == "my-api"
    experimental = mcp.record_decision("Try SQLite for tests", "Faster CI.", status="experimental")
    assert experimental.status == "experimental" and experimental.tags == []

    listed = mcp.list_decisions(limit=20, project="my-api", tags="database,perf")
    assert [d.id for d in listed.data] == [first.id] and listed.has_more is False
    assert mcp.list_decisions(status="experimental").data[0].id == experimental.id
    assert len(mcp.list_decisions().data) == 2  # decision_list with no arguments

    new = mcp.supersede_decision(first.id, "Use PostgreSQL 16", "Logical replication.")
    assert new.tags == ["architecture", "database"]  # "inherits from old if omitted"
    assert new.project_slug == "my-api" and new.status == "active"
    old = mcp.list_decisions(status="superseded").data[0]
    assert old.id == first.id and old.superseded_by == new.id

    check = mcp.check_decisions("which database do we use", project="my-api")
    assert [r.decision.id for r in check.data] == [new.id] and check.total == 1
    assert check.query == "which database do we use"
    both = mcp.check_decisions("PostgreSQL", limit=20, threshold=0, include_superseded=True)
    assert {r.decision.id for r in both.data} >= {first.id, new.id}
    assert all(0 <= r.score <= 1 for r in both.data)


def test_pattern_tools_create_search_adopt_and_suggest(mcp, account):
    api, web = project(account, "my-api"), project(account, "web-app")
    relate(web, "my-api")
    errors = mcp.create_pattern("Error responses follow RFC 7807",
                                "Every error is an application/problem+json document.",
                                category="error-handling", example_code="raise Problem(404)",
                                tags=["api"], source_project="my-api")
    assert errors.source_project_id == str(api.pk) and errors.adoption_count == 0
    zod = mcp.create_pattern("Zod validation at API boundaries", "Parse every request body.",
                             category="validation", scope="project")
    assert zod.scope == "project"

    adopted = mcp.adopt_pattern(zod.id, "my-api")
    assert adopted.adoption_count == 1 and mcp.adopt_pattern(zod.id, "my-api").adoption_count == 1
    mcp.adopt_pattern(errors.id, "my-api")

    found = mcp.search_patterns("how to report errors", project="web-app")
    assert [r.pattern.id for r in found.data] == [errors.id]  # global; zod is not web's
    scoped = mcp.search_patterns("validation", category="validation", project="my-api",
                                 limit=10, threshold=0.1)
    assert [r.pattern.id for r in scoped.data] == [zod.id] and scoped.total == 1

    suggested = mcp.suggest_patterns("web-app", limit=10)
    assert suggested.project == "web-app" and suggested.total == 2
    assert [p.id for p in suggested.data] == [zod.id, errors.id]  # equally popular: newest
    assert mcp.suggest_patterns("my-api").data == []


def test_project_knowledge_tools_answer_json_objects(mcp, client, account):
    api, web = project(account, "my-api"), project(account, "web-app")
    relate(web, "my-api", "api_consumer")
    client.post("/v1/memories", {"content": "The API rate limit is 100 requests a minute.",
                                 "agent_id": AGENT, "project": "my-api", "importance": 0.9},
                format="json")
    mcp.record_decision("Web retries 429s with backoff", "The API rate limit applies.",
                        project="web-app")
    pattern = mcp.create_pattern("Retry with jitter", "Spread retries.")
    mcp.adopt_pattern(pattern.id, "my-api")
    mcp.adopt_pattern(pattern.id, "web-app")

    context = mcp.project_context("my-api")
    assert context["project"]["slug"] == "my-api" and "rate limit" in context["context"]
    assert context["hot_memories"][0]["project_id"] == str(api.pk)
    assert context["adopted_patterns"][0]["id"] == pattern.id

    impact = mcp.project_impact("my-api", "Lower the API rate limit to 50 requests a minute")
    [affected] = impact["affected_projects"]
    assert affected["project"]["slug"] == "web-app" and affected["depth"] == 1
    assert affected["decisions"][0]["decision"]["title"] == "Web retries 429s with backoff"

    shared = mcp.shared_patterns("my-api", "web-app")
    assert [p["id"] for p in shared["data"]] == [pattern.id] and shared["total"] == 1
