"""Retrieval evaluation: recall@5 and MRR of each search mode on a labelled set.

    .venv/bin/python benchmarks/retrieval_eval.py            # a throwaway SQLite database
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/retrieval_eval.py

The set (benchmarks/data/retrieval_eval.json) has paraphrase queries, where keywords fail,
and exact-token queries (ids, error codes, names) whose answers have near-identical
distractors, where meaning alone fails. Hybrid must beat both single modes; the script
exits non-zero when it does not.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "retrieval_eval.json"
K = 5


def load_set() -> dict:
    return json.loads(DATA.read_text())


def store(account, memories: dict[str, str]) -> dict:
    """Stores the labelled memories through the service; returns {memory id: key}."""
    from memories_app.services import memories_batch_create

    items = [{"content": text, "agent_ref": "eval-agent"} for text in memories.values()]
    outcomes = memories_batch_create(account=account, items=items)
    return {str(o.memory.pk): key for o, key in zip(outcomes, memories, strict=True)}


def evaluate(account, labels: dict, queries: list[dict]) -> dict[str, dict[str, float]]:
    """recall@5 and MRR per mode (and per query kind) over ``queries``."""
    from memories_app import search
    from memories_app.models import Memory

    queryset = Memory.objects.live().for_account(account)
    results = {}
    for mode in search.MODES:
        ranks = []
        for q in queries:
            hits = search.run(queryset, search.Query(text=q["query"], mode=mode, limit=20))
            keys = [labels[str(h.memory.pk)] for h in hits]
            ranks.append((q["kind"], keys.index(q["answer"]) + 1 if q["answer"] in keys else None))
        results[mode] = summarise(ranks)
    return results


def summarise(ranks: list[tuple[str, int | None]]) -> dict[str, float]:
    def stats(rows):
        recall = sum(1 for _, r in rows if r and r <= K) / len(rows)
        mrr = sum(1 / r for _, r in rows if r) / len(rows)
        return recall, mrr

    out = {}
    for kind in ("all", "paraphrase", "exact"):
        rows = [x for x in ranks if kind == "all" or x[0] == kind]
        out[f"{kind}_recall"], out[f"{kind}_mrr"] = stats(rows)
    return out


def hybrid_wins(results: dict) -> bool:
    hybrid = results["hybrid"]
    return all(
        hybrid["all_recall"] >= results[mode]["all_recall"]
        and hybrid["all_mrr"] > results[mode]["all_mrr"]
        for mode in ("semantic", "keyword")
    )


def print_table(results: dict) -> None:
    print(f"{'mode':<10}{'recall@5':>10}{'MRR':>8}   {'paraphrase R@5/MRR':>20}   "
          f"{'exact R@5/MRR':>16}")
    for mode, r in results.items():
        print(f"{mode:<10}{r['all_recall']:>10.3f}{r['all_mrr']:>8.3f}   "
              f"{r['paraphrase_recall']:>11.3f} / {r['paraphrase_mrr']:.3f}   "
              f"{r['exact_recall']:>8.3f} / {r['exact_mrr']:.3f}")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    if "DATABASE_URL" not in os.environ:
        os.environ["MEMORYRELAY_SQLITE_PATH"] = os.path.join(tempfile.mkdtemp(), "eval.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from memories_app.embeddings import get_provider

    call_command("migrate", verbosity=0)
    account, _ = get_user_model().objects.get_or_create(username="retrieval-eval")
    account.memories.all().delete()
    data = load_set()
    labels = store(account, data["memories"])
    print(f"embeddings: {get_provider().describe()}; {len(labels)} memories, "
          f"{len(data['queries'])} queries")
    results = evaluate(account, labels, data["queries"])
    print_table(results)
    ok = hybrid_wins(results)
    print("hybrid beats both single modes" if ok else "HYBRID DOES NOT BEAT BOTH MODES")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
