"""The official Python SDK (memoryrelay 0.4.0 from PyPI) against a live server: every
call's response must parse into the SDK's own pydantic models."""

from __future__ import annotations

import pytest
from memoryrelay import MemoryRelay
from memoryrelay.exceptions import MemoryRelayError, NotFoundError, ValidationError
from memoryrelay.models import (
    AgentCreate,
    AgentUpdate,
    BatchMemoryItem,
    BatchMemoryRequest,
    MemoryContextRequest,
    MemoryCreate,
    MemorySearchRequest,
    MemoryUpdate,
)
from pydantic import BaseModel

from tests.conftest import requires_model

pytestmark = pytest.mark.django_db(transaction=True)


class HealthStatus(BaseModel):
    """SDK 0.3.0's health model, field for field (every field required)."""

    status: str
    version: str
    api_version: str
    environment: str
    timestamp: int
    uptime_seconds: int
    services: dict[str, str]


def test_agents_round_trip_through_the_sdk(sdk):
    created = sdk.agents.create(AgentCreate(name="sdk-agent", metadata={"team": "core"}))
    assert created.name == "sdk-agent" and created.metadata == {"team": "core"}
    assert sdk.agents.create(AgentCreate(name="sdk-agent")).id == created.id
    listed = sdk.agents.list()
    assert [a.id for a in listed.data] == [created.id] and listed.total_count == 1
    assert sdk.agents.get(created.id).name == "sdk-agent"
    assert sdk.agents.get("sdk-agent").id == created.id
    updated = sdk.agents.update(created.id, AgentUpdate(description="writes code"))
    assert updated.name == "sdk-agent"
    sdk.agents.delete(created.id)
    with pytest.raises(NotFoundError):
        sdk.agents.get(created.id)


def test_memories_round_trip_through_the_sdk(sdk):
    made = sdk.memories.create(MemoryCreate(
        agent_id="sdk-agent", content="User prefers dark mode", metadata={"src": "chat"},
        memory_type="preference", importance=0.9,
    ))
    assert made.tier == "hot" and made.is_duplicate is False and made.entities == []
    assert isinstance(made.created_at, int)
    assert sdk.memories.get(made.id).content == "User prefers dark mode"
    page = sdk.memories.list(agent_id="sdk-agent", limit=100)
    assert [m.id for m in page.data] == [made.id] and page.has_more is False
    changed = sdk.memories.update(made.id, MemoryUpdate(content="User prefers light mode"))
    assert changed.content == "User prefers light mode" and changed.metadata == {"src": "chat"}
    sdk.memories.delete(made.id)
    with pytest.raises(NotFoundError):
        sdk.memories.get(made.id)


def test_sdk_errors_map_to_its_exception_classes(sdk, live_server):
    with pytest.raises(NotFoundError):
        sdk.memories.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(ValidationError):
        sdk.memories.create(MemoryCreate(agent_id="a", content="   "))
    with MemoryRelay(api_key="mem_prod_" + "x" * 40, base_url=live_server.url) as bad:
        with pytest.raises(MemoryRelayError) as caught:
            bad.agents.list()
    assert caught.value.status_code == 401


def test_health_parses_into_the_sdk_model(sdk):
    response = sdk._client.get("/v1/health")
    health = HealthStatus(**response.json())
    assert health.status == "healthy" and health.services["database"] == "up"


def test_the_sdk_sees_that_icm_is_not_supported(sdk):
    assert sdk.icm.capabilities()["supported"] is False


@requires_model
def test_search_batch_and_context_parse_into_the_sdk_models(sdk):
    batch = sdk.memories.batch_create(BatchMemoryRequest(memories=[
        BatchMemoryItem(agent_id="sdk-agent", content="The user is allergic to peanuts"),
        BatchMemoryItem(agent_id="sdk-agent", content="Deploys are frozen on Fridays",
                        importance=0.9),
    ]))
    assert batch.success and batch.succeeded == 2 and all(r.id for r in batch.results)
    found = sdk.memories.search(MemorySearchRequest(query="which food is dangerous for them",
                                                    agent_id="sdk-agent", limit=5))
    assert found.data[0].memory.content == "The user is allergic to peanuts"
    assert all(0.0 <= hit.score <= 1.0 for hit in found.data)
    context = sdk.memories.context(MemoryContextRequest(query="peanut allergy", threshold=0.2))
    assert context.memories_used >= 1 and "peanuts" in context.context
    duplicate = sdk.memories.create(MemoryCreate(
        agent_id="sdk-agent", content="the user is allergic to peanuts", deduplicate=True))
    assert duplicate.is_duplicate is True
