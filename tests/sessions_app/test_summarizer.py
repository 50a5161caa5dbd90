"""The extractive summarizer, directly (no database), and a session summarized through the API
with its stored embeddings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sessions_app.summarizer import SummaryItem, summarize
from tests.conftest import requires_model

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


def test_a_generous_budget_keeps_what_matters_in_chronological_order_and_stops():
    # Before issue 9 a generous budget kept every memory; now the off-topic note, far
    # below the best, is dropped even though room remains.
    summary = summarize(list(reversed(SESSION)), budget=5000)
    kept = [i for i in SESSION if i.content in summary]
    assert {"0002", "0004", "0005"} <= {i.id for i in kept} and len(kept) < len(SESSION)
    positions = [summary.index(i.content) for i in kept]
    assert positions == sorted(positions)
    assert "coffee" not in summary


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


# --- summaries worth keeping (issue 9, point 4) ----------------------------------------------

DECISIONS = [
    "Decided to move the session store from Redis to PostgreSQL so restarts lose nothing.",
    "Decided: API keys are hashed with SHA-256 and shown once at creation.",
    "Chose pgvector HNSW over IVFFlat for the memory index; recall is better at our size.",
    "Agreed to cap batch writes at 100 memories and answer 413 beyond the token budget.",
    "Decision: soft deletes everywhere, purged after 30 days by a management command.",
]
TEST_RUNS = [
    "Ran the test suite again, all green.", "Ran the test suite again: green.",
    "Ran the full test suite again, everything passes.", "Ran the test suite again, still green.",
    "Ran the test suite one more time, all green.",
    "Ran the test suite again after the rebase, green.",
    "Ran the test suite again; all tests pass.", "Test suite run again, all green.",
    "Ran the test suite again, no failures.", "Ran the whole test suite again, green again.",
]
ROUTINE = [
    "Grabbed coffee while CI ran.", "Took a short break while the build finished.",
    "Waited for CI to finish.", "Checked email while the pipeline ran.",
    "Refilled water, back at the desk.", "CI is running, getting coffee.",
    "Lunch break while the containers rebuilt.", "Restarted the laptop after an OS update.",
    "Closed some browser tabs to free memory.", "Stand-up meeting, nothing new to report.",
    "Read Slack while the tests ran.", "Pulled the latest main branch.",
    "Updated the local virtualenv.", "Re-opened the editor after it froze.",
    "Grabbed a snack while the docker images pulled.", "Waited for the review bot to comment.",
    "Cleared the terminal and started again.", "Rebased on main, no conflicts.",
    "Pushed the branch to the remote.", "Switched to the other monitor setup.",
]
OTHER = [
    "The migration for the session table takes about two seconds on a copy of production.",
    "Renamed the memories_app search helper for clarity.",
    "Looked at the health endpoint output format.",
    "Noted that the admin list page needs a filter by agent.",
    "Compared two JSON error body layouts.",
]


def forty_memory_session() -> list[SummaryItem]:
    """Five key decisions, ten near-identical test-suite notes, twenty routine notes and
    five ordinary ones, interleaved as a real session would have them."""
    decisions = [item(n, text, 0.8, "insight") for n, text in enumerate(DECISIONS)]
    rest = [item(10 + n, text, 0.5, "event") for n, text in enumerate(TEST_RUNS + ROUTINE)]
    rest += [item(40 + n, text) for n, text in enumerate(OTHER)]
    return sorted(decisions + rest, key=lambda i: (i.id[-1], i.id))


def test_a_session_of_decisions_test_runs_and_routine_notes_is_summarized_by_its_decisions():
    summary = summarize(forty_memory_session())
    assert all(decision in summary for decision in DECISIONS)
    assert sum(summary.count(run) for run in TEST_RUNS) <= 1
    assert not [note for note in ROUTINE if note in summary]
    assert len(summary) < 800  # it stops: the default budget (1,000) is not filled


def test_units_far_below_the_best_are_dropped_even_when_budget_remains():
    items = [item(1, "Root cause of the outage: the payment worker regenerates its "
                     "idempotency key after every restart.", 0.9, "insight"),
             item(2, "Coffee.", 0.1, "event")]
    assert "Coffee" not in summarize(items, budget=5000)


def unit(*values: float) -> list[float]:
    return [*values, *([0.0] * (8 - len(values)))]


def test_near_duplicates_by_meaning_count_once_when_the_memories_have_vectors():
    # Different words, same meaning: only the vectors can tell.
    same = [item(1, "Production deploys are frozen on Fridays after two in the afternoon.",
                 0.9, "insight"),
            item(2, "No shipping to prod late on the last workday of the week.", 0.9, "insight")]
    other = item(3, "The staging database was upgraded to PostgreSQL 16 without downtime.",
                 0.9, "insight")
    without = summarize([*same, other], budget=5000)
    assert all(i.content in without for i in [*same, other])

    vectors = {"0001": unit(1.0, 0.1), "0002": unit(0.95, 0.3), "0003": unit(0.0, 0.0, 1.0)}
    with_vectors = [SummaryItem(**{**i.__dict__, "vector": vectors[i.id]})
                    for i in [*same, other]]
    summary = summarize(with_vectors, budget=5000)
    assert sum(i.content in summary for i in same) == 1
    assert other.content in summary


def test_sentences_of_one_memory_are_not_duplicates_of_each_other_by_its_vector():
    long = " ".join(f"Finding {n}: the {word} service needs its own connection pool."
                    for n, word in enumerate(["billing", "search", "export", "auth", "mail",
                                              "report", "upload", "audit", "notify"]))
    summary = summarize([SummaryItem(id="1", content=long, created_at=T0, importance=0.8,
                                     vector=unit(1.0))], budget=5000)
    assert summary.count("Finding") > 1


@requires_model
def test_a_session_summary_counts_paraphrases_once_by_their_stored_embeddings(client):
    # The two say the same with different words (all-MiniLM-L6-v2 cosine 0.87, their words'
    # only 0.23): the summary of the session takes the stored vectors into account.
    same = ["The staging database was upgraded to PostgreSQL 16.",
            "Staging now runs Postgres version 16 after the upgrade."]
    other = "The nightly backup now runs at 03:00 UTC and keeps thirty days of archives."
    without_vectors = summarize([item(n, text) for n, text in enumerate([*same, other])],
                                budget=5000)
    assert all(text in without_vectors for text in [*same, other])
    session = client.post("/v1/sessions", {"agent_id": "ops"}, format="json").json()["id"]
    for content in [*same, other]:
        response = client.post("/v1/memories", {"content": content, "agent_id": "ops",
                                                "session_id": session, "importance": 0.8},
                               format="json")
        assert response.status_code == 201, response.content
    summary = client.post(f"/v1/sessions/{session}/summarize").json()["summary"]
    assert sum(text in summary for text in same) == 1
    assert other in summary


def test_a_memory_of_thousands_of_sentences_is_read_by_its_first_and_last_ones():
    """Each sentence is scored apart: 40 memories of 12,500 sentences each cost 14 s."""
    from sessions_app import summarizer

    many = item(1, "Opening: the email queue retries forever. " + "ab. " * 12_500
                + "Fixed: the retry counter now counts SMTP timeouts.", 0.9)
    units = summarizer._units([many])
    assert len(units) == summarizer.SENTENCES_MAX
    assert units[0].text.startswith("Opening") and units[-1].text.startswith("Fixed")
    summary = summarize([many], budget=200)
    assert "retry counter" in summary or "retries forever" in summary
