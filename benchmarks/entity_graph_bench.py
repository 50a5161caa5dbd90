"""Entity graph latency with 100,000 memories and 10,000 entities in one account, on
PostgreSQL.

    createdb -h 127.0.0.1 -U postgres mr_graph_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mr_graph_bench \\
        .venv/bin/python benchmarks/entity_graph_bench.py [--memories 100000] \\
        [--entities 10000] [--samples 60] [--baseline-samples 8]

Loads the account once with COPY (memories need no embeddings here; a re-run reuses them):
each memory mentions 1-12 entities (mean about 2.5), drawn 70% from one of 500 topics of 20
entities and 30% from all entities, both Zipf-like, so a few entities are in tens of
thousands of memories and most in a handful; 2% of the memories and 1% of the entities are
deleted. The links are loaded with the triggers off, then the co-occurrence table is rebuilt
in one statement (as migration 0002 fills it).

Then it times, through HTTP in process (Django's test client: auth, routing, middleware,
serialisation), for centres drawn a third each from the 20 most linked entities (hubs), from
ranks 100-1,000 and from the rest:
- GET /v1/entities/{id}/relationships and /neighborhood at depth 1, 2, 3 (max_neighbors 10)
  and depth 2 with max_neighbors 50;
- beside each, a bare Django view (no DRF, no auth) running the same graph queries, and a
  bare view computing the co-occurrences from the links at read time, one aggregate query
  per hop (the simplest equivalent without the table; fewer samples, it is slow);
- what the triggers add to writing links: linking 3 entities to each of 300 new memories,
  with the triggers on and off.
Prints p50/p95 and ratios; asserts nothing. The machine is shared: figures move with load.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import random
import statistics
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
os.environ.setdefault("MEMORYRELAY_RATE_LIMIT_PER_MINUTE", "0")  # unlimited: we time, not throttle
os.environ.setdefault("MEMORYRELAY_DB_STATEMENT_TIMEOUT_MS", "900000")  # the load is long

TYPES = ["person", "organization", "technology", "project", "product", "location", "concept"]
TOPICS, TOPIC_SIZE = 500, 20
BASE = datetime(2025, 1, 1, tzinfo=UTC)


# --- loading ----------------------------------------------------------------------------------


class Zipf:
    def __init__(self, n: int, s: float, rng: random.Random):
        self.cdf = list(itertools.accumulate(1 / (r ** s) for r in range(1, n + 1)))
        self.rng = rng

    def __call__(self) -> int:
        return bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1])


def copy_rows(connection, model, objects) -> None:
    """COPY model instances into the model's table, every concrete column."""
    fields = model._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor, \
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for obj in objects:
            copy.write_row([f.get_db_prep_save(getattr(obj, f.attname), connection)
                            for f in fields])


def load(account, agent, memories: int, entities: int, rng: random.Random) -> None:
    from django.db import connection, transaction

    from entities_app import graph
    from entities_app.models import Entity, EntityLink
    from entities_app.names import entity_key
    from memories_app.models import Memory

    if Memory.objects.filter(account=account).count() >= memories:
        return
    started = time.perf_counter()
    made = [Entity(id=uuid.UUID(int=rng.getrandbits(128), version=4), account=account,
                   name=f"{TYPES[i % len(TYPES)].title()} {i}", entity_type=TYPES[i % len(TYPES)],
                   created_at=BASE, updated_at=BASE,
                   deleted_at=BASE if rng.random() < 0.01 else None)
            for i in range(entities)]
    for entity in made:
        entity.key = entity_key(entity.name)
    order = list(range(entities))
    rng.shuffle(order)  # popularity is not creation order
    count = max(1, min(TOPICS, entities // TOPIC_SIZE))
    topics = [order[t * TOPIC_SIZE:(t + 1) * TOPIC_SIZE] for t in range(count)]
    overall, topic_of, within = Zipf(entities, 1.07, rng), Zipf(count, 1.0, rng), \
        Zipf(min(TOPIC_SIZE, entities), 1.0, rng)
    rows, links = [], []
    for i in range(memories):
        at = BASE + timedelta(seconds=i * 300)
        memory = Memory(id=uuid.UUID(int=rng.getrandbits(128), version=4), account=account,
                        agent=agent, created_at=at, updated_at=at,
                        deleted_at=at if rng.random() < 0.02 else None)
        mentions = min(1 + int(rng.expovariate(1 / 1.5)), 12, entities)
        topic, chosen = topics[topic_of()], set()
        while len(chosen) < mentions:
            chosen.add(topic[within()] if rng.random() < 0.7 else order[overall()])
        memory.content = (f"Memory {i}: " + ", ".join(made[e].name for e in sorted(chosen))
                          + " came up in the weekly review.")
        rows.append(memory)
        links += [EntityLink(account=account, entity_id=made[e].id, memory_id=memory.id,
                             created_at=at) for e in chosen]
    with transaction.atomic():
        copy_rows(connection, Entity, made)
        copy_rows(connection, Memory, rows)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off
            for start in range(0, len(links), 50_000):
                batch = links[start:start + 50_000]
                for n, link in enumerate(batch, start):
                    link.id = n + 1
                copy_rows(connection, EntityLink, batch)
            cursor.execute("SET LOCAL session_replication_role = origin")
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                           [EntityLink._meta.db_table, len(links)])
        pairs = graph.cooccurrence_rebuild(account_id=account.pk)
    print(f"loaded {memories:,} memories, {entities:,} entities, {len(links):,} links, "
          f"{pairs:,} co-occurring pairs in {time.perf_counter() - started:.0f} s", flush=True)


# --- the baselines: bare Django views ---------------------------------------------------------

ON_THE_FLY_HOP = """
    SELECT source_id, target_id, weight, name, entity_type FROM (
        SELECT p.source_id, p.target_id, p.weight, e.name, e.entity_type,
               ROW_NUMBER() OVER (PARTITION BY p.source_id
                                  ORDER BY p.weight DESC, p.target_id) AS rank
          FROM (SELECT a.entity_id AS source_id, b.entity_id AS target_id, COUNT(*) AS weight
                  FROM entities_app_entitylink a
                  JOIN entities_app_entitylink b ON b.memory_id = a.memory_id
                                                AND b.entity_id <> a.entity_id
                  JOIN memories_app_memory m ON m.id = a.memory_id AND m.deleted_at IS NULL
                 WHERE a.entity_id = ANY(%s)
                 GROUP BY a.entity_id, b.entity_id) p
          JOIN entities_app_entity e ON e.id = p.target_id
         WHERE e.deleted_at IS NULL AND e.account_id = %s) ranked
     WHERE rank <= %s"""


def _walk(center, depth: int, k: int, hop) -> dict:
    """Breadth first as entities_app.graph does, with ``hop(sources)`` giving rows."""
    nodes, edges = [{"id": str(center.pk), "name": center.name, "depth": 0}], []
    seen, pairs, frontier = {str(center.pk)}, set(), [str(center.pk)]
    for level in range(1, depth + 1):
        found: dict = {}
        for source, target, weight, name, _ in hop(frontier):
            found.setdefault(str(source), []).append((str(target), weight, name))
        reached = []
        for source in frontier:
            for target, weight, name in sorted(found.get(source, []),
                                               key=lambda r: (-r[1], str(r[0]))):
                if frozenset((source, target)) not in pairs:
                    pairs.add(frozenset((source, target)))
                    edges.append({"source": str(source), "target": str(target),
                                  "weight": weight})
                if target not in seen:
                    seen.add(target)
                    reached.append(target)
                    nodes.append({"id": str(target), "name": name, "depth": level})
        if not reached:
            break
        frontier = reached
    return {"nodes": nodes, "edges": edges}


def bare_neighborhood(request, pk, mode):
    from django.db import connection
    from django.http import JsonResponse

    from entities_app import graph
    from entities_app.models import Entity

    center = Entity.objects.get(pk=pk, deleted_at__isnull=True)
    depth, k = int(request.GET.get("depth", 1)), int(request.GET.get("max_neighbors", 10))
    if mode == "table":
        def hop(sources):
            found = graph.top_neighbors(account_id=center.account_id, sources=sources, k=k)
            return [(s, *row) for s, rows in found.items() for row in rows]
    else:
        def hop(sources):
            with connection.cursor() as cursor:
                cursor.execute(ON_THE_FLY_HOP, [[uuid.UUID(s) for s in sources],
                                                center.account_id, k])
                return cursor.fetchall()
    return JsonResponse(_walk(center, depth, k, hop))


ON_THE_FLY_RELATIONSHIPS = """
    SELECT s.target_id, e.name, s.weight, m.id, SUBSTR(m.content, 1, 200), m.created_at FROM (
        SELECT b.entity_id AS target_id, a.memory_id,
               COUNT(*) OVER (PARTITION BY b.entity_id) AS weight,
               ROW_NUMBER() OVER (PARTITION BY b.entity_id
                                  ORDER BY shared.created_at DESC, shared.id DESC) AS rank
          FROM entities_app_entitylink a
          JOIN entities_app_entitylink b ON b.memory_id = a.memory_id
                                        AND b.entity_id <> a.entity_id
          JOIN memories_app_memory shared ON shared.id = a.memory_id
                                         AND shared.deleted_at IS NULL
         WHERE a.entity_id = %s) s
      JOIN entities_app_entity e ON e.id = s.target_id AND e.deleted_at IS NULL
      JOIN memories_app_memory m ON m.id = s.memory_id
     WHERE s.rank = 1
     ORDER BY s.weight DESC, s.target_id LIMIT 20"""


def bare_relationships(request, pk, mode):
    from django.db import connection
    from django.http import JsonResponse

    from entities_app import graph
    from entities_app.models import Entity

    center = Entity.objects.get(pk=pk, deleted_at__isnull=True)
    if mode == "table":
        page = graph.entity_relationships(entity=center, limit=20, offset=0)
        data = [{"id": str(r.entity.id), "name": r.entity.name, "count": r.shared_memory_count,
                 "memory": str(r.latest_shared_memory.id)} for r in page.rows]
    else:
        with connection.cursor() as cursor:
            cursor.execute(ON_THE_FLY_RELATIONSHIPS, [center.pk])
            data = [{"id": str(t), "name": n, "count": w, "memory": str(m)}
                    for t, n, w, m, _, _ in cursor.fetchall()]
    return JsonResponse({"data": data})


def urlpatterns_for_bench():
    from django.urls import include, path

    return [
        path("bare/<str:mode>/<uuid:pk>/neighborhood",
             lambda r, mode, pk: bare_neighborhood(r, pk, mode)),
        path("bare/<str:mode>/<uuid:pk>/relationships",
             lambda r, mode, pk: bare_relationships(r, pk, mode)),
        path("", include("memoryrelay_site.urls")),
    ]


# --- timing -----------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p95 * 1000


def time_get(client, url: str, **headers) -> float:
    started = time.perf_counter()
    response = client.get(url, **headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return elapsed


def centres(account, rng: random.Random, samples: int) -> tuple[list, list]:
    from django.db.models import Count

    from entities_app.models import Entity

    ranked = list(Entity.objects.live().filter(account=account)
                  .annotate(n=Count("links")).filter(n__gt=0).order_by("-n", "id")
                  .values_list("pk", flat=True))
    third = max(1, samples // 3)
    hubs = [rng.choice(ranked[:20]) for _ in range(third)]
    middle = [rng.choice(ranked[100:1000]) for _ in range(third)]
    tail = [rng.choice(ranked[1000:]) for _ in range(samples - 2 * third)]
    return hubs + middle + tail, hubs


def triggers(connection, *, on: bool) -> None:
    """Off for the rest of the transaction (foreign-key checks too): what is written then is
    not counted in the co-occurrence table, so it must be removed the same way."""
    if not on:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")


def write_cost(account, agent, entities: list, rounds: int = 300) -> tuple[float, float]:
    """ms per memory to link 3 entities to it (one bulk insert, as the extraction does), with
    the triggers on and off."""
    from django.db import connection, transaction

    from entities_app.models import EntityLink
    from memories_app.models import Memory

    figures = []
    for replica in (False, True):
        times = []
        for i in range(rounds):
            memory = Memory.objects.create(account=account, agent=agent,
                                           content=f"write cost {i}")
            picked = random.Random(i).sample(entities, 3)
            started = time.perf_counter()
            with transaction.atomic():
                triggers(connection, on=not replica)
                EntityLink.objects.bulk_create([EntityLink(account=account, entity_id=e,
                                                           memory=memory) for e in picked])
            times.append(time.perf_counter() - started)
            with transaction.atomic():  # its links go too, counted down as they were up
                triggers(connection, on=not replica)
                memory.delete()
        figures.append(statistics.median(times) * 1000)
    return figures[0], figures[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--baseline-samples", type=int, default=8)
    args = parser.parse_args()
    import django

    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from rest_framework.test import APIClient

    from memoryrelay_site.services import api_key_create
    from sessions_app.services import agent_get_or_create

    if connection.vendor != "postgresql":
        sys.exit("needs PostgreSQL: set DATABASE_URL (its own database)")
    call_command("migrate", verbosity=0)
    rng = random.Random(42)
    account, _ = get_user_model().objects.get_or_create(username="graph-bench")
    agent = agent_get_or_create(account=account, name="graph-bench")[0]
    load(account, agent, args.memories, args.entities, rng)
    with connection.cursor() as cursor:  # what autovacuum does on a live server
        for table in ("entities_app_entitylink", "entities_app_entity", "memories_app_memory",
                      "entities_app_cooccurrence"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    module = sys.modules[__name__]
    module.urlpatterns = urlpatterns_for_bench()
    settings.ROOT_URLCONF = __name__
    from django.urls import clear_url_caches

    clear_url_caches()

    _, raw = api_key_create(user=account, name="bench")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    bare = Client()
    picks, hubs = centres(account, rng, args.samples)
    print(f"\n{len(picks)} centres (a third each: hubs, ranks 100-1000, the rest); "
          f"{args.baseline_samples} for the on-the-fly baseline; in-process HTTP; "
          f"shared 2-CPU machine\n")
    cases = [("relationships", "relationships", ""),
             ("neighborhood depth 1", "neighborhood", "?depth=1"),
             ("neighborhood depth 2", "neighborhood", "?depth=2"),
             ("neighborhood depth 3", "neighborhood", "?depth=3"),
             ("neighborhood depth 2, max 50", "neighborhood", "?depth=2&max_neighbors=50")]
    api.get(f"/v1/entities/{picks[0]}/neighborhood")  # first request loads what is lazy
    print(f"{'':30} {'API p50':>8} {'p95':>7} | {'bare p50':>8} {'p95':>7} {'ratio':>6} | "
          f"{'on-the-fly p50':>14} {'p95':>7} {'ratio':>7}")
    print("(ratio: API / bare view on the table; on-the-fly / bare view on the table, same "
          "centres)")
    for label, path, query in cases:
        served = [time_get(api, f"/v1/entities/{pk}/{path}{query}") for pk in picks]
        table = [time_get(bare, f"/bare/table/{pk}/{path}{query}") for pk in picks]
        every = max(1, len(picks) // args.baseline_samples)
        fly = [time_get(bare, f"/bare/fly/{pk}/{path}{query}")
               for pk in picks[::every][:args.baseline_samples]]
        same = table[::every][:args.baseline_samples]  # the table's bare view, same centres
        (a50, a95), (b50, b95), (f50, f95) = (percentiles(served), percentiles(table),
                                              percentiles(fly))
        print(f"{label:30} {a50:8.1f} {a95:7.1f} | {b50:8.1f} {b95:7.1f} {a50 / b50:5.2f}x | "
              f"{f50:14.1f} {f95:7.1f} {f50 / percentiles(same)[0]:6.1f}x")
    hub_times = {q: percentiles([time_get(api, f"/v1/entities/{pk}/neighborhood{q}")
                                 for pk in hubs])
                 for q in ("?depth=3", "?depth=3&max_neighbors=50")}
    for query, (p50, p95) in hub_times.items():
        print(f"hubs only, neighborhood{query}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    sizes = api.get(f"/v1/entities/{hubs[0]}/neighborhood?depth=3&max_neighbors=50").json()
    print(f"(a hub at depth 3, max 50: {len(sizes['nodes'])} nodes, {len(sizes['edges'])} "
          f"edges)")
    from entities_app.models import Entity

    sample = [str(pk) for pk in Entity.objects.live().filter(account=account)
              .values_list("pk", flat=True)[:200]]
    on, off = write_cost(account, agent, sample)
    print(f"\nlinking 3 entities to a memory: {on:.2f} ms with the triggers, {off:.2f} ms "
          f"without ({on / off:.1f}x)")


if __name__ == "__main__":
    main()
