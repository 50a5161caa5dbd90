"""/v2 asynchronous writes as the real clients use them: SDK 0.4.0's create_async,
get_status and wait_until_ready against a live server (parsed by its own models), and raw
replays of the MCP server's memory_store_async and memory_status (src/client.ts:
storeMemoryAsync, getMemoryStatus)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from memoryrelay import MemoryRelay
from memoryrelay.exceptions import NotFoundError
from memoryrelay.models import MemoryAsyncResponse, MemoryCreate, MemorySearchRequest

from memoryrelay_site.services import api_key_create

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.mark.django_db(transaction=True)
def test_the_sdk_creates_async_polls_and_waits_until_ready(live_server, task_queue):
    user = get_user_model().objects.create(username="sdk-async")
    _, raw = api_key_create(user=user, name="sdk")
    with MemoryRelay(api_key=raw, base_url=live_server.url) as sdk:
        accepted = sdk.memories.create_async(MemoryCreate(
            agent_id="sdk-agent", content="The nightly backup runs at 02:00 UTC",
            importance=0.8, deduplicate=False))
        assert isinstance(accepted, MemoryAsyncResponse)
        assert accepted.status == "pending" and accepted.job_id
        assert accepted.estimated_completion_seconds is not None
        assert sdk.memories.get_status(accepted.id).status == "pending"
        assert sdk.memories.get(accepted.id).content.startswith("The nightly backup")
        task_queue.run()
        status = sdk.memories.get_status(accepted.id)
        assert status.status == "ready" and status.error is None
        ready = sdk.memories.wait_until_ready(accepted.id, poll_interval=0.1, timeout=5)
        assert ready.id == accepted.id and ready.tier == "hot"
        hits = sdk.memories.search(MemorySearchRequest(query="when are backups taken",
                                                       agent_id="sdk-agent"))
        assert hits.data[0].memory.id == accepted.id
        with pytest.raises(NotFoundError):
            sdk.memories.get_status("00000000-0000-4000-8000-000000000000")


@pytest.mark.django_db
def test_the_mcp_servers_store_async_and_status_requests(client, task_queue):
    # storeMemoryAsync: {content, agent_id, metadata?, project?, importance?, tier?,
    # webhook_url?} with the configured agent name, never registered.
    accepted = client.post("/v2/memories", {
        "content": "Prefer ruff over flake8", "agent_id": "alice-laptop",
        "metadata": {"source": "mcp"}, "project": "tools", "importance": 0.6, "tier": "warm",
    }, format="json")
    assert accepted.status_code == 202
    body = accepted.json()
    assert set(body) == {"id", "status", "job_id", "estimated_completion_seconds"}
    assert UUID.match(body["id"]) and body["status"] == "pending"
    # memory_status validates the UUID, then getMemoryStatus.
    status = client.get(f"/v2/memories/{body['id']}/status").json()
    assert {"id", "status", "created_at", "updated_at"} <= set(status)
    assert status["status"] in ("pending", "processing", "ready", "failed")
    task_queue.run()
    assert client.get(f"/v2/memories/{body['id']}/status").json()["status"] == "ready"
    memory = client.get(f"/v1/memories/{body['id']}").json()
    assert (memory["project_id"], memory["metadata"], memory["tier"]) == (
        "tools", {"source": "mcp"}, "warm")
