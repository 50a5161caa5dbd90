"""GET /v1/openapi.json describes every endpoint truthfully; /docs works with no CDN."""

from __future__ import annotations

import re

import pytest

from tests.routes import served_operations

# Checked by tests/knowledge_app/test_knowledge_openapi.py, request for request.
KNOWLEDGE_PATHS = ("/v1/decisions", "/v1/patterns", "/v1/projects/{slug}/context",
                   "/v1/projects/impact-analysis", "/v1/projects/shared-patterns")
# Checked by tests/sessions_app/test_project_api.py, request for request.
PROJECT_PATHS = ("/v1/projects",)
# Checked by tests/memories_app/test_memory_extras.py.
EXTRA_PATHS = ("/v1/memories/{id}/importance", "/v1/memories/maintenance",
               "/v1/agents/{id}/stats", "/v1/embed", "/v1/quota")
# Checked by tests/memories_app/test_context_bundles.py (/v2/context and /v2/context/build).
CONTEXT_PATHS = ("/v2/context",)
# Checked by tests/memories_app/test_async_writes.py (/v2/memories and its status).
ASYNC_PATHS = ("/v2/memories",)
# Checked by tests/entities_app/test_entities_openapi.py.
ENTITY_PATHS = ("/v1/entities",
                # Checked by tests/entities_app/test_extraction_openapi.py.
                "/v1/memories/{id}/extract-entities", "/v1/memories/{id}/extraction-status",
                "/v1/memories/backfill-entities",
                # Checked by tests/entities_app/test_byok_openapi.py.
                "/v1/extraction",
                # Checked by tests/memoryrelay_site/test_key_scopes.py.
                "/v1/keys")


@pytest.fixture
def schema(anon, db):
    response = anon.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in {
        "application/json", "application/vnd.oai.openapi+json"}
    return response.json()


def served_routes() -> set[tuple[str, str]]:
    """(path, method) for every route the apps serve, in the documented spelling."""
    return served_operations() | served_operations("v2/") | {("/v1/health", "get")}


def test_the_schema_lists_exactly_the_served_routes(schema):
    documented = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert documented == served_routes()
    assert schema["openapi"].startswith("3.")


def test_every_operation_names_exactly_the_parameters_of_its_path(schema):
    """A path parameter the template does not hold makes the document invalid (and a
    client generated from it asks for a value it cannot send)."""
    for path, ops in schema["paths"].items():
        in_template = set(re.findall(r"{([^}]+)}", path))
        for method, op in ops.items():
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == in_template, (method, path)


def test_every_operation_but_health_takes_either_key_header(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["BearerAuth"]["scheme"] == "bearer"
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, ops in schema["paths"].items():
        for op in ops.values():
            expected = [] if path == "/v1/health" else [{"BearerAuth": []}, {"ApiKeyHeader": []}]
            assert op["security"] == expected, path


def test_every_operation_documents_the_error_body(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"type", "message", "detail", "code", "request_id"}
    for path, ops in schema["paths"].items():
        if path != "/v1/health":
            for op in ops.values():
                assert {"401", "404", "422"} <= set(op["responses"]), path


def properties(schema, name):
    return set(schema["components"]["schemas"][name]["properties"])


def test_documented_objects_have_the_fields_the_api_returns(schema, client, session, memory):
    session_body = client.get(f"/v1/sessions/{session.id}?include_memories=true").json()
    assert properties(schema, "SessionDetailOutput") == set(session_body)
    assert properties(schema, "Session") == set(session_body) - {"memories",
                                                                  "memories_has_more"}
    assert properties(schema, "Memory") == set(client.get(f"/v1/memories/{memory.id}").json())
    assert properties(schema, "Agent") == set(client.get("/v1/agents/my-assistant").json())
    goc = client.post("/v1/sessions/get-or-create", {"external_id": "k"}, format="json").json()
    assert properties(schema, "SessionGetOrCreateOutput") == set(goc)
    summary = client.post(f"/v1/sessions/{session.id}/summarize").json()
    assert properties(schema, "SessionSummaryOutput") == set(summary)
    page = client.get("/v1/sessions").json()
    assert properties(schema, "PaginatedSessionList") == set(page)


def test_documented_timestamp_types_match_the_two_styles(schema):
    memory = schema["components"]["schemas"]["Memory"]["properties"]
    session = schema["components"]["schemas"]["Session"]["properties"]
    assert memory["created_at"]["type"] == "integer"
    assert session["created_at"] == {"type": "string", "format": "date-time", "readOnly": True}


def test_docs_page_loads_its_assets_from_this_server_only(anon, db):
    page = anon.get("/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and not [a for a in assets if re.match(r"(https?:)?//", a)]
    for asset in assets:
        response = anon.get(asset)
        assert response.status_code == 200, asset
    assert "/v1/openapi.json" in html


# --- every response matches its documented schema -------------------------------------------


def as_json_schema(node, components):
    """An OpenAPI 3.0 schema as plain JSON Schema: references inlined and ``nullable``
    spelled as "or null", so that jsonschema can validate real responses against it."""
    if isinstance(node, list):
        return [as_json_schema(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return as_json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {key: as_json_schema(value, components) for key, value in node.items()
           if key not in ("nullable", "readOnly", "writeOnly", "format")}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


class Conformance:
    """Checks each response's status is documented for its operation and its body matches
    that status's schema."""

    def __init__(self, schema):
        self.schema = schema
        self.components = schema["components"]["schemas"]
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, response, path: str, method: str):
        import jsonschema

        responses = self.schema["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in responses, f"{method.upper()} {path}: {status} not documented"
        content = responses[status].get("content")
        assert content, f"{method.upper()} {path}: {status} documented without a body"
        body_schema = as_json_schema(content["application/json"]["schema"], self.components)
        jsonschema.validate(response.json(), body_schema)
        self.seen.add((path, method, response.status_code))
        return response.json()


def test_every_response_matches_its_documented_schema(schema, client, anon, account):
    check = Conformance(schema)
    memory_body = {"content": "Deploys freeze on Fridays.", "agent_id": "ops"}
    check(anon.get("/v1/health"), "/v1/health", "get")

    agent = check(client.post("/v1/agents", {"name": "ops"}, format="json"),
                  "/v1/agents", "post")
    check(client.post("/v1/agents", {"name": "ops"}, format="json"), "/v1/agents", "post")
    check(client.get("/v1/agents"), "/v1/agents", "get")
    check(client.get(f"/v1/agents/{agent['id']}"), "/v1/agents/{id}", "get")
    check(client.put("/v1/agents/ops", {"description": "d"}, format="json"),
          "/v1/agents/{id}", "put")
    check(client.patch("/v1/agents/ops", {"metadata": {"k": 1}}, format="json"),
          "/v1/agents/{id}", "patch")

    bare = check(client.post("/v1/sessions", {}, format="json"), "/v1/sessions", "post")
    assert bare["agent_id"] is None and bare["ended_at"] is None
    owned = check(client.post("/v1/sessions", {"agent_id": "ops", "title": "t"}, format="json"),
                  "/v1/sessions", "post")
    for code in (201, 200):
        body = check(client.post("/v1/sessions/get-or-create", {"external_id": "auto:1"},
                                 format="json"), "/v1/sessions/get-or-create", "post")
        assert body["created"] is (code == 201)
    memory = check(client.post("/v1/memories", {**memory_body, "session_id": owned["id"]},
                               format="json"), "/v1/memories", "post")
    check(client.post("/v1/memories", {**memory_body, "deduplicate": True}, format="json"),
          "/v1/memories", "post")
    check(client.get("/v1/sessions"), "/v1/sessions", "get")
    check(client.get(f"/v1/sessions/{bare['id']}"), "/v1/sessions/{id}", "get")
    check(client.get(f"/v1/sessions/{owned['id']}?include_memories=true"),
          "/v1/sessions/{id}", "get")
    check(client.post(f"/v1/sessions/{owned['id']}/summarize"),
          "/v1/sessions/{id}/summarize", "post")
    check(client.post(f"/v1/sessions/{owned['id']}/end", {}, format="json"),
          "/v1/sessions/{id}/end", "post")
    check(client.put(f"/v1/sessions/{owned['id']}/end", {"summary": "s"}, format="json"),
          "/v1/sessions/{id}/end", "put")

    check(client.get("/v1/memories"), "/v1/memories", "get")
    check(client.get(f"/v1/memories/{memory['id']}"), "/v1/memories/{id}", "get")
    check(client.put(f"/v1/memories/{memory['id']}", {"content": "x", "metadata": None},
                     format="json"), "/v1/memories/{id}", "put")
    check(client.patch(f"/v1/memories/{memory['id']}", {"importance": 0.9}, format="json"),
          "/v1/memories/{id}", "patch")
    check(client.post("/v1/memories/search", {"query": "Friday deploys", "search_mode": "keyword"},
                      format="json"), "/v1/memories/search", "post")
    check(client.post("/v1/memories/batch", {"memories": [memory_body, {"content": ""}]},
                      format="json"), "/v1/memories/batch", "post")
    check(client.post("/v1/memories/context", {"query": "Friday deploys"}, format="json"),
          "/v1/memories/context", "post")

    check(client.delete(f"/v1/memories/{memory['id']}"), "/v1/memories/{id}", "delete")
    check(client.delete(f"/v1/sessions/{bare['id']}"), "/v1/sessions/{id}", "delete")
    check(client.delete("/v1/agents/ops"), "/v1/agents/{id}", "delete")

    # Errors: each answers the one documented error body.
    check(anon.get("/v1/sessions"), "/v1/sessions", "get")
    check(client.get("/v1/sessions/not-a-uuid"), "/v1/sessions/{id}", "get")
    check(client.post("/v1/memories", {"content": ""}, format="json"), "/v1/memories", "post")
    check(client.post("/v1/sessions", "{bad json", content_type="application/json"),
          "/v1/sessions", "post")
    assert check(client.post("/v1/sessions", {"external_id": "auto:1"}, format="json"),
                 "/v1/sessions", "post")["code"] == 409
    client.post("/v1/agents", {"name": "taken"}, format="json")
    check(client.post("/v1/agents", {"name": "ops2"}, format="json"), "/v1/agents", "post")
    for method in ("put", "patch"):
        conflict = getattr(client, method)("/v1/agents/ops2", {"name": "taken"}, format="json")
        assert check(conflict, "/v1/agents/{id}", method)["code"] == 409
    documented = {(p, m) for p, ops in schema["paths"].items() for m in ops
                  if not p.startswith(KNOWLEDGE_PATHS + PROJECT_PATHS + EXTRA_PATHS
                                         + CONTEXT_PATHS + ASYNC_PATHS + ENTITY_PATHS)}
    assert documented == {(p, m) for p, m, _ in check.seen}


def test_the_schema_generates_without_warnings_and_validates(tmp_path, db):
    from django.core.management import call_command

    out = tmp_path / "schema.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json",
                 "--file", str(out))
    assert out.stat().st_size > 0


def test_the_document_is_built_once_per_process(client, monkeypatch):
    """Anyone may ask for it, and building it takes about half a second of CPU."""
    from drf_spectacular.generators import SchemaGenerator

    from memoryrelay_site.openapi import SchemaView

    monkeypatch.setattr(SchemaView, "_built", {})
    built = []
    real = SchemaGenerator.get_schema

    def get_schema(self, *args, **kwargs):
        built.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", get_schema)
    first, second = client.get("/v1/openapi.json"), client.get("/v1/openapi.json")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content and "/v1/memories" in first.json()["paths"]
    assert len(built) == 1
