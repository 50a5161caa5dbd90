"""The small calls the clients make: memory_promote's importance, the demote_cold
maintenance (with a fixed clock), agent stats in both shapes, and embed."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from memories_app import embeddings, tiering
from memories_app.models import Memory
from memories_app.services import memory_create
from tests.conftest import assert_error, real_queries, requires_model
from tests.memoryrelay_site.test_openapi import EXTRA_PATHS, Conformance
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture

# --- PUT /v1/memories/{id}/importance -------------------------------------------------------


def promote(client, memory, **body):
    return client.put(f"/v1/memories/{memory.id}/importance", body, format="json")


@pytest.mark.parametrize(("importance", "tier"), [(0.9, "hot"), (0.5, "warm"), (0.1, "cold")])
def test_a_new_importance_moves_the_tier_with_it(client, memory, importance, tier):
    body = promote(client, memory, importance=importance).json()
    assert (body["importance"], body["tier"]) == (importance, tier)
    assert body["object"] == "memory" and body["id"] == str(memory.id)
    row = Memory.objects.get(pk=memory.pk)
    assert (row.importance, row.tier) == (importance, tier)


def test_a_given_tier_wins_over_importance(client, memory):
    assert promote(client, memory, importance=0.95, tier="cold").json()["tier"] == "cold"


@pytest.mark.parametrize("body", [{}, {"importance": None}, {"importance": 1.5},
                                  {"importance": -0.1}, {"importance": "0.9"},
                                  {"importance": True}, {"importance": 0.5, "tier": "lukewarm"}])
def test_a_bad_importance_is_a_422_and_changes_nothing(client, memory, body):
    field = "tier" if "tier" in body else "importance"
    assert_error(promote(client, memory, **body), 422, "validation_error", field)
    assert Memory.objects.get(pk=memory.pk).importance == 0.5


def test_another_accounts_memory_cannot_be_promoted(other_client, memory):
    assert_error(promote(other_client, memory, importance=0.9), 404, "not_found")
    assert_error(other_client.put("/v1/memories/not-a-uuid/importance", {"importance": 1},
                                  format="json"), 404, "not_found")


# --- Reads are recorded, at most once an hour ---------------------------------------------


def age(memory, **delta):
    then = timezone.now() - timedelta(**delta)
    Memory.objects.filter(pk=memory.pk).update(last_accessed_at=then, updated_at=then)
    return then


def writes(captured) -> list[str]:
    return [q for q in real_queries(captured) if q.startswith("UPDATE")]


def test_fetching_a_memory_records_the_read_once_an_hour(client, memory):
    then = age(memory, hours=2)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"/v1/memories/{memory.id}").status_code == 200
    assert len(writes(captured)) == 1
    read_at = Memory.objects.get(pk=memory.pk).last_accessed_at
    assert read_at > then
    with CaptureQueriesContext(connection) as captured:
        client.get(f"/v1/memories/{memory.id}")
    assert writes(captured) == [], "a read within the hour writes nothing"
    assert Memory.objects.get(pk=memory.pk).last_accessed_at == read_at


def test_reading_a_memory_written_within_the_hour_writes_nothing(client, memory):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"/v1/memories/{memory.id}").status_code == 200
    assert writes(captured) == []
    assert Memory.objects.get(pk=memory.pk).last_accessed_at is None


def test_a_search_records_its_hits_in_one_update_and_a_list_records_nothing(client, memory):
    then = age(memory, days=3)
    client.get("/v1/memories")
    assert Memory.objects.get(pk=memory.pk).last_accessed_at == then
    with CaptureQueriesContext(connection) as captured:
        found = client.post("/v1/memories/search", {"query": "retry counter timeout",
                                                    "search_mode": "keyword"}, format="json")
    assert [h["memory"]["id"] for h in found.json()["data"]] == [str(memory.id)]
    assert len(writes(captured)) == 1
    assert Memory.objects.get(pk=memory.pk).last_accessed_at > then


# --- POST /v1/memories/maintenance demote_cold ----------------------------------------------

NOW = timezone.now().replace(microsecond=0)


def stored(account, agent, tier, *, idle_days, read_days=None):
    memory = memory_create(account=account, agent_ref=agent.name, content=f"{tier} memory",
                           tier=tier)
    Memory.objects.filter(pk=memory.pk).update(
        updated_at=NOW - timedelta(days=idle_days),
        last_accessed_at=NOW - timedelta(days=idle_days if read_days is None else read_days))
    return memory


def tier_of(memory) -> str:
    return Memory.objects.get(pk=memory.pk).tier


def test_demote_cold_drops_one_tier_for_memories_unused_for_the_set_days(account, agent,
                                                                         settings):
    settings.MEMORYRELAY_COLD_AFTER_DAYS = 30
    hot, warm, cold = (stored(account, agent, t, idle_days=31) for t in ("hot", "warm", "cold"))
    recent = stored(account, agent, "hot", idle_days=29)
    read = stored(account, agent, "hot", idle_days=90, read_days=2)
    assert tiering.memories_demote_cold(account=account, now=NOW) == 2
    assert [tier_of(m) for m in (hot, warm, cold, recent, read)] == [
        "warm", "cold", "cold", "hot", "hot"]
    # The demotion restarts the idle clock: a memory drops again only after another idle
    # period. It is no write: updated_at (the recency a context bundle ranks by) stays.
    tiering.memories_demote_cold(account=account, now=NOW + timedelta(days=29))
    assert tier_of(hot) == "warm"
    tiering.memories_demote_cold(account=account, now=NOW + timedelta(days=31))
    assert tier_of(hot) == "cold"
    assert Memory.objects.get(pk=hot.pk).updated_at == NOW - timedelta(days=31)


def test_a_hot_memory_shown_in_its_projects_context_is_in_use(client, account, agent):
    """Agents read their project's hot memories at every start, and maintenance demoted
    them out of it: that read did not count as use."""
    from sessions_app.projects import project_create

    project_create(account=account, slug="tierproj", name="Tier project")
    memory = memory_create(account=account, agent_ref=agent.name, content="Ship on Tuesdays",
                           tier="hot", project="tierproj")
    Memory.objects.filter(pk=memory.pk).update(updated_at=NOW - timedelta(days=400))
    body = client.get("/v1/projects/tierproj/context").json()
    assert [m["id"] for m in body["hot_memories"]] == [str(memory.pk)]
    assert client.post("/v1/memories/maintenance", {"action": "demote_cold"},
                       format="json").json()["demoted_count"] == 0
    assert tier_of(memory) == "hot"


def test_maintenance_over_http_answers_the_count_for_the_callers_memories_only(
        client, account, agent, other_account):
    old = stored(account, agent, "hot", idle_days=400)
    theirs = stored(other_account, agent, "hot", idle_days=400)
    Memory.objects.filter(pk=theirs.pk).update(account=other_account)
    response = client.post("/v1/memories/maintenance", {"action": "demote_cold"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"action": "demote_cold", "demoted_count": 1}
    assert (tier_of(old), tier_of(theirs)) == ("warm", "hot")


def test_a_memory_read_since_is_not_demoted(client, account, agent):
    memory = stored(account, agent, "hot", idle_days=400)
    client.get(f"/v1/memories/{memory.id}")
    assert client.post("/v1/memories/maintenance", {"action": "demote_cold"},
                       format="json").json()["demoted_count"] == 0


@pytest.mark.parametrize("body", [{}, {"action": "vacuum"}, {"action": None}])
def test_an_unknown_maintenance_action_is_a_422(client, body):
    assert_error(client.post("/v1/memories/maintenance", body, format="json"), 422,
                 "validation_error", "action")


# --- GET /v1/agents/{id}/stats --------------------------------------------------------------


def test_agent_stats_answer_both_client_shapes(client, agent, memory):
    for ref in (agent.name, str(agent.id)):
        body = client.get(f"/v1/agents/{ref}/stats").json()
        assert body["memory_count"] == 1 and body["entity_count"] == 0
        assert body["session_count"] == 1 and body["agent_id"] == str(agent.id)
        assert body["data"]["total_memories"] == 1
        assert body["data"]["last_updated"] == body["last_updated"]
        assert body["last_updated"].endswith("Z")


def test_another_accounts_agent_stats_are_a_404(other_client, agent):
    assert_error(other_client.get(f"/v1/agents/{agent.name}/stats"), 404, "not_found")


# --- POST /v1/embed -------------------------------------------------------------------------


@requires_model
def test_embed_answers_the_servers_embedding_of_the_text(client):
    body = client.post("/v1/embed", {"text": "retry on timeout", "prefix": "search_query"},
                       format="json").json()
    assert body["model"] == "all-MiniLM-L6-v2" and body["dimension"] == 384
    assert len(body["embedding"]) == 384
    stored_vector = embeddings.get_provider().embed(["retry on timeout"])[0]
    assert body["embedding"] == pytest.approx(stored_vector.tolist(), abs=1e-6)


@pytest.mark.parametrize(("body", "field"), [({}, "text"), ({"text": " "}, "text"),
                                             ({"text": "x", "prefix": "query"}, "prefix"),
                                             ({"text": "x" * 10_001}, "text")])
def test_a_bad_embed_request_is_a_422(client, body, field):
    assert_error(client.post("/v1/embed", body, format="json"), 422, "validation_error", field)


def test_embed_without_a_provider_is_a_503(client, monkeypatch):
    monkeypatch.setattr(embeddings, "get_provider", lambda: embeddings.Provider())
    assert_error(client.post("/v1/embed", {"text": "x"}, format="json"), 503,
                 "service_unavailable")


def test_a_failing_embedding_provider_is_a_503_to_retry_that_names_no_internal_address(
        client, monkeypatch, caplog):
    """The 503 carried no Retry-After and told every key holder the provider's internal
    address (and whatever the URL held); nothing was logged."""
    provider = embeddings.OpenAICompatible(url="http://10.1.2.3:8080", model="m")

    def refused(texts):
        raise embeddings.EmbeddingError(f"embedding request to {provider.url} failed: refused")

    monkeypatch.setattr(provider, "embed", refused)
    monkeypatch.setattr(embeddings, "get_provider", lambda: provider)
    with caplog.at_level("WARNING", logger="memoryrelay.embeddings"):
        response = client.post("/v1/embed", {"text": "x"}, format="json")
    body = assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"].isdigit()
    assert "10.1.2.3" not in response.content.decode() and "try again" in body["message"]
    assert any("10.1.2.3" in r.getMessage() for r in caplog.records)  # the operator's


# --- OpenAPI --------------------------------------------------------------------------------


def test_every_extra_response_matches_its_documented_schema(schema, client, other_client,
                                                             memory, agent, monkeypatch):
    check = Conformance(schema)
    url = f"/v1/memories/{memory.id}/importance"
    check(client.put(url, {"importance": 0.9}, format="json"),
          "/v1/memories/{id}/importance", "put")
    check(client.put(url, {}, format="json"), "/v1/memories/{id}/importance", "put")
    check(other_client.put(url, {"importance": 1}, format="json"),
          "/v1/memories/{id}/importance", "put")
    check(client.post("/v1/memories/maintenance", {"action": "demote_cold"}, format="json"),
          "/v1/memories/maintenance", "post")
    check(client.post("/v1/memories/maintenance", {}, format="json"),
          "/v1/memories/maintenance", "post")
    check(client.get(f"/v1/agents/{agent.name}/stats"), "/v1/agents/{id}/stats", "get")
    check(other_client.get(f"/v1/agents/{agent.name}/stats"), "/v1/agents/{id}/stats", "get")
    check(client.post("/v1/embed", {}, format="json"), "/v1/embed", "post")
    if embeddings.get_provider().available:
        check(client.post("/v1/embed", {"text": "x"}, format="json"), "/v1/embed", "post")
    monkeypatch.setattr(embeddings, "get_provider", lambda: embeddings.Provider())
    check(client.post("/v1/embed", {"text": "x"}, format="json"), "/v1/embed", "post")
    check(client.get("/v1/quota"), "/v1/quota", "get")
    documented = {(p, m) for p, ops in schema["paths"].items() for m in ops
                  if p.startswith(EXTRA_PATHS)}
    assert documented == {(p, m) for p, m, _ in check.seen}


# --- GET /v1/quota --------------------------------------------------------------------------


def test_quota_reports_the_keys_window_without_counting_itself(account, settings, tmp_path,
                                                               monkeypatch):
    """Asking for the quota is not counted and never refused: a key at its limit can ask
    when its window resets (it got a 429 from the quota itself)."""
    from memoryrelay_site import ratelimit
    from memoryrelay_site.services import api_key_create
    from tests.conftest import make_client

    # One clock for the whole test: on a slow run the minute's window turned over midway.
    start = (time.time() // ratelimit.WINDOW_SECONDS) * ratelimit.WINDOW_SECONDS + 5
    monkeypatch.setattr(ratelimit, "_now", lambda: start)

    settings.MEMORYRELAY_RATE_LIMIT_PATH = str(tmp_path / "ratelimit.sqlite3")
    limited = make_client(api_key_create(user=account, rate_limit_per_minute=7)[1])
    first = limited.get("/v1/quota").json()
    assert (first["used"], first["limit"], first["remaining"]) == (0, 7, 7)
    limited.get("/v1/agents")
    second = limited.get("/v1/quota").json()
    assert (second["used"], second["remaining"]) == (1, 6)
    for _ in range(6):
        assert limited.get("/v1/agents").status_code == 200
    assert limited.get("/v1/agents").status_code == 429
    at_limit = limited.get("/v1/quota")
    assert at_limit.status_code == 200 and at_limit.json()["remaining"] == 0
    assert second["resetAt"] == first["resetAt"] or second["resetAt"] > first["resetAt"]
    assert second["resetAt"].endswith("Z") and second["window_seconds"] == 60
    unlimited = make_client(api_key_create(user=account, rate_limit_per_minute=0)[1])
    body = unlimited.get("/v1/quota").json()
    assert (body["used"], body["limit"], body["remaining"]) == (None, None, None)


def test_quota_needs_a_key(anon, db):
    assert_error(anon.get("/v1/quota"), 401, "unauthorized")
