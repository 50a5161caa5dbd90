"""A memory's ``entities`` ([{type, value, confidence}] from its links) wherever a memory is
shown, read once per page; and the ``entity`` filter of the memory list and search."""

from __future__ import annotations

import uuid

import pytest

from entities_app.models import Entity, EntityLink
from memories_app.models import Memory
from tests.conftest import assert_error
from tests.entities_app.conftest import create_entity, link


def new_memory(account, agent, content):
    from memories_app.services import memory_create

    return memory_create(account=account, agent_ref=agent.name, content=content)


def test_a_memory_lists_its_live_entities_best_first(client, memory):
    acme = create_entity(client)
    bob = create_entity(client, "Bob", "person")
    gone = create_entity(client, "Gone", "concept")
    link(client, acme["id"], memory.id, relevance_score=0.6)
    link(client, bob["id"], memory.id, relevance_score=0.9)
    link(client, gone["id"], memory.id)
    client.delete(f"/v1/entities/{gone['id']}")
    expected = [{"type": "person", "value": "Bob", "confidence": 0.9},
                {"type": "organization", "value": "Acme Corp", "confidence": 0.6}]
    assert client.get(f"/v1/memories/{memory.id}").json()["entities"] == expected
    assert client.get("/v1/memories").json()["data"][0]["entities"] == expected
    session = client.get(f"/v1/sessions/{memory.session_id}?include_memories=true").json()
    assert session["memories"][0]["entities"] == expected
    hits = client.post("/v1/memories/search", {"query": "retry counter timeout",
                                               "search_mode": "keyword"}, format="json").json()
    assert hits["data"][0]["memory"]["entities"] == expected
    updated = client.patch(f"/v1/memories/{memory.id}", {"importance": 0.9}, format="json")
    assert updated.json()["entities"] == expected


def test_a_new_memory_has_no_entities(client, agent):
    body = client.post("/v1/memories", {"content": "c", "agent_id": agent.name},
                       format="json").json()
    assert body["entities"] == []


def test_memory_pages_read_entities_in_one_query(client, account, agent, session,
                                                 max_queries):
    memories = Memory.objects.bulk_create(
        [Memory(account=account, agent=agent, session=session, content=f"retry m{i}")
         for i in range(30)])
    entities = [Entity.objects.create(account=account, name=f"E{i}", entity_type="concept")
                for i in range(3)]
    EntityLink.objects.bulk_create([EntityLink(account=account, entity=e, memory=m)
                                    for m in memories for e in entities])
    with max_queries(4):  # key, count, page, the page's entities
        page = client.get("/v1/memories", {"limit": 100}).json()["data"]
    assert {len(m["entities"]) for m in page} == {3}
    with max_queries(3):  # key, memory, its entities
        assert len(client.get(f"/v1/memories/{memories[0].id}").json()["entities"]) == 3
    with max_queries(4):  # key, session, memories, their entities
        body = client.get(f"/v1/sessions/{session.id}?include_memories=true"
                          "&memories_limit=100").json()
    assert {len(m["entities"]) for m in body["memories"]} == {3}
    with max_queries(4):
        page = client.get("/v1/memories", {"limit": 100, "entity": "e1"}).json()["data"]
    assert len(page) == 30


def test_the_memory_list_filters_by_entity_id_or_any_spelling_of_its_name(
        client, account, agent, memory, other_client):
    other = new_memory(account, agent, "Globex buys a printer")
    acme = create_entity(client)
    acme_person = create_entity(client, "ACME", "person")
    globex = create_entity(client, "Globex")
    link(client, acme["id"], memory.id)
    link(client, acme_person["id"], memory.id)
    link(client, globex["id"], other.id)

    def contents(**params):
        response = client.get("/v1/memories", params)
        assert response.status_code == 200, response.content
        return [m["content"] for m in response.json()["data"]]

    assert contents(entity=acme["id"]) == [memory.content]
    assert contents(entity="acme") == contents(entity="Acme, Inc.") == [memory.content]
    assert contents(entity="GLOBEX CORPORATION") == [other.content]
    assert contents(entity="initech") == contents(entity=str(uuid.uuid4())) == []
    assert contents(entity="acme", agent_id=agent.name) == [memory.content]
    client.delete(f"/v1/entities/{globex['id']}")
    assert contents(entity="globex") == []
    theirs = create_entity(other_client, "Globex")
    assert contents(entity=theirs["id"]) == []
    assert other_client.get("/v1/memories", {"entity": "acme"}).json()["data"] == []


def test_search_filters_by_entity(client, account, agent, memory):
    other = new_memory(account, agent, "Retry the timeout job for Globex")
    globex = create_entity(client, "Globex")
    link(client, globex["id"], other.id)

    def found(**body):
        response = client.post("/v1/memories/search", {"query": "retry timeout",
                                                       "search_mode": "keyword", **body},
                               format="json")
        assert response.status_code == 200, response.content
        return [h["memory"]["id"] for h in response.json()["data"]]

    assert set(found()) == {str(memory.id), str(other.id)}
    assert found(entity="globex") == found(entity=globex["id"]) == [str(other.id)]
    assert found(entity="acme") == []
    assert set(found(entity=None)) == set(found(entity="")) == set(found())
    assert_error(client.post("/v1/memories/search", {"query": "q", "entity": 5},
                             format="json"), 422, "validation_error", "entity")


@pytest.mark.parametrize("value", ["a%00b", "%00", "x" * 300])
def test_a_hostile_entity_filter_is_no_crash(client, value):
    response = client.get(f"/v1/memories?entity={value}")
    assert response.status_code in (200, 422)
