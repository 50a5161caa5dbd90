"""Search latency as one account grows: 10k, 100k and 1M memories on PostgreSQL.

    .venv/bin/python benchmarks/scale_load.py --memories 10000      # once per size
    .venv/bin/python benchmarks/scale_load.py --memories 100000
    .venv/bin/python benchmarks/scale_load.py --memories 1000000
    .venv/bin/python benchmarks/scale_bench.py [--sizes 10000,100000,1000000]
        [--queries 100] [--save results.json] [--baseline benchmarks/data/scale_before.json]
        [--against ../other-checkout --rounds 3]

Each size lives in its own database (``mr_scale_10k``, ``mr_scale_100k``, ``mr_scale_1m``
on 127.0.0.1:5432 unless ``--url-template`` says otherwise), filled by scale_load.py.
Every request is a full ``POST /v1/memories/search`` through Django's test client in one
process and one thread (auth, validation, the query's embedding by the local model, the
search, JSON), so a single worker, without the network. The same queries at every size
(4 or 5 terms each, see scale_load.query_texts), after a warm-up of 10 queries per mode.

Prints p50/p95 per mode and size, the ratio of each to the smallest size, the sizes of
the table and its indexes at each size, and, with ``--baseline``, the saved figures of
an earlier run beside this one. It prints figures and asserts nothing; the machine is
shared, so compare ratios more than absolute times.

``--against DIR`` measures the code of another checkout (e.g. ``git worktree add
../before HEAD~1``) side by side with this one: ``--rounds`` rounds, each measuring every
size with both, in alternating order, and the load average before each run; it prints the
median over the rounds of each figure for both.
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

MODES = ("semantic", "keyword", "hybrid")
TABLE = "memories_app_memory"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(url: str, queries: int) -> dict:
    """Runs in a child process: this database only (Django's settings are per process)."""
    os.environ["DATABASE_URL"] = url
    os.environ["MEMORYRELAY_RATE_LIMIT_PER_MINUTE"] = "0"  # unlimited: a benchmark's burst
    import django

    warnings.filterwarnings("ignore", message="No directory at")  # static files: unused here
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIClient
    from scale_load import ACCOUNT, query_texts

    from memoryrelay_site.services import api_key_create

    account = get_user_model().objects.get(username=ACCOUNT)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=account)[1]}")
    texts = query_texts(queries + 10)
    warm, texts = texts[:10], texts[10:]
    result: dict = {"url": url}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM memories_app_memory WHERE account_id = %s",
                       [account.pk])
        result["memories"] = cursor.fetchone()[0]
    for mode in MODES:
        for text in warm:
            client.post("/v1/memories/search", {"query": text, "search_mode": mode},
                        format="json")
        times, found = [], 0
        for text in texts:
            started = time.perf_counter()
            response = client.post("/v1/memories/search",
                                   {"query": text, "search_mode": mode}, format="json")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
            found += bool(response.json()["data"])
        result[mode] = {"p50": statistics.median(times) * 1000,
                        "p95": percentile(times, 0.95) * 1000, "answered": found}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_index i ON "
            "i.indexrelid = c.oid WHERE i.indrelid = %s::regclass ORDER BY 2 DESC", [TABLE])
        result["indexes"] = dict(cursor.fetchall())
        cursor.execute(f"SELECT pg_relation_size('{TABLE}'), "
                       f"pg_total_relation_size('{TABLE}') - pg_indexes_size('{TABLE}')")
        result["heap"], result["heap_and_toast"] = cursor.fetchone()
    return result


def mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size / 1024:,.0f} kB"


def report(results: list[dict], baseline: list[dict] | None) -> None:
    base = results[0]
    before = {r["memories"]: r for r in baseline or []}
    print(f"\n{'mode':<9}{'memories':>10}{'p50 ms':>9}{'p95 ms':>9}{'p50 ×':>8}{'p95 ×':>8}"
          + ("   baseline p50 / p95 (×)" if before else ""))
    for mode in MODES:
        for r in results:
            row = r[mode]
            line = (f"{mode:<9}{r['memories']:>10,}{row['p50']:>9.1f}{row['p95']:>9.1f}"
                    f"{row['p50'] / base[mode]['p50']:>8.2f}{row['p95'] / base[mode]['p95']:>8.2f}")
            old = _nearest(before, r["memories"])
            if old:
                first = _nearest(before, base["memories"])
                line += (f"   {old[mode]['p50']:6.1f} / {old[mode]['p95']:6.1f} "
                         f"({old[mode]['p50'] / first[mode]['p50']:.2f} / "
                         f"{old[mode]['p95'] / first[mode]['p95']:.2f})")
            print(line)
    for r in results:
        print(f"\n{r['memories']:,} memories: heap {mb(r['heap'])}, heap + TOAST "
              f"{mb(r['heap_and_toast'])}; indexes:")
        for name, size in r["indexes"].items():
            print(f"  {name:<45} {mb(size):>10}")


def _nearest(saved: dict, memories: int) -> dict | None:
    for n, row in saved.items():
        if abs(n - memories) <= memories * 0.05:
            return row
    return None


def run_one(root: Path, url: str, queries: int) -> dict:
    """One size measured by the scale_bench.py of checkout ``root`` in a child process."""
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "scale_bench.py"), "--one",
                          url, "--queries", str(queries)], capture_output=True, text=True,
                         check=True, cwd=root)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load": load}


def compare(args, label) -> None:
    """This checkout and ``args.against`` measured alternately, ``args.rounds`` times."""
    roots = {"this": ROOT, "against": Path(args.against).resolve()}
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict = {(name, size): [] for name in roots for size in sizes}
    for n in range(args.rounds):
        order = list(roots) if n % 2 == 0 else list(reversed(roots))
        for size in sizes:
            url = args.url_template.format(label=label(size))
            for name in order:
                result = run_one(roots[name], url, args.queries)
                runs[name, size].append(result)
                figures = "  ".join(f"{mode} {result[mode]['p50']:.1f}/{result[mode]['p95']:.1f}"
                                    for mode in MODES)
                print(f"round {n + 1} {name:<8} {size:>9,}: load {result['load']:.2f}  {figures}",
                      flush=True)
    print(f"\nmedian of {args.rounds} rounds, p50 / p95 ms (× the smallest size); "
          f"this = {ROOT}, against = {roots['against']}")
    print(f"{'mode':<9}{'memories':>10}{'this p50 / p95':>18}{'(×)':>13}"
          f"{'against p50 / p95':>20}{'(×)':>13}")
    for mode in MODES:
        for size in sizes:
            line = f"{mode:<9}{size:>10,}"
            for name in roots:
                p50, p95 = (statistics.median(r[mode][q] for r in runs[name, size])
                            for q in ("p50", "p95"))
                b50, b95 = (statistics.median(r[mode][q] for r in runs[name, sizes[0]])
                            for q in ("p50", "p95"))
                line += f"{p50:>9.1f} /{p95:>7.1f}  ({p50 / b50:.2f} / {p95 / b95:.2f})"
            print(line)
    loads = [r["load"] for rows in runs.values() for r in rows]
    print(f"load average (1 min) before the runs: {min(loads):.2f} to {max(loads):.2f}")
    if args.save:
        Path(args.save).write_text(json.dumps(
            {f"{name} {size}": rows for (name, size), rows in runs.items()}, indent=1) + "\n")
        print(f"saved to {args.save}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--url-template",
                        default="postgres://postgres@127.0.0.1:5432/mr_scale_{label}")
    parser.add_argument("--save", default="")
    parser.add_argument("--baseline", default="")
    parser.add_argument("--against", default="", help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.queries)))
        return
    from scale_load import label

    if args.against:
        compare(args, label)
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        url = args.url_template.format(label=label(size))
        print(f"measuring {url} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--one", url, "--queries",
                              str(args.queries)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    report(results, baseline)
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1) + "\n")
        print(f"\nsaved to {args.save}")


if __name__ == "__main__":
    main()
