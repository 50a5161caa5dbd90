"""Retrieval evaluation of decisions/check and patterns/search: recall@5 and MRR of each
search mode on a small labelled set (benchmarks/data/knowledge_eval.json).

    .venv/bin/python benchmarks/knowledge_eval.py            # a throwaway SQLite database
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/knowledge_eval.py

Same measures as benchmarks/retrieval_eval.py (memories); hybrid must beat both single
modes for both kinds, and the script exits non-zero when it does not.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "knowledge_eval.json"
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval_eval import hybrid_wins, print_table, summarise  # noqa: E402


def load_set() -> dict:
    return json.loads(DATA.read_text())


def store(account, data: dict) -> dict:
    """Records the labelled decisions and patterns through the services; {id: key}."""
    from knowledge_app.services import decision_record, pattern_create

    labels = {}
    for key, (title, rationale) in data["decisions"].items():
        labels[str(decision_record(account=account, title=title, rationale=rationale).pk)] = key
    for key, (title, description) in data["patterns"].items():
        labels[str(pattern_create(account=account, title=title, description=description).pk)] = key
    return labels


def evaluate(account, labels: dict, data: dict) -> dict[str, dict[str, dict[str, float]]]:
    """{"decisions"|"patterns": {mode: recall@5 and MRR, per query kind}}."""
    from knowledge_app.services import decision_check, pattern_search
    from memories_app import search

    runs = {"decisions": (decision_check, data["decision_queries"]),
            "patterns": (pattern_search, data["pattern_queries"])}
    results: dict = {}
    for kind, (service, queries) in runs.items():
        results[kind] = {}
        for mode in search.MODES:
            ranks = []
            for q in queries:
                hits = service(account=account, text=q["query"], limit=20, threshold=0.0,
                               mode=mode)
                keys = [labels[str(h.item.pk)] for h in hits]
                rank = keys.index(q["answer"]) + 1 if q["answer"] in keys else None
                ranks.append((q["kind"], rank))
            results[kind][mode] = summarise(ranks)
    return results


def main() -> int:
    sys.path.insert(0, str(ROOT))
    if "DATABASE_URL" not in os.environ:
        os.environ["MEMORYRELAY_SQLITE_PATH"] = os.path.join(tempfile.mkdtemp(), "eval.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    account, _ = get_user_model().objects.get_or_create(username="knowledge-eval")
    account.decisions.all().delete()
    account.patterns.all().delete()
    data = load_set()
    results = evaluate(account, store(account, data), data)
    ok = True
    for kind, table in results.items():
        print(kind)
        print_table(table)
        ok = ok and hybrid_wins(table)
    print("hybrid beats both single modes" if ok else "HYBRID DOES NOT BEAT BOTH MODES")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
