"""Entity fixtures, on top of tests/conftest.py's chain."""

from __future__ import annotations

import pytest


def create_entity(client, name="Acme Corp", entity_type="organization", status=201, **body):
    response = client.post("/v1/entities", {"name": name, "entity_type": entity_type, **body},
                           format="json")
    assert response.status_code == status, response.content
    return response.json()


def link(client, entity_id, memory_id, status=201, **body):
    response = client.post("/v1/entities/links", {"entity_id": str(entity_id),
                                                  "memory_id": str(memory_id), **body},
                           format="json")
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def entity(client):
    return create_entity(client, metadata={"hq": "Springfield"})
