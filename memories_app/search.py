"""Memory retrieval: semantic (vectors), keyword (full-text) and hybrid.

Every mode scores a memory in [0, 1] with one meaning, "how well this memory answers the
query", so a ``min_score`` cutoff means the same in every mode:

* semantic: the cosine similarity of the query's and the memory's embeddings, floored at 0
  (the local model's query read through its adapter: :mod:`.query_adapter`);
* keyword: the share of the query's information the memory contains (the IDF-weighted
  fraction of query terms, words, ids and error codes, that it matches in the full-text
  index, each in any of its forms: :mod:`.wordforms`), squared when it is weak evidence
  (a partial match of a query of three terms or fewer, or one word in common with a
  longer question: matching half of them scores 0.25), as is when a memory matches two or
  more words of a longer question (half scores 0.5): see :func:`coverage_power`;
* hybrid: the probabilistic OR of both, ``1 - (1 - semantic) * (1 - keyword)``: a memory
  found only by an exact token still scores high, one found only by meaning keeps its
  cosine, and one found by both ranks above either.

Then, in every mode, readings of what the query asks about and where a memory was written:
memories of a session are read with the ones around them, and (but by keywords alone) weigh
a little less beside one ranked above them (:mod:`.neighbours`); when the hits
come from several agents and the query names one of them, the others' memories weigh less,
the query's meaning is also read without the name, and names are no keyword terms
(:func:`named_author`); when the query names a date or asks when, memories from another
time, or that do not say when, weigh less (:mod:`.periods`); and a memory that asks rather
than tells weighs less (:func:`_weight`). All keep scores in [0, 1]. Optionally, when a
search endpoint asks for it (``Query.judged``) and an LLM is configured, the LLM judges the
first hits of a hybrid search (:mod:`.rerank`; off by default).

Candidates come from the database's own indexes (pgvector HNSW and a GIN tsvector on
PostgreSQL; exact vector scoring and FTS5 on SQLite), always from the caller's scoped
queryset: only the account's live memories are ever candidates.
"""

from __future__ import annotations

import math
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from django.db import connection, transaction

from . import neighbours, periods, rerank, vectors
from .embeddings import EmbeddingError, get_provider, provider_failed

MODES = ("hybrid", "semantic", "keyword")
# Matches read per query term (any 200); also the IDF scale. It bounds a term's cost: at
# 1M memories each match read is a heap page (benchmarks/scale_bench.py); 1,000 before.
TERM_MATCH_CAP = 200
MAX_TERMS = 12
SCORE_DIGITS = 6  # decimals of a score in a response (see shown)
AUTHOR_WEIGHT = 0.7  # see named_author
ASKING_WEIGHT = 0.85  # see _weight
TEXT_READ = 2_000  # characters of a candidate _weight reads: bounds its cost per candidate
SHORT_QUERY_TERMS = 3  # a partial match of this many informative terms or fewer is squared
_TOKEN = re.compile(r"[\w][\w.:/@#+-]*[\w]|[\w]", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be but by did do does for from had has have how i if in into is it "
    "its me my no not of on or our so than that the their them then there these they this "
    "to was we were what when where which who why will with you your about after again all "
    "any can could should would been being over under up down out just also very "
    "he she him his her hers himself herself".split()  # as in PostgreSQL's english list
)


class SearchUnavailable(Exception):
    """The mode needs embeddings and the server has no working provider."""


@dataclass
class Hit:
    item: Any  # the row found: a Memory, a Decision, a Pattern
    semantic: float = 0.0
    keyword: float = 0.0
    score: float = 0.0

    @property
    def memory(self):
        return self.item


@dataclass(frozen=True)
class Query:
    text: str
    mode: str = "hybrid"
    limit: int = 10
    min_score: float = 0.0
    candidates: int = field(default=0)
    judged: bool = False  # an LLM may judge the first hits, when one is configured (rerank)

    @property
    def pool(self) -> int:
        return self.candidates or max(50, self.limit * 5)


def query_terms(text: str) -> list[str]:
    """The distinct informative tokens of the query, in order (ids and codes kept whole)."""
    seen: dict[str, None] = {}
    for token in _TOKEN.findall(text.lower()):
        token = token.strip(".:/@#+-")
        if len(token) > 1 and token not in STOPWORDS:
            seen.setdefault(token, None)
    return list(seen)[:MAX_TERMS]


def read_snapshot():
    """PostgreSQL: one read transaction, so the vector search's ``SET LOCAL`` tuning covers
    its query (a read takes no lock there). SQLite: none, so a read never takes the write
    lock."""
    return transaction.atomic() if connection.vendor == "postgresql" else nullcontext()


def embed_query(text: str, mode: str = "hybrid") -> np.ndarray | None:
    """The query's embedding, computed once for several :func:`run` calls (None in keyword
    mode or without a provider; SearchUnavailable when semantic mode cannot have one)."""
    return None if mode == "keyword" else _query_vector(Query(text=text, mode=mode))


def run(queryset, query: Query, vector: np.ndarray | None = None) -> list[Hit]:
    """Scores and ranks the rows of ``queryset`` for ``query`` (``vector``: the query's
    embedding when the caller already has it). The database is read in one
    :func:`read_snapshot`; an LLM judges the first hits after it (``query.judged``, when one
    is configured: :mod:`.rerank`), so no transaction waits on the LLM."""
    if query.mode == "keyword":
        vector = None
    elif vector is None:
        vector = _query_vector(query)
    with read_snapshot():
        ranked = _ranked(queryset, query, vector)
    if query.judged and query.mode == "hybrid":
        ranked = rerank.rerank(query.text, ranked, query.limit, _order)
    return [h for h in ranked if shown(h.score) >= query.min_score][: query.limit]


def shown(score: float) -> float:
    """A score as the API shows it, to ``SCORE_DIGITS`` decimals. ``min_score`` is compared
    with the shown score, so a client that passes a hit's score back gets that hit."""
    return round(score, SCORE_DIGITS)


def _ranked(queryset, query: Query, vector: np.ndarray | None) -> list[Hit]:
    """Every candidate with a score above 0, best first."""
    hits: dict = {}
    if vector is not None:
        for row, cosine in vectors.nearest(queryset, vector, query.pool):
            hits[row.pk] = Hit(row, semantic=max(0.0, cosine))
    lookup = (_add_keyword_matches(queryset, query, hits, vector) if query.mode != "semantic"
              else None)
    named = named_author(queryset.model, hits, query.text)
    # the authors' names are read by the weights, not as words: "Caroline" is in every
    # memory that talks to Caroline, seldom in hers
    keyword = lookup.keyword(skip=named.forms if named else frozenset()) if lookup else {}
    for pk, hit in hits.items():
        hit.keyword = keyword.get(pk, 0.0)
    if named and named.alone and vector is not None:
        vector = _without_name(query.text, named.form, vector)
        for pk, cosine in vectors.cosines(queryset, list(hits), vector).items():
            hits[pk].semantic = max(0.0, cosine)
    leaders = sorted(hits, key=lambda pk: -_fuse(hits[pk], query.mode))[: max(10, query.limit)]
    context = neighbours.add_context(queryset, hits, vector, keyword, Hit, leaders)
    period, when = periods.asked_period(query.text), periods.asks_when(query.text)
    for hit in hits.values():
        hit.score = _fuse(hit, query.mode) * _weight(hit.item, named, period, when)
    neighbours.lift(hits, context.windows)
    ranked = sorted((h for h in hits.values() if h.score > 0), key=_order)
    if query.mode == "keyword":  # words alone: the turn beside a hit shares its topic
        return ranked
    return neighbours.diversify(ranked, context.previous, _order)


def _order(hit: Hit) -> tuple:
    """Best first; among equal scores the newest, then by id."""
    return -hit.score, -hit.item.created_at.timestamp(), str(hit.item.pk)


def _query_vector(query: Query) -> np.ndarray | None:
    provider = get_provider()
    if not provider.available:
        if query.mode == "semantic":
            raise SearchUnavailable("semantic search needs an embedding provider")
        return None
    try:
        return provider.embed_queries([query.text])[0]
    except EmbeddingError as exc:
        if query.mode == "semantic":  # a 503 to come back after (hybrid goes on by keywords)
            raise provider_failed("semantic search", exc) from None
        return None


@dataclass
class KeywordMatches:
    """What one keyword lookup found: each query term's matches (up to TERM_MATCH_CAP),
    and the memories matching every term when a list stopped at the cap."""

    matches: dict  # {term: [pk, ...]}
    every: list

    def kept(self, skip=frozenset()) -> dict:
        """The terms' matches, the terms in ``skip`` left out (unless nothing else is left)."""
        return {t: ids for t, ids in self.matches.items() if t not in skip} or self.matches

    def scores(self, skip=frozenset()) -> tuple[dict, dict]:
        """({pk: share of the query's information matched}, {pk: terms matched}) over the
        terms :meth:`kept`."""
        matches = self.kept(skip)
        weights = {term: math.log(1 + TERM_MATCH_CAP / max(1, len(ids))) for term, ids in
                   matches.items()}
        total = sum(weights.values())
        scores: dict = {}
        matched: dict = {}  # how many of the terms each memory matches
        for term, ids in matches.items():
            for pk in ids:
                scores[pk] = scores.get(pk, 0.0) + weights[term] / total
                matched[pk] = matched.get(pk, 0) + 1
        for pk in self.every:  # they score 1
            scores[pk], matched[pk] = 1.0, len(matches)
        return scores, matched

    def keyword(self, skip=frozenset()) -> dict:
        """{pk: keyword score} of every memory the lookup matched (see coverage_power)."""
        scores, matched = self.scores(skip)
        terms = len(self.kept(skip))
        return {pk: min(1.0, score) ** coverage_power(terms, matched[pk])
                for pk, score in scores.items()}


def _add_keyword_matches(queryset, query: Query, hits: dict, vector) -> KeywordMatches | None:
    """Looks the query's terms up and adds the best keyword matches to ``hits``."""
    terms = query_terms(query.text)
    if not terms:
        return None
    # One statement: each term's capped matches and, when a term's list stopped at the
    # cap, the memories matching every term (one of them could be missing from that list).
    found, every = vectors.keyword_matches(queryset, terms, TERM_MATCH_CAP, query.pool)
    lookup = KeywordMatches(dict(zip(terms, found, strict=True)), list(every))
    scores, _ = lookup.scores()
    best = sorted(scores, key=lambda pk: -scores[pk])[: query.pool]
    missing = [pk for pk in best if pk not in hits]
    for row, cosine in vectors.score(queryset, missing, vector):
        hits[row.pk] = Hit(row, semantic=max(0.0, cosine))
    return lookup


class Named(NamedTuple):
    agent: Any  # the subject's pk; None when the first two are named together
    form: str  # the subject's name as the query has it
    alone: bool  # the only agent the query names
    forms: frozenset  # every named author's name as the query has it


def named_author(model, hits: dict, text: str) -> Named | None:
    """The agent a query is about, when the hits were written by several agents and the
    query names one of them ("What did Caroline paint?" over a conversation between the
    agents Caroline and Melanie), else None. An agent is named by its name as a whole word,
    in any case; for a name such as ``caroline@support`` the part before the ``@`` also
    counts. When the query names several of them, the first named is its subject ("What
    offer does Gina make to Jon?"), unless the first two are named together ("What do Dave
    and Calvin share?": no subject, ``agent`` None). One statement, only when the hits have
    several authors.

    Then (:func:`run`) the other agents' memories score ``AUTHOR_WEIGHT`` times as much
    (they seldom answer a question about someone else); when the query names that agent
    alone, its meaning is read both as asked and with the name as "they"
    (:func:`_without_name`); and the names of the agents named are no keyword terms. The
    memories of Caroline seldom say "Caroline": her name only pulls the query towards the
    memories that talk to her."""
    field = next((f for f in model._meta.concrete_fields if f.name == "agent"), None)
    authors = {getattr(hit.item, "agent_id", None) for hit in hits.values()} - {None}
    if field is None or len(authors) < 2:
        return None
    lowered = text.lower()
    named = []  # (where, end, form, agent pk)
    for pk, name in (field.related_model._base_manager.filter(pk__in=authors)
                     .values_list("pk", "name")):
        found = named_as(lowered, name)
        if found:
            named.append((*found, pk))
    if not named:
        return None
    named.sort(key=lambda n: (n[0], str(n[3])))
    (_, end, form, pk), others = named[0], named[1:]
    forms = frozenset(n[2] for n in named)
    if others and _TOGETHER.fullmatch(lowered[end:others[0][0]]):
        return Named(None, "", alone=False, forms=forms)
    return Named(pk, form, alone=not others, forms=forms)


_TOGETHER = re.compile(r"(?:['’]s)?\s*(?:,|and|or|&|as well as)\s*")


def named_as(lowered: str, name: str) -> tuple | None:
    """(start, end, form) of the first mention of ``name`` in ``lowered``, or None."""
    for form in (name.lower().strip(), name.lower().split("@", 1)[0].strip()):
        match = (re.search(rf"(?<!\w){re.escape(form)}(?!\w)", lowered)
                 if len(form) > 1 else None)
        if match:
            return match.start(), match.end(), form
    return None


def without_name(text: str, form: str) -> str:
    """``text`` with the name ``form`` as "they" ("their" for "Caroline's")."""
    pattern = re.compile(rf"(?<!\w){re.escape(form)}(['’]s)?(?!\w)", re.IGNORECASE)
    return pattern.sub(lambda m: "their" if m.group(1) else "they", text)


def _without_name(text: str, form: str, vector: np.ndarray) -> np.ndarray:
    """The normalised mean of ``vector`` (``text``'s embedding) and the embedding of ``text``
    with the name ``form`` as "they" ("their" for "Caroline's"); ``vector`` as it is when
    the provider fails."""
    try:
        other = np.asarray(get_provider().embed_queries([without_name(text, form)])[0],
                           dtype=np.float32)
    except EmbeddingError:
        return vector
    mixed = vector / max(1e-12, float(np.linalg.norm(vector)))
    mixed = mixed + other / max(1e-12, float(np.linalg.norm(other)))
    return mixed / max(1e-12, float(np.linalg.norm(mixed)))


def asking_share(text: str) -> float:
    """The share of ``text``'s sentences that are questions ("How long have you been
    painting?" 1, "Congrats! Where was that?" 0.5)."""
    sentences = [part for part in _SENTENCE_END.split(text.strip()) if part.strip()]
    return (sum(1 for part in sentences if part.rstrip().endswith("?")) / len(sentences)
            if sentences else 0.0)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _weight(item, named: Named | None, period, asks_when: bool) -> float:
    """How much of its fused score a candidate keeps: ``AUTHOR_WEIGHT`` when the query is
    about another agent (:func:`named_author`), ``periods.OUTSIDE_WEIGHT`` when the query
    asks about a period the memory is not from, ``periods.UNTIMED_WEIGHT`` when it asks
    when and the memory does not say (:mod:`.periods`), and less the more of it
    asks rather than tells: a question seldom answers one (``ASKING_WEIGHT`` for a memory
    that only asks). Reads the first ``TEXT_READ`` characters of the candidate's text."""
    weight = 1.0
    if named and named.agent is not None and getattr(item, "agent_id", None) != named.agent:
        weight *= AUTHOR_WEIGHT
    text = getattr(item, "search_text", "")[:TEXT_READ]
    if period and not period.admits(periods.day_of(text, getattr(item, "created_at", None))):
        weight *= periods.OUTSIDE_WEIGHT
    if asks_when and not periods.tells_when(text):
        weight *= periods.UNTIMED_WEIGHT
    return weight * (1.0 - (1.0 - ASKING_WEIGHT) * asking_share(text))


def coverage_power(terms: int, matched: int) -> int:
    """The keyword score is the matched share of the query's information to this power.
    A partial match of a short query, or a single word in common with a longer one, is
    weak evidence ("relational database choice" against a memory on database names):
    squared. Two or more words of a longer question are how the memory that answers it
    usually matches ("When did Caroline go to the support group?" / "[8 May] Caroline: I
    went to a LGBTQ support group yesterday"): its share counts as is. Measured with
    benchmarks/retrieval_eval.py, knowledge_eval.py and locomo_bench.py."""
    return 2 if terms <= SHORT_QUERY_TERMS or matched < 2 else 1


def _fuse(hit: Hit, mode: str) -> float:
    if mode == "semantic":
        return hit.semantic
    if mode == "keyword":
        return hit.keyword
    return 1.0 - (1.0 - hit.semantic) * (1.0 - hit.keyword)
