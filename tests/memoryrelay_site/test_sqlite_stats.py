"""SQLite's planner statistics are taken again as the memories table grows, so a fetch of
memories by id reads the primary key, not the whole account."""

from __future__ import annotations

import pytest
from django.db import connection

from memories_app.models import Memory
from memoryrelay_site.sqlite_stats import sqlite_stats_refresh
from memoryrelay_site.tasks import tasks_sweep

TABLE = Memory._meta.db_table


@pytest.fixture(autouse=True)
def sqlite_only(db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's statistics; PostgreSQL's autovacuum analyzes by itself")


def add(account, agent, n):
    Memory.objects.bulk_create([Memory(account=account, agent=agent, content=f"m {i}")
                                for i in range(n)], batch_size=500)


def plan(account) -> str:
    pks = list(Memory.objects.values_list("pk", flat=True)[:50])
    sql, params = (Memory.objects.live().for_account(account).filter(pk__in=pks)
                   .query.sql_with_params())
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " ".join(str(row[-1]) for row in cursor.fetchall())


def stats_rows() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if not cursor.fetchone():
            return None
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s", [TABLE])
        found = [int(stat.split()[0]) for (stat,) in cursor.fetchall()]
    return max(found) if found else None


def test_statistics_follow_the_table_and_the_plan_uses_the_primary_key(account, agent):
    add(account, agent, 400)
    assert "memory_account_created" in plan(account)  # what SQLite guesses without them
    assert sqlite_stats_refresh([TABLE]) is True
    assert stats_rows() == 400
    assert "memory_account_created" not in plan(account)
    assert sqlite_stats_refresh([TABLE]) is False  # nothing changed
    add(account, agent, 50)
    assert sqlite_stats_refresh([TABLE]) is False  # within a quarter
    add(account, agent, 200)
    assert sqlite_stats_refresh([TABLE]) is True and stats_rows() == 650


def test_every_worker_sweep_keeps_them_fresh(account, agent):
    add(account, agent, 300)
    assert tasks_sweep() == 0  # refreshes, hands out no task
    assert stats_rows() == 300
