"""Search and create latency with 100,000 memories in one account, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/memoryrelay_bench \\
        .venv/bin/python benchmarks/search_bench.py [--memories 100000] [--queries 200]

Loads the memories once (embedding them with the configured provider; a re-run reuses
them), then prints p50/p95 of:
- search, server side, excluding the query's embedding (the vector is computed first);
- search including the query's embedding (what a request costs the server);
- a full POST /v1/memories/search through Django (auth, validation, serialisation);
- memory create (embedding, insert, index maintenance).
It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")

PEOPLE = ["Alex", "Maria", "Tom", "Priya", "Dev", "Sam", "Ana", "Li", "Omar", "Zoe"]
SYSTEMS = ["email queue", "payment worker", "search index", "auth service", "CSV export",
           "mobile app", "nightly backup", "rate limiter", "billing API", "webhook relay",
           "CDN cache", "feature flags", "data warehouse", "chat widget", "PDF renderer"]
FACTS = [
    "{p} prefers {x} for the {s}.", "The {s} fails with {code} when traffic spikes.",
    "Decided to move the {s} to {x}; tracked in INC-{n}.",
    "{p} owns the {s} until the end of the quarter.",
    "Root cause for the {s} outage: a retry counter that never reset (PR #{n}).",
    "Customer ACME-{n} reported that the {s} is slow on Mondays.",
    "The {s} must keep data in the Frankfurt region.", "{p} is on call for the {s} this week.",
    "Release v{a}.{b}.{c} changed how the {s} handles timeouts.",
    "The {s} dashboard lives at grafana/{slug}-{n}.",
]
CHOICES = ["PostgreSQL", "Redis", "Kafka", "dark mode", "tabs", "Go", "Rust", "a cron job",
           "blue-green deploys", "weekly releases"]
CODES = ["ERR_CONN_RESET", "ERR_TIMED_OUT", "HTTP 502", "0x80004005", "OOMKilled", "EPIPE"]
QUERIES = [
    "who is responsible for the payment worker", "why did the email queue stop retrying",
    "where must European data be stored", "which customer complained about slowness",
    "what breaks under heavy load", "who is on call this week", "ERR_CONN_RESET",
    "INC-{n}", "PR #{n}", "ACME-{n}", "what did we decide about the search index",
    "which database did Maria want", "timeouts changed in a release",
]


def memory_text(rng: random.Random) -> str:
    return rng.choice(FACTS).format(
        p=rng.choice(PEOPLE), s=rng.choice(SYSTEMS), x=rng.choice(CHOICES),
        code=rng.choice(CODES), n=rng.randint(1000, 99999), a=rng.randint(1, 9),
        b=rng.randint(0, 30), c=rng.randint(0, 9), slug=rng.choice(SYSTEMS).replace(" ", "-"))


def load(account, agent_names: list[str], total: int, rng: random.Random) -> None:
    from memories_app.embeddings import get_provider
    from memories_app.models import Memory, tier_for
    from sessions_app.services import agent_get_or_create

    have = start = Memory.objects.filter(account=account).count()
    agents = [agent_get_or_create(account=account, name=n)[0] for n in agent_names]
    provider, started = get_provider(), time.perf_counter()
    while have < total:
        texts = [memory_text(rng) for _ in range(min(1000, total - have))]
        vectors = provider.embed(texts)
        rows = []
        for text, vector in zip(texts, vectors, strict=True):
            importance = round(rng.random(), 2)
            rows.append(Memory(account=account, agent=rng.choice(agents), content=text,
                               importance=importance, tier=tier_for(importance),
                               embedding=vector, embedding_model=provider.name,
                               embedding_dimension=len(vector)))
        Memory.objects.bulk_create(rows)
        have += len(rows)
        rate = (have - start) / (time.perf_counter() - started)
        print(f"  loaded {have:>7} memories ({rate:.0f}/s)", flush=True)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    import django

    warnings.filterwarnings("ignore", message="No directory at")  # static files: unused here
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from rest_framework.test import APIClient

    from memories_app import search
    from memories_app.embeddings import get_provider
    from memories_app.models import Memory
    from memories_app.services import memory_create, memory_search
    from memoryrelay_site.services import api_key_create

    call_command("migrate", verbosity=0)
    rng = random.Random(42)
    account, _ = get_user_model().objects.get_or_create(username="search-bench")
    print(f"database: {connection.vendor}; embeddings: {get_provider().describe()}")
    load(account, [f"agent-{i}" for i in range(10)], args.memories, rng)
    with connection.cursor() as cursor:  # what autovacuum does on a live server
        cursor.execute("VACUUM ANALYZE memories_app_memory")
    total = Memory.objects.filter(account=account).count()
    queries = [rng.choice(QUERIES).format(n=rng.randint(1000, 99999))
               for _ in range(args.queries)]
    provider = get_provider()
    queryset = Memory.objects.live().for_account(account)
    print(f"\n{total} memories in the account; {len(queries)} queries per row\n")
    for mode in ("hybrid", "semantic", "keyword"):
        without, with_embedding = [], []
        for text in queries:
            vector = provider.embed([text])[0]
            with transaction.atomic():
                without.append(timed(search.run, queryset,
                                     search.Query(text=text, mode=mode), vector))
            with transaction.atomic():
                with_embedding.append(timed(memory_search, account=account, text=text,
                                            mode=mode))
        print(f"search {mode:<8} excluding query embedding: {percentiles(without)}")
        print(f"search {mode:<8} including query embedding: {percentiles(with_embedding)}")
    _, raw = api_key_create(user=account, name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    http = [timed(client.post, "/v1/memories/search", {"query": q}, format="json")
            for q in queries]
    print(f"POST /v1/memories/search (hybrid, in-process HTTP): {percentiles(http)}")
    creates = []
    for _ in range(200):
        with transaction.atomic():
            creates.append(timed(memory_create, account=account, agent_ref="agent-0",
                                 content=memory_text(rng)))
    print(f"memory create (embedding + insert + indexes):      {percentiles(creates)}")


if __name__ == "__main__":
    main()
