"""Entity extraction, measured on the labelled memories (tests/entities_app/data/
entities_labelled.jsonl: short facts, events and decisions of coding and business agents,
each with its gold entities and a ``split``: ``tune`` (rules and thresholds were adjusted
on it), ``test`` (held out: only measured, though written before the gazetteers were),
``blind`` (written after the extractors were frozen; three generic fixes followed its first
run) or ``final`` (written after all changes, never changed for)).

    .venv/bin/python benchmarks/entity_extraction_eval.py [--approach NAME ...] [--errors]

Approaches (``entities_app.extraction.EXTRACTORS``): ``rules`` (gazetteers, code-ish
tokens, capitalised spans typed by shape), ``rules+zeroshot`` (the default: the same, and
the spans the rules cannot type typed by cosine to type prototypes with the local
all-MiniLM-L6-v2) and ``spacy`` (spaCy's small English pipeline, when spaCy and an
``en_core_web_sm`` package are importable; its labels mapped to the entity types).

A predicted entity is right when its name (compared by ``entity_key``: case, spaces and
punctuation aside) and its type equal a gold entity's of the same memory. For each
approach and split it prints precision, recall and F1 per type and over all types, the
untyped name-level figures, and the time per memory. Prints figures, asserts nothing
(tests/entities_app/test_extraction_eval.py holds the precision floor).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from entities_app.names import ENTITY_TYPES, entity_key  # noqa: E402

DATA = ROOT / "tests" / "entities_app" / "data" / "entities_labelled.jsonl"
FLOOR_TYPES = ("person", "organization", "technology")


def load(path: Path = DATA) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(records: list[dict], predictions: list[list[tuple[str, str]]]) -> dict:
    """{type: {tp, fp, fn, precision, recall, f1}} plus "all" (typed) and "names"."""
    counts = {t: Counter() for t in (*ENTITY_TYPES, "all", "names")}
    for record, predicted in zip(records, predictions, strict=True):
        gold = {(entity_key(e["name"]), e["type"]) for e in record["entities"]}
        pred = {(entity_key(name), t) for name, t in predicted}
        for key, t in pred:
            hit = (key, t) in gold
            counts[t]["tp" if hit else "fp"] += 1
            counts["all"]["tp" if hit else "fp"] += 1
        for _key, t in gold - pred:
            counts[t]["fn"] += 1
            counts["all"]["fn"] += 1
        gold_names, pred_names = {k for k, _ in gold}, {k for k, _ in pred}
        counts["names"].update(tp=len(gold_names & pred_names), fp=len(pred_names - gold_names),
                               fn=len(gold_names - pred_names))
    return {t: _ratios(c) for t, c in counts.items()}


def _ratios(c: Counter) -> dict:
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f}


def run(extractor, records: list[dict]) -> tuple[list[list[tuple[str, str]]], float]:
    """Predictions per record, and milliseconds per memory (after one warm-up call)."""
    extractor.extract("Warm-up: Maria Lopez deployed Django at Acme Corp.")
    started = time.perf_counter()
    predictions = [[(m.name, m.entity_type) for m in extractor.extract(r["text"])]
                   for r in records]
    return predictions, (time.perf_counter() - started) * 1000 / max(len(records), 1)


def table(result: dict) -> str:
    fmt = lambda v: "  -  " if v is None else f"{v:5.2f}"  # noqa: E731
    lines = [f"    {'type':<13} {'P':>5} {'R':>5} {'F1':>5}  {'tp':>4} {'fp':>4} {'fn':>4}"]
    for t in (*ENTITY_TYPES, "all", "names"):
        row = result[t]
        if row["tp"] + row["fp"] + row["fn"] == 0:
            continue
        label = {"all": "ALL (typed)", "names": "names only"}.get(t, t)
        lines.append(f"    {label:<13} {fmt(row['precision'])} {fmt(row['recall'])} "
                     f"{fmt(row['f1'])}  {row['tp']:>4} {row['fp']:>4} {row['fn']:>4}")
    return "\n".join(lines)


def errors(records, predictions) -> str:
    out = []
    for record, predicted in zip(records, predictions, strict=True):
        gold = {(entity_key(e["name"]), e["type"]): e["name"] for e in record["entities"]}
        pred = {(entity_key(n), t): n for n, t in predicted}
        fp = [f"{pred[k]}:{k[1]}" for k in pred if k not in gold]
        fn = [f"{gold[k]}:{k[1]}" for k in gold if k not in pred]
        if fp or fn:
            out.append(f"  {record['id']} {record['text'][:70]!r}\n      +{fp}  -{fn}")
    return "\n".join(out)


def main(argv=None) -> None:
    from entities_app.extraction import EXTRACTORS, available, get_extractor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--approach", action="append", choices=sorted(EXTRACTORS))
    parser.add_argument("--errors", action="store_true", help="list each memory's misses")
    args = parser.parse_args(argv)
    records = load()
    splits = {f"{name}{note}": [r for r in records if r["split"] == name]
              for name, note in (("final", " (written last, untouched)"),
                                 ("blind", " (written after freezing)"),
                                 ("test", " (held out)"), ("tune", ""))}
    splits["all"] = records
    print(f"{len(records)} labelled memories, "
          f"{sum(len(r['entities']) for r in records)} gold entities: "
          + ", ".join(f"{label.split()[0]} {len(rs)}" for label, rs in splits.items()))
    for name in args.approach or sorted(EXTRACTORS):
        if not available(name):
            print(f"\n== {name}: not installed here, skipped")
            continue
        extractor = get_extractor(name)
        predictions, ms = run(extractor, records)
        by_id = dict(zip((r["id"] for r in records), predictions, strict=True))
        print(f"\n== {name} ({extractor.method}{', ' + extractor.model if extractor.model else ''})"
              f": {ms:.2f} ms per memory (one process, shared noisy machine)")
        for label, subset in splits.items():
            result = score(subset, [by_id[r["id"]] for r in subset])
            floor = ", ".join(f"{t} {result[t]['precision'] or 0:.2f}" for t in FLOOR_TYPES)
            print(f"  -- {label}: precision {floor}\n{table(result)}")
        if args.errors:
            print(errors(records, predictions))


if __name__ == "__main__":
    main()
