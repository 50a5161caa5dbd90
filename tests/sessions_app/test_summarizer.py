"""The extractive summarizer, directly (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sessions_app.summarizer import SummaryItem, summarize

T0 = datetime(2026, 3, 17, 10, 0, tzinfo=UTC)


def item(n: int, content: str, importance: float = 0.5, memory_type: str = "fact"):
    return SummaryItem(id=f"{n:04d}", content=content, created_at=T0 + timedelta(minutes=n),
                       importance=importance, memory_type=memory_type)


SESSION = [
    item(1, "Started investigating why the email queue retries forever.", 0.6, "event"),
    item(2, "Root cause: the retry counter in the email queue is not incremented on "
            "SMTP timeout.", 0.9, "insight"),
    item(3, "The office coffee machine is broken again.", 0.1, "fact"),
    item(4, "Increased max retry attempts for the email queue from 3 to 5.", 0.8, "event"),
    item(5, "Added exponential backoff with jitter to email queue retries.", 0.8, "event"),
    item(6, "Deployed the email queue retry fix to staging.", 0.7, "task"),
]


def test_one_memory_gives_that_memory():
    assert summarize([item(1, "  Fixed   the retry bug ")]) == "Fixed the retry bug."
    assert summarize([item(1, "Shipped it!")]) == "Shipped it!"


def test_no_memories_or_only_blank_ones_is_an_error():
    with pytest.raises(ValueError, match="no memories"):
        summarize([])
    with pytest.raises(ValueError, match="no memories"):
        summarize([item(1, "   \n ")])


def test_a_tight_budget_keeps_the_central_important_memories_not_the_off_topic_one():
    summary = summarize(SESSION, budget=200)
    assert "retry counter" in summary
    assert "coffee" not in summary
    assert len(summary) <= 200


def test_a_generous_budget_keeps_everything_in_chronological_order():
    summary = summarize(list(reversed(SESSION)), budget=5000)
    positions = [summary.index(i.content.split()[0] + " " + i.content.split()[1])
                 for i in SESSION]
    assert positions == sorted(positions)


def test_importance_decides_between_equally_central_memories():
    low = item(1, "Email queue retry fix reviewed by Sam.", 0.0)
    high = item(2, "Email queue retry fix approved by Ana.", 1.0)
    assert summarize([low, high], budget=45) == "Email queue retry fix approved by Ana."


def test_type_weight_puts_an_insight_before_a_system_note():
    note = item(1, "Email queue retry counter checked.", 0.5, "system")
    insight = item(2, "Email queue retry counter was the bug.", 0.5, "insight")
    assert summarize([note, insight], budget=40) == "Email queue retry counter was the bug."


def test_near_duplicate_memories_appear_once():
    items = [item(1, "Fixed the retry bug."), item(2, "fixed the retry bug"),
             item(3, "Fixed the retry bug!"), item(4, "Wrote release notes.")]
    summary = summarize(items, budget=5000)
    assert summary.casefold().count("fixed the retry bug") == 1
    assert "release notes" in summary


def test_the_summary_never_exceeds_the_budget():
    for budget in (1, 2, 5, 17, 60, 333, 1000):
        assert len(summarize(SESSION, budget=budget)) <= budget


def test_a_single_huge_memory_uses_its_best_sentences_within_budget():
    filler = " ".join(f"Unrelated remark number {n} about lunch." for n in range(3000))
    huge = item(1, filler + " The email queue retry bug is fixed.", 0.9)
    summary = summarize([huge] + SESSION[1:2], budget=300)
    assert len(summary) <= 300 and "retry counter" in summary


def test_an_over_long_single_sentence_is_cut_on_a_word_boundary():
    long_sentence = item(1, "word " * 400)
    summary = summarize([long_sentence], budget=50)
    assert summary.endswith("…") and len(summary) <= 50
    assert summary[:-1].split() == ["word"] * len(summary[:-1].split())


def test_unicode_memories_are_summarized():
    items = [item(1, "Der Wiederholungszähler der Warteschlange wurde repariert."),
             item(2, "キューの再試行カウンターを修正しました。")]
    summary = summarize(items)
    assert "Wiederholungszähler" in summary and "キュー" in summary


def test_the_same_memories_in_any_order_give_the_same_summary():
    assert summarize(SESSION, budget=250) == summarize(list(reversed(SESSION)), budget=250)
    assert summarize(SESSION, budget=250) == summarize(SESSION[3:] + SESSION[:3], budget=250)
