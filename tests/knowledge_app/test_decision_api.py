"""Decisions (API.md §7): record, list with filters, get, supersede, check, delete."""

from __future__ import annotations

import pytest

from knowledge_app import services
from knowledge_app.filtersets import DecisionFilterSet
from knowledge_app.models import Decision
from memoryrelay_site.serializers import METADATA_MAX_BYTES
from sessions_app.models import Agent
from tests.conftest import assert_error, make_client
from tests.knowledge_app.conftest import record

DECISION_FIELDS = {"object", "id", "agent_id", "session_id", "project_slug", "title",
                   "rationale", "alternatives", "status", "superseded_by", "tags", "metadata",
                   "created_at", "updated_at"}


# --- record -------------------------------------------------------------------------------


def test_recording_a_decision_answers_201_with_every_field(client, account):
    body = record(client, title="Use PostgreSQL", rationale="JSONB and pgvector.",
                  alternatives="MongoDB: no joins", project_slug="my-api",
                  tags=["db", "db", "arch"], metadata={"ticket": "ENG-1"},
                  agent_id="alice-laptop", status="experimental")
    assert set(body) == DECISION_FIELDS
    assert body["object"] == "decision" and body["status"] == "experimental"
    assert body["tags"] == ["db", "arch"] and body["superseded_by"] is None
    assert body["agent_id"] == str(Agent.objects.get(name="alice-laptop").pk)
    assert body["created_at"].endswith("Z") and body["project_slug"] == "my-api"


def test_a_decision_without_agent_or_project_has_nulls_and_empty_defaults(client):
    body = record(client)
    assert body["agent_id"] is None and body["session_id"] is None
    assert body["project_slug"] is None and body["tags"] == [] and body["metadata"] == {}


def test_a_decision_in_a_session_takes_the_sessions_project_label(client, session):
    body = record(client, session_id=str(session.id))
    assert body["session_id"] == str(session.id) and body["project_slug"] == "northrelay"


@pytest.mark.parametrize("body, field", [
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 501}, "title"),
    ({"title": 5}, "title"),
    ({"rationale": ""}, "rationale"),
    ({"rationale": "x" * 50_001}, "rationale"),
    ({"alternatives": "x" * 50_001}, "alternatives"),
    ({"status": "superseded"}, "status"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ({"tags": ["x" * 101]}, "tags.0"),
    ({"tags": ["ok", ""]}, "tags.1"),
    ({"tags": "db"}, "tags"),
    ({"project_slug": "p" * 101}, "project_slug"),
    ({"metadata": {"k": "x" * METADATA_MAX_BYTES}}, "metadata"),
    ({"metadata": ["not", "an", "object"]}, "metadata"),
    ({"session_id": "not-a-uuid"}, "session_id"),
    ({"agent_id": "a" * 256}, "agent_id"),
])
def test_every_field_limit_is_a_422_naming_the_field(client, body, field):
    full = {"title": "t", "rationale": "r", **body}
    assert_error(client.post("/v1/decisions", full, format="json"), 422, "validation_error",
                 field)
    assert not Decision.objects.exists()


def test_title_and_rationale_are_required(client):
    body = assert_error(client.post("/v1/decisions", {}, format="json"), 422,
                        "validation_error")
    assert {d["field"] for d in body["details"]} == {"title", "rationale"}


def test_another_accounts_session_is_a_422_on_session_id(client, other_account):
    from sessions_app.services import session_create

    theirs = session_create(account=other_account)
    response = client.post("/v1/decisions", {"title": "t", "rationale": "r",
                                             "session_id": str(theirs.id)}, format="json")
    assert_error(response, 422, "validation_error", "session_id")


# --- list, filters, get -------------------------------------------------------------------


def test_list_is_the_envelope_newest_first_and_pages_with_cursors(client):
    ids = [record(client, title=f"d{i}")["id"] for i in range(5)]
    first = client.get("/v1/decisions", {"limit": 2}).json()
    assert set(first) == {"object", "data", "next_cursor", "has_more", "total_count"}
    assert [d["id"] for d in first["data"]] == ids[::-1][:2]
    assert first["has_more"] and first["total_count"] == 5
    second = client.get("/v1/decisions", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [d["id"] for d in second["data"]] == ids[::-1][2:4]


def test_list_filters_by_project_status_and_any_of_the_tags(client):
    a = record(client, project_slug="api", tags=["db", "perf"])
    b = record(client, project_slug="api", tags=["auth"], status="experimental")
    c = record(client, project_slug="web", tags=["perf"])

    def ids(**params):
        return {d["id"] for d in client.get("/v1/decisions", params).json()["data"]}

    assert ids(project="api") == {a["id"], b["id"]}
    assert ids(status="experimental") == {b["id"]}
    assert ids(tags="perf") == {a["id"], c["id"]}
    assert ids(tags="auth, db") == {a["id"], b["id"]}
    assert ids(tags="none") == set()
    assert ids(project="api", tags="perf") == {a["id"]}


def test_the_filterset_narrows_a_queryset_directly(client, account):
    record(client, tags=["x"])
    kept = record(client, tags=["y", "z"])
    qs = DecisionFilterSet({"tags": "z,w"}, Decision.objects.all()).qs
    assert [str(d.pk) for d in qs] == [kept["id"]]


def test_an_unknown_status_filter_is_a_422(client):
    assert_error(client.get("/v1/decisions", {"status": "maybe"}), 422, "validation_error")


def test_get_returns_the_decision_and_another_accounts_is_a_404(client, other_client, decision):
    assert client.get(f"/v1/decisions/{decision['id']}").json() == decision
    assert_error(other_client.get(f"/v1/decisions/{decision['id']}"), 404, "not_found")
    assert other_client.get("/v1/decisions").json()["total_count"] == 0
    assert_error(client.get("/v1/decisions/not-a-uuid"), 404, "not_found")


def test_deleting_answers_a_body_and_hides_the_decision(client, decision):
    response = client.delete(f"/v1/decisions/{decision['id']}")
    assert response.status_code == 200
    assert response.json()["deleted"] is True and response.json()["id"] == decision["id"]
    assert_error(client.get(f"/v1/decisions/{decision['id']}"), 404, "not_found")
    assert_error(client.delete(f"/v1/decisions/{decision['id']}"), 404, "not_found")
    assert client.get("/v1/decisions").json()["total_count"] == 0
    assert Decision.objects.filter(pk=decision["id"], deleted_at__isnull=False).exists()


# --- supersede ----------------------------------------------------------------------------


def test_superseding_marks_the_old_decision_and_returns_the_new_one(client, decision):
    response = client.post(f"/v1/decisions/{decision['id']}/supersede",
                           {"title": "Use SQLite", "rationale": "Simpler to run."},
                           format="json")
    assert response.status_code == 201
    new = response.json()
    assert new["status"] == "active" and new["id"] != decision["id"]
    assert new["project_slug"] == "northrelay" and new["tags"] == decision["tags"]
    assert new["agent_id"] == decision["agent_id"]
    old = client.get(f"/v1/decisions/{decision['id']}").json()
    assert old["status"] == "superseded" and old["superseded_by"] == new["id"]


def test_superseding_a_decision_whose_agent_was_deleted_records_it_with_no_agent(
        client, decision):
    """The new decision took the old one's agent, and a deleted one refused the supersede
    (404 "Agent not found", though the request named no agent): the decision could never
    be superseded again by a client that names none."""
    assert client.delete("/v1/agents/alice-laptop").status_code in (200, 204)
    response = client.post(f"/v1/decisions/{decision['id']}/supersede",
                           {"title": "Use SQLite", "rationale": "Simpler to run."},
                           format="json")
    assert response.status_code == 201, response.content
    assert response.json()["agent_id"] is None
    assert not Agent.objects.filter(deleted_at__isnull=True).exists()  # none made anew
    named = client.post(f"/v1/decisions/{response.json()['id']}/supersede",
                        {"title": "t", "rationale": "r", "agent_id": "bob"}, format="json")
    assert named.status_code == 201
    assert named.json()["agent_id"] == str(Agent.objects.get(name="bob").pk)


def test_superseding_with_tags_replaces_them(client, decision):
    new = client.post(f"/v1/decisions/{decision['id']}/supersede",
                      {"title": "t", "rationale": "r", "tags": ["ops"]}, format="json").json()
    assert new["tags"] == ["ops"]


def test_superseding_a_superseded_decision_is_a_409_and_changes_nothing(client, decision):
    url = f"/v1/decisions/{decision['id']}/supersede"
    client.post(url, {"title": "t", "rationale": "r"}, format="json")
    assert_error(client.post(url, {"title": "t2", "rationale": "r2"}, format="json"), 409,
                 "conflict")
    assert Decision.objects.count() == 2


def test_deleting_the_decision_in_force_puts_the_one_it_superseded_back_in_force(
        client, decision):
    """It stayed superseded by a deleted decision: no decision in force on the topic, and
    no way to revive it (supersede was a 409, the admin refused)."""
    first = decision["id"]
    second = client.post(f"/v1/decisions/{first}/supersede",
                         {"title": "Use SQLite", "rationale": "Simpler."},
                         format="json").json()["id"]
    assert client.delete(f"/v1/decisions/{second}").status_code == 200
    back = client.get(f"/v1/decisions/{first}").json()
    assert back["status"] == "active" and back["superseded_by"] is None
    found = client.get("/v1/decisions/check", {"query": decision["title"]}).json()["data"]
    assert [hit["decision"]["id"] for hit in found] == [first]
    again = client.post(f"/v1/decisions/{first}/supersede",
                        {"title": "Use DuckDB", "rationale": "Columns."}, format="json")
    assert again.status_code == 201


def test_deleting_a_decision_in_the_middle_of_a_chain_leaves_the_last_in_force(client,
                                                                             decision):
    first = decision["id"]
    second = client.post(f"/v1/decisions/{first}/supersede", {"title": "B", "rationale": "b"},
                         format="json").json()["id"]
    third = client.post(f"/v1/decisions/{second}/supersede", {"title": "C", "rationale": "c"},
                        format="json").json()["id"]
    assert client.delete(f"/v1/decisions/{second}").status_code == 200
    assert client.get(f"/v1/decisions/{first}").json()["status"] == "superseded"
    assert client.get(f"/v1/decisions/{third}").json()["status"] == "active"
    # then the last: the topic goes back to the first, past the deleted one between
    assert client.delete(f"/v1/decisions/{third}").status_code == 200
    back = client.get(f"/v1/decisions/{first}").json()
    assert back["status"] == "active" and back["superseded_by"] is None


def test_superseding_another_accounts_decision_is_a_404(other_client, decision):
    response = other_client.post(f"/v1/decisions/{decision['id']}/supersede",
                                 {"title": "t", "rationale": "r"}, format="json")
    assert_error(response, 404, "not_found")
    assert Decision.objects.count() == 1


def test_a_supersede_that_fails_midway_leaves_neither_change(client, decision, monkeypatch):
    real_save = Decision.save

    def failing_save(self, *args, **kwargs):
        if "superseded_by" in (kwargs.get("update_fields") or ()):
            raise RuntimeError("disk full")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Decision, "save", failing_save)
    with pytest.raises(RuntimeError):
        services.decision_supersede(account=Decision.objects.get().account,
                                    decision=Decision.objects.get(), title="t", rationale="r")
    assert Decision.objects.count() == 1 and Decision.objects.get().status == "active"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_supersedes_of_one_decision_leave_one_winner(account, api_key):
    from tests.sessions_app.test_concurrency import THREADS, run_together

    old = record(make_client(api_key), title="Use REST")

    def call(i):
        response = make_client(api_key).post(
            f"/v1/decisions/{old['id']}/supersede",
            {"title": f"Use gRPC {i}", "rationale": "Streaming."}, format="json")
        return response.status_code

    codes = run_together(THREADS, call)
    assert sorted(codes) == [201] + [409] * (THREADS - 1)
    assert Decision.objects.filter(status="active").count() == 1
    winner = Decision.objects.get(status="active")
    assert Decision.objects.get(pk=old["id"]).superseded_by_id == winner.pk


# --- check --------------------------------------------------------------------------------


def test_check_finds_an_earlier_decision_by_meaning(client):
    db = record(client, title="Use PostgreSQL as the primary datastore",
                rationale="Relational integrity, JSONB columns and the pgvector extension.")
    record(client, title="Deploy with blue-green releases",
           rationale="Zero downtime when shipping new versions.")
    body = client.get("/v1/decisions/check", {"query": "which database should we store data in"}
                      ).json()
    assert set(body) == {"data", "query", "total"} and body["total"] == len(body["data"])
    assert body["data"][0]["decision"]["id"] == db["id"]
    assert all(0.0 <= hit["score"] <= 1.0 for hit in body["data"])
    assert set(body["data"][0]["decision"]) == DECISION_FIELDS


def test_check_leaves_out_superseded_decisions_unless_asked(client, decision):
    client.post(f"/v1/decisions/{decision['id']}/supersede",
                {"title": "Use CockroachDB", "rationale": "Multi-region writes."}, format="json")
    params = {"query": "Use PostgreSQL JSONB pgvector", "threshold": 0}
    found = {h["decision"]["id"] for h in client.get("/v1/decisions/check", params).json()["data"]}
    assert decision["id"] not in found
    params["include_superseded"] = "true"
    found = {h["decision"]["id"] for h in client.get("/v1/decisions/check", params).json()["data"]}
    assert decision["id"] in found


def test_check_narrows_to_a_project_and_respects_limit_and_threshold(client, other_client):
    for i in range(4):
        record(client, title=f"Cache invalidation rule {i}", rationale="Redis TTLs.",
               project_slug="api" if i % 2 else "web")
    other = {"title": "Cache invalidation rule", "rationale": "Redis TTLs."}
    other_client.post("/v1/decisions", other, format="json")
    params = {"query": "cache invalidation", "project": "api", "threshold": 0}
    hits = client.get("/v1/decisions/check", params).json()["data"]
    assert len(hits) == 2 and {h["decision"]["project_slug"] for h in hits} == {"api"}
    assert len(client.get("/v1/decisions/check", {**params, "limit": 1}).json()["data"]) == 1
    unrelated = {**params, "query": "kubernetes pod autoscaling", "threshold": 0.9}
    strict = client.get("/v1/decisions/check", unrelated).json()
    assert strict == {"data": [], "query": "kubernetes pod autoscaling", "total": 0}


@pytest.mark.parametrize("params, field", [
    ({}, "query"), ({"query": ""}, "query"), ({"query": "q", "limit": 0}, "limit"),
    ({"query": "q", "limit": "x"}, "limit"), ({"query": "q", "threshold": 2}, "threshold"),
    ({"query": "q", "include_superseded": "perhaps"}, "include_superseded"),
])
def test_check_parameters_out_of_range_are_422(client, params, field):
    assert_error(client.get("/v1/decisions/check", params), 422, "validation_error", field)


# --- query counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [2, 12])
def test_list_detail_and_check_take_a_constant_number_of_queries(client, max_queries, rows):
    ids = [record(client, title=f"Queue retry policy {i}", rationale="Exponential backoff.",
                  tags=["queue"], agent_id=f"agent-{i % 3}")["id"] for i in range(rows)]
    with max_queries(4):  # key, count, page (+ the key's rate-limit bookkeeping headroom)
        assert client.get("/v1/decisions", {"tags": "queue"}).status_code == 200
    with max_queries(3):
        assert client.get(f"/v1/decisions/{ids[0]}").status_code == 200
    with max_queries(8):
        body = client.get("/v1/decisions/check", {"query": "queue retry backoff",
                                                  "threshold": 0, "limit": 20}).json()
    assert body["total"] == rows
