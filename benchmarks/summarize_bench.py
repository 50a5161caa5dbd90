"""Summarizer timings on realistic synthetic sessions (prints figures, asserts nothing).

    .venv/bin/python benchmarks/summarize_bench.py

First the summarizer alone, then ``POST /v1/sessions/{id}/summarize`` end to end (auth,
reading the memories from the database, summarizing, storing) for a session of 10,000
memories, on ``DATABASE_URL`` if set, else on a temporary SQLite file.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")

from sessions_app.summarizer import SummaryItem, summarize  # noqa: E402

SUBJECTS = ["the email queue", "the payment worker", "the search index", "the auth service",
            "the CSV export", "the mobile client", "the nightly backup", "the rate limiter"]
EVENTS = ["retries forever after an SMTP timeout", "double-charges after a restart",
          "returns stale prices", "fails with ERR_CONN_RESET", "times out on large reports",
          "leaks memory under load", "drops events during deploys", "rejects valid tokens"]
ACTIONS = ["Found that {s} {e}.", "Root cause: {s} {e} because a counter is never reset.",
           "Decided to rewrite the retry loop in {s}; ticket INC-{n}.",
           "Deployed a fix for {s} to staging (build {n}).",
           "Added a regression test showing {s} {e}.", "Reviewed PR #{n} touching {s}.",
           "Metrics for {s} look normal again after release v2.{n}."]
TYPES = ["fact", "event", "insight", "task", "preference", "system"]


def session(n: int, seed: int = 7) -> list[SummaryItem]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 17, tzinfo=UTC)
    return [
        SummaryItem(
            id=f"{i:08d}",
            content=rng.choice(ACTIONS).format(s=rng.choice(SUBJECTS), e=rng.choice(EVENTS),
                                               n=rng.randint(1000, 9999)),
            created_at=start + timedelta(seconds=i),
            importance=round(rng.random(), 2),
            memory_type=rng.choice(TYPES),
        )
        for i in range(n)
    ]


def main() -> None:
    print(f"{'memories':>9} {'best s':>8} {'median s':>9} {'chars':>6}")
    for n, runs in ((1, 20), (100, 20), (1_000, 10), (10_000, 5), (50_000, 3)):
        items = session(n)
        times, summary = [], ""
        for _ in range(runs):
            started = time.perf_counter()
            summary = summarize(items)
            times.append(time.perf_counter() - started)
        print(f"{n:>9} {min(times):>8.4f} {statistics.median(times):>9.4f} {len(summary):>6}")
    print("\nsample summary of 10,000 memories:\n" + summarize(session(10_000)))
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{folder}/bench.sqlite3")
        endpoint(10_000, runs=5)


def endpoint(n: int, runs: int) -> None:
    import django

    warnings.filterwarnings("ignore", message="No directory at")  # static files: unused here
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from memories_app.models import Memory, tier_for
    from memoryrelay_site.services import api_key_create
    from sessions_app.services import agent_get_or_create, session_create

    call_command("migrate", verbosity=0)
    account = get_user_model().objects.create(username=f"summarize-bench-{time.time_ns()}")
    agent, _ = agent_get_or_create(account=account, name="bench")
    row = session_create(account=account, agent_ref="bench", title="Long session")
    Memory.objects.bulk_create(
        [Memory(account=account, agent=agent, session=row, content=item.content,
                importance=item.importance, tier=tier_for(item.importance),
                memory_type=item.memory_type) for item in session(n)],
        batch_size=2000)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=account)[1]}")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.post(f"/v1/sessions/{row.id}/summarize")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content
    print(f"\nPOST /v1/sessions/{{id}}/summarize, {n:,} memories on {connection.vendor}: "
          f"best {min(times):.3f} s, median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
