"""The sessions app's tasks (memoryrelay_site.tasks: the queue and its rules).

``session_summary_llm`` replaces the extractive summary an ``end`` with ``auto_summarize``
stored by the configured LLM's (sessions_app/summarizer_llm.py). It is idempotent: it
writes only while the session's summary is still the one it was queued for, so a summary
given or generated meanwhile wins, and a second run finds it replaced. When the LLM fails,
the extractive summary stays (the fallback) and the session records it."""

from __future__ import annotations

from django_tasks import task

from .models import Session
from .services import _summary_items, llm_summary_or_none, session_summary_replace


@task()
def session_summary_llm(session_id: str, replaces: str) -> str:
    session = Session.objects.live().filter(pk=session_id).first()
    if session is None:
        return "skipped"
    items = _summary_items(session)
    summary = llm_summary_or_none(items) if items else None
    if summary is None:
        return "extractive kept"
    if not session_summary_replace(session_id=session_id, replaces=replaces, summary=summary,
                                   method="llm"):
        return "skipped"
    return "llm"
