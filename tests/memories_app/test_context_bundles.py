"""Context bundles: POST /v2/context/build (MCP context_build) and POST /v2/context
(OpenClaw buildContextV2), API.md §10, with the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from memories_app.context import RANKING_VERSION, composite_score, tokens_of
from memories_app.models import Memory
from tests.conftest import assert_error, real_queries, requires_model

pytestmark = requires_model

ENDPOINTS = ("/v2/context/build", "/v2/context")
DEPLOYS = {
    "freeze": "Production deploys are frozen on Fridays after 2pm.",
    "rollback": "Every production deploy needs a tested rollback plan before it starts.",
    "canary": "Deploys go to a 5 percent canary first and wait ten minutes for errors.",
}
UNRELATED = "Alex likes the editor in a dark colour scheme."


def store(client, content, agent="my-assistant", **fields):
    response = client.post("/v1/memories", {"content": content, "agent_id": agent, **fields},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def stored(client):
    ids = {key: store(client, text) for key, text in DEPLOYS.items()}
    ids["dark"] = store(client, UNRELATED)
    return ids


def build(client, path="/v2/context/build", **body):
    response = client.post(path, {"query": "production deploy rules", **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def ids(body):
    return [item["memory_id"] for item in body["context"]]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_both_endpoints_answer_the_ranked_bundle_with_every_documented_field(client, stored,
                                                                            path):
    body = build(client, path)
    assert set(body) == {"context", "summary", "token_count", "ranking_version",
                         "ai_enhanced", "latency_ms"}
    assert set(ids(body)) == {stored["freeze"], stored["rollback"], stored["canary"]}
    for item in body["context"]:
        assert set(item) == {"memory_id", "content", "score", "memory_type"}
        assert 0 <= item["score"] <= 1 and item["memory_type"] == "fact"
    scores = [item["score"] for item in body["context"]]
    assert scores == sorted(scores, reverse=True)
    assert body["ranking_version"] == RANKING_VERSION == "composite-v1"
    assert body["summary"] is None and body["ai_enhanced"] is False
    assert body["token_count"] == sum(tokens_of(i["content"]) for i in body["context"])
    assert isinstance(body["latency_ms"], int) and body["latency_ms"] >= 0


def test_an_unrelated_memory_is_not_in_the_bundle(client, stored):
    assert stored["dark"] not in ids(build(client))


def test_the_score_is_the_documented_composite_of_relevance_importance_and_recency():
    assert composite_score(relevance=1.0, importance=1.0, age_days=0) == pytest.approx(1.0)
    assert composite_score(relevance=0.5, importance=0.5, age_days=30) == pytest.approx(
        0.70 * 0.5 + 0.20 * 0.5 + 0.10 * 0.5)
    assert composite_score(relevance=0.0, importance=0.0, age_days=60) == pytest.approx(0.025)


def test_importance_and_recency_reorder_memories_of_equal_relevance(client, account):
    same = "The staging cluster runs PostgreSQL 16 with pgvector."
    old = store(client, same)
    new = store(client, same)
    important = store(client, same, importance=1.0)
    Memory.objects.filter(pk=old).update(updated_at=timezone.now() - timedelta(days=90))
    body = build(client, query="staging cluster PostgreSQL pgvector")
    assert ids(body) == [important, new, old]
    by_id = {i["memory_id"]: i["score"] for i in body["context"]}
    # Same relevance: the differences are exactly the importance and recency terms.
    assert by_id[important] - by_id[new] == pytest.approx(0.20 * 0.5, abs=1e-4)
    assert by_id[new] - by_id[old] == pytest.approx(0.10 * (1 - 0.5 ** 3), abs=1e-3)


def test_max_memories_keeps_the_best_ones(client, stored):
    full = ids(build(client))
    assert ids(build(client, max_memories=2)) == full[:2]


def test_max_tokens_bounds_the_bundle_and_keeps_the_best_that_fit(client, account):
    long = store(client, "Production deploy rules, in full: " + "a long checklist item. " * 60)
    short = store(client, "Production deploy rules: never on Fridays.")
    body = build(client, max_tokens=100)
    assert ids(body) == [short]
    assert body["token_count"] <= 100
    assert long in ids(build(client))


def test_a_best_memory_larger_than_the_budget_is_cut_to_fit(client):
    store(client, "Production deploy rules: " + "every step is written down. " * 100)
    body = build(client, max_tokens=100)
    assert len(body["context"]) == 1 and body["context"][0]["content"].endswith("…")
    assert body["token_count"] <= 100


def test_excluded_memories_are_left_out_and_the_next_ones_come_in(client, stored):
    first = ids(build(client, max_memories=1))
    second = ids(build(client, max_memories=1, exclude_memory_ids=first))
    assert second and second != first


def test_ai_enhanced_adds_an_extractive_summary_of_the_bundle_within_the_budget(client, stored):
    body = build(client, ai_enhanced=True, max_tokens=400)
    assert body["ai_enhanced"] is True and body["summary"]
    contents = [i["content"] for i in body["context"]]
    assert any(content.rstrip(".") in body["summary"] for content in contents)
    assert body["token_count"] == (sum(tokens_of(c) for c in contents)
                                   + tokens_of(body["summary"]))
    assert body["token_count"] <= 400


def test_agent_id_by_name_or_uuid_narrows_the_bundle_to_that_agent(client, stored):
    other = store(client, "Production deploy rules for the mobile team: app store review first.",
                  agent="mobile")
    assert other in ids(build(client))
    assert other not in ids(build(client, agent_id="my-assistant"))
    agent_uuid = client.get("/v1/agents/mobile").json()["id"]
    assert ids(build(client, agent_id=agent_uuid)) == [other]
    assert ids(build(client, agent_id="nobody")) == []


def test_search_mode_keyword_ranks_by_the_keyword_score(client, stored):
    body = build(client, query="Fridays", search_mode="keyword")
    assert ids(body) == [stored["freeze"]]


def test_another_accounts_memories_never_enter_the_bundle(client, other_client, stored):
    store(other_client, "Production deploy rules of another company entirely.")
    mine = set(stored.values())
    assert set(ids(build(client))) <= mine
    assert not set(ids(build(other_client))) & mine
    # Excluding another account's id changes nothing and reveals nothing.
    assert build(other_client, exclude_memory_ids=list(mine))["context"]


def test_without_a_key_it_is_a_401(anon, db):
    for path in ENDPOINTS:
        assert_error(anon.post(path, {"query": "x"}, format="json"), 401, "unauthorized")


@pytest.mark.parametrize(("body", "field"), [
    ({}, "query"),
    ({"query": ""}, "query"),
    ({"query": "   "}, "query"),
    ({"query": "x" * 10_001}, "query"),
    ({"query": "q", "max_memories": 0}, "max_memories"),
    ({"query": "q", "max_memories": 101}, "max_memories"),
    ({"query": "q", "max_tokens": 99}, "max_tokens"),
    ({"query": "q", "max_tokens": 128_001}, "max_tokens"),
    ({"query": "q", "search_mode": "fuzzy"}, "search_mode"),
    ({"query": "q", "exclude_memory_ids": ["not-a-uuid"]}, "exclude_memory_ids.0"),
    ({"query": "q", "exclude_memory_ids": [str(uuid.uuid4())] * 1001}, "exclude_memory_ids"),
    ({"query": "q", "exclude_memory_ids": "abc"}, "exclude_memory_ids"),
    ({"query": "q", "agent_id": "a" * 256}, "agent_id"),
    ({"query": "q", "ai_enhanced": "maybe"}, "ai_enhanced"),
])
def test_every_limit_is_a_422_naming_the_field(client, body, field):
    for path in ENDPOINTS:
        assert_error(client.post(path, body, format="json"), 422, "validation_error", field)


def test_the_query_count_does_not_grow_with_the_number_of_memories(client, account):
    def count(n_more):
        for n in range(n_more):
            store(client, f"Production deploy rule number {n}: keep the changelog current.")
        with CaptureQueriesContext(connection) as captured:
            body = build(client, ai_enhanced=True)
        return len(real_queries(captured)), len(body["context"])

    few, got_few = count(3)
    # Marking the bundle as read writes once an hour per memory: keep it out of the count.
    Memory.objects.update(last_accessed_at=timezone.now())
    few, got_few = count(0)
    many, got_many = count(27)
    Memory.objects.update(last_accessed_at=timezone.now())
    many, got_many = count(0)
    assert got_few == 3 and got_many == 20
    # The key; the vector search (SQLite: the vectors, then the rows; PostgreSQL: two SET
    # LOCAL tunings, then one nearest-neighbour query); one keyword statement for all the
    # query's terms (PostgreSQL: after a SET LOCAL that starts its sequential scans at the
    # first page); the bundle's vectors for the summary.
    assert few == many == (7 if connection.vendor == "postgresql" else 5)


# --- compat: what the clients send and read ----------------------------------------------------


def test_the_mcp_context_build_request_is_served_as_the_client_reads_it(client, stored):
    # memoryrelay/mcp-server src/client.ts buildContextV2: every option the tool passes on.
    response = client.post("/v2/context/build", {
        "query": "production deploy rules", "agent_id": "my-assistant", "max_memories": 20,
        "max_tokens": 2000, "ai_enhanced": True, "ranking_version": "v2",
        "search_mode": "hybrid", "llm_api_url": "http://localhost:11434/v1",
        "llm_model": "mistral", "exclude_memory_ids": [stored["canary"]],
    }, format="json", HTTP_USER_AGENT="@memoryrelay/mcp-server")
    assert response.status_code == 200
    body = response.json()
    for item in body["context"]:  # Array<{memory_id: string, content, score: number, ...}>
        assert isinstance(item["memory_id"], str) and isinstance(item["content"], str)
        assert isinstance(item["score"], float) and isinstance(item["memory_type"], str)
    assert stored["canary"] not in ids(body) and stored["freeze"] in ids(body)
    assert isinstance(body["summary"], str) and isinstance(body["token_count"], int)
    assert body["ranking_version"] == "composite-v1" and body["ai_enhanced"] is True
    assert isinstance(body["latency_ms"], int)


def test_the_mcp_request_with_a_null_agent_searches_every_agent(client, stored):
    other = store(client, "Production deploy rules for the data team.", agent="data")
    assert other in ids(build(client, agent_id=None))


def test_the_openclaw_request_is_served_as_the_plugin_reads_it(client, stored):
    # memoryrelay/openclaw-plugin src/client/memoryrelay-client.ts buildContextV2: agent_id
    # always, the options only when set (ai_enhanced may be false).
    response = client.post("/v2/context", {
        "query": "production deploy rules", "agent_id": "my-assistant", "max_memories": 5,
        "max_tokens": 500, "ai_enhanced": False, "search_mode": "semantic",
        "exclude_memory_ids": [],
    }, format="json")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["context"], list) and len(body["context"]) == 3
    assert body["summary"] is None and body["ai_enhanced"] is False
    assert body["token_count"] <= 500



def test_every_answer_matches_the_documented_schema(client, anon, stored):
    from tests.memoryrelay_site.test_openapi import Conformance

    check = Conformance(anon.get("/v1/openapi.json").json())
    for path in ENDPOINTS:
        check(client.post(path, {"query": "deploys", "ai_enhanced": True}, format="json"),
              path, "post")
        check(client.post(path, {"query": "deploys"}, format="json"), path, "post")
        check(client.post(path, {"query": ""}, format="json"), path, "post")
        check(anon.post(path, {"query": "deploys"}, format="json"), path, "post")
    assert {(p, s) for p, _, s in check.seen} == {(p, s) for p in ENDPOINTS
                                                  for s in (200, 401, 422)}
