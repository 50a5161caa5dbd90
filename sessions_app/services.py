"""Agent and session services: the only code that changes agents and sessions.

The API views, the admin and the management commands all call these functions, so none
of them can do what another forbids. Races are settled by database constraints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from memoryrelay_site.errors import Conflict, Invalid, NotFound

from .models import Agent, Session, SessionStatus
from .summarizer import SummaryItem, summarize

# --- Agents -----------------------------------------------------------------------------


def agent_get(*, account, ref: str, queryset=None) -> Agent:
    """The live agent of ``account`` whose UUID or name is ``ref`` (from ``queryset``, which
    may carry annotations)."""
    agent = _find_agent(account, ref, queryset)
    if agent is None:
        raise NotFound("Agent not found")
    return agent


def _find_agent(account, ref: str, queryset=None) -> Agent | None:
    queryset = Agent.objects.all() if queryset is None else queryset
    matches = list(queryset.live().for_account(account).by_ref(ref)[:2])
    # A UUID wins over a name that happens to look like one.
    matches.sort(key=lambda agent: str(agent.pk) != ref.lower())
    return matches[0] if matches else None


def agent_resolve(*, account, ref: str, field: str = "agent_id") -> Agent:
    """The agent named by ``ref``; a name not seen before creates the agent (first write)."""
    ref = ref.strip()
    if not ref:
        raise Invalid("agent_id must not be blank", field=field)
    if len(ref) > 255:
        raise Invalid("agent_id must be at most 255 characters", field=field)
    agent = _find_agent(account, ref)
    if agent is not None:
        return agent
    agent, _ = agent_get_or_create(account=account, name=ref)
    return agent


def agent_get_or_create(
    *, account, name: str, description: str | None = None, metadata: dict | None = None
) -> tuple[Agent, bool]:
    """Creates the agent, or returns the live one with that name (race-free)."""
    existing = Agent.objects.live().for_account(account).filter(name=name).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            agent = Agent.objects.create(
                account=account, name=name, description=description, metadata=metadata or {}
            )
        return agent, True
    except IntegrityError:
        return Agent.objects.live().for_account(account).get(name=name), False


@transaction.atomic
def agent_update(*, agent: Agent, changes: dict[str, Any]) -> Agent:
    """Partial update: keys absent or None are left unchanged; metadata is replaced."""
    for field in ("name", "description", "metadata", "config"):
        if changes.get(field) is not None:
            setattr(agent, field, changes[field])
    try:
        with transaction.atomic():
            agent.save()
    except IntegrityError:
        raise Conflict(f"An agent named {agent.name!r} already exists", field="name") from None
    return agent


@transaction.atomic
def agent_delete(*, agent: Agent, at: datetime | None = None) -> Agent:
    """Soft-deletes the agent with its sessions and memories, all stamped with one time."""
    at = at or timezone.now()
    agent.sessions.filter(deleted_at__isnull=True).update(deleted_at=at, updated_at=at)
    agent.memories.filter(deleted_at__isnull=True).update(deleted_at=at, updated_at=at)
    agent.deleted_at = at
    agent.save(update_fields=["deleted_at", "updated_at"])
    return agent


def agent_touch(agent: Agent | None, at: datetime | None = None) -> None:
    if agent is not None:
        at = at or timezone.now()
        Agent.objects.filter(pk=agent.pk).update(last_active_at=at)
        agent.last_active_at = at


# --- Sessions ---------------------------------------------------------------------------


def session_get(*, account, session_id) -> Session:
    session = (
        Session.objects.live().for_account(account).with_memory_count()
        .select_related("agent").filter(pk=session_id).first()
    )
    if session is None:
        raise NotFound("Session not found")
    return session


@transaction.atomic
def session_create(
    *,
    account,
    agent_ref: str | None = None,
    external_id: str | None = None,
    project: str | None = None,
    title: str | None = None,
    metadata: dict | None = None,
) -> Session:
    agent = agent_resolve(account=account, ref=agent_ref) if agent_ref else None
    try:
        with transaction.atomic():
            session = Session.objects.create(
                account=account, agent=agent, external_id=external_id, project=project,
                title=title, metadata=metadata or {},
            )
    except IntegrityError:
        raise Conflict(
            f"A session with external_id {external_id!r} already exists; "
            "use POST /v1/sessions/get-or-create to join it",
            field="external_id",
        ) from None
    agent_touch(agent)
    session.memory_count = 0
    return session


@transaction.atomic
def session_get_or_create(
    *,
    account,
    external_id: str,
    agent_ref: str | None = None,
    project: str | None = None,
    title: str | None = None,
    metadata: dict | None = None,
) -> tuple[Session, bool]:
    """The live session with ``external_id``, created when there is none.

    A partial unique index on (account, external_id) among live sessions settles races:
    the loser of a concurrent insert gets IntegrityError and reads the winner's row.
    """
    existing = _live_by_external_id(account, external_id)
    if existing is not None:
        return existing, False
    agent = agent_resolve(account=account, ref=agent_ref) if agent_ref else None
    try:
        with transaction.atomic():
            Session.objects.create(
                account=account, agent=agent, external_id=external_id, project=project,
                title=title, metadata=metadata or {},
            )
    except IntegrityError:
        return _live_by_external_id(account, external_id), False
    agent_touch(agent)
    return _live_by_external_id(account, external_id), True


def _live_by_external_id(account, external_id: str) -> Session | None:
    return (
        Session.objects.live().for_account(account).with_memory_count()
        .select_related("agent").filter(external_id=external_id).first()
    )


def session_contributors(*, session: Session) -> list[str]:
    """Names of the agents that own the session or wrote live memories into it."""
    writers = Q(pk__in=session.memories.filter(deleted_at__isnull=True).values("agent_id"))
    if session.agent_id is not None:
        writers |= Q(pk=session.agent_id)
    return sorted(set(Agent.objects.filter(writers).values_list("name", flat=True)))


def _locked(session: Session) -> Session:
    """Re-reads the session under a row lock, so concurrent ends and merges serialize."""
    return Session.objects.select_for_update().get(pk=session.pk)


@transaction.atomic
def session_end(
    *,
    session: Session,
    summary: str | None = None,
    metadata: dict | None = None,
    auto_summarize: bool = False,
    at: datetime | None = None,
) -> Session:
    """Ends the session (idempotent: ``ended_at`` keeps its first value).

    A given ``summary`` replaces the stored one; ``metadata`` merges into the stored one;
    ``auto_summarize`` with no summary stores one generated from the memories.
    """
    row = _locked(session)
    row.mark_ended(at or timezone.now())
    if summary is not None:
        row.summary = summary
    elif auto_summarize and _live_memories(row).exists():
        row.summary = _summary_of(row)
    if metadata:
        row.metadata = {**row.metadata, **metadata}
    row.save()
    return _refreshed(row)


@dataclass(frozen=True)
class SummaryResult:
    session: Session
    summary: str
    memory_count: int
    generated_at: datetime


@transaction.atomic
def session_summarize(*, session: Session, budget: int | None = None) -> SummaryResult:
    """Builds an extractive summary from the session's live memories and stores it."""
    row = _locked(session)
    count = _live_memories(row).count()
    if count == 0:
        raise Invalid("Session has no memories to summarize", field="session_id")
    row.summary = _summary_of(row, budget)
    row.save(update_fields=["summary", "updated_at"])
    return SummaryResult(row, row.summary, count, row.updated_at)


def _live_memories(session: Session):
    return session.memories.filter(deleted_at__isnull=True)


def _summary_of(session: Session, budget: int | None = None) -> str:
    rows = _live_memories(session).values_list(
        "id", "content", "created_at", "importance", "memory_type"
    )
    items = [
        SummaryItem(id=str(pk), content=content, created_at=created, importance=importance,
                    memory_type=memory_type)
        for pk, content, created, importance, memory_type in rows.iterator(chunk_size=2000)
    ]
    return summarize(items, budget=budget or settings.MEMORYRELAY_SUMMARY_BUDGET)


def _refreshed(session: Session) -> Session:
    return Session.objects.with_memory_count().select_related("agent").get(pk=session.pk)


@transaction.atomic
def session_delete(
    *, session: Session, cascade_memories: bool = False, at: datetime | None = None
) -> Session:
    """Soft-deletes the session. Its memories stay (still linked to it, so a restore brings
    the session back whole) unless ``cascade_memories``, which soft-deletes them too."""
    at = at or timezone.now()
    if cascade_memories:
        _live_memories(session).update(deleted_at=at, updated_at=at)
    session.deleted_at = at
    session.save(update_fields=["deleted_at", "updated_at"])
    return session


@transaction.atomic
def session_restore(*, session: Session) -> Session:
    """Undoes a soft delete, with the memories that were deleted in the same stroke.

    Refused when a live session has taken the external id meanwhile."""
    if session.deleted_at is None:
        return session
    if session.agent is not None and session.agent.deleted_at is not None:
        raise Invalid("Restore the session's agent first", field="agent_id")
    if session.external_id and _live_by_external_id(session.account, session.external_id):
        raise Conflict("A live session already uses this external_id", field="external_id")
    session.memories.filter(deleted_at=session.deleted_at).update(deleted_at=None)
    session.deleted_at = None
    session.save(update_fields=["deleted_at", "updated_at"])
    return session


@transaction.atomic
def agent_restore(*, agent: Agent) -> Agent:
    """Undoes an agent's soft delete with the sessions and memories deleted with it."""
    if agent.deleted_at is None:
        return agent
    if Agent.objects.live().for_account(agent.account).filter(name=agent.name).exists():
        raise Conflict("A live agent already uses this name", field="name")
    at = agent.deleted_at
    agent.sessions.filter(deleted_at=at).update(deleted_at=None)
    agent.memories.filter(deleted_at=at).update(deleted_at=None)
    agent.deleted_at = None
    agent.save(update_fields=["deleted_at", "updated_at"])
    return agent


@dataclass(frozen=True)
class StaleReport:
    ended: int
    summarized: int


def sessions_end_stale(
    *, idle_hours: float, summarize_them: bool = False, dry_run: bool = False,
    now: datetime | None = None,
) -> StaleReport:
    """Ends active sessions whose newest memory (or start) is older than ``idle_hours``."""
    now = now or timezone.now()
    stale = list(
        Session.objects.live().filter(status=SessionStatus.ACTIVE).with_last_activity()
        .filter(last_activity_at__lt=now - timedelta(hours=idle_hours))
        .order_by("created_at")
    )
    summarized = sum(1 for s in stale if summarize_them and _live_memories(s).exists())
    if not dry_run:
        for session in stale:
            session_end(session=session, auto_summarize=summarize_them, at=now)
    return StaleReport(ended=len(stale), summarized=summarized)
