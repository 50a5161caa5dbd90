"""SQLite's planner statistics, kept fresh. Without them (``sqlite_stat1`` empty, as in a
new database that grew) SQLite guesses that an equality on any indexed column is selective
and reads a fetch of 50 memories by id through the account's index instead of the primary
key: 17 ms at 15,000 memories, growing with the account, against under 2 ms. ``ANALYZE``
(bounded by ``analysis_limit``) is run again when a table grew or shrank by a quarter since
the statistics were taken; every task worker checks (a sweeper), so `make run` keeps them
fresh. PostgreSQL's autovacuum does this itself."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection

logger = logging.getLogger("memoryrelay.db")

ANALYSIS_LIMIT = 1000  # rows sampled per index: bounds the cost at any size
DRIFT = 0.25


def sqlite_stats_refresh(tables: list[str], *, drift: float = DRIFT) -> bool:
    """On SQLite, ANALYZE when one of ``tables`` holds 25% more or fewer rows than its
    statistics say (or has none); True when it ran."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        known = {}
        cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if cursor.fetchone():
            cursor.execute("SELECT tbl, stat FROM sqlite_stat1")
            for table, stat in cursor.fetchall():
                known[table] = max(known.get(table, 0), int(str(stat).split()[0]))
        stale = []
        for table in tables:
            cursor.execute(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608 - a model's table
            rows = cursor.fetchone()[0]
            before = known.get(table)
            if rows and (before is None or abs(rows - before) > drift * max(before, 1)):
                stale.append(table)
        if not stale:
            return False
        cursor.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        for table in stale:
            cursor.execute(f'ANALYZE "{table}"')
    logger.info("SQLite statistics refreshed for %s", ", ".join(stale))
    return True


def stats_sweeper(tables: list[str]):
    """A sweeper (memoryrelay_site.tasks.register_sweeper) that refreshes ``tables``'
    statistics; it hands out no work, so it counts 0."""

    def sweep(cutoff: datetime) -> int:
        sqlite_stats_refresh(tables)
        return 0

    return sweep
