"""Summaries of very large sessions stay bounded: at most MEMORYRELAY_SUMMARY_MAX_MEMORIES
of the newest memories are read, and their vectors only for the units the selection
reaches (benchmarks/summarize_scale_bench.py shows time and memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from memories_app.models import Memory
from sessions_app import summarizer
from sessions_app.summarizer import SummaryItem, summarize

T0 = datetime(2026, 3, 17, tzinfo=UTC)
TOPICS = ["billing", "search", "export", "auth", "mail", "report", "upload", "audit"]


def items(n: int) -> list[SummaryItem]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        vector = rng.normal(size=8).astype(np.float32)
        out.append(SummaryItem(
            id=f"{i:05d}", created_at=T0 + timedelta(minutes=i),
            content=f"The {TOPICS[i % 8]} service {TOPICS[(i * 3) % 8]} step {i} needs work.",
            importance=float(rng.random()), memory_type="fact",
            vector=vector / np.linalg.norm(vector)))
    return out


def test_vectors_looked_up_on_demand_give_the_same_summary_and_only_for_reached_units(
        monkeypatch):
    monkeypatch.setattr(summarizer, "VECTOR_BLOCK", 5)
    given = items(600)
    stored = {item.id: item.vector for item in given}
    asked: list[str] = []

    def vectors(ids):
        asked.extend(ids)
        return {i: stored[i] for i in ids}

    bare = [SummaryItem(id=i.id, content=i.content, created_at=i.created_at,
                        importance=i.importance, memory_type=i.memory_type) for i in given]
    assert summarize(bare, budget=400, vectors=vectors) == summarize(given, budget=400)
    assert 0 < len(asked) < 100 and len(set(asked)) == len(asked)


def test_a_missing_vector_counts_as_none():
    given = items(3)
    bare = [SummaryItem(id=i.id, content=i.content, created_at=i.created_at) for i in given]
    assert summarize(bare, vectors=lambda ids: {}) == summarize(bare)


def test_a_session_beyond_the_cap_is_summarized_from_its_newest_memories(
        client, account, agent, session, settings, django_assert_max_num_queries):
    settings.MEMORYRELAY_SUMMARY_MAX_MEMORIES = 3
    for n, topic in enumerate(["Oldest note about penguins.", "Old note about walruses.",
                               "Newer note about ferries.", "Newer note about lanterns.",
                               "Newest note about kettles."]):
        Memory.objects.create(account=account, agent=agent, session=session, content=topic,
                              created_at=T0 + timedelta(hours=n))
    Memory.objects.create(account=account, agent=agent, session=session, content="Deleted.",
                          created_at=T0 + timedelta(hours=9), deleted_at=T0)
    with django_assert_max_num_queries(12):
        response = client.post(f"/v1/sessions/{session.id}/summarize")
    body = response.json()
    assert response.status_code == 200, body
    assert body["memory_count"] == 5  # exact, though only 3 were read
    assert "penguins" not in body["summary"] and "walruses" not in body["summary"]
    assert "kettles" in body["summary"] and "Deleted" not in body["summary"]
