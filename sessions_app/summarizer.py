"""Extractive session summaries: offline, no model, deterministic.

A summary is built from the session's memories themselves:

1. Units. Each memory is a unit; a memory longer than ``LONG_UNIT`` characters is split
   into sentences, each a unit of its own (so one 50,000-character memory cannot blow the
   budget, and its best sentence can still be used).
2. Content. Units become TF-IDF vectors (lower-cased unicode words, stopwords dropped).
   A unit's content score mixes its centrality (cosine similarity to the session's
   centroid, to which every memory contributes equally) with its density (its distinct
   words, each counting its rarity in the session, its IDF over the rarest word's; full at
   ``DENSE_WORDS``, 10): ``0.05 + 0.3 × centrality + 0.7 × density``. A decision names
   specific things; "ran the test suite again", said ten times, or "grabbed coffee" does
   not.
3. Weight. content × (0.5 + importance) × type weight, with types weighted
   insight 1.2, task 1.15, fact 1.0, event 0.9, preference 0.9, entity_reference 0.7,
   system 0.5 (decisions and outcomes before bookkeeping).
4. Selection. Greedily by weight (ties by time, then id), skipping near-duplicates of a
   chosen unit and units that no longer fit the character budget, and stopping at the
   first unit weighing less than ``KEEP_RATIO`` (half) of the best one: a summary keeps
   what matters and stops, even when budget remains. Near-duplicates are judged by
   meaning when the memories' embeddings are given (``SummaryItem.vector``, cosine >=
   ``DUPLICATE_MEANING``), else by words (TF-IDF cosine >= ``DUPLICATE_SIMILARITY``, or the
   same words); ten "ran the test suite again" notes count once.
5. Order. The chosen units read in chronological order, each ending with punctuation,
   joined by spaces. If not even one unit fits, the best one is cut on a word boundary
   with an ellipsis.

Cost is linear in the number of words plus (units considered × chosen units); selection
stops at the weight floor and the budget, so the chosen set stays small: 10,000 memories
take well under a second.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

DEFAULT_BUDGET = 1000  # characters
LONG_UNIT = 400  # memories longer than this are split into sentences
# The sentences of one memory that can be chosen: its first and last halves of this many
# (where a note states and concludes). Each is scored apart: 40 memories of 12,500 one-word
# sentences each cost 14 s and 400 MB.
SENTENCES_MAX = 40
DUPLICATE_SIMILARITY = 0.8  # TF-IDF cosine: the same words
DUPLICATE_MEANING = 0.8  # embedding cosine: the same meaning
KEEP_RATIO = 0.5  # units weighing less than this share of the best one are dropped
VECTOR_BLOCK = 200  # units whose vectors one ``vectors`` look-up fetches
DENSE_WORDS = 10  # distinct informative words at which a unit counts as fully dense
TYPE_WEIGHTS = {
    "insight": 1.2, "task": 1.15, "fact": 1.0, "event": 0.9, "preference": 0.9,
    "entity_reference": 0.7, "system": 0.5,
}
TERMINAL = (".", "!", "?", "…")
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
STOPWORDS = frozenset(
    "a an and are as at be been but by for from had has have he her his i if in into is it "
    "its me my no not of on or our she so than that the their them then there these they "
    "this to was we were what when where which who will with you your".split()
)


@dataclass(frozen=True)
class SummaryItem:
    id: str
    content: str
    created_at: datetime
    importance: float = 0.5
    memory_type: str = "fact"
    vector: Any = None  # the memory's stored embedding (unit length), when it has one


@dataclass
class _Unit:
    text: str
    order: tuple
    weight_factor: float
    vector: dict[str, float]
    key: str  # the words, for exact-duplicate detection
    share: float = 1.0  # 1 / number of units of its memory: each memory weighs the same
    score: float = 0.0
    meaning: np.ndarray | None = None  # the memory's embedding, normalised


def summarize(items: Sequence[SummaryItem], *, budget: int = DEFAULT_BUDGET,
              vectors: Callable[[list[str]], dict[str, Any]] | None = None) -> str:
    """An extractive summary of ``items`` of at most ``budget`` characters.

    ``vectors``, when given, looks up the embeddings of the items whose ids it is passed
    (``{id: vector}``, a missing one counts as none): it is asked only for the units the
    selection reaches, best first, ``VECTOR_BLOCK`` at a time, so the caller need not read
    every item's vector (the same summary as with ``SummaryItem.vector`` set)."""
    if budget < 1:
        raise ValueError("budget must be at least 1")
    units = _units(items)
    if not units:
        raise ValueError("no memories to summarize")
    _score(units)
    ranked = sorted(units, key=lambda u: (-u.score, u.order))
    chosen = _select(ranked, budget, vectors)
    if not chosen:
        return _truncate(ranked[0].text, budget)
    return " ".join(u.text for u in sorted(chosen, key=lambda u: u.order))


def _units(items: Sequence[SummaryItem]) -> list[_Unit]:
    units = []
    for item in items:
        text = " ".join(item.content.split())
        if not text:
            continue
        pieces = _SENTENCE_END.split(text) if len(text) > LONG_UNIT else [text]
        factor = (0.5 + min(1.0, max(0.0, item.importance))) * TYPE_WEIGHTS.get(
            item.memory_type, 1.0)
        pieces = [p for p in pieces if p]
        if len(pieces) > SENTENCES_MAX:
            pieces = pieces[:SENTENCES_MAX // 2] + pieces[-(SENTENCES_MAX // 2):]
        meaning = _meaning(item.vector)
        for n, piece in enumerate(pieces):
            words = _words(piece)
            units.append(_Unit(_sentence(piece), (item.created_at, item.id, n), factor,
                               dict(Counter(words)), " ".join(words) or piece.casefold(),
                               share=1.0 / len(pieces), meaning=meaning))
    return units


def _meaning(vector) -> np.ndarray | None:
    if vector is None:
        return None
    array = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(array))
    return array / norm if array.size and norm > 0 else None


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if len(w) > 1 and w not in STOPWORDS]


def _sentence(text: str) -> str:
    return text if text.endswith(TERMINAL) else text + "."


def _score(units: list[_Unit]) -> None:
    """Turns term counts into unit-length TF-IDF vectors and scores each unit."""
    df = Counter(term for u in units for term in u.vector)
    n = len(units)
    idf = {t: math.log((n + 1) / (d + 1)) + 1 for t, d in df.items()}
    rarest = max(idf.values(), default=1.0)
    centroid: dict[str, float] = {}
    density = []
    for unit in units:
        # Distinct words, each counting its rarity in the session (the rarest counts 1): a
        # word every other note repeats ("again", "ran") says little.
        density.append(min(1.0, sum(idf[t] for t in unit.vector) / rarest / DENSE_WORDS))
        unit.vector = _normalised({t: c * idf[t] for t, c in unit.vector.items()})
        share = unit.share
        for t, v in unit.vector.items():  # a plain loop: Counter.update is slower
            centroid[t] = v * share + centroid.get(t, 0)
    centre = _normalised(centroid)
    for unit, dense in zip(units, density, strict=True):
        centrality = _cosine(unit.vector, centre) if unit.vector else 0.0
        unit.score = (0.05 + 0.3 * centrality + 0.7 * dense) * unit.weight_factor


def _normalised(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in vector.values()))
    return {t: v / norm for t, v in vector.items()} if norm else {}


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


def _select(ranked: list[_Unit], budget: int,
            vectors: Callable[[list[str]], dict[str, Any]] | None = None) -> list[_Unit]:
    chosen: list[_Unit] = []
    keys: set[str] = set()
    used = -1  # no separator before the first unit
    floor = ranked[0].score * KEEP_RATIO if ranked else 0.0
    looked_up = 0  # ranked[:looked_up] have had their vectors asked for
    for n, unit in enumerate(ranked):
        if budget - used < 2 or unit.score < floor:
            break
        if used + 1 + len(unit.text) > budget or unit.key in keys:
            continue
        if vectors is not None and n >= looked_up:
            looked_up = _look_up(ranked, n, vectors)
        if any(_duplicates(unit, c) for c in chosen):
            continue
        chosen.append(unit)
        keys.add(unit.key)
        used += 1 + len(unit.text)
    return chosen


def _look_up(ranked: list[_Unit], start: int,
             vectors: Callable[[list[str]], dict[str, Any]]) -> int:
    """Gives ``ranked[start:start + VECTOR_BLOCK]`` their memories' vectors (units that
    have none yet); returns the end of the block."""
    block = ranked[start:start + VECTOR_BLOCK]
    wanted = list(dict.fromkeys(u.order[1] for u in block if u.meaning is None))
    found = vectors(wanted) if wanted else {}
    for unit in block:
        if unit.meaning is None:
            unit.meaning = _meaning(found.get(unit.order[1]))
    return start + len(block)


def _duplicates(unit: _Unit, other: _Unit) -> bool:
    """Near-duplicates by meaning when both memories have embeddings (sentences of one
    memory share its vector, so they are compared by words), else by words."""
    if (unit.meaning is not None and other.meaning is not None
            and unit.order[1] != other.order[1]
            and unit.meaning.shape == other.meaning.shape):
        return float(unit.meaning @ other.meaning) >= DUPLICATE_MEANING
    return _cosine(unit.vector, other.vector) >= DUPLICATE_SIMILARITY


def _truncate(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    cut = text[: budget - 1]
    if " " in cut and not text[budget - 1].isspace():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip() + "…"
