"""Every decision, pattern and composed project operation answers what the OpenAPI schema
documents, for each status it can answer."""

from __future__ import annotations

from tests.knowledge_app.conftest import create_pattern, project, record
from tests.memoryrelay_site.test_openapi import Conformance, properties
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture

KNOWLEDGE_PATHS = ("/v1/decisions", "/v1/patterns", "/v1/projects/{slug}/context",
                   "/v1/projects/impact-analysis", "/v1/projects/shared-patterns")


def test_decision_objects_are_documented_with_the_fields_returned(schema, client):
    body = record(client)
    assert properties(schema, "Decision") == set(body)


def test_pattern_objects_are_documented_with_the_fields_returned(schema, client):
    assert properties(schema, "Pattern") == set(create_pattern(client))


def test_every_knowledge_response_matches_its_documented_schema(schema, client, other_client,
                                                                 account):
    check = Conformance(schema)
    decision = check(client.post("/v1/decisions", {"title": "Use PostgreSQL",
                                                   "rationale": "pgvector", "tags": ["db"]},
                                 format="json"), "/v1/decisions", "post")
    check(client.get("/v1/decisions", {"tags": "db"}), "/v1/decisions", "get")
    check(client.get(f"/v1/decisions/{decision['id']}"), "/v1/decisions/{id}", "get")
    check(client.get("/v1/decisions/check", {"query": "database"}), "/v1/decisions/check",
          "get")
    url = f"/v1/decisions/{decision['id']}/supersede"
    new = check(client.post(url, {"title": "Use SQLite", "rationale": "simple"}, format="json"),
                "/v1/decisions/{id}/supersede", "post")
    check(client.post(url, {"title": "t", "rationale": "r"}, format="json"),
          "/v1/decisions/{id}/supersede", "post")  # 409
    check(client.delete(f"/v1/decisions/{new['id']}"), "/v1/decisions/{id}", "delete")

    check(client.post("/v1/decisions", {"title": ""}, format="json"), "/v1/decisions", "post")
    check(other_client.get(f"/v1/decisions/{decision['id']}"), "/v1/decisions/{id}", "get")
    check(client.get("/v1/decisions/check"), "/v1/decisions/check", "get")

    project(account, "api")
    pattern = check(client.post("/v1/patterns", {"title": "RFC 7807 errors", "description": "d",
                                                 "tags": ["http"]}, format="json"),
                    "/v1/patterns", "post")
    check(client.get("/v1/patterns", {"tags": "http"}), "/v1/patterns", "get")
    check(client.get(f"/v1/patterns/{pattern['id']}"), "/v1/patterns/{id}", "get")
    check(client.post(f"/v1/patterns/{pattern['id']}/adopt", {"project": "api"}, format="json"),
          "/v1/patterns/{id}/adopt", "post")
    check(client.post(f"/v1/patterns/{pattern['id']}/adopt", {"project": "no"}, format="json"),
          "/v1/patterns/{id}/adopt", "post")
    check(client.get("/v1/patterns/search", {"query": "errors", "project": "api"}),
          "/v1/patterns/search", "get")
    check(client.get("/v1/patterns/search"), "/v1/patterns/search", "get")
    check(client.get("/v1/patterns/suggest", {"project": "api"}), "/v1/patterns/suggest", "get")
    check(client.get("/v1/patterns/suggest", {"project": "nope"}), "/v1/patterns/suggest",
          "get")
    check(client.delete(f"/v1/patterns/{pattern['id']}"), "/v1/patterns/{id}", "delete")
    check(client.post("/v1/patterns", {}, format="json"), "/v1/patterns", "post")

    project(account, "web")
    client.post("/v1/projects/web/relationships", {"target_project": "api",
                                                   "relationship_type": "depends_on"},
                format="json")
    check(client.get("/v1/projects/api/context"), "/v1/projects/{slug}/context", "get")
    check(client.get("/v1/projects/nope/context"), "/v1/projects/{slug}/context", "get")
    impact = check(client.post("/v1/projects/impact-analysis",
                               {"project": "api", "change_description": "error format"},
                               format="json"), "/v1/projects/impact-analysis", "post")
    assert impact["total"] == 1
    check(client.post("/v1/projects/impact-analysis", {"project": "api"}, format="json"),
          "/v1/projects/impact-analysis", "post")
    check(client.get("/v1/projects/shared-patterns", {"a": "api", "b": "web"}),
          "/v1/projects/shared-patterns", "get")
    check(client.get("/v1/projects/shared-patterns", {"a": "api", "b": "nope"}),
          "/v1/projects/shared-patterns", "get")

    documented = {(p, m) for p, ops in schema["paths"].items() for m in ops
                  if p.startswith(KNOWLEDGE_PATHS)}
    assert documented == {(p, m) for p, m, _ in check.seen}
