"""decisions/check latency with 10,000 decisions in one account, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/memoryrelay_bench \\
        .venv/bin/python benchmarks/decisions_bench.py [--decisions 10000] [--queries 200]

Loads the decisions once (embedding them with the configured provider; a re-run reuses
them, a tenth of them superseded), then prints p50/p95 of:
- the check's search, server side, excluding the query's embedding;
- decision_check including the query's embedding;
- a full GET /v1/decisions/check through Django (auth, validation, serialisation), the
  figure the README states (target: p50 under 50 ms);
- pattern search through GET /v1/patterns/search with as many patterns.
It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")

from search_bench import CHOICES, SYSTEMS, percentiles, timed  # noqa: E402

TITLES = [
    "Use {x} for the {s}", "Move the {s} behind a feature flag (ADR-{n})",
    "The {s} retries with exponential backoff", "Keep the {s} in the Frankfurt region",
    "Split the {s} out of the monolith", "Cache {s} responses for five minutes",
    "Version the {s} API in the URL path", "The {s} logs as JSON lines (INC-{n})",
]
RATIONALES = [
    "Latency under load matters more than cost here.", "Fewer moving parts for on-call.",
    "Customers in the EU require data residency.", "It failed twice last quarter (PR #{n}).",
    "The team already runs it in production.", "Rollbacks must take under five minutes.",
]
QUERIES = [
    "which database should the billing API use", "how do we roll out risky changes",
    "where must European customer data live", "how does the webhook relay handle failures",
    "ADR-{n}", "INC-{n}", "should we cache search index results", "API versioning scheme",
]


def decision_text(rng: random.Random) -> tuple[str, str]:
    fill = {"x": rng.choice(CHOICES), "s": rng.choice(SYSTEMS), "n": rng.randint(1000, 99999)}
    return rng.choice(TITLES).format(**fill), rng.choice(RATIONALES).format(**fill)


def load(account, total: int, rng: random.Random) -> None:
    from knowledge_app.models import Decision, Pattern
    from knowledge_app.services import decision_text as embedded_text
    from knowledge_app.services import pattern_text
    from memories_app.embeddings import get_provider

    provider = get_provider()
    for model, text_of in ((Decision, embedded_text), (Pattern, pattern_text)):
        have = model.objects.filter(account=account).count()
        started, start = time.perf_counter(), have
        while have < total:
            pairs = [decision_text(rng) for _ in range(min(1000, total - have))]
            vectors = provider.embed([text_of(a, b) for a, b in pairs])
            rows = []
            for (title, text), vector in zip(pairs, vectors, strict=True):
                fields = ({"rationale": text, "project_slug": rng.choice(SYSTEMS),
                           "status": "superseded" if rng.random() < 0.1 else "active"}
                          if model is Decision else {"description": text})
                rows.append(model(account=account, title=title, embedding=vector,
                                  embedding_model=provider.name,
                                  embedding_dimension=len(vector), **fields))
            model.objects.bulk_create(rows)
            have += len(rows)
            rate = (have - start) / (time.perf_counter() - started)
            print(f"  loaded {have:>6} {model._meta.verbose_name_plural} ({rate:.0f}/s)",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    import django

    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from rest_framework.test import APIClient

    from knowledge_app.models import Decision
    from knowledge_app.services import decision_check
    from memories_app import search
    from memories_app.embeddings import get_provider
    from memoryrelay_site.services import api_key_create

    call_command("migrate", verbosity=0)
    rng = random.Random(42)
    account, _ = get_user_model().objects.get_or_create(username="decisions-bench")
    print(f"database: {connection.vendor}; embeddings: {get_provider().describe()}")
    load(account, args.decisions, rng)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum does on a live server
            cursor.execute("VACUUM ANALYZE knowledge_app_decision")
            cursor.execute("VACUUM ANALYZE knowledge_app_pattern")
    total = Decision.objects.filter(account=account).count()
    queries = [rng.choice(QUERIES).format(n=rng.randint(1000, 99999))
               for _ in range(args.queries)]
    provider = get_provider()
    queryset = Decision.objects.live().for_account(account).in_force()
    print(f"\n{total} decisions (and as many patterns); {len(queries)} queries per row\n")
    without, with_embedding = [], []
    for text in queries:
        vector = provider.embed([text])[0]
        with transaction.atomic():
            without.append(timed(search.run, queryset,
                                 search.Query(text=text, limit=5, min_score=0.3), vector))
        with_embedding.append(timed(decision_check, account=account, text=text))
    print(f"check search, excluding query embedding:        {percentiles(without)}")
    print(f"decision_check, including query embedding:      {percentiles(with_embedding)}")
    _, raw = api_key_create(user=account, name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.get("/v1/decisions/check?query=warm")  # first request: loads what is lazy
    http = [timed(client.get, "/v1/decisions/check?" + urlencode({"query": q}))
            for q in queries]
    print(f"GET /v1/decisions/check (in-process HTTP):      {percentiles(http)}")
    patterns = [timed(client.get, "/v1/patterns/search?" + urlencode({"query": q}))
                for q in queries]
    print(f"GET /v1/patterns/search (in-process HTTP):      {percentiles(patterns)}")


if __name__ == "__main__":
    main()
