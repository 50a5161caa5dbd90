"""What each real client sends for entities, and every field it reads back (API.md §9).

- SDK 0.4.0 (installed): driven live against the test server; every response must parse
  into its own pydantic models (Entity, EntityList, EntityLinkResponse, Memory.entities).
- SDK 0.3.0: replayed over raw HTTP with X-API-Key only (create sends ``metadata: null``;
  list sends limit=100, offset=0, agent_id and entity_type; link posts {memory_id,
  relationship?} to /v1/entities/{id}/link), parsed with copies of its models.
- The MCP server (entity_create, entity_list, entity_link): Bearer, ``type`` instead of
  ``entity_type`` from person/place/organization/project/concept/other, metadata omitted
  when not given; it parses a JSON body on every success (link and delete included) and
  reads ``message`` on errors.
- OpenClaw (entity_create, entity_link, entity_list): as the MCP server, plus ``agent_id``
  in the create body (ignored) and no ``relationship`` unless given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from pydantic import BaseModel, Field

from memoryrelay_site.services import api_key_create
from tests.conftest import make_client


@pytest.fixture(autouse=True)
def _links_made_here_only(settings):
    """Only the links these tests make (no extraction after a write)."""
    settings.MEMORYRELAY_AUTO_EXTRACT_ENTITIES = False


# --- SDK 0.4.0, live ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sdk_040_entities_round_trip(sdk):
    from memoryrelay.exceptions import NotFoundError, ValidationError
    from memoryrelay.models import EntityCreate, EntityLinkCreate, EntityUpdate, MemoryCreate

    memory = sdk.memories.create(MemoryCreate(agent_id="sdk-agent",
                                              content="Dana from Acme asked for SSO"))
    acme = sdk.entities.create(EntityCreate(name="Acme Corp", entity_type="organization",
                                            metadata={"tier": "gold"}))
    assert acme.name == "Acme Corp" and acme.entity_type == "organization"
    assert acme.metadata == {"tier": "gold"} and isinstance(acme.created_at, datetime)
    assert (acme.memory_count, acme.relationship_count) == (0, 0)
    assert sdk.entities.create(EntityCreate(name="ACME", entity_type="organization")).id == \
        acme.id
    dana = sdk.entities.create(EntityCreate(name="Dana", entity_type="person"))

    linked = sdk.entities.link_to_memory(EntityLinkCreate(entity_id=acme.id,
                                                          memory_id=memory.id))
    assert (linked.entity_id, linked.memory_id, linked.relevance_score) == (
        acme.id, memory.id, 1.0)
    assert isinstance(linked.created_at, datetime)
    again = sdk.entities.link_to_memory(EntityLinkCreate(entity_id=acme.id, memory_id=memory.id,
                                                         relationship="about"))
    assert again.created_at == linked.created_at
    sdk.entities.link_to_memory(EntityLinkCreate(entity_id=dana.id, memory_id=memory.id))

    got = sdk.entities.get(acme.id)
    assert (got.memory_count, got.relationship_count) == (1, 1)
    page = sdk.entities.list()
    assert [e.name for e in page.data] == ["Dana", "Acme Corp"] and page.total_count == 2
    assert page.has_more is False
    assert [e.id for e in sdk.entities.list(agent_id="sdk-agent").data] == [dana.id, acme.id]
    assert sdk.entities.list(agent_id="nobody").total_count == 0

    entities = sdk.memories.get(memory.id).entities
    assert {(e.type, e.value, e.confidence) for e in entities} == {
        ("organization", "Acme Corp", 1.0), ("person", "Dana", 1.0)}

    renamed = sdk.entities.update(acme.id, EntityUpdate(name="Acme Inc", metadata={"k": 1}))
    assert (renamed.name, renamed.metadata, renamed.entity_type) == (
        "Acme Inc", {"k": 1}, "organization")
    with pytest.raises(ValidationError):
        sdk.entities.create(EntityCreate(name="Robo", entity_type="robot"))
    with pytest.raises(ValidationError):
        sdk.entities.link_to_memory(EntityLinkCreate(entity_id=acme.id,
                                                     memory_id="00000000-0000-4000-8000-"
                                                               "000000000000"))
    sdk.entities.delete(acme.id)
    with pytest.raises(NotFoundError):
        sdk.entities.get(acme.id)
    with pytest.raises(NotFoundError):
        sdk.entities.delete(acme.id)
    assert [e.value for e in sdk.memories.get(memory.id).entities] == ["Dana"]


@pytest.mark.django_db(transaction=True)
def test_sdk_040_async_entities(live_server):
    import asyncio

    from memoryrelay import AsyncMemoryRelay
    from memoryrelay.models import EntityCreate

    user = get_user_model().objects.create(username="sdk-async-entities")
    _, raw = api_key_create(user=user, name="sdk")

    async def run():
        async with AsyncMemoryRelay(api_key=raw, base_url=live_server.url) as client:
            made = await client.entities.create(EntityCreate(name="Rust",
                                                             entity_type="technology"))
            listed = await client.entities.list()
            await client.entities.delete(made.id)
            return made, listed

    made, listed = asyncio.run(run())
    assert made.entity_type == "technology" and [e.id for e in listed.data] == [made.id]


# --- SDK 0.3.0, replayed --------------------------------------------------------------------


class Entity030(BaseModel):
    id: str
    entity_type: str
    name: str
    metadata: dict[str, Any] | None = Field(default=None)
    memory_count: int = 0
    relationship_count: int = 0
    created_at: int | datetime
    updated_at: int | datetime


class EntityInfo030(BaseModel):
    type: str
    value: str
    confidence: float = 1.0


class Memory030(BaseModel):
    id: str
    content: str
    agent_id: str
    entities: list[EntityInfo030] = Field(default_factory=list)
    created_at: int | datetime


def test_sdk_030_entity_traffic_with_x_api_key_parses(api_key, memory):
    sdk = make_client(api_key, header="x-api-key")
    made = sdk.post("/v1/entities", {"entity_type": "person", "name": "Dana",
                                     "metadata": None}, format="json")
    assert made.status_code == 201
    dana = Entity030(**made.json())
    assert dana.metadata == {} and dana.name == "Dana"
    assert Entity030(**sdk.get(f"/v1/entities/{dana.id}").json()).id == dana.id
    params = {"limit": 100, "offset": 0, "agent_id": "my-assistant", "entity_type": "person"}
    assert sdk.get("/v1/entities", params).json()["data"] == []  # not linked yet
    linked = sdk.post(f"/v1/entities/{dana.id}/link", {"memory_id": str(memory.id)},
                      format="json")
    assert linked.status_code == 201 and linked.json()  # a body: 0.3.0 parses every success
    relabelled = sdk.post(f"/v1/entities/{dana.id}/link", {"memory_id": str(memory.id),
                                                           "relationship": "author"},
                          format="json")
    assert relabelled.status_code == 200 and relabelled.json()["relationship"] == "author"
    listed = [Entity030(**e) for e in sdk.get("/v1/entities", params).json()["data"]]
    assert [(e.name, e.memory_count) for e in listed] == [("Dana", 1)]
    parsed = Memory030(**sdk.get(f"/v1/memories/{memory.id}").json())
    assert [(e.type, e.value, e.confidence) for e in parsed.entities] == [("person", "Dana", 1.0)]
    deleted = sdk.delete(f"/v1/entities/{dana.id}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True


# --- MCP server and OpenClaw ----------------------------------------------------------------


MCP_TYPES = ["person", "place", "organization", "project", "concept", "other"]


class McpEntity(BaseModel):
    """The MCP server's Entity interface, as much as it declares."""

    id: str
    name: str
    metadata: dict[str, str] | None = None


@pytest.mark.parametrize("kind", MCP_TYPES)
def test_mcp_entity_create_with_each_of_its_types(client, kind):
    body = client.post("/v1/entities", {"name": f"Thing &amp; {kind}", "type": kind},
                       format="json")
    assert body.status_code == 201, body.content
    parsed = body.json()
    McpEntity(**parsed)
    assert parsed["entity_type"] == ("location" if kind == "place" else kind)
    assert parsed["name"] == f"Thing &amp; {kind}"  # its HTML-escaped name, kept as sent


def test_mcp_entity_tools_traffic(client, memory):
    made = client.post("/v1/entities", {"name": "AuthService", "type": "concept",
                                        "metadata": {"domain": "security"}}, format="json")
    assert made.status_code == 201
    entity = made.json()
    linked = client.post("/v1/entities/links", {"entity_id": entity["id"],
                                                "memory_id": str(memory.id),
                                                "relationship": "mentioned_in"}, format="json")
    assert linked.status_code == 201 and isinstance(linked.json(), dict)
    page = client.get("/v1/entities?limit=20&offset=0").json()
    assert page["total_count"] == 1 and page["data"][0]["memory_count"] == 1
    assert client.get(f"/v1/entities/{entity['id']}").json()["name"] == "AuthService"
    bad = client.post("/v1/entities", {"name": "x", "type": "spaceship"}, format="json")
    assert bad.status_code == 422 and "type" in bad.json()["message"]
    missing = client.get("/v1/entities/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["message"] == "Entity not found"
    gone = client.delete(f"/v1/entities/{entity['id']}")
    assert gone.status_code == 200 and gone.json()["deleted"] is True  # JSON on success


def test_openclaw_entity_tools_traffic(client, memory, agent):
    made = client.post("/v1/entities", {"name": "Berlin", "type": "place",
                                        "agent_id": "openclaw-agent"}, format="json")
    assert made.status_code == 201, made.content
    entity = made.json()
    assert entity["entity_type"] == "location"
    # Its agent_id names no agent the server makes for an entity (unknown keys are ignored).
    assert client.get("/v1/agents/openclaw-agent").status_code == 404
    linked = client.post("/v1/entities/links", {"entity_id": entity["id"],
                                                "memory_id": str(memory.id)}, format="json")
    assert linked.status_code == 201
    assert linked.json()["relationship"] == "mentioned_in"
    page = client.get("/v1/entities?limit=20&offset=0").json()
    assert [e["name"] for e in page["data"]] == ["Berlin"]
    hits = client.get(f"/v1/memories/{memory.id}").json()["entities"]
    assert hits == [{"type": "location", "value": "Berlin", "confidence": 1.0}]
