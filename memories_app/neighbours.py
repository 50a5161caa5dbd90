"""Conversation context in ranking: a memory of a session is read with the one before it.

Memories written one after another in a session are often a conversation, and the memory
that answers a question is often a reply that means little alone: "Seven years now, and
I've finally found my muses" answers "How long has Melanie been practicing art?" only
after "How long have you been painting?". So, for every candidate of a search that belongs
to a session:

* its semantic score is the cosine of the query with its vector in context: its own
  embedding plus ``CONTEXT_WEIGHT`` times the embedding of the live memory written just
  before it in the same session (visible to the same caller), renormalised; computed from
  the stored vectors, so writes are unchanged and a memory without a predecessor keeps its
  own cosine;
* its keyword score is at least ``KEYWORD_CARRY`` times its predecessor's (the words of a
  question carry a little to its answer);
* the memory written just after each candidate joins the candidates, so a reply with no
  word and little meaning in common with the query can still be found through what it
  answers.

Scores stay in [0, 1] and keep their meaning (a cosine, a matched share). Weights measured
on LoCoMo (benchmarks/locomo_bench.py), tuned on conversations 0-4 and checked on 5-9;
memories outside sessions, the usual case of stored facts, are ranked as before. Costs up
to three statements, only when a candidate belongs to a session.
"""

from __future__ import annotations

import math

import numpy as np
from django.db.models import Case, OuterRef, Subquery, When

from . import vectors

CONTEXT_WEIGHT = 0.5
KEYWORD_CARRY = 0.3


def add_context(queryset, hits: dict, vector: np.ndarray | None, keyword: dict, make_hit,
                leaders: list) -> None:
    """Rescores ``hits`` ({pk: Hit}) in the context of their sessions and adds the memories
    that follow the ``leaders`` (the best candidates so far; a follower of a weak candidate
    seldom makes the first results). ``make_hit(row)`` builds a Hit; ``keyword``: {pk:
    keyword score} of every memory the keyword lookups matched. At most three statements:
    the neighbours' ids, the followers' rows, the cosines the context needs."""
    if not _has_sessions(queryset.model):
        return
    in_session = [pk for pk, hit in hits.items() if getattr(hit.item, "session_id", None)]
    if not in_session:
        return
    scoped = queryset.order_by()
    same = scoped.filter(session_id=OuterRef("session_id"))
    before = (same.filter(created_at__lt=OuterRef("created_at"))
              .order_by("-created_at", "-pk").values("pk")[:1])
    after = (same.filter(created_at__gt=OuterRef("created_at"))
             .order_by("created_at", "pk").values("pk")[:1])
    leading = set(leaders)
    links = list(scoped.filter(pk__in=in_session).annotate(
        _before=Subquery(before),
        _after=Case(When(pk__in=list(leading), then=Subquery(after)), default=None,
                    output_field=queryset.model._meta.pk.__class__()),
    ).values_list("pk", "_before", "_after"))
    previous = {pk: prev for pk, prev, _ in links if prev is not None}
    follows = {nxt: pk for pk, _, nxt in links
               if pk in leading and nxt is not None and nxt not in hits}
    if follows:
        for row in scoped.filter(pk__in=list(follows)).defer("embedding"):
            hits[row.pk] = make_hit(row)
            hits[row.pk].keyword = keyword.get(row.pk, 0.0)
            previous[row.pk] = follows[row.pk]  # the candidate it follows comes before it
    # Every key of ``previous`` is a hit: a candidate, or a follower just added.
    for pk, prev in previous.items():
        hits[pk].keyword = max(hits[pk].keyword, KEYWORD_CARRY * keyword.get(prev, 0.0))
    if vector is None or not previous:
        return
    a = CONTEXT_WEIGHT
    cosines = vectors.pair_cosines(queryset, list(previous.items()), vector)
    for pk, (own, before_cos, between) in cosines.items():
        # the cosine of the query with (e + a p), e and p taken as unit vectors
        norm = math.sqrt(max(1e-12, 1 + a * a + 2 * a * between))
        hits[pk].semantic = max(0.0, (own + a * before_cos) / norm)


def _has_sessions(model) -> bool:
    return any(f.name == "session" for f in model._meta.concrete_fields)
