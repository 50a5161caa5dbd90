"""Summarizer timings on realistic synthetic sessions (prints figures, asserts nothing).

    .venv/bin/python benchmarks/summarize_bench.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


if __name__ == "__main__":
    main()
