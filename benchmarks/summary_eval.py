"""Summary quality on a labelled set of sessions (benchmarks/data/summary_eval.json).

    .venv/bin/python benchmarks/summary_eval.py [--summarizer path/to/summarizer.py] [--no-vectors]

Each memory of each session is labelled ``key`` (a point the summary must keep),
``routine`` (bookkeeping it should drop) or neither. For every session the extractive
summarizer (``sessions_app/summarizer.py``, or the file given, e.g. an older version) writes
its summary with the default budget; the script reports:

* key-point recall: the share of key memories whose text is in the summary;
* routine share: the share of the summary's characters that come from routine memories;
* the summary's length and the number of memories it keeps.

The memories are embedded with the local all-MiniLM-L6-v2 when it is installed (what the
server stores with each memory and hands to the summarizer), unless ``--no-vectors``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")


def load_summarizer(path: str | None):
    if path is None:
        from sessions_app import summarizer
        return summarizer
    spec = importlib.util.spec_from_file_location("summarizer_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def embedder(enabled: bool):
    if not enabled:
        return None
    try:
        from memories_app.minilm import MiniLMEncoder
        encoder = MiniLMEncoder()
    except Exception:  # noqa: BLE001 - the model is optional here
        return None
    return lambda texts: list(encoder.encode(texts))


def normalised(text: str) -> str:
    return " ".join(text.split()).rstrip(".!?…").casefold()


def evaluate(module, sessions, embed) -> dict:
    takes_vectors = "vector" in inspect.signature(module.SummaryItem).parameters
    start = datetime(2026, 3, 17, 9, tzinfo=UTC)
    key_total = key_kept = routine_chars = summary_chars = kept_total = 0
    rows = []
    for session in sessions:
        memories = session["memories"]
        vectors = embed([m["content"] for m in memories]) if embed and takes_vectors else None
        items = []
        for n, memory in enumerate(memories):
            extra = {"vector": vectors[n]} if vectors is not None else {}
            items.append(module.SummaryItem(
                id=f"{n:04d}", content=memory["content"],
                created_at=start + timedelta(minutes=7 * n),
                importance=memory["importance"], memory_type=memory["memory_type"], **extra))
        summary = module.summarize(items)
        text = normalised(summary)
        kept = [m for m in memories if normalised(m["content"]) in text]
        keys = [m for m in memories if m["label"] == "key"]
        key_hits = [m for m in keys if m in kept]
        routine = sum(len(m["content"]) for m in kept if m["label"] == "routine")
        key_total += len(keys)
        key_kept += len(key_hits)
        routine_chars += routine
        summary_chars += len(summary)
        kept_total += len(kept)
        rows.append((session["title"], len(memories), len(kept), len(key_hits), len(keys),
                     routine / max(1, len(summary)), len(summary)))
    return {"rows": rows, "recall": key_kept / key_total, "routine": routine_chars / summary_chars,
            "kept": kept_total / len(sessions), "chars": summary_chars / len(sessions),
            "vectors": bool(embed) and takes_vectors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--summarizer", help="a summarizer module file (default: the app's)")
    parser.add_argument("--no-vectors", action="store_true", help="summarize without embeddings")
    args = parser.parse_args()
    data = json.loads((ROOT / "benchmarks/data/summary_eval.json").read_text())
    module = load_summarizer(args.summarizer)
    result = evaluate(module, data["sessions"], embedder(not args.no_vectors))
    print(f"{'session':42} {'memories':>8} {'kept':>5} {'keys':>7} {'routine':>8} {'chars':>6}")
    for title, total, kept, hits, keys, routine, chars in result["rows"]:
        print(f"{title[:42]:42} {total:8d} {kept:5d} {hits:3d}/{keys:<3d} {routine:8.0%} "
              f"{chars:6d}")
    print(f"\n{len(result['rows'])} sessions, vectors: {'yes' if result['vectors'] else 'no'}")
    print(f"key-point recall {result['recall']:.0%}, routine share of summary text "
          f"{result['routine']:.0%}, {result['kept']:.1f} memories and "
          f"{result['chars']:.0f} characters a summary")


if __name__ == "__main__":
    main()
