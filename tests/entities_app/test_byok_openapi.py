"""The extraction-key endpoints answer what the OpenAPI schema documents, for each status."""

from __future__ import annotations

import uuid

from tests.memoryrelay_site.test_openapi import Conformance
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture

MINE = {("/v1/extraction/settings", "get"), ("/v1/extraction/keys", "post"),
        ("/v1/extraction/keys/{id}/activate", "post"),
        ("/v1/extraction/keys/deactivate-all", "post"), ("/v1/extraction/keys/{id}", "delete")}


def test_every_extraction_key_response_matches_its_documented_schema(schema, client):  # noqa: F811
    check = Conformance(schema)
    body = {"provider": "openai", "api_key": "sk-abcdefghijkl1234", "model": "gpt-4o-mini"}
    key = check(client.post("/v1/extraction/keys", body, format="json"),
                "/v1/extraction/keys", "post")
    check(client.post("/v1/extraction/keys", {**body, "provider": "x"}, format="json"),
          "/v1/extraction/keys", "post")
    check(client.get("/v1/extraction/settings"), "/v1/extraction/settings", "get")
    check(client.post(f"/v1/extraction/keys/{key['id']}/activate"),
          "/v1/extraction/keys/{id}/activate", "post")
    check(client.post(f"/v1/extraction/keys/{uuid.uuid4()}/activate"),
          "/v1/extraction/keys/{id}/activate", "post")
    check(client.post("/v1/extraction/keys/deactivate-all"),
          "/v1/extraction/keys/deactivate-all", "post")
    check(client.delete(f"/v1/extraction/keys/{key['id']}"), "/v1/extraction/keys/{id}",
          "delete")
    assert {(p, m) for p, m, _ in check.seen} == MINE
    assert {s for _, _, s in check.seen} == {200, 201, 404, 422}
