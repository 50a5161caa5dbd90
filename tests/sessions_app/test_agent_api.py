"""The agents API over HTTP (API.md §4)."""

from __future__ import annotations

import uuid

import pytest

from memories_app.models import Memory
from sessions_app.models import Agent, Session
from tests.conftest import assert_error

AGENT_FIELDS = {"object", "id", "name", "description", "config", "metadata", "memory_count",
                "session_count", "last_active_at", "created_at", "updated_at"}


def test_creating_an_agent_answers_201_then_200_for_the_same_name(client):
    first = client.post("/v1/agents", {"name": "coder", "description": "writes code",
                                       "metadata": {"team": "a"}}, format="json")
    assert first.status_code == 201
    body = first.json()
    assert set(body) == AGENT_FIELDS
    assert body["object"] == "agent" and body["name"] == "coder"
    assert body["config"] == {} and body["metadata"] == {"team": "a"}
    assert body["memory_count"] == 0 and body["session_count"] == 0
    assert body["created_at"].endswith("Z")
    again = client.post("/v1/agents", {"name": "coder"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert Agent.objects.count() == 1


def test_an_agents_config_given_at_creation_is_stored(client):
    body = client.post("/v1/agents", {"name": "planner", "config": {"model": "x", "n": 2}},
                       format="json").json()
    assert body["config"] == {"model": "x", "n": 2}
    assert client.get("/v1/agents/planner").json()["config"] == {"model": "x", "n": 2}
    assert Agent.objects.get().config == {"model": "x", "n": 2}


def test_sdk_030_style_create_uses_id_as_the_name(client):
    response = client.post("/v1/agents", {"id": "bot-7", "name": None, "description": None,
                                          "metadata": None}, format="json")
    assert response.status_code == 201
    assert response.json()["name"] == "bot-7"
    assert response.json()["metadata"] == {}


@pytest.mark.parametrize(("payload", "field"), [({}, "name"), ({"name": ""}, "name"),
                                                ({"name": "x" * 256}, "name"),
                                                ({"name": 7}, "name"),
                                                ({"name": "a", "description": "d" * 1001},
                                                 "description"),
                                                ({"name": "a", "metadata": 3}, "metadata"),
                                                ({"name": "a", "config": [1]}, "config")])
def test_creating_an_agent_with_bad_input_is_a_422(client, payload, field):
    assert_error(client.post("/v1/agents", payload, format="json"), 422, "validation_error",
                 field)
    assert Agent.objects.count() == 0


def test_an_agent_is_found_by_uuid_or_by_name(client, agent):
    assert client.get(f"/v1/agents/{agent.id}").json()["name"] == "my-assistant"
    assert client.get("/v1/agents/my-assistant").json()["id"] == str(agent.id)
    assert_error(client.get("/v1/agents/nobody"), 404, "not_found")
    assert_error(client.get(f"/v1/agents/{uuid.uuid4()}"), 404, "not_found")


def test_agent_counts_and_last_active_follow_its_writes(client, agent, session, memory):
    body = client.get(f"/v1/agents/{agent.id}").json()
    assert body["memory_count"] == 1 and body["session_count"] == 1
    assert body["last_active_at"].endswith("Z")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_updating_an_agent_is_partial(client, agent, method):
    call = getattr(client, method)
    body = call(f"/v1/agents/{agent.id}", {"description": "helps", "name": None},
                format="json").json()
    assert body["name"] == "my-assistant" and body["description"] == "helps"
    body = call("/v1/agents/my-assistant", {"name": "renamed"}, format="json").json()
    assert body["name"] == "renamed"


def test_renaming_an_agent_onto_a_taken_name_is_a_409(client, agent):
    client.post("/v1/agents", {"name": "taken"}, format="json")
    assert_error(client.patch(f"/v1/agents/{agent.id}", {"name": "taken"}, format="json"),
                 409, "conflict")
    assert Agent.objects.get(pk=agent.pk).name == "my-assistant"


def test_a_name_that_is_another_agents_id_is_a_422(client, agent):
    """Refs are looked up by id first, so an agent named with another agent's id could
    never be reached by its name."""
    other = client.post("/v1/agents", {"name": "other-bot"}, format="json").json()
    assert_error(client.post("/v1/agents", {"name": str(agent.pk)}, format="json"), 422,
                 "validation_error", "name")
    assert_error(client.patch(f"/v1/agents/{other['id']}", {"name": str(agent.pk).upper()},
                              format="json"), 422, "validation_error", "name")
    assert client.get(f"/v1/agents/{other['id']}").json()["name"] == "other-bot"
    fresh = str(uuid.uuid4())  # a UUID that is no agent's id is a name like any other
    assert client.post("/v1/agents", {"name": fresh}, format="json").status_code == 201
    assert client.get(f"/v1/agents/{fresh}").json()["name"] == fresh


def test_deleting_an_agent_soft_deletes_its_sessions_and_memories(client, agent, session,
                                                                   memory):
    response = client.delete(f"/v1/agents/{agent.id}")
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    assert_error(client.get(f"/v1/agents/{agent.id}"), 404, "not_found")
    assert_error(client.get(f"/v1/sessions/{session.id}"), 404, "not_found")
    assert_error(client.get(f"/v1/memories/{memory.id}"), 404, "not_found")
    assert Session.objects.filter(pk=session.pk).exists()
    assert Memory.objects.filter(pk=memory.pk).exists()
    assert_error(client.delete(f"/v1/agents/{agent.id}"), 404, "not_found")


def test_deleting_an_agent_keeps_the_sessions_other_agents_wrote_into(client):
    """A conversation shared through an external_id went with the agent that opened it:
    the others' memories pointed at a hidden session, and their next get-or-create split
    the conversation into a new one (which then kept the agent from being restored)."""
    def join(agent):
        return client.post("/v1/sessions/get-or-create", {"external_id": "team:standup",
                                                          "agent_id": agent}, format="json")

    def write(agent, session_id, text):
        return client.post("/v1/memories", {"agent_id": agent, "session_id": session_id,
                                            "content": text}, format="json").json()["id"]

    shared = join("opener").json()["id"]
    alone = client.post("/v1/sessions", {"agent_id": "opener", "title": "solo"},
                        format="json").json()["id"]
    mine = write("opener", shared, "opener's note")
    theirs = write("helper", shared, "helper's note")
    write("opener", alone, "only mine")
    opener = client.get("/v1/agents/opener").json()["id"]
    assert client.delete("/v1/agents/opener").status_code == 200
    kept = client.get(f"/v1/sessions/{shared}")
    assert kept.status_code == 200 and kept.json()["agent_id"] is None  # no deleted owner
    assert client.get("/v1/sessions", {"agent_id": opener}).json()["total_count"] == 0
    assert [s["id"] for s in client.get("/v1/sessions").json()["data"]] == [shared]
    assert_error(client.get(f"/v1/sessions/{alone}"), 404, "not_found")
    assert_error(client.get(f"/v1/memories/{mine}"), 404, "not_found")
    assert client.get(f"/v1/memories/{theirs}").status_code == 200
    again = join("helper")
    assert again.status_code == 200 and again.json()["id"] == shared
    assert again.json()["memory_count"] == 1
    summary = client.post(f"/v1/sessions/{shared}/summarize").json()["summary"]
    assert "helper's note" in summary and "opener" not in summary
    ended = client.put(f"/v1/sessions/{shared}/end", {}, format="json")
    assert ended.status_code == 200 and ended.json()["status"] == "ended"


def test_a_deleted_agents_name_can_be_used_again(client, agent):
    client.delete(f"/v1/agents/{agent.id}")
    response = client.post("/v1/agents", {"name": "my-assistant"}, format="json")
    assert response.status_code == 201 and response.json()["id"] != str(agent.id)


def test_agent_list_is_an_envelope_with_a_fixed_query_count(client, account,
                                                           max_queries):
    for i in range(25):
        client.post("/v1/agents", {"name": f"agent-{i}"}, format="json")
    with max_queries(3):
        body = client.get("/v1/agents?limit=100").json()
    assert body["object"] == "list" and body["total_count"] == 25 and len(body["data"]) == 25
    assert set(body["data"][0]) == AGENT_FIELDS


def test_agent_detail_uses_a_fixed_number_of_queries(client, agent, memory,
                                                     max_queries):
    with max_queries(2):
        assert client.get("/v1/agents/my-assistant").status_code == 200


def test_agent_names_and_external_ids_are_matched_exactly_as_sent(client):
    """Names and external ids are identifiers: case and Unicode form count, and each is
    answered back byte for byte (README, "Choices")."""
    composed, decomposed = "caf\u00e9-bot", "cafe\u0301-bot"
    names = [composed, decomposed, "Caf\u00e9-bot"]
    ids = {client.post("/v1/agents", {"name": name}, format="json").json()["id"]
           for name in names}
    assert len(ids) == 3
    assert sorted(Agent.objects.values_list("name", flat=True)) == sorted(names)
    assert client.get(f"/v1/agents/{decomposed}").json()["name"] == decomposed
    sessions = {client.post("/v1/sessions/get-or-create",
                            {"external_id": f"run-{name}", "agent_id": composed},
                            format="json").json()["external_id"]
                for name in names}
    assert sessions == {f"run-{name}" for name in names}
    assert Session.objects.count() == 3


def test_an_agent_name_with_a_slash_is_reached_by_uuid_in_a_path_and_by_name_elsewhere(client):
    agent = client.post("/v1/agents", {"name": "team/bot"}, format="json").json()
    assert client.get(f"/v1/agents/{agent['id']}").json()["name"] == "team/bot"
    assert client.get("/v1/agents/team%2Fbot").status_code == 404
    memory = client.post("/v1/memories", {"agent_id": "team/bot", "content": "a fact"},
                         format="json").json()
    assert memory["agent_id"] == agent["id"]
    listed = client.get("/v1/sessions", {"agent_id": "team/bot"})
    assert listed.status_code == 200
    assert client.get("/v1/memories", {"agent_id": "team/bot"}).json()["total_count"] == 1
