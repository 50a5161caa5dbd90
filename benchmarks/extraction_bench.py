"""What automatic entity extraction costs a write, and how fast a worker extracts.

    .venv/bin/python benchmarks/extraction_bench.py [--requests 300] [--drain 300]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/memoryrelay_bench \\
        .venv/bin/python benchmarks/extraction_bench.py

1. Latency of POST /v1/memories through the whole Django stack in this process
   (middleware, API-key authentication, embedding in the request), side by side in one
   run, interleaved so load changes hit both: ``auto_extract_entities: false`` against
   ``true`` (the write then also marks the memory pending and enqueues a task after
   commit; the extraction itself runs in a worker, after the response); then the same for
   POST /v1/memories/batch of 50 items; then single writes through a real server (gunicorn +
   the uvicorn worker, as `make run`), timed by an HTTP client to the response's last byte.
2. Worker side: the queued extractions run here one after another, as a worker would,
   timed (memories per second), and the extractor alone (ms per memory).

SQLite on a temporary file unless DATABASE_URL is set (then that database, migrated; the
bench adds its own accounts). The task queue is the configured one (database by default;
MEMORYRELAY_TASK_BACKEND=rq with REDIS_URL for Redis). Prints figures, asserts nothing;
the machine is shared and noisy, so compare the ratio, not the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = (
    "Maria Lopez from Acme Corp asked to move the invoice export to CSV by Friday ({n}).",
    "Switched the embedding store from Pinecone to pgvector, decision {n} of the week.",
    "JIRA-{n} is blocked until the payments team upgrades the Stripe SDK on Node.js.",
    "Tom Becker at Brightline Logistics wants a demo of routing API version {n}.",
)


def configure() -> None:
    if not os.environ.get("DATABASE_URL"):
        tmp = Path(tempfile.mkdtemp(prefix="extraction-bench-"))
        os.environ["MEMORYRELAY_SQLITE_PATH"] = str(tmp / "db.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
    os.environ["MEMORYRELAY_RATE_LIMIT_PER_MINUTE"] = "0"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _key() -> str:
    """A new account's API key."""
    from django.contrib.auth import get_user_model

    from memoryrelay_site.services import api_key_create

    user = get_user_model().objects.create_user(username=f"bench-{uuid.uuid4().hex[:8]}")
    return api_key_create(user=user, name="bench")[1]


def _client():
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {_key()}")


def latency(requests: int) -> list[str]:
    """Interleaved writes with extraction off and on; returns the ids queued for it."""
    client = _client()
    cases = {"auto_extract_entities false": False, "auto_extract_entities true": True}
    times: dict[str, list[float]] = {name: [] for name in cases}
    queued: list[str] = []
    warm = 20
    for n in range(requests + warm):
        for name, flag in cases.items():
            body = {"agent_id": "bench", "content": TEXTS[n % len(TEXTS)].format(n=n),
                    "auto_extract_entities": flag}
            started = time.perf_counter()
            response = client.post("/v1/memories", body, content_type="application/json")
            elapsed = time.perf_counter() - started
            assert response.status_code == 201, response.content
            if flag:
                queued.append(response.json()["id"])
            if n >= warm:
                times[name].append(elapsed * 1000)
    off = statistics.median(times["auto_extract_entities false"])
    print(f"POST /v1/memories, {requests} requests each, interleaved, in-process (ms):")
    for name, values in times.items():
        p50, p95 = statistics.median(values), statistics.quantiles(values, n=20)[-1]
        print(f"  {name:<28} p50 {p50:6.2f}  p95 {p95:6.2f}  ({p50 / off:.3f}x off)")
    return queued


def batch_latency(rounds: int, size: int = 50) -> list[str]:
    """POST /v1/memories/batch of ``size`` items, extraction off and on, interleaved."""
    client = _client()
    times: dict[bool, list[float]] = {False: [], True: []}
    queued: list[str] = []
    for n in range(rounds + 2):
        for flag in (False, True):
            items = [{"agent_id": "bench", "auto_extract_entities": flag,
                      "content": TEXTS[i % len(TEXTS)].format(n=f"{n}-{i}")}
                     for i in range(size)]
            started = time.perf_counter()
            response = client.post("/v1/memories/batch", {"memories": items},
                                    content_type="application/json")
            elapsed = time.perf_counter() - started
            assert response.status_code in (200, 201), response.content
            if flag:
                queued += [r["id"] for r in response.json()["results"]]
            if n >= 2:
                times[flag].append(elapsed * 1000)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"POST /v1/memories/batch of {size}, {rounds} each, interleaved (ms): "
          f"off p50 {off:.1f}, on p50 {on:.1f} ({on / off:.3f}x off)")
    return queued


def server_latency(requests: int) -> None:
    """The same comparison through a real server (`make run`'s gunicorn + uvicorn worker,
    one process), timed by an HTTP client up to the last byte of each response: what a
    client waits for. The extraction request itself is made after the response is sent."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from load_bench import Server, request

    key = _key()
    log = Path(tempfile.mkdtemp(prefix="extraction-bench-server-")) / "server.log"
    server = Server(["memoryrelay_site.asgi:application", "--worker-class",
                     "memoryrelay_site.server.Worker", "--workers", "1",
                     "--env", "MEMORYRELAY_WORKER_THREADS=4"], dict(os.environ), log)
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    times: dict[bool, list[float]] = {False: [], True: []}
    written: list[str] = []
    try:
        for n in range(requests + 20):
            for flag in (False, True):
                body = {"agent_id": "bench", "content": TEXTS[n % len(TEXTS)].format(n=n),
                        "auto_extract_entities": flag}
                started = time.perf_counter()
                status, raw = request(server.port, "POST", "/v1/memories", body, key, conn)
                elapsed = time.perf_counter() - started
                assert status == 201, (status, raw[:300], log.read_text()[-2000:])
                if flag:
                    written.append(json.loads(raw)["id"])
                if n >= 20:
                    times[flag].append(elapsed * 1000)
    finally:
        conn.close()
        server.stop()
    off = statistics.median(times[False])
    print(f"POST /v1/memories through a real server (1 process), {requests} each, "
          "interleaved (ms):")
    for flag in (False, True):
        p50 = statistics.median(times[flag])
        p95 = statistics.quantiles(times[flag], n=20)[-1]
        print(f"  auto_extract_entities {str(flag).lower():<6} p50 {p50:6.2f}  p95 {p95:6.2f}"
              f"  ({p50 / off:.3f}x off)")
    from entities_app.models import MemoryExtraction

    queued = MemoryExtraction.objects.filter(memory_id__in=written).count()
    print(f"  extraction queued by the server after its responses: {queued} of {len(written)}")


def drain(memory_ids: list[str]) -> None:
    from entities_app.extraction import get_extractor
    from entities_app.models import EntityLink, MemoryExtraction
    from entities_app.tasks import memory_extract_entities
    from memories_app.models import Memory

    started = time.perf_counter()
    results = [memory_extract_entities.call(pk) for pk in memory_ids]
    elapsed = time.perf_counter() - started
    done = MemoryExtraction.objects.filter(memory_id__in=memory_ids, status="done").count()
    links = EntityLink.objects.filter(memory_id__in=memory_ids).count()
    print(f"worker side: {len(memory_ids)} extractions in {elapsed:.2f} s "
          f"({len(memory_ids) / elapsed:,.0f} memories/s, {elapsed * 1000 / len(memory_ids):.2f}"
          f" ms each; {done} done, {results.count('skipped')} skipped, {links} links)")
    extractor = get_extractor()
    texts = list(Memory.objects.filter(pk__in=memory_ids).values_list("content", flat=True))
    started = time.perf_counter()
    for text in texts:
        extractor.extract(text)
    per = (time.perf_counter() - started) * 1000 / max(len(texts), 1)
    print(f"the extractor alone ({extractor.method}): {per:.3f} ms per memory")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--no-server", action="store_true", help="skip the real-server part")
    args = parser.parse_args(argv)
    configure()
    from django.conf import settings
    from django.db import connection

    print(f"database {connection.vendor}, task backend {settings.MEMORYRELAY_TASK_BACKEND}, "
          f"embeddings {settings.MEMORYRELAY_EMBEDDINGS}; shared 2-core machine, noisy")
    queued = latency(args.requests)
    batch_latency(args.batches)
    if not args.no_server:
        server_latency(args.requests)
    drain(queued)


if __name__ == "__main__":
    main()
