"""An agent's stats count the live entities its live memories are linked to."""

from __future__ import annotations

from tests.entities_app.conftest import create_entity, link


def test_agent_stats_count_the_entities_of_its_memories(client, account, agent, memory):
    from memories_app.services import memory_create, memory_delete

    other = memory_create(account=account, agent_ref=agent.name, content="Bob joined Acme")
    elsewhere = memory_create(account=account, agent_ref="someone-else", content="Globex")
    acme = create_entity(client)
    bob = create_entity(client, "Bob", "person")
    globex = create_entity(client, "Globex", "organization")
    gone = create_entity(client, "Gone", "concept")
    link(client, acme["id"], memory.id)
    link(client, acme["id"], other.id)  # counted once
    link(client, bob["id"], other.id)
    link(client, globex["id"], elsewhere.id)  # another agent's memory
    link(client, gone["id"], memory.id)
    client.delete(f"/v1/entities/{gone['id']}")

    def count() -> int:
        response = client.get(f"/v1/agents/{agent.id}/stats")
        assert response.status_code == 200, response.content
        return response.json()["entity_count"]

    assert count() == 2
    memory_delete(memory=other)
    assert count() == 1  # Bob only linked to the deleted memory; Acme still to the first
