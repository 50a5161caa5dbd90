"""Summarizing very large sessions: time and extra memory of POST /v1/sessions/{id}/summarize.

    .venv/bin/python benchmarks/summarize_scale_bench.py [--sizes 10000,100000] [--runs 3]
        [--database-url postgres://postgres@127.0.0.1:5432/mr_scale_summarize]

Loads once, on PostgreSQL (the database is created if missing), one session per size with
that many memories (benchmarks/scale_load.py's synthetic Zipf text and model vectors with
noise, 2% soft-deleted), then, for each size in a fresh process, times the endpoint
through Django's test client (auth, reading the memories, summarizing, storing) and
measures the process's peak RSS above what it was just before the first request (Linux:
/proc/self/status VmHWM after a reset through /proc/self/clear_refs). Prints figures and
asserts nothing; the machine is shared, so times vary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")

ACCOUNT = "summarize-scale"


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["MEMORYRELAY_RATE_LIMIT_PER_MINUTE"] = "0"
    import django

    warnings.filterwarnings("ignore", message="No directory at")  # static files: unused here
    django.setup()


def load(url: str, sizes: list[int]) -> None:
    import psycopg
    from scale_load import POOL, copy_memories, create_database, pool_sentences, vocabulary

    create_database(url)
    setup(url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from scale_load import Zipf

    from memories_app.embeddings import get_provider
    from sessions_app.models import Session
    from sessions_app.services import agent_get_or_create, session_create

    call_command("migrate", verbosity=0)
    account, _ = get_user_model().objects.get_or_create(username=ACCOUNT)
    agent = agent_get_or_create(account=account, name="bench")[0]
    pool = pool_sentences(vocabulary(), Zipf())
    vectors = None
    for size in sizes:
        title = f"scale {size}"
        if Session.objects.filter(account=account, title=title).exists():
            continue
        if vectors is None:
            vectors = get_provider().embed(pool)
            assert len(vectors) == POOL
        row = session_create(account=account, agent_ref="bench", title=title)
        started = time.perf_counter()
        with psycopg.connect(url.replace("postgres://", "postgresql://"),
                             autocommit=True) as conn:
            copy_memories(conn, account_pk=account.pk, agents=[agent.pk], total=size,
                          batch=20_000, pool=pool, pool_vectors=vectors,
                          model_name=get_provider().name, session_pk=row.pk, progress=False)
            conn.execute("VACUUM ANALYZE memories_app_memory")
        print(f"loaded a session of {size:,} memories in {time.perf_counter() - started:.0f} s")


def measure(url: str, size: int, runs: int) -> dict:
    setup(url)
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from memoryrelay_site.services import api_key_create
    from sessions_app.models import Session

    account = get_user_model().objects.get(username=ACCOUNT)
    session = Session.objects.get(account=account, title=f"scale {size}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=account)[1]}")
    client.get(f"/v1/sessions/{session.pk}")  # connection, auth and URL code warmed up
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kb("VmRSS")
    times, body = [], {}
    for _ in range(runs):
        started = time.perf_counter()
        response = client.post(f"/v1/sessions/{session.pk}/summarize")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content
        body = response.json()
    return {"memories": size, "best": min(times), "median": statistics.median(times),
            "extra_rss_mb": (status_kb("VmHWM") - before) / 1024,
            "memory_count": body.get("memory_count"), "chars": len(body.get("summary", ""))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url",
                        default="postgres://postgres@127.0.0.1:5432/mr_scale_summarize")
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.database_url, args.one, args.runs)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    subprocess.run([sys.executable, "-c", "import sys; sys.path[:0] = sys.argv[1:3]; "
                    "import summarize_scale_bench as b; b.load(sys.argv[3], "
                    "[int(s) for s in sys.argv[4].split(',')])",
                    str(ROOT), str(ROOT / "benchmarks"), args.database_url, args.sizes],
                   check=True)
    print(f"\n{'session memories':>17} {'best s':>8} {'median s':>9} {'extra RSS':>10} "
          f"{'summarized':>11} {'chars':>6}")
    for size in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--runs",
                              str(args.runs), "--database-url", args.database_url],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['memories']:>17,} {r['best']:>8.2f} {r['median']:>9.2f} "
              f"{r['extra_rss_mb']:>7.0f} MB {r['memory_count']:>11,} {r['chars']:>6}")


if __name__ == "__main__":
    main()
