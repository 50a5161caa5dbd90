"""The memories API over HTTP (API.md §5, without search, batch and context)."""

from __future__ import annotations

import uuid

import pytest

from memories_app.models import Memory
from sessions_app.models import Agent
from tests.conftest import assert_error

MEMORY_FIELDS = {
    "object", "id", "content", "agent_id", "session_id", "project_id", "metadata", "entities",
    "memory_type", "visibility", "importance", "tier", "is_duplicate", "created_at",
    "updated_at",
}


def create(client, **fields):
    body = {"content": "User prefers dark mode", "agent_id": "my-assistant", **fields}
    return client.post("/v1/memories", body, format="json")


def test_creating_a_memory_answers_201_with_the_memory_object(client):
    response = create(client)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == MEMORY_FIELDS
    assert body["object"] == "memory"
    assert body["agent_id"] == str(Agent.objects.get(name="my-assistant").id)
    assert body["session_id"] is None and body["project_id"] is None
    assert body["metadata"] == {} and body["entities"] == []
    assert body["memory_type"] == "fact" and body["visibility"] == "private"
    assert body["importance"] == 0.5 and body["tier"] == "warm"
    assert body["is_duplicate"] is False
    assert isinstance(body["created_at"], int) and isinstance(body["updated_at"], int)


@pytest.mark.parametrize(("importance", "tier"), [(0.8, "hot"), (0.95, "hot"), (0.4, "warm"),
                                                  (0.79, "warm"), (0.39, "cold"), (0.0, "cold")])
def test_tier_follows_importance_unless_given(client, importance, tier):
    assert create(client, importance=importance).json()["tier"] == tier
    assert create(client, importance=importance, tier="cold").json()["tier"] == "cold"


def test_a_memory_created_in_a_session_belongs_to_it_and_inherits_its_project(client, session):
    body = create(client, session_id=str(session.id)).json()
    assert body["session_id"] == str(session.id)
    assert body["project_id"] == "northrelay"
    assert client.get(f"/v1/sessions/{session.id}").json()["memory_count"] == 1


def test_a_memory_can_name_its_own_project(client, session):
    assert create(client, session_id=str(session.id), project="other").json()["project_id"] == (
        "other"
    )


def test_a_session_of_another_account_is_a_422_on_session_id(client, other_client):
    theirs = other_client.post("/v1/sessions", {}, format="json").json()["id"]
    assert_error(create(client, session_id=theirs), 422, "validation_error", "session_id")
    assert Memory.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   \n"}, "content"),
        ({"content": "x" * 50_001}, "content"),
        ({"content": None}, "content"),
        ({"content": 12}, "content"),
        ({"agent_id": None}, "agent_id"),
        ({"agent_id": ""}, "agent_id"),
        ({"importance": 1.5}, "importance"),
        ({"importance": -0.1}, "importance"),
        ({"importance": "high"}, "importance"),
        ({"importance": True}, "importance"),
        ({"tier": "lukewarm"}, "tier"),
        ({"memory_type": "gossip"}, "memory_type"),
        ({"visibility": "public"}, "visibility"),
        ({"metadata": {"k": "v" * 11_000}}, "metadata"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"session_id": "not-a-uuid"}, "session_id"),
        ({"session_id": str(uuid.uuid4())}, "session_id"),
        ({"dedup_threshold": 0.2}, "dedup_threshold"),
    ],
)
def test_creating_a_memory_with_bad_input_is_a_422_and_stores_nothing(client, fields, field):
    assert_error(create(client, **fields), 422, "validation_error", field)
    assert Memory.objects.count() == 0


def test_a_memory_without_content_or_agent_is_a_422_naming_both(client):
    body = assert_error(client.post("/v1/memories", {}, format="json"), 422, "validation_error")
    assert {d["field"] for d in body["details"]} >= {"content", "agent_id"}


def test_unicode_and_50000_character_content_round_trips(client):
    prefix = "naïve café 日本語 🧠 "
    content = prefix + "x" * (50_000 - len(prefix))
    assert len(content) == 50_000
    body = create(client, content=content).json()
    assert client.get(f"/v1/memories/{body['id']}").json()["content"] == content


def test_listing_memories_filters_by_agent_session_type_and_tier(client, session):
    a = create(client, session_id=str(session.id), memory_type="event").json()
    b = create(client, agent_id="other-agent", importance=0.9).json()
    create(client, importance=0.1)

    def ids(query):
        return {m["id"] for m in client.get(f"/v1/memories?{query}").json()["data"]}

    assert ids(f"session_id={session.id}") == {a["id"]}
    assert ids("agent_id=other-agent") == {b["id"]}
    assert ids(f"agent_id={b['agent_id']}") == {b["id"]}
    assert ids("memory_type=event") == {a["id"]}
    assert ids("tier=hot") == {b["id"]}
    assert client.get("/v1/memories").json()["total_count"] == 3
    assert_error(client.get("/v1/memories?tier=boiling"), 422, "validation_error", "tier")
    assert_error(client.get("/v1/memories?session_id=nope"), 422, "validation_error",
                 "session_id")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_updates_are_partial_and_null_means_unchanged(client, method):
    made = create(client, metadata={"theme": "dark"}).json()
    call = getattr(client, method)
    body = call(f"/v1/memories/{made['id']}", {"content": "User prefers light mode",
                                               "metadata": None}, format="json").json()
    assert body["content"] == "User prefers light mode"
    assert body["metadata"] == {"theme": "dark"}
    body = call(f"/v1/memories/{made['id']}", {"importance": 0.9}, format="json").json()
    assert body["tier"] == "hot" and body["content"] == "User prefers light mode"
    body = call(f"/v1/memories/{made['id']}", {"metadata": {"theme": "light"}},
                format="json").json()
    assert body["metadata"] == {"theme": "light"}


@pytest.mark.parametrize(("fields", "field"), [({"content": ""}, "content"),
                                               ({"importance": 2}, "importance"),
                                               ({"metadata": "x"}, "metadata")])
def test_a_bad_update_is_a_422_and_changes_nothing(client, fields, field):
    made = create(client).json()
    assert_error(client.patch(f"/v1/memories/{made['id']}", fields, format="json"),
                 422, "validation_error", field)
    assert client.get(f"/v1/memories/{made['id']}").json() == made


def test_deleting_a_memory_is_soft_answers_200_and_hides_it(client):
    made = create(client).json()
    response = client.delete(f"/v1/memories/{made['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == made["id"] and body["deleted"] is True and body["deleted_at"]
    assert Memory.objects.filter(pk=made["id"]).exists()
    assert_error(client.get(f"/v1/memories/{made['id']}"), 404, "not_found")
    assert_error(client.delete(f"/v1/memories/{made['id']}"), 404, "not_found")
    assert client.get("/v1/memories").json()["data"] == []


@pytest.mark.parametrize("path", ["/v1/memories/xyz", f"/v1/memories/{uuid.uuid4()}"])
def test_a_missing_memory_is_a_404_on_every_method(client, path):
    assert_error(client.get(path), 404, "not_found")
    assert_error(client.patch(path, {"content": "x"}, format="json"), 404, "not_found")
    assert_error(client.delete(path), 404, "not_found")


def test_memory_list_query_count_does_not_grow_with_the_page(client, account, agent,
                                                            max_queries):
    Memory.objects.bulk_create(
        [Memory(account=account, agent=agent, content=f"m{i}") for i in range(60)]
    )
    with max_queries(4):  # key, count, page, the page's entities
        assert len(client.get("/v1/memories?limit=100").json()["data"]) == 60


def test_memory_detail_uses_a_fixed_number_of_queries(client, memory,
                                                      max_queries):
    with max_queries(3):  # key, memory, its entities
        assert client.get(f"/v1/memories/{memory.id}").status_code == 200
