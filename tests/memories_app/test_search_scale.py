"""Search cost that does not grow with the query or the account: the term lookups of a
query are one statement, and on PostgreSQL they read a text index that holds only live
memories keyed by account (benchmarks/scale_bench.py shows the latencies)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from memories_app import search as search_module
from memories_app import vectors
from memories_app.models import Memory
from tests.conftest import real_queries

WORDS = "pelican zeppelin marmalade quokka tundra saffron origami lantern".split()


def post_search(client, query, mode):
    response = client.post("/v1/memories/search", {"query": query, "search_mode": mode},
                           format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def notes(client):
    for n in range(6):
        client.post("/v1/memories", {"content": " ".join(WORDS[n:n + 3]) + f" note {n}",
                                     "agent_id": "a"}, format="json")


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_search_statements_do_not_grow_with_the_query_terms(client, notes, max_queries,
                                                             mode):
    def statements(query):
        with max_queries(100) as captured:
            post_search(client, query, mode)
        return len(real_queries(captured))

    one = statements(WORDS[0])
    assert statements(" ".join(WORDS[:3])) == one
    assert statements(" ".join(WORDS)) == one


def test_every_term_lookup_and_the_all_terms_lookup_are_one_statement(account, agent):
    mine = Memory.objects.live().for_account(account)
    rows = [Memory.objects.create(account=account, agent=agent, content=text) for text in
            ("pelican zeppelin", "pelican only", "zeppelin only", "nothing here")]
    with transaction.atomic():  # inside the test's transaction, like the server's
        with CaptureQueriesContext(connection) as captured:
            found = vectors.keyword_lookups(mine, [(["pelican"], 10), (["zeppelin"], 10),
                                                   (["pelican", "zeppelin"], 10),
                                                   (["pelican"], 1)])
    assert len(real_queries(captured)) == 1
    assert set(found[0]) == {rows[0].pk, rows[1].pk}
    assert set(found[1]) == {rows[0].pk, rows[2].pk}
    assert found[2] == [rows[0].pk]
    assert len(found[3]) == 1  # each lookup keeps its own cap
    assert vectors.keyword_lookups(mine, []) == []


def test_term_lookups_skip_deleted_memories_and_other_accounts(account, agent, other_account):
    from sessions_app.services import agent_get_or_create

    theirs = agent_get_or_create(account=other_account, name="b")[0]
    live = Memory.objects.create(account=account, agent=agent, content="quokka live")
    Memory.objects.create(account=account, agent=agent, content="quokka gone").delete()
    gone = Memory.objects.create(account=account, agent=agent, content="quokka deleted")
    Memory.objects.filter(pk=gone.pk).update(deleted_at=live.created_at)
    Memory.objects.create(account=other_account, agent=theirs, content="quokka other")
    mine = Memory.objects.live().for_account(account)
    assert vectors.keyword_lookups(mine, [(["quokka"], search_module.TERM_MATCH_CAP)]) == [
        [live.pk]]


@pytest.mark.usefixtures("_needs_postgres")
def test_postgres_term_lookup_reads_the_live_memories_text_index(account, agent):
    Memory.objects.bulk_create(
        [Memory(account=account, agent=agent, content=f"filler note {n}") for n in range(3000)]
        + [Memory(account=account, agent=agent, content=f"saffron lantern {n}")
           for n in range(5)])
    sql, params = (Memory.objects.live().for_account(account)
                   .extra(where=["memories_app_memory.search_vector @@ "
                                 "plainto_tsquery('english', %s)"], params=["saffron"])
                   .order_by().values_list("pk", flat=True)[:1000].query.sql_with_params())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE memories_app_memory")
        cursor.execute("SET LOCAL enable_seqscan = off")  # still a small table
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert vectors.LIVE_TEXT_INDEX in plan, plan
    # The live state is the index's own (deleted rows are never read), the account a filter.
    filters = [line for line in plan.splitlines() if line.strip().startswith("Filter:")]
    assert not any("deleted_at" in line for line in filters), plan
    assert "account_id = " in plan, plan


@pytest.mark.usefixtures("_needs_postgres")
def test_postgres_memories_leave_room_for_hot_updates_after_reads():
    # Marking memories read (last_accessed_at, no index on it) then writes no index entry.
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'memories_app_memory'")
        assert "fillfactor=85" in (cursor.fetchone()[0] or [])


def test_sqlite_vector_reads_take_the_narrowest_index(client, account, max_queries):
    """On SQLite a search scores vectors in Python: a search within a project reads that
    project's vectors through the (account, project) index, and no vector read asks for an
    order (the model's newest-first ordering made SQLite walk every memory of the account
    through its created index, ~2x slower at 6,000 memories)."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's own vector reads (PostgreSQL ranks in pgvector's index)")
    for n in range(4):
        for project in ("alpha", "beta"):
            response = client.post("/v1/memories", {
                "content": f"{WORDS[n]} {WORDS[n + 1]} in {project}", "agent_id": "a",
                "project": project}, format="json")
            assert response.status_code == 201, response.content
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with max_queries(100) as captured:
        response = client.post("/v1/memories/search", {
            "query": "pelican zeppelin", "project": "alpha", "search_mode": "hybrid"},
            format="json")
    assert response.status_code == 200, response.content
    found = [hit["memory"]["content"] for hit in response.json()["data"]]
    assert found and all(content.endswith("in alpha") for content in found), found
    reads = [q for q in captured.captured_queries
             if '"embedding"' in q["sql"].split(" FROM ")[0]]
    assert reads, real_queries(captured)
    assert not [q["sql"] for q in reads if "ORDER BY" in q["sql"]]
    whole = next(q["sql"] for q in reads if '"project" = ' in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + whole)
        plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
    assert "memory_account_project" in plan, plan
