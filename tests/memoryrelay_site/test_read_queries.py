"""Every read (each GET route, and the reads sent as POST) costs the same number of queries
with few rows as with many (rows listed, and rows hanging off the one read): the number
stated here."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import real_queries
from tests.memoryrelay_site.test_admin_queries import populate
from tests.routes import operation_of, served_operations

pytestmark = pytest.mark.django_db

# (method, path, body, queries): paths name the rows populate() shares; queries is a count,
# or (on SQLite, on PostgreSQL) where they differ: a search on PostgreSQL sends three SET
# LOCAL tunings where SQLite reads the vectors in a statement of its own; the health probe
# of PostgreSQL runs on a connection of its own, outside the count.
SHARED = ("session", "memory", "decision", "pattern", "entity", "key")
READS = [
    ("get", "/v1/agents?limit=100", None, 3),
    ("get", "/v1/agents/shared-agent", None, 2),
    ("get", "/v1/agents/shared-agent/stats", None, 3),
    ("get", "/v1/sessions?limit=100", None, 3),
    ("get", "/v1/sessions/{session}", None, 2),
    ("get", "/v1/sessions/{session}?include_memories=true&memories_limit=100", None, 4),
    ("get", "/v1/memories?limit=100", None, 4),
    ("get", "/v1/memories?entity=Acme&limit=100", None, 4),
    ("get", "/v1/memories/{memory}", None, 3),
    ("get", "/v1/memories/{memory}/extraction-status", None, 4),
    ("get", "/v2/memories/{memory}/status", None, 2),
    ("get", "/v1/projects?limit=100", None, 3),
    ("get", "/v1/projects/hub", None, 2),
    ("get", "/v1/projects/hub/context", None, 6),
    ("get", "/v1/projects/hub/dependencies", None, 5),
    ("get", "/v1/projects/spoke/dependents", None, 5),
    ("get", "/v1/projects/hub/related", None, 5),
    ("get", "/v1/projects/shared-patterns?a=hub&b=spoke", None, 4),
    ("get", "/v1/decisions?tags=shared&limit=100", None, 3),
    ("get", "/v1/decisions/{decision}", None, 2),
    ("get", "/v1/decisions/check?query=hub+decision&threshold=0&limit=50", None, (6, 8)),
    ("get", "/v1/patterns?limit=100", None, 3),
    ("get", "/v1/patterns/{pattern}", None, 2),
    ("get", "/v1/patterns/search?query=pattern&threshold=0&limit=50", None, (5, 7)),
    ("get", "/v1/patterns/suggest?project=hub&limit=50", None, 4),
    ("get", "/v1/entities?limit=100", None, 3),
    ("get", "/v1/entities/{entity}", None, 2),
    ("get", "/v1/entities/{entity}/relationships", None, 4),
    ("get", "/v1/entities/{entity}/neighborhood?depth=3&max_neighbors=50", None, 4),
    ("get", "/v1/extraction/settings", None, 2),
    ("get", "/v1/keys?limit=100", None, 3),
    ("get", "/v1/keys/{key}", None, 2),
    ("get", "/v1/quota", None, 1),
    ("get", "/v1/health", None, (4, 3)),
    ("post", "/v1/memories/context", {"query": "decision note shared", "threshold": 0}, (7, 9)),
    ("post", "/v2/context", {"query": "decision note shared"}, (7, 9)),
]


def measure(client, method: str, path: str, body) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(path, body, format="json") if body else getattr(
            client, method)(path)
    assert response.status_code == 200, (path, response.content)
    return len(real_queries(captured))


def test_every_get_route_is_read_here():
    served = {path for path, method in served_operations("v1/") | served_operations("v2/")
              if method == "get"}
    ids = dict.fromkeys(SHARED, uuid.uuid4())
    read = {operation_of(path.format(**ids)) for method, path, _, _ in READS if method == "get"}
    assert served - read == set()


@pytest.mark.parametrize(("method", "path", "body", "queries"), READS,
                         ids=[path for _, path, _, _ in READS])
def test_a_read_costs_the_same_for_few_rows_as_for_many(client, settings, method, path, body,
                                                        queries):
    settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE = 0
    shared = populate(client, "few", 1)
    path = path.format(**{name: shared[name]["id"] for name in SHARED})
    measure(client, method, path, body)  # once beforehand: once-a-minute bookkeeping
    few = measure(client, method, path, body)
    populate(client, "many", 8, shared)
    measure(client, method, path, body)
    many = measure(client, method, path, body)
    expected = queries if isinstance(queries, int) else queries[
        connection.vendor == "postgresql"]
    assert (few, many) == (expected, expected)


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
