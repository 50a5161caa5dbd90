"""Fits the local model's query adapter (memories_app/query_adapter.py) on LoCoMo.

    .venv/bin/python benchmarks/locomo_adapter.py --data locomo10.zip            # report only
    .venv/bin/python benchmarks/locomo_adapter.py --data locomo10.zip \\
        --out memories_app/query_adapter.npz                                      # the shipped one

Each turn is embedded as ``locomo_bench.py`` stores it (``[8 May, 2023] Caroline: text``)
and read as a search reads it, in context: its vector plus ``CONTEXT_WEIGHT`` times the one
before it in the same session (memories_app/neighbours.py). Each question is read as a
search reads it: when it names one of the two speakers alone, the mean of its embedding as
asked and with the name as "they". The adapter is fitted on ``--fit`` (conversations 0-4)
so that each question's answering turns rank high among all the turns of its conversation;
the script prints semantic recall@5/10 of those cosines, unadapted and adapted, on the
conversations fitted and on ``--check`` (5-9), which it never saw. Ranking through the whole
server is measured by ``locomo_bench.py``. The data comes from snap-research/locomo
(``data/locomo10.zip``) and is never committed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import locomo_bench as lb  # noqa: E402


def groups_of(conversations, provider, log=print):
    """One query_adapter.Group per conversation, read as a search reads it."""
    from memories_app import neighbours, search
    from memories_app.query_adapter import Group

    groups = []
    for conversation in conversations:
        turns = conversation.turns
        vectors = provider.embed([t.content for t in turns])
        sessions = [lb._DIA.match(t.dia_id).group(1) for t in turns]
        context = vectors.copy()
        for i in range(1, len(turns)):
            if sessions[i] == sessions[i - 1]:
                mixed = vectors[i] + neighbours.CONTEXT_WEIGHT * vectors[i - 1]
                context[i] = mixed / np.linalg.norm(mixed)
        texts = [q.text for q in conversation.questions]
        queries = provider.embed(texts)
        speakers = sorted({t.speaker for t in turns})
        plain = {}  # {question: its text with the one speaker it names as "they"}
        for i, text in enumerate(texts):
            named = [found for s in speakers if (found := search.named_as(text.lower(), s))]
            if len(named) == 1:
                plain[i] = search.without_name(text, named[0][2])
        if plain:
            for i, other in zip(plain, provider.embed(list(plain.values())), strict=True):
                mixed = queries[i] + other
                queries[i] = mixed / np.linalg.norm(mixed)
        where = {t.dia_id: n for n, t in enumerate(turns)}
        answers = [sorted(where[d] for d in q.evidence) for q in conversation.questions]
        groups.append(Group(queries, context, answers))
        log(f"  {conversation.sample_id}: {len(turns)} turns, {len(texts)} questions")
    return groups


def recall(groups, adapter=None, ks=(5, 10)) -> dict[int, float]:
    """Semantic recall@k: the share of questions with an answering turn among the k nearest."""
    found = dict.fromkeys(ks, 0)
    count = 0
    for group in groups:
        queries = adapter.apply(group.queries) if adapter else group.queries
        order = np.argsort(-(queries @ group.memories.T), axis=1)
        for i, rows in enumerate(group.answers):
            for k in ks:
                found[k] += bool(set(order[i, :k].tolist()) & set(rows))
        count += len(group.answers)
    return {k: found[k] / max(1, count) for k in ks}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="locomo10.json or .zip")
    parser.add_argument("--fit", default="0-4", help="conversations fitted on (positions)")
    parser.add_argument("--check", default="5-9", help="conversations checked on")
    parser.add_argument("--out", type=Path, help="write the adapter here")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lam", type=float, default=0.1, help="weight of the correction's size")
    parser.add_argument("--tau", type=float, default=0.05, help="softmax temperature")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
    import django

    django.setup()
    from memories_app import query_adapter
    from memories_app.embeddings import LocalMiniLM, local_model_installed

    if not local_model_installed():
        print("the local model is not installed (make venv)", file=sys.stderr)
        return 2
    provider = LocalMiniLM()
    conversations = lb.load(args.data)
    fitted = lb.pick(conversations, args.fit)
    checked = lb.pick(conversations, args.check) if args.check else []
    print(f"fitting on {args.fit}:")
    fit_groups = groups_of(fitted, provider)
    print(f"checking on {args.check}:")
    check_groups = groups_of(checked, provider)
    names = ", ".join(c.sample_id for c in fitted)
    adapter = query_adapter.fit(
        fit_groups, model=provider.name, rank=args.rank, lam=args.lam, tau=args.tau,
        epochs=args.epochs, rate=args.rate, seed=args.seed, log=print,
        fitted_on=f"LoCoMo {names}: rank {args.rank}, lam {args.lam}, tau {args.tau}, "
                  f"{args.epochs} epochs")
    for label, groups in ((f"fitted {args.fit}", fit_groups), (f"checked {args.check}",
                                                                 check_groups)):
        if groups:
            before, after = recall(groups), recall(groups, adapter)
            print(f"semantic, {label}: R@5 {before[5]:.3f} -> {after[5]:.3f}, "
                  f"R@10 {before[10]:.3f} -> {after[10]:.3f}")
    print(f"size of the correction: {np.linalg.norm(adapter.u @ adapter.v.T):.3f}")
    if args.out:
        adapter.save(args.out)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

