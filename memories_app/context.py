"""Context bundles (``POST /v2/context/build``, ``POST /v2/context``): the best memories for
a query, packed into a token budget, optionally with an extractive summary of the bundle.

Ranking, ``ranking_version`` ``"composite-v1"``:

* candidates: the ``CANDIDATES`` (100) memories most relevant to the query by the search's
  own score (``search_mode``, hybrid by default; API.md §5), minus ``exclude_memory_ids``,
  with a relevance of at least ``MIN_RELEVANCE`` (0.1): a memory that does not answer the
  query is not made relevant by being important or new;
* score = 0.70 × relevance + 0.20 × importance + 0.10 × recency, each in [0, 1], where
  recency = 0.5 ** (age in days / 30) halves every 30 days since the memory was written
  (``updated_at``); ties by relevance, then newest, then id. The score is in [0, 1].

Packing: memories are taken in score order while ``max_memories`` allows; a memory whose
tokens no longer fit ``max_tokens`` is skipped and the next one tried, so the budget is
filled by the best memories that fit. If not even the best one fits, it is cut to the
budget on a word boundary with an ellipsis (a bundle never comes back empty for want of
room). With ``ai_enhanced``, a quarter of the budget (at most ``SUMMARY_TOKENS``, 250) is
set aside first for the summary: the session summarizer's extractive summary of the
bundle's memories, offline and deterministic (no LLM is called).

Tokens are estimated, not tokenized: ``ceil(characters / 4)`` per text, the usual rule of
thumb for English with GPT-style tokenizers and the one the MCP server itself applies. It
is the same on every install (no tokenizer is downloaded or required) and is what
``token_count`` reports: the memories' contents plus the summary.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from sessions_app.summarizer import SummaryItem, summarize

from . import search, tiering
from .models import Memory
from .services import memory_search

RANKING_VERSION = "composite-v1"
CANDIDATES = 100
MIN_RELEVANCE = 0.1
WEIGHTS = {"relevance": 0.70, "importance": 0.20, "recency": 0.10}
RECENCY_HALF_LIFE_DAYS = 30.0
CHARS_PER_TOKEN = 4
SUMMARY_TOKENS = 250
DEFAULT_MAX_MEMORIES = 20


def tokens_of(text: str) -> int:
    """The estimated token count of ``text``: ceil(characters / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def composite_score(*, relevance: float, importance: float, age_days: float) -> float:
    """The ``composite-v1`` score of a memory (see the module docstring)."""
    recency = 0.5 ** (max(0.0, age_days) / RECENCY_HALF_LIFE_DAYS)
    importance = min(1.0, max(0.0, importance))
    return (WEIGHTS["relevance"] * relevance + WEIGHTS["importance"] * importance
            + WEIGHTS["recency"] * recency)


@dataclass(frozen=True)
class BundleItem:
    memory_id: str
    content: str
    score: float
    memory_type: str


@dataclass(frozen=True)
class Bundle:
    context: list[BundleItem]
    summary: str | None
    token_count: int
    ranking_version: str
    ai_enhanced: bool
    latency_ms: int


def context_bundle_build(
    *,
    account,
    query: str,
    agent_ref: str | None = None,
    max_memories: int = DEFAULT_MAX_MEMORIES,
    max_tokens: int | None = None,
    search_mode: str = "hybrid",
    exclude_memory_ids: list | tuple = (),
    ai_enhanced: bool = False,
    now: datetime | None = None,
) -> Bundle:
    """The context bundle for ``query`` from the account's live memories (the agent's only,
    when ``agent_ref`` names one)."""
    started = time.perf_counter()
    now = now or timezone.now()
    hits = memory_search(account=account, text=query, mode=search_mode, limit=CANDIDATES,
                         min_score=MIN_RELEVANCE, agent_ref=agent_ref,
                         exclude_ids=list(exclude_memory_ids))
    ranked = sorted(
        ((composite_score(relevance=h.score, importance=h.memory.importance,
                          age_days=(now - h.memory.updated_at).total_seconds() / 86400), h)
         for h in hits),
        key=lambda pair: (-pair[0], -pair[1].score, -pair[1].memory.created_at.timestamp(),
                          str(pair[1].memory.pk)),
    )
    summary_budget = 0
    if ai_enhanced:
        summary_budget = min(SUMMARY_TOKENS, max_tokens // 4) if max_tokens else SUMMARY_TOKENS
    room = max_tokens - summary_budget if max_tokens else None
    chosen: list[tuple[float, object, str]] = []
    used = 0
    for score, hit in ranked:
        if len(chosen) >= max_memories:
            break
        content = hit.memory.content
        cost = tokens_of(content)
        if room is not None and used + cost > room:
            continue
        chosen.append((score, hit, content))
        used += cost
    if not chosen and ranked and room:
        score, hit = ranked[0]
        content = _cut(hit.memory.content, room * CHARS_PER_TOKEN)
        chosen.append((score, hit, content))
        used = tokens_of(content)
    summary = None
    if ai_enhanced:
        summary = _summary([(hit.memory, content) for _, hit, content in chosen],
                           summary_budget * CHARS_PER_TOKEN)
        used += tokens_of(summary)
    tiering.memories_mark_used(memories=[hit.memory for _, hit, _ in chosen])
    items = [BundleItem(str(hit.memory.pk), content, search.shown(score), hit.memory.memory_type)
             for score, hit, content in chosen]
    return Bundle(items, summary, used, RANKING_VERSION, ai_enhanced,
                  round((time.perf_counter() - started) * 1000))


def _summary(memories: list, budget_chars: int) -> str:
    if not memories or budget_chars < 1:
        return ""
    # The searches read rows without their vectors: one query fetches the bundle's.
    vectors = dict(Memory.objects.filter(pk__in=[m.pk for m, _ in memories])
                   .values_list("pk", "embedding"))
    return summarize([SummaryItem(id=str(m.pk), content=content, created_at=m.created_at,
                                  importance=m.importance, memory_type=m.memory_type,
                                  vector=vectors.get(m.pk))
                      for m, content in memories], budget=budget_chars)


def _cut(text: str, budget: int) -> str:
    text = " ".join(text.split())
    if len(text) <= budget:
        return text
    cut = text[: max(1, budget - 1)]
    if " " in cut and not text[len(cut)].isspace():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip() + "…"
