"""Raw-HTTP replays of what the other real clients send (API.md §1, §3 and the seed):
SDK 0.3.0 (X-API-Key only), and the MCP server and OpenClaw plugin (Bearer, agent names
never registered, colon-containing external ids, PUT to end, a JSON body on every success).
Responses are parsed with copies of SDK 0.3.0's pydantic models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tests.conftest import make_client


class Agent030(BaseModel):
    id: str
    name: str | None = None
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    memory_count: int | None = None
    session_count: int | None = None
    last_active_at: datetime | None = None
    created_at: int | datetime
    updated_at: int | datetime


class Memory030(BaseModel):
    id: str
    object: str = "memory"
    content: str
    agent_id: str
    metadata: dict[str, Any] | None = None
    entities: list[dict] = Field(default_factory=list)
    memory_type: str | None = None
    visibility: str | None = "private"
    importance: float | None = None
    tier: str | None = None
    is_duplicate: bool = False
    session_id: str | None = None
    project_id: str | None = None
    created_at: int | datetime
    updated_at: int | datetime


# --- SDK 0.3.0 ----------------------------------------------------------------------------


def test_sdk_030_traffic_with_x_api_key_parses(api_key):
    sdk = make_client(api_key, header="x-api-key")
    sdk.credentials(HTTP_X_API_KEY=api_key, HTTP_USER_AGENT="memoryrelay-python/0.3.0")
    agent = sdk.post("/v1/agents", {"id": "support-bot", "name": None, "description": None,
                                    "metadata": None}, format="json")
    assert agent.status_code == 201
    assert Agent030(**agent.json()).name == "support-bot"
    memory = sdk.post("/v1/memories", {"content": "Customer prefers email", "agent_id":
                                       "support-bot", "project": "crm"}, format="json")
    parsed = Memory030(**memory.json())
    assert parsed.agent_id == agent.json()["id"] and parsed.project_id == "crm"
    updated = sdk.put(f"/v1/memories/{parsed.id}", {"content": "Customer prefers phone",
                                                    "metadata": None}, format="json")
    assert Memory030(**updated.json()).metadata == {}
    listed = sdk.get("/v1/agents", {"limit": 100, "offset": 0}).json()["data"]
    assert [Agent030(**a).name for a in listed] == ["support-bot"]
    memories = sdk.get("/v1/memories", {"limit": 100, "offset": 0, "agent_id": "support-bot"})
    assert [Memory030(**m).content for m in memories.json()["data"]] == [
        "Customer prefers phone"]
    deleted = sdk.delete(f"/v1/memories/{parsed.id}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True


# --- MCP server and OpenClaw --------------------------------------------------------------


def test_generated_keys_pass_the_mcp_servers_key_check(api_key):
    assert api_key.startswith("mem_") and len(api_key) >= 20
    assert re.fullmatch(r"mem_prod_[A-Za-z0-9_-]{32,}", api_key)


def test_an_mcp_session_lifecycle_with_unregistered_agent_names(client):
    started = client.post("/v1/sessions/get-or-create", {
        "external_id": "auto:alice-laptop:2026-03-17", "agent_id": "alice-laptop",
        "title": "Refactor auth middleware", "project": "northrelay",
        "metadata": {"client": "claude-code"}}, format="json")
    assert started.status_code == 201
    session = started.json()
    assert session["created"] is True and session["contributors"] == ["alice-laptop"]
    sid = session["id"]
    for content in ("Moved token parsing into its own function",
                    "Decided to keep sessions in Redis"):
        stored = client.post("/v1/memories", {"content": content, "agent_id": "alice-laptop",
                                              "session_id": sid, "scope": "session"},
                             format="json")
        assert stored.status_code == 201 and stored.json()["session_id"] == sid
    resumed = client.post("/v1/sessions/get-or-create", {
        "external_id": "auto:alice-laptop:2026-03-17", "agent_id": "bob-desktop"},
        format="json")
    assert resumed.status_code == 200 and resumed.json()["id"] == sid
    assert resumed.json()["memory_count"] == 2
    detail = client.get(f"/v1/sessions/{sid}", {"include_memories": "true"}).json()
    assert [m["content"] for m in detail["memories"]] == [
        "Moved token parsing into its own function", "Decided to keep sessions in Redis"]
    assert all(isinstance(m["created_at"], int) for m in detail["memories"])
    ended = client.put(f"/v1/sessions/{sid}/end", {"summary": "Auth middleware refactored"},
                       format="json")
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended" and ended.json()["ended_at"].endswith("Z")
    listed = client.get("/v1/sessions", {"project": "northrelay", "status": "ended"}).json()
    assert [s["id"] for s in listed["data"]] == [sid]


def test_openclaw_style_calls_get_json_bodies_on_every_success(client):
    session = client.post("/v1/sessions", {"agent_id": "openclaw", "title": "Plan trip",
                                           "user_id": "u-1", "client_id": "openclaw"},
                          format="json")
    assert session.status_code == 201
    sid = session.json()["id"]
    memory = client.post("/v1/memories", {"content": "Flights booked for May 3",
                                          "agent_id": "openclaw", "session_id": sid},
                         format="json").json()
    summary = client.post(f"/v1/sessions/{sid}/summarize")
    assert summary.status_code == 200 and summary.json()["summary"]
    for response in (client.put(f"/v1/sessions/{sid}/end", {}, format="json"),
                     client.delete(f"/v1/memories/{memory['id']}"),
                     client.delete(f"/v1/sessions/{sid}")):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json" and response.json()
