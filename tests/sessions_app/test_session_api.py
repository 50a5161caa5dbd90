"""The Sessions API over HTTP, as the seed documents it, with API.md §3's decisions."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from memories_app.models import Memory
from sessions_app.models import Agent, Session
from tests.conftest import assert_error

SESSION_FIELDS = {
    "id", "agent_id", "external_id", "project", "status", "title", "summary", "metadata",
    "memory_count", "started_at", "ended_at", "created_at", "updated_at", "summary_method",
}
ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def add_memory(client, session_id, content, agent="my-assistant", **extra):
    response = client.post(
        "/v1/memories",
        {"content": content, "agent_id": agent, "session_id": str(session_id), **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


# --- create -----------------------------------------------------------------------------


def test_creating_a_session_answers_201_with_every_documented_field(client):
    response = client.post(
        "/v1/sessions",
        {"agent_id": "my-assistant", "project": "northrelay",
         "title": "Fix email queue retry logic", "metadata": {"environment": "development"}},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == SESSION_FIELDS
    agent = Agent.objects.get(name="my-assistant")
    assert body["agent_id"] == str(agent.id)
    assert body["external_id"] is None
    assert body["project"] == "northrelay"
    assert body["status"] == "active"
    assert body["title"] == "Fix email queue retry logic"
    assert body["summary"] is None
    assert body["metadata"] == {"environment": "development"}
    assert body["memory_count"] == 0
    assert body["ended_at"] is None
    for field in ("started_at", "created_at", "updated_at"):
        assert body[field].endswith("Z")
        assert len(body[field]) == len("2026-03-17T10:00:00Z")


def test_creating_a_session_with_an_empty_body_gives_nulls_and_empty_metadata(client):
    response = client.post("/v1/sessions", {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["agent_id"] is None and body["title"] is None and body["project"] is None
    assert body["metadata"] == {}


def test_creating_a_session_by_agent_uuid_uses_that_agent(client, agent):
    body = client.post("/v1/sessions", {"agent_id": str(agent.id)}, format="json").json()
    assert body["agent_id"] == str(agent.id)
    assert Agent.objects.count() == 1


def test_creating_a_session_ignores_unknown_keys(client):
    response = client.post(
        "/v1/sessions", {"title": "t", "user_id": "u1", "scope": "x"}, format="json"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "x" * 501}, "title"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"metadata": {"blob": "x" * 10_300}}, "metadata"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": "text"}, "metadata"),
        ({"title": 123}, "title"),
        ({"project": {"a": 1}}, "project"),
        ({"agent_id": ["a"]}, "agent_id"),
        ({"agent_id": "   "}, "agent_id"),
        ({"agent_id": "x" * 256}, "agent_id"),
    ],
)
def test_creating_a_session_with_bad_input_is_a_422_naming_the_field(client, payload, field):
    response = client.post("/v1/sessions", payload, format="json")
    assert_error(response, 422, "validation_error", field)
    assert Session.objects.count() == 0
    assert Agent.objects.count() == 0


def test_title_of_exactly_500_characters_and_unicode_is_accepted(client):
    title = "é" * 499 + "🚀"
    response = client.post("/v1/sessions", {"title": title}, format="json")
    assert response.status_code == 201
    assert response.json()["title"] == title


def test_creating_a_second_live_session_with_one_external_id_is_a_409(client):
    assert client.post("/v1/sessions", {"external_id": "k"}, format="json").status_code == 201
    response = client.post("/v1/sessions", {"external_id": "k"}, format="json")
    assert_error(response, 409, "conflict")
    assert Session.objects.count() == 1


def test_a_trailing_slash_is_served_without_a_redirect(client):
    response = client.post("/v1/sessions/", {"title": "slash"}, format="json")
    assert response.status_code == 201
    assert client.get("/v1/sessions/").status_code == 200


# --- get-or-create ----------------------------------------------------------------------


def test_get_or_create_creates_then_finds_the_same_session(client):
    payload = {"external_id": "auto:abc:2026-03-17", "agent_id": "my-assistant",
               "title": "NorthRelay", "project": "northrelay-prod", "metadata": {"phase": "x"}}
    first = client.post("/v1/sessions/get-or-create", payload, format="json")
    second = client.post("/v1/sessions/get-or-create", payload, format="json")
    assert first.status_code == 201 and second.status_code == 200
    one, two = first.json(), second.json()
    assert one["created"] is True and two["created"] is False
    assert one["id"] == two["id"]
    assert one["external_id"] == "auto:abc:2026-03-17"
    assert set(one) == SESSION_FIELDS | {"created", "contributors"}
    assert one["contributors"] == ["my-assistant"]
    assert Session.objects.count() == 1


def test_get_or_create_uses_title_and_metadata_only_when_creating(client):
    client.post("/v1/sessions/get-or-create", {"external_id": "k", "title": "first"},
                format="json")
    body = client.post("/v1/sessions/get-or-create",
                       {"external_id": "k", "title": "second", "metadata": {"a": 1}},
                       format="json").json()
    assert body["title"] == "first"
    assert body["metadata"] == {}


def test_get_or_create_lists_every_agent_that_wrote_into_the_session(client):
    sid = client.post("/v1/sessions/get-or-create",
                      {"external_id": "shared", "agent_id": "my-assistant"},
                      format="json").json()["id"]
    add_memory(client, sid, "Reviewed the retry patch", agent="code-reviewer")
    add_memory(client, sid, "Merged it", agent="my-assistant")
    body = client.post("/v1/sessions/get-or-create",
                       {"external_id": "shared", "agent_id": "code-reviewer"},
                       format="json").json()
    assert body["contributors"] == ["code-reviewer", "my-assistant"]
    assert body["memory_count"] == 2
    assert body["agent_id"] == Agent.objects.get(name="my-assistant").id.__str__()


def test_a_deleted_owner_is_no_contributor_even_when_its_name_is_taken_again(client):
    """The session stays for the agent that wrote into it; the deleted owner was still
    listed, by a name that now names another agent."""
    sid = client.post("/v1/sessions/get-or-create",
                      {"external_id": "shared", "agent_id": "owner"}, format="json").json()["id"]
    add_memory(client, sid, "Reviewed the retry patch", agent="helper")
    assert client.delete("/v1/agents/owner").status_code in (200, 204)
    assert client.post("/v1/agents", {"name": "owner"}, format="json").status_code == 201
    body = client.post("/v1/sessions/get-or-create",
                       {"external_id": "shared", "agent_id": "helper"}, format="json").json()
    assert body["id"] == sid
    assert body["contributors"] == ["helper"]


@pytest.mark.parametrize(
    "payload", [{}, {"external_id": ""}, {"external_id": None}, {"external_id": "x" * 256},
                {"external_id": 42}],
)
def test_get_or_create_without_a_valid_external_id_is_a_422(client, payload):
    response = client.post("/v1/sessions/get-or-create", payload, format="json")
    assert_error(response, 422, "validation_error", "external_id")
    assert Session.objects.count() == 0


def test_get_or_create_ignores_a_deleted_session_with_that_external_id(client):
    old = client.post("/v1/sessions/get-or-create", {"external_id": "k"}, format="json").json()
    client.delete(f"/v1/sessions/{old['id']}")
    new = client.post("/v1/sessions/get-or-create", {"external_id": "k"}, format="json")
    assert new.status_code == 201
    assert new.json()["id"] != old["id"]


def test_get_or_create_does_not_find_another_accounts_session(client, other_client):
    theirs = other_client.post("/v1/sessions/get-or-create", {"external_id": "k"},
                               format="json").json()
    mine = client.post("/v1/sessions/get-or-create", {"external_id": "k"}, format="json")
    assert mine.status_code == 201
    assert mine.json()["id"] != theirs["id"]


# --- list -------------------------------------------------------------------------------


def make_sessions(account, count, **fields):
    now = timezone.now()
    return [
        Session.objects.create(account=account, created_at=now - timedelta(seconds=i), **fields)
        for i in range(count)
    ]


def test_listing_sessions_returns_the_list_envelope_newest_first(client, account):
    made = make_sessions(account, 3, title="s")
    body = client.get("/v1/sessions").json()
    assert set(body) == {"object", "data", "next_cursor", "has_more", "total_count"}
    assert body["object"] == "list"
    assert [s["id"] for s in body["data"]] == [str(s.id) for s in made]
    assert body["has_more"] is False and body["next_cursor"] is None
    assert body["total_count"] == 3
    assert set(body["data"][0]) == SESSION_FIELDS


def test_list_defaults_to_20_and_clamps_large_limits_to_100(client, account):
    make_sessions(account, 105)
    assert len(client.get("/v1/sessions").json()["data"]) == 20
    body = client.get("/v1/sessions?limit=1000").json()
    assert len(body["data"]) == 100
    assert body["has_more"] is True and body["total_count"] == 105


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=-3", "limit"),
                                              ("limit=ten", "limit"), ("offset=-1", "offset"),
                                              ("cursor=garbage!", "cursor"),
                                              ("status=paused", "status")])
def test_bad_list_parameters_are_a_422(client, query, field):
    assert_error(client.get(f"/v1/sessions?{query}"), 422, "validation_error", field)


def test_offset_and_cursor_page_through_every_session_once(client, account):
    made = [str(s.id) for s in make_sessions(account, 7)]
    by_offset = [s["id"] for off in (0, 3, 6)
                 for s in client.get(f"/v1/sessions?limit=3&offset={off}").json()["data"]]
    assert by_offset == made
    seen, url = [], "/v1/sessions?limit=3"
    while url:
        body = client.get(url).json()
        seen += [s["id"] for s in body["data"]]
        url = f"/v1/sessions?limit=3&cursor={body['next_cursor']}" if body["has_more"] else None
    assert seen == made


def test_cursor_pages_are_stable_when_sessions_share_a_timestamp(client, account):
    at = timezone.now()
    made = [Session.objects.create(account=account, created_at=at) for _ in range(5)]
    seen, url = [], "/v1/sessions?limit=2"
    while url:
        body = client.get(url).json()
        seen += [s["id"] for s in body["data"]]
        url = f"/v1/sessions?limit=2&cursor={body['next_cursor']}" if body["has_more"] else None
    assert sorted(seen) == sorted(str(s.id) for s in made) and len(seen) == 5


def test_list_filters_by_project_status_and_agent_uuid_or_name(client, account, agent):
    a = Session.objects.create(account=account, project="p1", agent=agent)
    b = Session.objects.create(account=account, project="p2")
    c = Session.objects.create(account=account, project="p1", status="ended",
                               ended_at=timezone.now() + timedelta(seconds=1))

    def ids(query):
        return {s["id"] for s in client.get(f"/v1/sessions?{query}").json()["data"]}

    assert ids("project=p1") == {str(a.id), str(c.id)}
    assert ids("status=active") == {str(a.id), str(b.id)}
    assert ids("status=ended&project=p1") == {str(c.id)}
    assert ids(f"agent_id={agent.id}") == {str(a.id)}
    assert ids("agent_id=my-assistant") == {str(a.id)}
    assert ids("agent_id=nobody") == set()
    assert client.get("/v1/sessions?project=p1").json()["total_count"] == 2


def test_the_agent_filter_reads_the_rows_own_agents_not_every_accounts_by_name(
        client, account, agent):
    """A subquery on the name read the agents of that name in every account."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    Session.objects.create(account=account, agent=agent)
    for path in ("/v1/sessions", "/v1/memories"):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path, {"agent_id": "my-assistant"}).status_code == 200
        reads = [q["sql"] for q in captured.captured_queries
                 if '"sessions_app_agent"."name"' in q["sql"]]
        assert reads and not any("IN (SELECT" in sql.upper() for sql in reads)


def test_list_never_shows_another_accounts_or_deleted_sessions(client, account, other_account):
    mine = Session.objects.create(account=account)
    Session.objects.create(account=account, deleted_at=timezone.now())
    Session.objects.create(account=other_account)
    body = client.get("/v1/sessions").json()
    assert [s["id"] for s in body["data"]] == [str(mine.id)]
    assert body["total_count"] == 1


# --- get --------------------------------------------------------------------------------


def test_getting_a_session_returns_it_without_memories_by_default(client, session, memory):
    body = client.get(f"/v1/sessions/{session.id}").json()
    assert set(body) == SESSION_FIELDS
    assert body["memory_count"] == 1


def test_include_memories_embeds_full_memory_objects_oldest_first(client, session):
    first = add_memory(client, session.id, "first")
    second = add_memory(client, session.id, "second")
    Memory.objects.filter(pk=first["id"]).update(created_at=timezone.now() - timedelta(hours=1))
    body = client.get(f"/v1/sessions/{session.id}?include_memories=true").json()
    assert [m["content"] for m in body["memories"]] == ["first", "second"]
    embedded = body["memories"][1]
    assert embedded == client.get(f"/v1/memories/{second['id']}").json()
    assert isinstance(embedded["created_at"], int)


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/agents", "/v1/memories"])
def test_an_offset_past_every_row_is_an_empty_page_however_large(client, session, path):
    client.post("/v1/memories", {"content": "x", "agent_id": "a"}, format="json")
    for offset in (10**6, 2**63, 29049462849558941924293869568):
        response = client.get(f"{path}?offset={offset}&limit=5")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["data"] == [] and body["has_more"] is False and body["total_count"] >= 1
    assert_error(client.get(f"{path}?offset={'9' * 5000}"), 422, "validation_error", "offset")


def test_a_huge_memories_offset_is_an_empty_page(client, session):
    client.post("/v1/memories", {"content": "x", "agent_id": "a", "session_id": str(session.id)},
                format="json")
    response = client.get(f"/v1/sessions/{session.id}?include_memories=true"
                          f"&memories_offset={2**64}")
    assert response.status_code == 200, response.content
    assert response.json()["memories"] == [] and response.json()["memory_count"] == 1


def test_include_memories_is_bounded_and_pages_with_memories_offset(client, account, session):
    for i in range(5):
        Memory.objects.create(account=account, agent=session.agent, session=session,
                              content=f"m{i}", created_at=timezone.now() + timedelta(seconds=i))
    url = f"/v1/sessions/{session.id}?include_memories=true&memories_limit=2"
    assert [m["content"] for m in client.get(url).json()["memories"]] == ["m0", "m1"]
    page = client.get(url + "&memories_offset=4").json()
    assert [m["content"] for m in page["memories"]] == ["m4"]
    assert page["memory_count"] == 5


@pytest.mark.parametrize("path", ["/v1/sessions/not-a-uuid", "/v1/sessions/123",
                                  f"/v1/sessions/{uuid.uuid4()}"])
def test_getting_a_missing_or_malformed_session_id_is_a_404(client, path):
    body = assert_error(client.get(path), 404, "not_found")
    assert body["message"] == "Session not found"


def test_include_memories_with_a_bad_value_is_a_422(client, session):
    response = client.get(f"/v1/sessions/{session.id}?include_memories=maybe")
    assert_error(response, 422, "validation_error", "include_memories")


# --- end --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put"])
def test_ending_a_session_sets_status_ended_at_and_summary(client, session, method):
    call = getattr(client, method)
    response = call(f"/v1/sessions/{session.id}/end", {"summary": "Fixed retry logic"},
                    format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SESSION_FIELDS
    assert body["status"] == "ended" and body["ended_at"].endswith("Z")
    assert body["summary"] == "Fixed retry logic"


def test_ending_an_ended_session_keeps_the_first_ended_at(client, session):
    first = client.post(f"/v1/sessions/{session.id}/end", {}, format="json").json()
    Session.objects.filter(pk=session.pk).update(ended_at=timezone.now() - timedelta(days=1),
                                                 started_at=timezone.now() - timedelta(days=2))
    kept = Session.objects.get(pk=session.pk).ended_at
    second = client.put(f"/v1/sessions/{session.id}/end", {"summary": "new"}, format="json")
    assert second.status_code == 200
    assert first["status"] == second.json()["status"] == "ended"
    assert Session.objects.get(pk=session.pk).ended_at == kept
    assert second.json()["summary"] == "new"


def test_ending_an_ended_session_again_with_nothing_new_moves_no_updated_at(client, session):
    client.post(f"/v1/sessions/{session.id}/end", {"summary": "done",
                                                   "metadata": {"pr": 12}}, format="json")
    earlier = timezone.now() - timedelta(hours=1)
    Session.objects.filter(pk=session.pk).update(updated_at=earlier)
    for again in ({}, {"summary": "done"}, {"metadata": {"pr": 12}}, None):
        response = client.post(f"/v1/sessions/{session.id}/end", again, format="json")
        assert response.status_code == 200
        assert Session.objects.get(pk=session.pk).updated_at == earlier
    changed = client.post(f"/v1/sessions/{session.id}/end", {"summary": "done, merged"},
                          format="json").json()
    assert changed["summary"] == "done, merged"
    assert Session.objects.get(pk=session.pk).updated_at > earlier


def test_ending_merges_metadata_into_the_stored_metadata(client, session):
    client.post(f"/v1/sessions/{session.id}/end", {"metadata": {"outcome": "fixed"}},
                format="json")
    body = client.post(f"/v1/sessions/{session.id}/end", {"metadata": {"pr": 12}},
                       format="json").json()
    assert body["metadata"] == {"environment": "development", "outcome": "fixed", "pr": 12}


def test_ending_cannot_merge_metadata_past_its_limit(client, session):
    """Each end sends under 10 KB, but merged they would be over it: a 422 on metadata,
    and the session is left as it was (not ended by the refused call)."""
    assert client.post(f"/v1/sessions/{session.id}/end", {"metadata": {"a": "x" * 6000}},
                       format="json").status_code == 200
    session.refresh_from_db()
    ended_at = session.ended_at
    assert_error(client.post(f"/v1/sessions/{session.id}/end",
                             {"metadata": {"b": "y" * 6000}, "summary": "new"}, format="json"),
                 422, "validation_error", "metadata")
    session.refresh_from_db()
    assert set(session.metadata) == {"environment", "a"} and session.summary != "new"
    assert session.ended_at == ended_at
    # replacing a key with a smaller value stays within it
    body = client.post(f"/v1/sessions/{session.id}/end", {"metadata": {"a": "short"}},
                       format="json").json()
    assert body["metadata"]["a"] == "short"


def test_ending_without_a_body_or_with_null_fields_keeps_summary(client, session):
    client.post(f"/v1/sessions/{session.id}/end", {"summary": "kept"}, format="json")
    body = client.post(f"/v1/sessions/{session.id}/end",
                       {"summary": None, "metadata": None}, format="json").json()
    assert body["summary"] == "kept"
    assert client.post(f"/v1/sessions/{session.id}/end").status_code == 200


def test_ending_with_auto_summarize_stores_a_generated_summary(client, session):
    add_memory(client, session.id, "Root cause: the retry counter was not incremented.",
               importance=0.9)
    body = client.post(f"/v1/sessions/{session.id}/end", {"auto_summarize": True},
                       format="json").json()
    assert body["summary"] == "Root cause: the retry counter was not incremented."


def test_a_given_summary_wins_over_auto_summarize(client, session, memory):
    body = client.post(f"/v1/sessions/{session.id}/end",
                       {"auto_summarize": True, "summary": "mine"}, format="json").json()
    assert body["summary"] == "mine"


def test_ending_again_with_auto_summarize_keeps_a_summary_someone_wrote(client, session,
                                                                         memory):
    client.post(f"/v1/sessions/{session.id}/end", {"summary": "written by hand"},
                format="json")
    again = client.put(f"/v1/sessions/{session.id}/end", {"auto_summarize": True},
                       format="json").json()
    assert again["summary"] == "written by hand" and again["summary_method"] == "provided"
    # a generated one is generated again; a given one still replaces it
    session.refresh_from_db()
    Session.objects.filter(pk=session.pk).update(summary="old", summary_method="extractive")
    body = client.put(f"/v1/sessions/{session.id}/end", {"auto_summarize": True},
                      format="json").json()
    assert body["summary"] == memory.content + "." and body["summary_method"] == "extractive"
    body = client.put(f"/v1/sessions/{session.id}/end", {"summary": "new"}, format="json")
    assert body.json()["summary"] == "new"


def test_a_summary_written_while_auto_summarize_builds_wins(client, session, memory,
                                                            monkeypatch):
    from sessions_app import services

    build = services._summary_text

    def slow_build(items, **kwargs):  # the hand-written summary lands meanwhile
        Session.objects.filter(pk=session.pk).update(summary="by hand",
                                                     summary_method="provided")
        return build(items, **kwargs)

    monkeypatch.setattr(services, "_summary_text", slow_build)
    body = client.post(f"/v1/sessions/{session.id}/end", {"auto_summarize": True},
                       format="json").json()
    assert body["summary"] == "by hand" and body["summary_method"] == "provided"


@pytest.mark.parametrize(("payload", "field"), [({"summary": "x" * 50_001}, "summary"),
                                                ({"summary": 5}, "summary"),
                                                ({"metadata": [1]}, "metadata"),
                                                ({"auto_summarize": "perhaps"}, "auto_summarize")])
def test_ending_with_bad_input_is_a_422_and_changes_nothing(client, session, payload, field):
    response = client.post(f"/v1/sessions/{session.id}/end", payload, format="json")
    assert_error(response, 422, "validation_error", field)
    assert Session.objects.get(pk=session.pk).status == "active"


def test_ending_a_missing_session_is_a_404(client):
    assert_error(client.post(f"/v1/sessions/{uuid.uuid4()}/end"), 404, "not_found")


# --- summarize --------------------------------------------------------------------------


def test_summarize_answers_the_documented_body_and_stores_the_summary(client, session):
    add_memory(client, session.id, "Identified root cause: retry counter not incremented "
               "on timeout", importance=0.9)
    add_memory(client, session.id, "Increased max retry attempts from 3 to 5", importance=0.8)
    add_memory(client, session.id, "Added exponential backoff with jitter", importance=0.8)
    response = client.post(f"/v1/sessions/{session.id}/summarize")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"session_id", "summary", "memory_count", "generated_at"}
    assert body["session_id"] == str(session.id)
    assert body["memory_count"] == 3
    assert body["generated_at"].endswith("Z")
    assert "retry counter" in body["summary"] and "jitter" in body["summary"]
    assert Session.objects.get(pk=session.pk).summary == body["summary"]
    again = client.post(f"/v1/sessions/{session.id}/summarize").json()
    assert again["summary"] == body["summary"]


def test_summarize_a_session_without_memories_is_a_422_that_changes_nothing(client, session):
    client.post(f"/v1/sessions/{session.id}/end", {"summary": "kept"}, format="json")
    response = client.post(f"/v1/sessions/{session.id}/summarize")
    assert_error(response, 422, "validation_error")
    assert Session.objects.get(pk=session.pk).summary == "kept"


def test_summarize_ignores_deleted_memories(client, session):
    kept = add_memory(client, session.id, "The fix shipped in release 2.4")
    gone = add_memory(client, session.id, "Unrelated secret note about lunch")
    client.delete(f"/v1/memories/{gone['id']}")
    body = client.post(f"/v1/sessions/{session.id}/summarize").json()
    assert body["memory_count"] == 1
    assert body["summary"] == kept["content"] + "."


# --- delete -----------------------------------------------------------------------------


def test_deleting_a_session_is_soft_and_keeps_its_memories(client, session, memory):
    response = client.delete(f"/v1/sessions/{session.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(session.id) and body["deleted"] is True
    assert body["cascade_memories"] is False and body["deleted_at"].endswith("Z")
    assert Session.objects.filter(pk=session.pk, deleted_at__isnull=False).exists()
    assert_error(client.get(f"/v1/sessions/{session.id}"), 404, "not_found")
    assert client.get("/v1/sessions").json()["total_count"] == 0
    assert client.get(f"/v1/memories/{memory.id}").status_code == 200
    assert_error(client.delete(f"/v1/sessions/{session.id}"), 404, "not_found")


def test_deleting_with_cascade_memories_soft_deletes_them_too(client, session, memory):
    body = client.delete(f"/v1/sessions/{session.id}?cascade_memories=true").json()
    assert body["cascade_memories"] is True
    assert_error(client.get(f"/v1/memories/{memory.id}"), 404, "not_found")
    assert Memory.objects.filter(pk=memory.pk).exists()


def test_memories_cannot_be_added_to_a_deleted_session(client, session):
    client.delete(f"/v1/sessions/{session.id}")
    response = client.post("/v1/memories", {"content": "late", "agent_id": "a",
                                            "session_id": str(session.id)}, format="json")
    assert_error(response, 422, "validation_error", "session_id")


# --- memory_count -----------------------------------------------------------------------


def test_memory_count_is_exact_after_adds_and_deletes(client, session):
    made = [add_memory(client, session.id, f"m{i}") for i in range(4)]
    client.delete(f"/v1/memories/{made[0]['id']}")
    assert client.get(f"/v1/sessions/{session.id}").json()["memory_count"] == 3
    listed = client.get("/v1/sessions").json()["data"][0]
    assert listed["memory_count"] == 3


# --- query counts -----------------------------------------------------------------------


def test_session_list_query_count_does_not_grow_with_the_page(client, account, agent,
                                                             max_queries):
    for s in make_sessions(account, 30, agent=agent):
        Memory.objects.create(account=account, agent=agent, session=s, content="x")
    with max_queries(3):
        body = client.get("/v1/sessions?limit=100").json()
    assert len(body["data"]) == 30


def test_session_detail_with_memories_uses_a_fixed_number_of_queries(
    client, account, session, max_queries
):
    for i in range(50):
        Memory.objects.create(account=account, agent=session.agent, session=session,
                              content=f"m{i}")
    with max_queries(4):  # key, session, memories, their entities
        body = client.get(f"/v1/sessions/{session.id}?include_memories=true").json()
    assert len(body["memories"]) == 50
