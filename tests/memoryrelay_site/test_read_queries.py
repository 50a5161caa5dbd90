"""The reads no other test pins: each costs the same number of queries with few rows as
with many (rows listed, and rows hanging off the one read), within a stated bound."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import real_queries
from tests.memoryrelay_site.test_admin_queries import populate

pytestmark = pytest.mark.django_db

# (method, path, body, bound): paths name the rows populate() shares.
READS = [
    ("get", "/v1/agents/shared-agent/stats", None, 4),
    ("get", "/v1/sessions/{session}", None, 3),
    ("get", "/v2/memories/{memory}/status", None, 3),
    ("get", "/v1/projects/hub/dependencies", None, 6),
    ("get", "/v1/projects/few-p0/dependents", None, 6),
    ("get", "/v1/projects/shared-patterns?a=hub&b=few-p0", None, 5),
    ("get", "/v1/extraction/settings", None, 3),
    ("get", "/v1/quota", None, 2),
    ("get", "/v1/health", None, 4),
    ("post", "/v1/memories/context", {"query": "decision note shared", "threshold": 0}, 10),
    ("post", "/v2/context", {"query": "decision note shared"}, 10),
]


def measure(client, method: str, path: str, body) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(path, body, format="json") if body else getattr(
            client, method)(path)
    assert response.status_code == 200, (path, response.content)
    return len(real_queries(captured))


@pytest.mark.parametrize(("method", "path", "body", "bound"), READS,
                         ids=[path for _, path, _, _ in READS])
def test_a_read_costs_the_same_for_few_rows_as_for_many(client, settings, method, path, body,
                                                        bound):
    settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE = 0
    shared = populate(client, "few", 1)
    path = path.format(session=shared["session"]["id"], memory=shared["memory"]["id"])
    measure(client, method, path, body)  # once beforehand: once-a-minute bookkeeping
    few = measure(client, method, path, body)
    populate(client, "many", 8, shared)
    measure(client, method, path, body)
    many = measure(client, method, path, body)
    assert (few, many) == (few, few)
    assert many <= bound


@pytest.mark.django_db(transaction=True)
def test_every_list_and_a_session_page_read_outside_a_test_transaction(account, api_key):
    """Outside a test's own transaction, as on a server: the lists' snapshot (on SQLite a
    deferred transaction of its own) holds nothing that opens another transaction inside it,
    and leaves the connection as it found it."""
    from django.db import connection

    from tests.conftest import make_client

    client = make_client(api_key)
    shared = populate(client, "solo", 2)
    paths = ["/v1/agents", "/v1/sessions", "/v1/memories", "/v1/projects", "/v1/decisions",
             "/v1/patterns", "/v1/entities", "/v1/keys",
             f"/v1/sessions/{shared['session']['id']}?include_memories=true"]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.content)
        assert not connection.in_atomic_block and connection.get_autocommit()
    assert client.post("/v1/memories", {"agent_id": "after", "content": "writes still work"},
                       format="json").status_code == 201
