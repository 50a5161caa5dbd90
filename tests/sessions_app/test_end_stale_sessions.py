"""manage.py end_stale_sessions: ends sessions idle for too long."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from memories_app.models import Memory
from memories_app.services import memory_create
from sessions_app.models import Session
from sessions_app.services import session_create, session_delete, session_end


def run(*args) -> str:
    out = StringIO()
    call_command("end_stale_sessions", *args, stdout=out)
    return out.getvalue()


def hours_ago(n: float):
    return timezone.now() - timedelta(hours=n)


def session_idle_for(account, hours: float, content: str | None = "Fixed the retry counter."):
    session = session_create(account=account, agent_ref="worker")
    Session.objects.filter(pk=session.pk).update(started_at=hours_ago(hours + 1),
                                                 created_at=hours_ago(hours + 1))
    if content:
        memory = memory_create(account=account, agent_ref="worker", content=content,
                               session_id=session.id)
        Memory.objects.filter(pk=memory.pk).update(created_at=hours_ago(hours))
    return session


def test_a_session_whose_newest_memory_is_older_than_the_limit_is_ended(account):
    stale = session_idle_for(account, 48)
    fresh = session_idle_for(account, 1)
    assert "Ended 1 sessions" in run("--idle-hours", "24")
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "ended" and stale.ended_at is not None
    assert fresh.status == "active"


def test_a_session_without_memories_counts_from_its_start(account):
    empty = session_idle_for(account, 48, content=None)
    run("--idle-hours", "24")
    empty.refresh_from_db()
    assert empty.status == "ended"


def test_ended_and_deleted_sessions_are_untouched(account):
    ended = session_idle_for(account, 48)
    session_end(session=ended, summary="done")
    first_end = Session.objects.get(pk=ended.pk).ended_at
    deleted = session_idle_for(account, 48)
    session_delete(session=deleted)
    assert "Ended 0 sessions" in run("--idle-hours", "24")
    assert Session.objects.get(pk=ended.pk).ended_at == first_end
    assert Session.objects.get(pk=deleted.pk).status == "active"


def test_dry_run_reports_and_changes_nothing(account):
    stale = session_idle_for(account, 48)
    assert "Would end 1 sessions" in run("--idle-hours", "24", "--dry-run")
    stale.refresh_from_db()
    assert stale.status == "active"


def test_summarize_stores_a_summary_built_from_the_memories(account):
    stale = session_idle_for(account, 48, content="Root cause was the retry counter")
    empty = session_idle_for(account, 48, content=None)
    assert "Ended 2 sessions idle for more than 24 hours; 1 summarized" in run(
        "--idle-hours", "24", "--summarize")
    stale.refresh_from_db()
    empty.refresh_from_db()
    assert stale.summary == "Root cause was the retry counter."
    assert empty.status == "ended" and empty.summary is None


def test_running_twice_ends_nothing_the_second_time(account):
    session_idle_for(account, 48)
    run("--idle-hours", "24")
    assert "Ended 0 sessions" in run("--idle-hours", "24")


@pytest.mark.parametrize("value", ["0", "-3", "inf", "nan", "1e308"])
def test_a_non_positive_idle_time_is_a_command_error(db, value):
    with pytest.raises(CommandError):
        run("--idle-hours", value)


@pytest.mark.parametrize("summarize", [False, True])
def test_a_listed_session_written_to_before_its_turn_goes_on(account, summarize):
    """The sessions are listed first, then ended one by one (a summary each: minutes for
    many). One the agent wrote to meanwhile was ended all the same, under the agent, with a
    summary that missed what it had just written; one ended meanwhile by its client got a
    summary written over an end that had none."""
    from sessions_app.services import sessions_end_stale

    first = session_idle_for(account, 48)
    resumed = session_idle_for(account, 48)
    ended_by_client = session_idle_for(account, 48)

    def progress(total):
        def step(count):
            if not Memory.objects.filter(session=resumed, content="Back at it.").exists():
                memory_create(account=account, agent_ref="worker", content="Back at it.",
                              session_id=resumed.id)
                session_end(session=Session.objects.get(pk=ended_by_client.pk))
        return step

    report = sessions_end_stale(idle_hours=24, summarize_them=summarize, progress=progress)
    assert Session.objects.get(pk=first.pk).status == "ended"
    assert Session.objects.get(pk=resumed.pk).status == "active"
    by_client = Session.objects.get(pk=ended_by_client.pk)
    assert by_client.summary is None and not by_client.summary_method
    assert report.ended == 1 and report.summarized == (1 if summarize else 0)
