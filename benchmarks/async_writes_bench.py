"""Asynchronous writes (issue 9): what POST /v2/memories costs, and how fast workers drain.

    .venv/bin/python benchmarks/async_writes_bench.py [--requests 300] [--count 10000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/memoryrelay_bench \\
        .venv/bin/python benchmarks/async_writes_bench.py

1. Latency, in one run, side by side, through the whole Django stack in this process
   (middleware, API-key authentication, throttle): POST /v2/memories (one insert, one task
   row) against a bare Django+DRF endpoint doing the same key lookup and one insert, and
   POST /v1/memories (embeds in the request) against a bare endpoint doing the key lookup,
   the embedding and one insert. Each pair interleaved (alternating order), so load changes
   hit both sides alike.
2. Drain: --count memories written through the async path, then 1 and then 2
   `manage.py task_worker` processes started, timed until every one is ``ready``.

SQLite on a temporary file unless DATABASE_URL is set (then that database, migrated; the
bench adds its own accounts). Workers are killed at the end. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def configure() -> Path | None:
    tmp = None
    if not os.environ.get("DATABASE_URL"):
        tmp = Path(tempfile.mkdtemp(prefix="async-bench-"))
        os.environ["MEMORYRELAY_SQLITE_PATH"] = str(tmp / "db.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
    os.environ["MEMORYRELAY_RATE_LIMIT_PER_MINUTE"] = "0"
    import django

    django.setup()
    return tmp


def bare_urls():
    """The bare endpoint: the same key lookup (the API's authentication class) and one
    insert, nothing else."""
    from django.urls import include, path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from memories_app.models import Memory
    from memories_app.services import embedding_of, vector_fields
    from sessions_app.models import Agent

    class Bare(APIView):
        throttle_classes: list = []

        def post(self, request):
            agent = Agent.objects.filter(account=request.user, name="bench").first()
            memory = Memory.objects.create(account=request.user, agent=agent,
                                           content=request.data["content"])
            return Response({"id": str(memory.pk)}, status=201)

    class BareEmbedded(Bare):
        """The floor of POST /v1/memories: the same, with the embedding it computes."""

        def post(self, request):
            agent = Agent.objects.filter(account=request.user, name="bench").first()
            memory = Memory.objects.create(account=request.user, agent=agent,
                                           content=request.data["content"],
                                           **vector_fields(embedding_of(request.data["content"])))
            return Response({"id": str(memory.pk)}, status=201)

    return [path("bare/memories", Bare.as_view()),
            path("bare/embedded", BareEmbedded.as_view()),
            path("", include("memoryrelay_site.urls"))]


def latency(requests: int) -> None:
    import types

    from django.test import Client, override_settings

    from memoryrelay_site.services import api_key_create
    from sessions_app.models import Agent

    user = _user("bench-latency")
    Agent.objects.get_or_create(account=user, name="bench")
    _, raw = api_key_create(user=user, name="bench")
    urls = types.ModuleType("bench_urls")
    urls.urlpatterns = bare_urls()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    # Two pairs, each interleaved with its floor in its own loop, the order within a pair
    # alternating: a request that runs the embedding model leaves the caches cold for the
    # next one, so mixing all four made whatever came after an embedding look slower.
    pairs = [{"POST /v2/memories": "/v2/memories", "bare DRF insert": "/bare/memories"},
             {"POST /v1/memories": "/v1/memories", "bare embed + insert": "/bare/embedded"}]
    times: dict[str, list[float]] = {name: [] for pair in pairs for name in pair}
    with override_settings(ROOT_URLCONF=urls):
        for cases in pairs:
            for n in range(requests + 20):
                order = list(cases.items())
                for name, url in order if n % 2 else reversed(order):
                    body = {"agent_id": "bench", "content": f"benchmark memory {n} about {name}"}
                    started = time.perf_counter()
                    response = client.post(url, body, content_type="application/json")
                    elapsed = time.perf_counter() - started
                    assert response.status_code in (201, 202), response.content
                    if n >= 20:  # warm-up excluded
                        times[name].append(elapsed * 1000)
    floors = {"POST /v2/memories": "bare DRF insert", "POST /v1/memories": "bare embed + insert"}
    print(f"latency, {requests} requests each, in-process (ms):")
    for name, values in times.items():
        p50 = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        floor = floors.get(name)
        ratio = ""
        if floor:
            base = times[floor]
            ratio = (f"  ({p50 / statistics.median(base):.2f}x p50, "
                     f"{p95 / statistics.quantiles(base, n=20)[-1]:.2f}x p95 of {floor})")
        print(f"  {name:<20} p50 {p50:6.2f}  p95 {p95:6.2f}{ratio}")


def drain(count: int, workers: int) -> float:
    from memories_app.models import Memory
    from memories_app.services import memory_create
    from memories_app.tasks import memory_embed
    from memoryrelay_site.tasks import backend_name, task_enqueue

    user = _user(f"bench-drain-{workers}")
    in_database = backend_name() == "database"
    for n in range(count):
        # As POST /v2/memories writes them: on the database queue the pending memory is the
        # queue entry and the workers' dispatchers queue its task; on RQ it is queued here.
        memory = memory_create(account=user, agent_ref="bench", pending=True,
                               queued=not in_database,
                               content=f"drain memory {n} on the retry queue of worker {n % 7}")
        if not in_database:
            task_enqueue(memory_embed, str(memory.pk))
    mine = Memory.objects.filter(account=user)
    env = {**os.environ}
    processes = []
    started = time.monotonic()
    try:
        for _ in range(workers):
            processes.append(subprocess.Popen(
                [sys.executable, "manage.py", "task_worker", "--interval", "0.05"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        while mine.filter(status="ready").count() < count:
            if time.monotonic() - started > 3600:
                raise RuntimeError("not drained within an hour")
            time.sleep(0.5)
        return time.monotonic() - started
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _user(name: str):
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    users.filter(username=name).delete()
    return users.create(username=name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--count", type=int, default=10000)
    args = parser.parse_args()
    configure()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}")
    latency(args.requests)
    for workers in (1, 2):
        seconds = drain(args.count, workers)
        print(f"drain: {args.count} async memories ready with {workers} worker(s) in "
              f"{seconds:.1f} s ({args.count / seconds:.0f}/s)")


if __name__ == "__main__":
    main()
