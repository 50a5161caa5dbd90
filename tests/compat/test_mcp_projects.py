"""What the MemoryRelay MCP server sends for its project tools and memory_promote, and what
OpenClaw sends for stats, promote, embed and quota, replayed request for request; each
response is parsed with the fields the client's own types read (``src/types.ts``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tests.conftest import requires_model

AGENT = "alice-laptop"  # the MCP server's configured agentId: a name, never registered


class Project(BaseModel):
    """``Project`` of the MCP server's types.ts."""

    id: str
    slug: str
    name: str
    description: str | None = None
    stack: dict[str, Any] | None = None
    repo_url: str | None = None
    metadata: dict[str, Any] | None = None
    memory_count: int | None = None
    created_at: str
    updated_at: str


class ProjectList(BaseModel):
    """``ListResponse<Project>``."""

    data: list[Project]
    has_more: bool
    total_count: int | None = None
    next_cursor: str | None = None


class Memory(BaseModel):
    """``Memory`` of types.ts: timestamps are numbers."""

    id: str
    content: str
    metadata: dict[str, str] | None = None
    created_at: int
    updated_at: int | None = None
    agent_id: str | None = None


def mcp_register(client, slug: str, name: str, **optional):
    """``createProject``: only the optional fields given are sent."""
    return client.post("/v1/projects", {"slug": slug, "name": name, **optional}, format="json")


def test_the_mcp_project_tools_work_as_the_server_calls_them(client):
    # project_register (its zod schema allows slug, name, description, stack, repo_url)
    registered = mcp_register(client, "my-api", "My API Service",
                              description="Production REST API",
                              stack={"languages": ["python"], "frameworks": ["fastapi"]},
                              repo_url="https://github.com/org/my-api")
    assert registered.status_code == 201
    api = Project(**registered.json())
    assert api.slug == "my-api" and api.memory_count == 0
    web = Project(**mcp_register(client, "web-app", "Web App").json())
    # memory_store with a project, then project_info counts it
    stored = client.post("/v1/memories", {"content": "Rate limits are per key",
                                          "agent_id": AGENT, "project": "my-api"},
                         format="json")
    assert stored.status_code == 201
    assert stored.json()["project_id"] == api.id
    # project_list: limit, then the cursor it got back
    first = ProjectList(**client.get("/v1/projects?limit=1").json())
    assert [p.slug for p in first.data] == ["web-app"] and first.has_more
    rest = ProjectList(**client.get(f"/v1/projects?limit=1&cursor={first.next_cursor}").json())
    assert [p.slug for p in rest.data] == ["my-api"] and rest.has_more is False
    # project_info
    info = Project(**client.get("/v1/projects/my-api").json())
    assert info.id == api.id and info.memory_count == 1
    # project_add_relationship: {from, to, type, details} become this body
    added = client.post(f"/v1/projects/{web.slug}/relationships",
                        {"target_project": "my-api", "relationship_type": "api_consumer",
                         "metadata": {"endpoints": ["/v1/users"]}}, format="json")
    assert added.status_code == 201 and isinstance(added.json(), dict)
    # project_dependencies / project_dependents / project_related print the JSON whole
    deps = client.get("/v1/projects/web-app/dependencies").json()
    assert [(e["project"]["slug"], e["direction"]) for e in deps["data"]] == [
        ("my-api", "outgoing")]
    dependents = client.get("/v1/projects/my-api/dependents").json()
    assert [(e["project"]["slug"], e["relationship_type"]) for e in dependents["data"]] == [
        ("web-app", "api_consumer")]
    related = client.get("/v1/projects/my-api/related").json()
    assert [e["direction"] for e in related["data"]] == ["incoming"]


def test_mcp_errors_carry_the_message_the_server_shows(client):
    """The MCP server reports ``API request failed: <status> ... - <message>``."""
    mcp_register(client, "my-api", "My API")
    taken = mcp_register(client, "my-api", "Again")
    assert taken.status_code == 409 and "my-api" in taken.json()["message"]
    missing = client.get("/v1/projects/nope")
    assert missing.status_code == 404 and missing.json()["message"] == "Project not found"
    bad_type = client.post("/v1/projects/my-api/relationships",
                           {"target_project": "my-api", "relationship_type": "uses"},
                           format="json")
    assert bad_type.status_code == 422 and bad_type.json()["message"]


def test_memory_promote_as_the_mcp_server_and_openclaw_send_it(client):
    memory = Memory(**client.post("/v1/memories", {"content": "Deploys freeze on Fridays",
                                                   "agent_id": AGENT}, format="json").json())
    # MCP: {importance, tier?}; tier only when given
    promoted = client.put(f"/v1/memories/{memory.id}/importance", {"importance": 0.9},
                          format="json")
    assert promoted.status_code == 200
    assert Memory(**promoted.json()).id == memory.id
    assert (promoted.json()["importance"], promoted.json()["tier"]) == (0.9, "hot")
    demoted = client.put(f"/v1/memories/{memory.id}/importance",
                         {"importance": 0.9, "tier": "cold"}, format="json")
    assert demoted.json()["tier"] == "cold"
    # OpenClaw sends tier: undefined, which JSON.stringify drops
    openclaw = client.put(f"/v1/memories/{memory.id}/importance", {"importance": 0.2},
                          format="json")
    assert openclaw.json()["tier"] == "cold" and Memory(**openclaw.json())


def test_openclaw_stats_and_quota_parse_as_the_plugin_reads_them(client):
    client.post("/v1/memories", {"content": "Flights booked", "agent_id": "openclaw"},
                format="json")
    stats = client.get("/v1/agents/openclaw/stats").json()
    assert stats["data"]["total_memories"] == 1 and stats["data"]["last_updated"]
    assert (stats["memory_count"], stats["entity_count"]) == (1, 0)  # the Node SDK's fields
    quota = client.get("/v1/quota").json()
    assert isinstance(quota["used"], int) and isinstance(quota["limit"], int)
    assert quota["used"] >= 1 and quota["resetAt"].endswith("Z")
    body = client.post("/v1/memories/maintenance", {"action": "demote_cold"},
                       format="json").json()
    assert body == {"action": "demote_cold", "demoted_count": 0}


@requires_model
def test_openclaw_embeds_its_queries_with_the_servers_model(client):
    body = client.post("/v1/embed", {"text": "where are the flights", "prefix": "search_query"},
                       format="json").json()
    assert len(body["embedding"]) == body["dimension"] == 384
