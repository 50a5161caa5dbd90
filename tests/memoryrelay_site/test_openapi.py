"""GET /v1/openapi.json describes every endpoint truthfully; /docs works with no CDN."""

from __future__ import annotations

import re

import pytest

from memoryrelay_site.urls import router


@pytest.fixture
def schema(anon, db):
    response = anon.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in {
        "application/json", "application/vnd.oai.openapi+json"}
    return response.json()


def served_routes() -> set[tuple[str, str]]:
    """(path, method) for every route the router serves, in the documented spelling."""
    routes = set()
    for pattern in router.urls:
        path = "/v1/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", str(pattern.pattern))
        path = path.replace("^", "").replace("/?$", "").replace("$", "")
        methods = set(pattern.callback.actions) - {"head"}  # DRF adds HEAD at run time
        routes |= {(path.replace("{pk}", "{id}"), method) for method in methods}
    return routes | {("/v1/health", "get")}


def test_the_schema_lists_exactly_the_served_routes(schema):
    documented = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert documented == served_routes()
    assert schema["openapi"].startswith("3.")


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
    assert properties(schema, "Session") == set(session_body) - {"memories"}
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
