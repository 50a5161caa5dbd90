"""Optional: an LLM judges the first hits of a hybrid search (off unless configured).

With ``MEMORYRELAY_RERANK_LLM_URL`` and ``_MODEL`` set (and ``_API_KEY``, ``_TIMEOUT``), any
OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp's server, OpenAI) is shown the
query and the first ``MEMORYRELAY_RERANK_DEPTH`` hits (at least the request's ``limit``,
at most ``MAX_DEPTH``; each hit's text cut at ``ITEM_CHARS``) and grades how well each
answers the query, 0 to 10, in one call. A judged hit's score becomes the mean of its
offline score and its grade over 10: it stays in [0, 1] and keeps its meaning ("how well
this memory answers the query"), so ``min_score`` applies to it as to any score.

* Only hybrid searches are judged: ``semantic`` and ``keyword`` are asked for by name and
  keep their one signal.
* A confidential memory is never shown to the LLM: it keeps its offline score.
* The hits after the judged ones keep their order after them (their scores are capped at
  the lowest judged score).
* Any failure (no answer within the timeout, an HTTP error, an answer that is not one
  grade per hit) leaves the offline ranking exactly as it was, and is logged.

The offline ranking is what the server gives without it (measured on LoCoMo: README.md).
"""

from __future__ import annotations

import json
import logging
import math
import re

from django.conf import settings

from memoryrelay_site.llm import LLMUnavailable, chat_endpoint

logger = logging.getLogger("memoryrelay.search")

MAX_DEPTH = 50
ITEM_CHARS = 600
GRADE_MAX = 10
INSTRUCTIONS = (
    "You judge the results of a search in an AI agent's memory. For each numbered memory, "
    "grade from 0 to 10 how well it answers the query or holds what the query asks about "
    "(10: it answers it; 5: it is about the same thing; 0: unrelated). Reply with one JSON "
    'object and nothing else: {"grades": [one number per memory, in their order]}.'
)
_ARRAY = re.compile(r"\[[^\[\]]*\]")
_THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)


def rerank(text: str, ranked: list, limit: int, order) -> list:
    """``ranked`` (Hits, best first) with the first of them judged by the LLM and ordered
    by ``order`` (the search's sort key); as it is when no LLM is configured or it fails."""
    llm = chat_endpoint("MEMORYRELAY_RERANK_LLM")
    if llm is None:  # the default: nothing more to do
        return ranked
    depth = min(MAX_DEPTH, max(settings.MEMORYRELAY_RERANK_DEPTH, limit))
    head, tail = ranked[:depth], ranked[depth:]
    shown = [hit for hit in head if getattr(hit.item, "visibility", None) != "confidential"]
    if not shown:
        return ranked
    try:
        answer = llm.complete(_messages(text, shown))  # bounded by its timeout
        grades = parse_grades(answer, len(shown))
    except (LLMUnavailable, ValueError) as exc:
        logger.warning("search results not judged by the LLM: %s", exc)
        return ranked
    for hit, grade in zip(shown, grades, strict=True):
        hit.score = (hit.score + grade / GRADE_MAX) / 2
    head.sort(key=order)
    floor = head[-1].score  # the lowest of the head: the judged hits and any confidential
    for hit in tail:
        hit.score = min(hit.score, floor)
    return head + tail


def _messages(text: str, shown: list) -> list[dict]:
    lines = []
    for n, hit in enumerate(shown, 1):
        said = " ".join(getattr(hit.item, "search_text", "").split())
        if len(said) > ITEM_CHARS:
            said = said[:ITEM_CHARS].rstrip() + "…"
        lines.append(f"[{n}] {said}")
    return [{"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": f"Query: {' '.join(text.split())}\n\nMemories:\n"
                                        + "\n".join(lines)}]


def parse_grades(answer: str, count: int) -> list[float]:
    """The ``count`` grades of ``answer``, each clamped to [0, GRADE_MAX]: the last JSON
    array in it of ``count`` finite numbers (the model may wrap it in an object or a code
    fence, or think aloud first, in ``<think>`` or not); ValueError when there is none."""
    for found in reversed(_ARRAY.findall(_THINKING.sub(" ", answer))):
        try:
            grades = json.loads(found)
        except ValueError:
            continue
        if len(grades) == count and all(isinstance(g, int | float) and not isinstance(g, bool)
                                        and math.isfinite(g) for g in grades):
            return [min(float(GRADE_MAX), max(0.0, float(g))) for g in grades]
    raise ValueError(f"not {count} grades in the answer: {answer[:200]!r}")
