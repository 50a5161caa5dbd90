"""Long commands never run silent (issue 9, point 5): reembed and end_stale_sessions print
their progress (count, rate, time left) on stderr while they work."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

from memories_app.models import Memory
from memories_app.services import memory_create
from memoryrelay_site.progress import Progress
from tests.sessions_app.test_end_stale_sessions import session_idle_for


def test_progress_prints_count_rate_and_time_left_at_most_every_few_seconds():
    lines, now = [], [0.0]
    progress = Progress(lines.append, "re-embedding memories", 1000, every=2.0,
                        clock=lambda: now[0])
    for _ in range(10):
        now[0] += 0.5
        progress(50)  # 100 a second
    assert lines == ["re-embedding memories: 200/1,000 (100/s, about 8 s left)",
                     "re-embedding memories: 400/1,000 (100/s, about 6 s left)"]
    now[0] += 5
    progress(500)
    assert lines[-1] == "re-embedding memories: 1,000/1,000 (100/s)"


@pytest.mark.django_db
def test_reembed_shows_its_progress(account):
    for n in range(5):
        memory_create(account=account, agent_ref="a", content=f"memory number {n}")
    Memory.objects.update(embedding=None, embedding_model="")
    out, err = StringIO(), StringIO()
    call_command("reembed", "--batch-size", "2", stdout=out, stderr=err)
    assert "Re-embedded 5 memories" in out.getvalue()
    assert re.search(r"re-embedding memories: 5/5 \(\d[\d,]*/s\)", err.getvalue())


@pytest.mark.django_db
def test_end_stale_sessions_summarize_shows_its_progress(account):
    for _ in range(3):
        session_idle_for(account, 48)
    out, err = StringIO(), StringIO()
    call_command("end_stale_sessions", "--idle-hours", "24", "--summarize", stdout=out,
                 stderr=err)
    assert "Ended 3 sessions" in out.getvalue()
    assert re.search(r"ending and summarizing sessions: 3/3 \(\d[\d,]*/s\)", err.getvalue())
