"""Conversation context in ranking: a memory of a session is read with the ones around it.

Memories written one after another in a session are often a conversation, and the memory
that answers a question is often a reply that means little alone: "Seven years now, and
I've finally found my muses" answers "How long has Melanie been practicing art?" only
after "How long have you been painting?", and "We even won a trophy!" answers "What did
John's team win?" two turns after "It was an intense season". So, for the candidates of a
search that belong to a session:

* a candidate's semantic score is the cosine of the query with its vector in context: its
  own embedding plus ``CONTEXT_WEIGHT`` times the embedding of the live memory written just
  before it in the same session (visible to the same caller), renormalised; computed from
  the stored vectors, so writes are unchanged and a memory without a predecessor keeps its
  own cosine;
* its keyword score is at least ``KEYWORD_CARRY`` times its predecessor's (the words of a
  question carry a little to its answer);
* the memories within ``WINDOW`` places of each of the best candidates (the leaders), on
  either side in the same session, join the candidates;
* then (:func:`lift`) a leader and the memories of its window lift each other: each score
  ``s`` becomes ``1 - (1 - s)(1 - LIFT * best)``, ``best`` the highest score among the others
  (a memory next to one that answers well, in the same conversation, likely belongs to the
  answer);
* last (:func:`diversify`), a memory written just before or after one ranked above it in
  the same session keeps ``NOVELTY`` of its score for each such neighbour: once a turn of a
  conversation is in the results, the turn beside it adds less that is new than a turn
  from elsewhere (the lift would otherwise fill the first results with a run of
  consecutive turns).

Scores stay in [0, 1] and keep their meaning. Weights measured on LoCoMo
(benchmarks/locomo_bench.py), tuned on conversations 0-4 and checked on 5-9; memories
outside sessions, the usual case of stored facts, are ranked as before. Costs up to three
statements, only when a candidate belongs to a session.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import NamedTuple

import numpy as np
from django.db.models import Case, OuterRef, Subquery, When

from . import vectors

CONTEXT_WEIGHT = 0.5
KEYWORD_CARRY = 0.3
WINDOW = 2  # places on each side of a leader
LIFT = 0.5
NOVELTY = 0.93


class Context(NamedTuple):
    """What :func:`add_context` learnt of the candidates' sessions."""

    windows: dict  # {leader pk: [pks of its window]}, for lift
    previous: dict  # {pk: the pk of the memory just before it in its session}, for diversify


NONE = Context({}, {})


def add_context(queryset, hits: dict, vector: np.ndarray | None, keyword: dict, make_hit,
                leaders: list) -> Context:
    """Rescores ``hits`` ({pk: Hit}) in the context of their sessions and adds the memories
    around the ``leaders`` (the best candidates so far: the window of a weak candidate seldom
    makes the first results). ``make_hit(row)`` builds a Hit; ``keyword``: {pk: keyword
    score} of every memory the keyword lookups matched. Answers the leaders' windows, for
    :func:`lift`, and each candidate's predecessor, for :func:`diversify`. At most three
    statements: the neighbours' ids, the new rows, the cosines the context needs."""
    if not _has_sessions(queryset.model):
        return NONE
    in_session = [pk for pk, hit in hits.items() if getattr(hit.item, "session_id", None)]
    if not in_session:
        return NONE
    scoped = queryset.order_by()
    same = scoped.filter(session_id=OuterRef("session_id"))
    before = (same.filter(created_at__lt=OuterRef("created_at"))
              .order_by("-created_at", "-pk").values("pk"))
    after = (same.filter(created_at__gt=OuterRef("created_at"))
             .order_by("created_at", "pk").values("pk"))
    leading = [pk for pk in leaders if getattr(hits[pk].item, "session_id", None)]
    pk_field = queryset.model._meta.pk.__class__

    def for_leaders(subquery):
        return Case(When(pk__in=leading, then=Subquery(subquery)), default=None,
                    output_field=pk_field())

    # _b1 is every candidate's predecessor; a leader's window also needs the WINDOW after
    # it and WINDOW + 1 before it (the farthest one is the predecessor of the one after it).
    steps = {"_b1": Subquery(before[:1])}
    if leading:
        steps |= {f"_b{d}": for_leaders(before[d - 1:d]) for d in range(2, WINDOW + 2)}
        steps |= {f"_a{d}": for_leaders(after[d - 1:d]) for d in range(1, WINDOW + 1)}
    names = list(steps)
    rows = scoped.filter(pk__in=in_session).annotate(**steps).values_list("pk", *names)
    previous, windows = {}, {}
    for pk, *found in rows:
        near = dict(zip(names, found, strict=True))
        if near["_b1"] is not None:
            previous[pk] = near["_b1"]
        if pk not in leading:
            continue
        # the session in order around the leader: b_{W+1} .. b_1, pk, a_1 .. a_W
        line = [near[f"_b{d}"] for d in range(WINDOW + 1, 0, -1)] + [pk]
        line += [near[f"_a{d}"] for d in range(1, WINDOW + 1)]
        for earlier, later in itertools.pairwise(line):
            if earlier is not None and later is not None:
                previous.setdefault(later, earlier)
        windows[pk] = [m for m in line[1:] if m is not None and m != pk]
    new = {m for members in windows.values() for m in members} - hits.keys()
    if new:
        for row in scoped.filter(pk__in=list(new)).defer("embedding"):
            hits[row.pk] = make_hit(row)
            hits[row.pk].keyword = keyword.get(row.pk, 0.0)
    # the window ids came from the same scoped rows; one deleted since is left out
    windows = {pk: [m for m in members if m in hits] for pk, members in windows.items()}
    previous = {pk: prev for pk, prev in previous.items() if pk in hits}
    for pk, prev in previous.items():
        hits[pk].keyword = max(hits[pk].keyword, KEYWORD_CARRY * keyword.get(prev, 0.0))
    context = Context(windows, previous)
    if vector is None or not previous:
        return context
    a = CONTEXT_WEIGHT
    cosines = vectors.pair_cosines(queryset, list(previous.items()), vector)
    for pk, (own, before_cos, between) in cosines.items():
        # the cosine of the query with (e + a p), e and p taken as unit vectors
        norm = math.sqrt(max(1e-12, 1 + a * a + 2 * a * between))
        hits[pk].semantic = max(0.0, (own + a * before_cos) / norm)
    return context


def lift(hits: dict, windows: dict) -> None:
    """A leader and the memories of its window (from :func:`add_context`) lift each other's
    final ``score`` (see the module's docstring); read from the scores before any lift."""
    best: dict = {}
    for leader, members in windows.items():
        for pk in members:
            best[pk] = max(best.get(pk, 0.0), hits[leader].score)
            best[leader] = max(best.get(leader, 0.0), hits[pk].score)
    for pk, other in best.items():
        hits[pk].score = 1.0 - (1.0 - hits[pk].score) * (1.0 - LIFT * other)


def _has_sessions(model) -> bool:
    return any(f.name == "session" for f in model._meta.concrete_fields)


def diversify(ranked: list, previous: dict, order) -> list:
    """``ranked`` (Hits, best first by ``order``) again, a memory written just before or
    after one ranked above it in the same session (``previous`` from :func:`add_context`)
    keeping ``NOVELTY`` of its score for each such neighbour (so at least ``NOVELTY`` squared
    of it). Greedy: the best score left, as weighed by the hits already placed, comes next,
    so the scores still go down the list. Memories outside sessions are untouched."""
    near: dict = {}
    for pk, prev in previous.items():
        near.setdefault(pk, set()).add(prev)
        near.setdefault(prev, set()).add(pk)
    if not near:
        return ranked
    base = {hit.item.pk: hit.score for hit in ranked}
    # (order, position, neighbours placed when it was weighed): the position breaks ties
    # between equal keys, so hits are never compared
    heap = [(order(hit), n, 0) for n, hit in enumerate(ranked)]
    placed: set = set()
    out = []
    while heap:
        _, n, counted = heapq.heappop(heap)
        hit = ranked[n]
        beside = len(near.get(hit.item.pk, set()) & placed)
        if beside != counted:  # a neighbour was placed since: weigh it again
            hit.score = base[hit.item.pk] * NOVELTY ** beside
            heapq.heappush(heap, (order(hit), n, beside))
            continue
        placed.add(hit.item.pk)
        out.append(hit)
    return out
