"""Agent and session services: the only code that changes agents and sessions.

The API views, the admin and the management commands all call these functions, so none
of them can do what another forbids. Races are settled by database constraints and row
locks, in short transactions:

- an update re-reads the live row under a lock and writes only the fields it changes, so it
  never writes back ``deleted_at = NULL`` over a delete (a row deleted meanwhile is a 404);
- a delete locks the row it deletes (``FOR UPDATE``) before it cascades;
- a write that adds rows to an agent or a session holds that parent's live row
  (:func:`agents_for_write`, :func:`sessions_for_write`, :func:`parents_for_write`) inside
  its own transaction, so a concurrent delete either waits for the write and deletes what
  it wrote, or commits first and the write is refused.

Locks are taken agent first, then session, then memories, so two of these never deadlock.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Collate
from django.utils import timezone

from memoryrelay_site.db import locked, locked_live
from memoryrelay_site.errors import Conflict, Invalid, NotFound, ServiceError
from memoryrelay_site.llm import LLMUnavailable
from memoryrelay_site.serializers import METADATA_MAX_BYTES, is_uuid, metadata_size
from memoryrelay_site.tasks import log_not_queued, task_enqueue

from .models import Agent, Session, SessionStatus
from .summarizer import SummaryItem, summarize
from .summarizer_llm import llm_summarize, summary_endpoint

logger = logging.getLogger("memoryrelay.summaries")

# --- Row locks ------------------------------------------------------------------------


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


def agent_ref_checked(ref: str, field: str = "agent_id") -> str:
    """``ref`` stripped, or a 422 on ``field`` when it cannot name an agent."""
    ref = ref.strip()
    if not ref:
        raise Invalid("agent_id must not be blank", field=field)
    if len(ref) > 255:
        raise Invalid("agent_id must be at most 255 characters", field=field)
    return ref


def _refuse_a_gone_agent(account, ref: str) -> None:
    """A ref that matched no live agent creates one named ``ref``, unless it is the UUID of
    the account's deleted agent (the write was meant for that agent: NotFound) or cannot be
    stored as a name."""
    if "\x00" in ref or (is_uuid(ref) and Agent.objects.for_account(account)
                         .filter(pk=ref).exists()):
        raise NotFound("Agent not found")


def agent_get_or_create(
    *, account, name: str, description: str | None = None, metadata: dict | None = None,
    config: dict | None = None,
) -> tuple[Agent, bool]:
    """Creates the agent, or returns the live one with that name (race-free: the loser of
    a concurrent insert answers the winner, or creates anew when the winner was deleted
    before it could be read). A name that is the id of another of the account's agents is
    refused (:func:`_refuse_another_agents_id`)."""
    _refuse_another_agents_id(account, name)
    for _ in range(CREATE_ROUNDS):
        existing = Agent.objects.live().for_account(account).filter(name=name).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                agent = Agent.objects.create(
                    account=account, name=name, description=description,
                    metadata=metadata or {}, config=config or {})
            return agent, True
        except IntegrityError:
            continue
    raise _name_kept_changing(name)


def _refuse_another_agents_id(account, name: str, own=None) -> None:
    """A name that is the id of another agent of the account (live or deleted) is refused:
    refs are looked up by id first, so no ref could reach an agent so named."""
    if is_uuid(name) and str(own).lower() != name.lower() and Agent.objects.for_account(
            account).filter(pk=name).exists():
        raise Invalid("name is the id of another agent of this account", field="name")


# Tries of a create whose racing winner (same agent name, same session external_id)
# keeps being deleted before it is read.
CREATE_ROUNDS = 3


def _name_kept_changing(name: str) -> Conflict:
    return Conflict(f"The agent {name!r} was created and deleted concurrently again and "
                    "again; try again", field="agent_id")


AGENT_UPDATABLE = ("name", "description", "metadata", "config")


def agent_update(*, agent: Agent, changes: dict[str, Any]) -> Agent:
    """Partial update of the live agent: keys absent or None are left unchanged; metadata is
    replaced. An agent deleted meanwhile is a NotFound."""
    given = {f: changes[f] for f in AGENT_UPDATABLE if changes.get(f) is not None}
    if "name" in given:
        _refuse_another_agents_id(agent.account_id, given["name"], own=agent.pk)
    try:
        with transaction.atomic():
            row = locked_live(Agent, agent.pk, NotFound("Agent not found"))
            changed = {f: v for f, v in given.items() if getattr(row, f) != v}
            for field, value in changed.items():
                setattr(row, field, value)
            if changed:  # only what changes is written; nothing new moves no updated_at
                row.save(update_fields=[*changed, "updated_at"])
    except IntegrityError:
        raise Conflict(f"An agent named {given.get('name')!r} already exists",
                       field="name") from None
    return row


def agent_delete(*, agent: Agent, at: datetime | None = None) -> Agent:
    """Soft-deletes the agent with its sessions and memories, all stamped with one time,
    but for the sessions other agents wrote into (a conversation shared through an
    external_id): those stay for them, without this agent's memories and with no owner
    (``agent_id`` null). Writes racing it land
    first (and are deleted here, or keep a shared session) or are refused."""
    at = at or timezone.now()
    with transaction.atomic():
        row = locked_live(Agent, agent.pk, NotFound("Agent not found"))
        # Held before they are judged (the agent, then its sessions: every writer's order),
        # so no other agent's memory lands in a session after it was judged its alone.
        owned = list(row.sessions.filter(deleted_at__isnull=True).select_for_update()
                     .order_by("pk").values_list("pk", flat=True))
        memories = row.memories.model._base_manager  # the memories app's, not imported
        shared = set(memories.filter(session_id__in=owned, deleted_at__isnull=True)
                     .exclude(agent_id=row.pk).values_list("session_id", flat=True))
        Session.objects.filter(pk__in=[pk for pk in owned if pk not in shared]).update(
            deleted_at=at, updated_at=at)
        # The shared ones are the others' now: owned by no agent, rather than naming one
        # that no read shows (a choice among the others would race their own deletes).
        Session.objects.filter(pk__in=shared).update(agent=None, updated_at=at)
        row.memories.filter(deleted_at__isnull=True).update(deleted_at=at, updated_at=at)
        row.deleted_at = at
        row.save(update_fields=["deleted_at", "updated_at"])
    return row


# An agent's last_active_at is kept to this resolution: a write moves it only when it is
# older, so most writes of a busy agent do not update the agent row.
ACTIVITY_RESOLUTION = timedelta(seconds=60)


def agents_for_write(*, account, refs, at: datetime, refused: dict | None = None,
                     created: list | None = None) -> dict[str, Agent]:
    """Inside a write transaction: the live agents named by ``refs`` (checked refs: UUIDs or
    names), each held until commit, keyed by ref. A name not seen before creates its agent.
    A ref that cannot be an agent (a deleted agent's UUID) raises NotFound, or, given
    ``refused``, is put there with its error and left out. ``created`` (when given) gets the
    agents this transaction inserted (never one a concurrent write created first).

    Every agent is taken in the order of its name, known ones and new ones alike, so two
    writes naming the same agents never hold one each while waiting for the other's (a
    deadlock). Known agents are taken by one SELECT ... FOR NO KEY UPDATE, ordered by name.
    When a write names several agents and only some are known, that SELECT is undone (a
    savepoint: its locks go with it) and each agent is taken, or created, in turn.

    A concurrent :func:`agent_delete` (FOR UPDATE) waits for the write and then deletes
    what it added, or committed first and the agent is not found live (a name then creates
    a new agent, as a write after the delete would). Writers of one agent queue on its row.
    On SQLite the write transaction holds the database's write lock, which serializes the
    same way. ``last_active_at`` moves forward when older than ACTIVITY_RESOLUTION (one
    UPDATE for all of them); a known agent active within it costs this write nothing more."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    query = Q()
    for ref in refs:
        query |= Q(pk=ref) | Q(name=ref) if is_uuid(ref) else Q(name=ref)
    held = (Agent.objects.select_for_update(no_key=True).live().for_account(account)
            .order_by(_by_code_point("name")))
    if len(refs) == 1:
        found = list(held.filter(query))
    else:
        try:
            with transaction.atomic():
                found = list(held.filter(query))
                if 0 < len(_matched(refs, found)) < len(refs):
                    raise _OutOfOrder(found)
        except _OutOfOrder as known:  # its locks were released with the savepoint
            found = _take_in_name_order(account, refs, known.agents, created)
    agents = _matched(refs, found)
    for ref in sorted(ref for ref in refs if ref not in agents):
        try:
            _refuse_a_gone_agent(account, ref)
        except ServiceError as exc:
            if refused is None:
                raise
            refused[ref] = exc
            continue
        agents[ref], inserted = _agent_create_held(account, ref)
        if inserted and created is not None:
            created.append(agents[ref])
    stale = {a.pk: a for a in agents.values()
             if a.last_active_at is None or at - a.last_active_at >= ACTIVITY_RESOLUTION}
    if stale:
        Agent.objects.filter(pk__in=list(stale)).update(last_active_at=at)
        for agent in stale.values():
            agent.last_active_at = at
    return agents


def _by_code_point(field: str):
    """``field`` ordered as Python sorts text (by code point), whatever the database's
    collation: known agents are held in this order and new ones created in ``sorted()``
    order, and the two must agree (``en_US`` puts "a" before "B", Python "B" first)."""
    return Collate(field, "C") if connection.vendor == "postgresql" else field


class _OutOfOrder(Exception):
    def __init__(self, agents):
        self.agents = agents


def _matched(refs, found) -> dict[str, Agent]:
    """{ref: its agent} of the refs ``found`` holds (a UUID wins over a name that happens
    to look like one)."""
    agents = {}
    for ref in refs:
        matches = sorted((a for a in found if str(a.pk) == ref.lower() or a.name == ref),
                         key=lambda agent: str(agent.pk) != ref.lower())
        if matches:
            agents[ref] = matches[0]
    return agents


def _take_in_name_order(account, refs, known, created: list | None) -> list[Agent]:
    """Inside a write transaction: the agents ``refs`` name, each taken in the order of its
    name: a known one (``known``: as a first read found them) by its id, a new name created
    (or, when a concurrent write created it first, taken; ``created`` gets those this
    transaction inserted). Refs that name no live agent and cannot create one are left for
    the caller to refuse."""
    by_ref = _matched(refs, known)
    order = sorted(refs, key=lambda ref: by_ref[ref].name if ref in by_ref else ref)
    taken: list[Agent] = []
    live = Agent.objects.select_for_update(no_key=True).live().for_account(account)
    for ref in order:
        agent = live.filter(pk=by_ref[ref].pk).first() if ref in by_ref else None
        if agent is not None:
            taken.append(agent)
            continue
        try:  # a deleted agent's UUID (or a name that cannot be stored): refused by the caller
            _refuse_a_gone_agent(account, ref)
        except ServiceError:
            continue
        agent, inserted = _agent_create_held(account, ref)
        if inserted and created is not None:
            created.append(agent)
        taken.append(agent)
    return taken


def parents_for_write(*, account, agent_ref: str | None, session_id=None,
                      at: datetime | None = None) -> tuple[Agent | None, Session | None]:
    """Inside a write transaction that adds one row: its agent (a checked ref, or None) and
    its session (or None), each held until commit, agent first (:func:`agents_for_write`,
    :func:`sessions_for_write`). A session the account cannot see, or one deleted first,
    refuses the write (:func:`session_gone`)."""
    agent = session = None
    if agent_ref is not None:
        agent = agents_for_write(account=account, refs=[agent_ref],
                                 at=at or timezone.now())[agent_ref]
    if session_id:
        session = sessions_for_write(account=account, session_ids=[session_id]).get(
            str(session_id))
        if session is None:
            raise session_gone()
    return agent, session


def _agent_create_held(account, name: str) -> tuple[Agent, bool]:
    """Inside a write transaction: (a new agent named ``name``, True), uncommitted, so
    held; or (the live one a concurrent write created first, False), held (or, when that
    one was deleted before it could be read, a new one again)."""
    for _ in range(CREATE_ROUNDS):
        try:
            with transaction.atomic():
                return Agent.objects.create(account=account, name=name), True
        except IntegrityError:
            winner = (Agent.objects.select_for_update(no_key=True).live().for_account(account)
                      .filter(name=name).first())
            if winner is not None:
                return winner, False
    raise _name_kept_changing(name)


# --- Sessions ---------------------------------------------------------------------------


def session_get(*, account, session_id) -> Session:
    session = (
        Session.objects.live().for_account(account).with_memory_count()
        .select_related("agent").filter(pk=session_id).first()
    )
    if session is None:
        raise NotFound("Session not found")
    return session


def session_create(
    *,
    account,
    agent_ref: str | None = None,
    external_id: str | None = None,
    project: str | None = None,
    title: str | None = None,
    metadata: dict | None = None,
) -> Session:
    ref = agent_ref_checked(agent_ref) if agent_ref else None
    try:
        with transaction.atomic():
            agent, _ = parents_for_write(account=account, agent_ref=ref)
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
    session.memory_count = 0
    return session


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
    the loser of a concurrent insert gets IntegrityError and reads the winner's row. When
    the winner was deleted before it could be read, the external_id is free again and the
    loser tries once more; a session deleted right after this call created it is answered
    as created (the delete came after). A 409 only if that keeps happening.
    """
    for _ in range(CREATE_ROUNDS):
        existing = _live_by_external_id(account, external_id)
        if existing is not None:
            return existing, False
        try:
            made = session_create(account=account, agent_ref=agent_ref,
                                  external_id=external_id, project=project, title=title,
                                  metadata=metadata)
        except Conflict as exc:
            if exc.field != "external_id":
                raise
            continue  # another request's session won: read it
        # read back with its counts; deleted as soon as it was made, it is answered as made
        return _live_by_external_id(account, external_id) or made, True
    raise Conflict("The session of this external_id was created and deleted concurrently "
                   "again and again; try again", field="external_id")



def _live_by_external_id(account, external_id: str) -> Session | None:
    return (
        Session.objects.live().for_account(account).with_memory_count()
        .select_related("agent").filter(external_id=external_id).first()
    )


def session_contributors(*, session: Session) -> list[str]:
    """Names of the live agents that own the session or wrote live memories into it (a
    deleted owner's name may since name another agent)."""
    writers = Q(pk__in=session.memories.filter(deleted_at__isnull=True).values("agent_id"))
    if session.agent_id is not None:
        writers |= Q(pk=session.agent_id)
    return sorted(set(Agent.objects.live().filter(writers).values_list("name", flat=True)))


def _locked(session: Session) -> Session:
    """Re-reads the live session under a row lock, so concurrent ends and deletes serialize."""
    return locked_live(Session, session.pk, NotFound("Session not found"))


def session_gone() -> Invalid:
    """The answer to a write naming a session the account cannot see, or one deleted
    before the write commits: a 422 on ``session_id``."""
    return Invalid("Session not found", field="session_id")


def sessions_for_write(*, account, session_ids) -> dict[str, Session]:
    """Inside a write transaction (after the agents): the account's live sessions among
    ``session_ids``, each held until commit (one SELECT ... FOR NO KEY UPDATE, in id order),
    keyed by id as a string. An id missing from the answer names a session the account
    cannot see or one deleted first: the write into it is refused (:func:`session_gone`)."""
    ids = sorted({str(pk) for pk in session_ids})
    if not ids:
        return {}
    return {str(s.pk): s for s in Session.objects.select_for_update(no_key=True).live()
            .for_account(account).filter(pk__in=ids).order_by("pk")}


def _merged_metadata(stored: dict, given: dict) -> dict:
    """``given`` merged into ``stored``; Invalid on ``metadata`` when the merge is over the
    size a request may send (each part within it can add up past it)."""
    merged = {**stored, **given}
    size = metadata_size(merged)
    if size > METADATA_MAX_BYTES:
        raise Invalid(f"merged with the session's metadata it would be {size} bytes as JSON; "
                      f"at most {METADATA_MAX_BYTES}", field="metadata")
    return merged


SESSION_ENDED_FIELDS = ("status", "ended_at", "summary", "summary_method", "metadata")


def session_end(
    *,
    session: Session,
    summary: str | None = None,
    metadata: dict | None = None,
    auto_summarize: bool = False,
    at: datetime | None = None,
    idle_before: datetime | None = None,
) -> Session:
    """Ends the session (idempotent: ``ended_at`` keeps its first value).

    A given ``summary`` replaces the stored one; ``metadata`` merges into the stored one;
    ``auto_summarize`` with no summary stores one generated from the memories (before the
    transaction opens: no lock is held while it is built), unless the session holds a
    summary someone wrote (``provided``): ending again never writes over it.
    ``idle_before``: only an active session idle since then is ended (checked under its
    lock, which memory writes into it take too); otherwise :class:`NotIdle`.
    """
    method = "provided" if summary is not None else None
    if summary is None and auto_summarize and session.summary_method != "provided":
        items = _summary_items(session)
        if items:
            summary, method = _summary_text(items, session=session), "extractive"
    with transaction.atomic():
        row = _locked(session)
        if idle_before is not None and not _idle_since(row, idle_before):
            raise NotIdle
        before = {f: getattr(row, f) for f in SESSION_ENDED_FIELDS}
        row.mark_ended(at or timezone.now())
        if method == "extractive" and row.summary_method == "provided":
            summary = method = None  # written meanwhile: it wins
        if summary is not None:
            row.summary, row.summary_method = summary, method
        if metadata:
            row.metadata = _merged_metadata(row.metadata, metadata)
        changed = [f for f in SESSION_ENDED_FIELDS if getattr(row, f) != before[f]]
        if changed:  # ending an ended session again with nothing new moves no updated_at
            row.save(update_fields=[*changed, "updated_at"])
        if method == "extractive" and summary_endpoint() is not None:
            # The LLM's summary follows from a task: an end never waits on an LLM.
            transaction.on_commit(partial(_summary_refine_later, row.pk, summary))
    return _refreshed(row)


class NotIdle(Exception):
    """The session was written to or ended since it was found idle."""


def _idle_since(row: Session, cutoff: datetime) -> bool:
    return _idle_sessions(cutoff).filter(pk=row.pk).exists()


def _idle_sessions(cutoff: datetime):
    """The live active sessions whose newest memory (or start) is older than ``cutoff``."""
    return (Session.objects.live().filter(status=SessionStatus.ACTIVE).with_last_activity()
            .filter(last_activity_at__lt=cutoff))


def _summary_refine_later(session_id, replaces: str) -> None:
    from .tasks import session_summary_llm

    try:
        task_enqueue(session_summary_llm, str(session_id), summary_fingerprint(replaces))
    except Exception as exc:  # noqa: BLE001 - the extractive summary stays; never fails
        log_not_queued(f"the LLM summary of session {session_id}", exc,
                       "the extractive summary stays")


def summary_fingerprint(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


def session_summary_replace(*, session_id, replaces: str, summary: str, method: str) -> bool:
    """Stores ``summary`` on the live session if its summary is still the one fingerprinted
    ``replaces`` (a summary given or generated meanwhile wins)."""
    with transaction.atomic():
        row = Session.objects.select_for_update().filter(
            pk=session_id, deleted_at__isnull=True).first()
        if row is None or summary_fingerprint(row.summary) != replaces:
            return False
        row.summary, row.summary_method = summary, method
        row.save(update_fields=["summary", "summary_method", "updated_at"])
    return True


@dataclass(frozen=True)
class SummaryResult:
    session: Session
    summary: str
    memory_count: int
    generated_at: datetime


def session_summarize(*, session: Session, budget: int | None = None) -> SummaryResult:
    """Builds an extractive summary from the session's live memories (outside any
    transaction; at most MEMORYRELAY_SUMMARY_MAX_MEMORIES of the newest), then stores it
    in a short one."""
    items, count = _summary_rows(session)
    if not items:
        raise Invalid("Session has no memories to summarize" + (
            " (confidential memories are never summarized)" if count else ""),
            field="session_id")
    summary, method = llm_summary_or_none(items, budget), "llm"
    if summary is None:
        summary, method = _summary_text(items, budget, session), "extractive"
    if count >= settings.MEMORYRELAY_SUMMARY_MAX_MEMORIES:  # memory_count stays exact
        count = _live_memories(session).count()
    with transaction.atomic():
        row = _locked(session)
        row.summary, row.summary_method = summary, method
        row.save(update_fields=["summary", "summary_method", "updated_at"])
    return SummaryResult(row, summary, count, row.updated_at)


def llm_summary_or_none(items: list[SummaryItem], budget: int | None = None) -> str | None:
    """The configured LLM's summary of ``items``, or None (not configured, or it failed:
    the caller makes the extractive one)."""
    endpoint = summary_endpoint()
    if endpoint is None:
        return None
    try:
        return llm_summarize(items, budget=budget or settings.MEMORYRELAY_SUMMARY_BUDGET,
                             endpoint=endpoint) or None
    except LLMUnavailable as exc:
        logger.warning("LLM summary failed, the extractive one is used: %s", exc)
        return None


def _live_memories(session: Session):
    return session.memories.filter(deleted_at__isnull=True)


# A confidential memory (memories_app's Visibility.CONFIDENTIAL) is never summarized: a
# summary is shown wherever the session is, and an LLM may write it.
CONFIDENTIAL = "confidential"


def _summary_items(session: Session) -> list[SummaryItem]:
    """The newest MEMORYRELAY_SUMMARY_MAX_MEMORIES live memories of the session (an index
    range, however large the session) but the confidential ones, the columns the
    summarizer reads, streamed; not their vectors (see _summary_text)."""
    return _summary_rows(session)[0]


def _summary_rows(session: Session) -> tuple[list[SummaryItem], int]:
    """(the items of :func:`_summary_items`, how many memories were read for them)."""
    rows = (_live_memories(session).order_by("-created_at", "-id")
            .values_list("id", "content", "created_at", "importance", "memory_type",
                         "visibility")
            [:settings.MEMORYRELAY_SUMMARY_MAX_MEMORIES])
    items, read = [], 0
    for pk, content, created, importance, memory_type, visibility in rows.iterator(
            chunk_size=2000):
        read += 1
        if visibility != CONFIDENTIAL:
            items.append(SummaryItem(id=str(pk), content=content, created_at=created,
                                     importance=importance, memory_type=memory_type))
    return items, read


def _summary_text(items: list[SummaryItem], budget: int | None = None,
                  session: Session | None = None) -> str:
    # The stored embeddings (read through the reverse relation) let the summarizer tell
    # near-duplicates by meaning; it asks only for those of the units it may keep, a few
    # hundred at a time. A memory without one is compared by its words.
    def vectors(ids: list[str]) -> dict:
        return {str(pk): vector for pk, vector in
                session.memories.filter(pk__in=ids).values_list("id", "embedding")}

    return summarize(items, budget=budget or settings.MEMORYRELAY_SUMMARY_BUDGET,
                     vectors=vectors if session is not None else None)


def _refreshed(session: Session) -> Session:
    return Session.objects.with_memory_count().select_related("agent").get(pk=session.pk)


def session_delete(
    *, session: Session, cascade_memories: bool = False, at: datetime | None = None
) -> Session:
    """Soft-deletes the session. Its memories stay (still linked to it, so a restore brings
    the session back whole) unless ``cascade_memories``, which soft-deletes them too; a
    memory written concurrently lands first (and is deleted here) or is refused."""
    at = at or timezone.now()
    with transaction.atomic():
        row = _locked(session)
        if cascade_memories:
            _live_memories(row).update(deleted_at=at, updated_at=at)
        row.deleted_at = at
        row.save(update_fields=["deleted_at", "updated_at"])
    return row


@transaction.atomic
def session_restore(*, session: Session) -> Session:
    """Undoes a soft delete, with the memories that were deleted in the same stroke.

    Refused when a live session has taken the external id meanwhile."""
    # The agent before the session: the order every writer locks in.
    owner = session.agent_id and Agent.objects.select_for_update().get(pk=session.agent_id)
    row = locked(Session.objects, session.pk, NotFound("Session not found"))
    if row.deleted_at is None:
        return row
    if owner and owner.deleted_at is not None:
        raise Invalid("Restore the session's agent first", field="agent_id")
    if row.external_id and _live_by_external_id(row.account_id, row.external_id):
        raise _external_id_taken(row.external_id)
    # Restored rows are changed rows: their updated_at moves, so a backup taken now carries
    # them back over an older copy (an import keeps a copy as new as the file's).
    row.memories.filter(deleted_at=row.deleted_at).update(deleted_at=None,
                                                          updated_at=timezone.now())
    row.deleted_at = None
    with _external_id_kept(row.external_id):
        row.save(update_fields=["deleted_at", "updated_at"])
    return row


def _external_id_taken(external_id: str | None, of: str = "this session") -> Conflict:
    named = f" {external_id!r}" if external_id else ""
    return Conflict(f"A live session already uses the external_id{named} of {of}: delete "
                    "that session first", field="external_id")


@contextmanager
def _external_id_kept(external_id: str | None, of: str = "this session"):
    """A restore's unique violation on external_id (a session created with it since the
    check, by a concurrent get-or-create) is the same Conflict as the check's."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise _external_id_taken(external_id, of) from None


@transaction.atomic
def agent_restore(*, agent: Agent) -> Agent:
    """Undoes an agent's soft delete with the sessions and memories deleted with it."""
    row = locked(Agent.objects, agent.pk, NotFound("Agent not found"))
    if row.deleted_at is None:
        return row
    name_taken = Conflict("A live agent already uses this name", field="name")
    if _live_agent_named(row.account_id, row.name):
        raise name_taken
    at, now = row.deleted_at, timezone.now()  # restored rows are changed rows (see above)
    sessions = row.sessions.filter(deleted_at=at)
    taken = (Session.objects.live().for_account(row.account_id)
             .filter(external_id__in=sessions.exclude(external_id=None).values("external_id"))
             .values_list("external_id", flat=True).first())
    if taken is not None:  # one of its sessions' conversation goes on in a new session
        raise _external_id_taken(taken, of="one of the agent's sessions")
    with _external_id_kept(None, of="one of the agent's sessions"):
        sessions.update(deleted_at=None, updated_at=now)
    row.memories.filter(deleted_at=at).update(deleted_at=None, updated_at=now)
    row.deleted_at = None
    try:  # an agent of the name made since the check (its first write) holds it now
        with transaction.atomic():
            row.save(update_fields=["deleted_at", "updated_at"])
    except IntegrityError:
        raise name_taken from None
    return row


def _live_agent_named(account_id, name: str) -> bool:
    return Agent.objects.live().for_account(account_id).filter(name=name).exists()


@dataclass(frozen=True)
class StaleReport:
    ended: int
    summarized: int


def sessions_end_stale(
    *, idle_hours: float, summarize_them: bool = False, dry_run: bool = False,
    now: datetime | None = None, progress=None,
) -> StaleReport:
    """Ends active sessions whose newest memory (or start) is older than ``idle_hours``.
    ``progress(total)`` returns the callback called after each session ended.

    The sessions are listed first and ended one by one (with a summary each, that can take
    minutes): one written to, ended or deleted since it was listed is left as it is, and
    not counted."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=idle_hours)
    stale = list(_idle_sessions(cutoff).order_by("created_at"))
    summarizable = {s.pk for s in stale if summarize_them and _live_memories(s).exists()}
    if dry_run:
        return StaleReport(ended=len(stale), summarized=len(summarizable))
    ended = summarized = 0
    step = progress(len(stale)) if progress is not None else None
    for session in stale:
        try:
            session_end(session=session, auto_summarize=summarize_them, at=now,
                        idle_before=cutoff)
            ended += 1
            summarized += session.pk in summarizable
        except (NotFound, NotIdle):  # deleted, written to or ended since it was listed
            pass
        if step is not None:
            step(1)
    return StaleReport(ended=ended, summarized=summarized)
