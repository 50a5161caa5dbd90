"""The extraction endpoints answer what the OpenAPI schema documents, for each status."""

from __future__ import annotations

import uuid

from tests.memoryrelay_site.test_openapi import Conformance
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture

MINE = {("/v1/memories/{id}/extract-entities", "post"),
        ("/v1/memories/{id}/extraction-status", "get"),
        ("/v1/memories/backfill-entities", "post")}


def test_every_extraction_response_matches_its_documented_schema(schema, client,  # noqa: F811
                                                                 other_client, memory):
    check = Conformance(schema)
    status_path = f"/v1/memories/{memory.id}/extraction-status"
    assert check(client.get(status_path), "/v1/memories/{id}/extraction-status",
                 "get")["status"] == "not_started"
    check(client.post(f"/v1/memories/{memory.id}/extract-entities"),
          "/v1/memories/{id}/extract-entities", "post")
    assert check(client.get(status_path), "/v1/memories/{id}/extraction-status",
                 "get")["status"] == "pending"
    check(other_client.get(status_path), "/v1/memories/{id}/extraction-status", "get")
    check(client.post(f"/v1/memories/{uuid.uuid4()}/extract-entities"),
          "/v1/memories/{id}/extract-entities", "post")
    check(client.post("/v1/memories/backfill-entities?limit=10"),
          "/v1/memories/backfill-entities", "post")
    check(client.post("/v1/memories/backfill-entities?limit=x"),
          "/v1/memories/backfill-entities", "post")
    assert {(p, m) for p, m, _ in check.seen} == MINE
    assert {s for _, _, s in check.seen} == {200, 202, 404, 422}
