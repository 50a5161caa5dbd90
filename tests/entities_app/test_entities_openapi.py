"""Every entity operation answers what the OpenAPI schema documents, for each status it can
answer."""

from __future__ import annotations

from tests.entities_app.conftest import create_entity
from tests.memoryrelay_site.test_openapi import Conformance, properties
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture

# Documented here; the graph and extraction routes under /v1/entities are checked beside
# their own tests.
MINE = {("/v1/entities", "get"), ("/v1/entities", "post"), ("/v1/entities/links", "post"),
        ("/v1/entities/{id}", "get"), ("/v1/entities/{id}", "put"),
        ("/v1/entities/{id}", "patch"), ("/v1/entities/{id}", "delete"),
        ("/v1/entities/{id}/link", "post")}


def test_entity_objects_are_documented_with_the_fields_returned(schema, client):
    assert properties(schema, "Entity") == set(create_entity(client))


def test_every_entity_response_matches_its_documented_schema(schema, client, other_client,
                                                             memory):
    check = Conformance(schema)
    entity = check(client.post("/v1/entities", {"name": "Acme", "type": "organization"},
                               format="json"), "/v1/entities", "post")
    check(client.post("/v1/entities", {"name": "ACME", "entity_type": "organization"},
                      format="json"), "/v1/entities", "post")
    check(client.post("/v1/entities", {"name": ""}, format="json"), "/v1/entities", "post")
    check(client.get("/v1/entities", {"type": "organization", "q": "ac"}), "/v1/entities",
          "get")
    check(client.get("/v1/entities", {"type": "robot"}), "/v1/entities", "get")
    path = f"/v1/entities/{entity['id']}"
    check(client.get(path), "/v1/entities/{id}", "get")
    check(other_client.get(path), "/v1/entities/{id}", "get")
    check(client.put(path, {"metadata": {"k": 1}}, format="json"), "/v1/entities/{id}", "put")
    check(client.patch(path, {"name": "Acme Labs"}, format="json"), "/v1/entities/{id}",
          "patch")
    create_entity(client, "Globex")
    check(client.patch(path, {"name": "Globex"}, format="json"), "/v1/entities/{id}", "patch")
    check(client.put(path, {"type": "robot"}, format="json"), "/v1/entities/{id}", "put")
    body = {"entity_id": entity["id"], "memory_id": str(memory.id)}
    check(client.post("/v1/entities/links", body, format="json"), "/v1/entities/links", "post")
    check(client.post("/v1/entities/links", body, format="json"), "/v1/entities/links", "post")
    check(client.post("/v1/entities/links", {**body, "memory_id": "x"}, format="json"),
          "/v1/entities/links", "post")
    check(client.post(f"{path}/link", {"memory_id": str(memory.id)}, format="json"),
          "/v1/entities/{id}/link", "post")
    check(client.post(f"{path}/link", {}, format="json"), "/v1/entities/{id}/link", "post")
    check(client.delete(path), "/v1/entities/{id}", "delete")
    check(client.delete(path), "/v1/entities/{id}", "delete")
    assert {(p, m) for p, m, _ in check.seen} == MINE
    statuses = {(p, m, s) for p, m, s in check.seen}
    assert {("/v1/entities", "post", 201), ("/v1/entities", "post", 200),
            ("/v1/entities/links", "post", 201), ("/v1/entities/links", "post", 200),
            ("/v1/entities/{id}", "patch", 409)} <= statuses
