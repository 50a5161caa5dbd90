"""Memory services: create, update, delete, and the retention purge.

Embeddings are computed before any transaction opens, so no lock (on SQLite: the one write
lock of the whole database) is held while the model works; the transactions that follow
are short. Updates and deletes follow the rules in ``sessions_app.services``: an update
writes only its fields on the live row, a delete locks what it deletes, a new memory holds
its agent and session until it commits."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import CharField, F, Func
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from memoryrelay_site import db
from memoryrelay_site.errors import Invalid, NotFound, ServiceError
from memoryrelay_site.purge import delete_in_order, named_by_another_row, tally
from memoryrelay_site.serializers import is_uuid
from sessions_app.models import Agent, Project, ProjectRelationship, Session
from sessions_app.services import (
    agent_ref_checked,
    agents_for_write,
    locked_live,
    session_gone,
    sessions_for_write,
)

from . import search, vectors
from .embeddings import embed_or_none, get_provider
from .linked_entities import mark_unlinked, memories_mentioning
from .models import SETTLED_DELIVERIES, Memory, WebhookDelivery, WriteStatus, tier_for
from .signals import announce_written, content_changed

CHARS_PER_TOKEN = 4
UPDATABLE = ("content", "metadata", "importance", "tier", "memory_type", "visibility")


def memory_get(*, account, memory_id) -> Memory:
    memory = (Memory.objects.live().for_account(account).with_project_id()
              .filter(pk=memory_id).first())
    if memory is None:
        raise NotFound("Memory not found")
    return memory


def memory_create(
    *,
    account,
    agent_ref: str,
    content: str,
    session_id=None,
    project: str | None = None,
    project_id: str | None = None,
    metadata: dict | None = None,
    memory_type: str | None = None,
    importance: float | None = None,
    tier: str | None = None,
    visibility: str | None = None,
    deduplicate: bool = False,
    dedup_threshold: float = 0.95,
    extract: bool | None = None,
    vector: np.ndarray | None = None,
    pending: bool = False,
    webhook_url: str = "",
    queued: bool = True,
    then: Callable[[Memory], None] | None = None,
) -> Memory:
    """Stores a memory with its embedding; ``session_id`` attaches it to a live session.
    ``pending`` (POST /v2/memories) stores it at once, unembedded, status ``pending``: a
    task (memories_app.tasks) embeds it and deduplicates it when asked; with ``queued``
    False no task is asked for here: a worker's dispatcher finds it. ``then`` runs in
    the write's transaction once the row is inserted (the database queue's task row commits
    with the memory). ``extract`` is the write's ``auto_extract_entities``
    (``signals.memories_written``).

    With ``deduplicate``, a live memory of the same agent at least ``dedup_threshold``
    similar is returned instead (``is_duplicate`` set) and nothing is stored. A session
    deleted before the write commits refuses it (Invalid on session_id)."""
    write = _write_of(account, agent_ref=agent_ref, content=content, session_id=session_id,
                      project=project, project_id=project_id, metadata=metadata,
                      memory_type=memory_type, importance=importance, tier=tier,
                      visibility=visibility, deduplicate=deduplicate,
                      dedup_threshold=dedup_threshold, extract=extract, pending=pending,
                      webhook_url=webhook_url, queued=queued)
    if vector is None and not pending:
        vector = embedding_of(content)
    write.vector = vector
    with transaction.atomic():
        stored = _store(account, [write])[0]
        if isinstance(stored, ServiceError):
            raise stored
        if then is not None and not getattr(stored, "is_duplicate", False):
            then(stored)
    return stored


@dataclass
class _Write:
    """One memory to store, its arguments checked (:func:`_store`)."""

    agent_ref: str
    content: str
    session_id: str | None = None
    project: str | None = None
    metadata: dict | None = None
    memory_type: str | None = None
    importance: float | None = None
    tier: str | None = None
    visibility: str | None = None
    dedup_threshold: float | None = None  # None: no dedup
    extract: bool | None = None
    pending: bool = False
    webhook_url: str = ""
    queued: bool = True  # pending: the caller enqueues its task (else a dispatcher will)
    vector: np.ndarray | None = None


def _write_of(account, *, agent_ref: str, content: str, session_id=None,
              project: str | None = None, project_id: str | None = None,
              deduplicate: bool = False, dedup_threshold: float = 0.95, **fields) -> _Write:
    """The arguments of :func:`memory_create` (a create's or a batch item's) checked: the
    agent ref, the project label a ``project_id`` names, the dedup asked for."""
    if project_id:
        project = _project_label(account, project, project_id)
    return _Write(agent_ref=agent_ref_checked(agent_ref), content=content,
                  session_id=str(session_id) if session_id else None, project=project,
                  dedup_threshold=dedup_threshold if deduplicate else None, **fields)


def _store(account, writes: list[_Write]) -> list[Memory | ServiceError]:
    """Inside a write transaction: stores ``writes`` in order, each answered by its memory
    (a duplicate's original with ``is_duplicate`` set) or by the error that refused it alone.

    The statements do not grow with the items: one SELECT ... FOR NO KEY UPDATE holds the
    agents (and at most one UPDATE marks them active, see ``agents_for_write``), one holds
    the sessions, and the rows go in one INSERT. Only a deduplicating write needs its
    own query, after the rows before it are inserted, so it sees them as it did when each
    item was a write of its own. Locks are taken agent first, then session."""
    at = timezone.now()
    refused: dict = {}  # {agent ref: why it names no agent} (a deleted agent's UUID)
    created: list = []
    agents = agents_for_write(account=account, refs=[w.agent_ref for w in writes], at=at,
                              refused=refused, created=created)
    sessions = sessions_for_write(account=account,
                                  session_ids=[w.session_id for w in writes if w.session_id])
    answers: list[Memory | ServiceError] = []
    rows: list[Memory] = []
    for position, write in enumerate(writes):
        if write.agent_ref in refused:
            answers.append(refused[write.agent_ref])
            continue
        agent = agents[write.agent_ref]
        session = sessions.get(write.session_id) if write.session_id else None
        if write.session_id and session is None:
            answers.append(session_gone())
            continue
        if write.dedup_threshold is not None and not write.pending:
            Memory.objects.bulk_create(rows)
            rows = []
            duplicate = _duplicate_of(account, agent, write.content, write.vector,
                                      write.dedup_threshold, visibility=write.visibility)
            if duplicate is not None:
                duplicate.is_duplicate = True
                answers.append(duplicate)
                continue
        importance = 0.5 if write.importance is None else write.importance
        memory = Memory(
            account=account, agent=agent, session=session,
            project=write.project if write.project is not None
            else getattr(session, "project", None),
            content=write.content, metadata=write.metadata or {},
            memory_type=write.memory_type or "fact", importance=importance,
            tier=write.tier or tier_for(importance), visibility=write.visibility or "private",
            # A microsecond apart: the items of a batch keep their order, as separate
            # writes would (lists are newest first; ids break no tie between them).
            created_at=at + timedelta(microseconds=position), updated_at=at,
            extract_entities=write.extract,
            **vector_fields(write.vector),
            **(_pending_fields(at, write.dedup_threshold, write.webhook_url, write.queued)
               if write.pending else {}),
        )
        rows.append(memory)
        answers.append(memory)
    Memory.objects.bulk_create(rows)
    # An agent this write created for items that all failed goes with them, as it would
    # with a single write's rollback (it was never committed, so no one else saw it).
    used = {a.agent_id for a in answers if isinstance(a, Memory)}
    unused = [agent.pk for agent in created if agent.pk not in used]
    if unused:
        Agent.objects.filter(pk__in=unused).delete()
    mark_unlinked(a for a in answers if isinstance(a, Memory)
                  and not getattr(a, "is_duplicate", False))
    _announce(account, [a for a in answers if isinstance(a, Memory)
                        and not getattr(a, "is_duplicate", False) and a.status == "ready"])
    return answers


def _announce(account, memories: list[Memory]) -> None:
    """memories_written for stored memories, one signal per ``extract`` value."""
    for extract in (True, False, None):
        ids = [m.pk for m in memories if m.extract_entities is extract]
        announce_written(account_id=account.pk, memory_ids=ids, extract=extract,
                         reason="create")


def _pending_fields(at, dedup_threshold: float | None, webhook_url: str,
                   queued: bool) -> dict:
    """An asynchronous write's state. ``status_changed_at`` is null while no task was asked
    for it: the database queue's dispatcher (tasks.memory_embeds_dispatch) takes those."""
    return {"status": WriteStatus.PENDING, "status_changed_at": at if queued else None,
            "dedup_threshold": dedup_threshold, "webhook_url": webhook_url}


def _project_label(account, project: str | None, project_id: str) -> str:
    """The label a memory created with ``project_id`` gets: the slug of the registered
    project with that id, or ``project_id`` itself when it is no UUID (a plain label, as a
    memory of an unregistered project shows it)."""
    label = project_id
    if is_uuid(project_id):
        registered = Project.objects.live().for_account(account).filter(pk=project_id).first()
        if registered is None:
            raise Invalid("Project not found", field="project_id")
        label = registered.slug
    if project and project != label:
        raise Invalid("project and project_id name different projects", field="project_id")
    return label


def embedding_of(text: str) -> np.ndarray | None:
    """The embedding of ``text``, or None when the provider is missing or failing (the row
    is stored, keyword-searchable, and ``reembed`` fills it in). Called before any
    transaction opens."""
    matrix = embed_or_none([text])
    return matrix[0] if matrix is not None else None


def vector_fields(vector: np.ndarray | None) -> dict:
    """The embedding columns of a memory, decision or pattern for ``vector``."""
    if vector is None:
        return {"embedding": None, "embedding_model": "", "embedding_dimension": None}
    return {"embedding": vector, "embedding_model": get_provider().name,
            "embedding_dimension": int(vector.shape[0])}


DEDUP_CANDIDATES = 5  # the nearest memories over the threshold judged for a duplicate
# What a near-identical sentence can change and still be another fact: a number (a version,
# a limit, an address, a phone, a time), a weekday or a month, a negation. "The API rate
# limit is 100 requests per minute" and "... 1000 ..." are 0.96 alike to the model.
_FACT = re.compile(
    r"\d[\d.,:/x-]*\d|\d|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b"
    r"|\b(?:january|february|march|april|june|july|august|september|october|november"
    r"|december)\b|\b(?:not|no|never|longer|without)\b|n't\b", re.IGNORECASE)


def _facts(text: str) -> Counter:
    return Counter(token.lower() for token in _FACT.findall(text))


def _duplicate_of(account, agent, content: str, vector, threshold: float,
                  exclude=None, visibility: str | None = None) -> Memory | None:
    """The agent's live, finished memory nearest ``content`` if at least ``threshold``
    similar, of the same ``visibility`` (a private write is no copy of a confidential
    memory, nor the reverse), and saying the same numbers, days and negations (otherwise it
    is a correction, kept); with no embeddings, the one with the same text (case and spacing
    aside). ``exclude``: the memory being deduplicated itself (an asynchronous write is
    stored first). A write still pending is no original: it may yet be deduplicated away."""
    mine = Memory.objects.live().for_account(account).filter(
        agent=agent, status=WriteStatus.READY,
        visibility=visibility or Memory._meta.get_field("visibility").default)
    if exclude is not None:
        mine = mine.exclude(pk=exclude)
    if vector is not None:
        wanted = _facts(content)
        for candidate, similarity in vectors.nearest(mine, vector, DEDUP_CANDIDATES):
            if similarity < threshold:
                break
            if _facts(candidate.content) == wanted:
                return candidate
        return None
    words = content.split()
    if not words:
        return None
    wanted = " ".join(words).casefold()
    # The texts holding its longest word, then compared with spacing folded (an exact
    # match on the text missed a copy with a double space or a tab inside).
    for candidate in mine.filter(content__icontains=max(words, key=len)).order_by("pk"):
        if " ".join(candidate.content.split()).casefold() == wanted:
            return candidate
    return None


def memory_update(*, memory: Memory, changes: dict[str, Any],
                  placed: dict[str, Any] | None = None) -> Memory:
    """Partial update of the live memory: absent or None values are left unchanged, and only
    the fields given are written. A memory deleted meanwhile is a NotFound.

    A new ``importance`` recomputes the tier unless a ``tier`` is given too. New content is
    embedded before the transaction opens. ``placed``: where staff put the memory (its
    agent, session, project label: fields the API does not update), written as given in
    the same transaction, the rows they name held live first."""
    given = {k: v for k, v in changes.items() if k in UPDATABLE and v is not None}
    if "importance" in given and "tier" not in given:
        given["tier"] = tier_for(given["importance"])
    content = given.get("content")
    embedded = None
    if content is not None and content != memory.content:
        embedded = vector_fields(embedding_of(content))
    while True:  # at most twice: once more only if the content changed under us
        with transaction.atomic():
            db.hold_named_live(placed or {})
            row = locked_live(Memory, memory.pk, NotFound("Memory not found"))
            if content in (None, row.content) or embedded is not None:
                return _write_changes(row, given, embedded, placed or {})
        embedded = vector_fields(embedding_of(content))


def _write_changes(row: Memory, given: dict[str, Any], embedded: dict | None,
                   placed: dict[str, Any]) -> Memory:
    changed = {f: v for f, v in given.items() if getattr(row, f) != v}
    if "content" in changed:
        changed.update(embedded)
    changed.update(placed)
    if not changed:  # nothing new: nothing written, updated_at stays
        return row
    for field, value in changed.items():
        setattr(row, field, value)
    row.save(update_fields=[*changed, "updated_at"])
    if "content" in changed:
        content_changed.send(sender=Memory, memory_id=row.pk)
        announce_written(account_id=row.account_id, memory_ids=[row.pk], extract=None,
                         reason="update")
    return row


def memory_delete(*, memory: Memory, at: datetime | None = None) -> Memory:
    """Soft-deletes the live memory under its row lock; a memory deleted meanwhile is a
    NotFound. Its time is read once the lock is held, so it follows any write that held the
    row before (a link's ``updated_at``: a backup's newer copy is the deleted one)."""
    with transaction.atomic():
        locked_live(Memory, memory.pk, NotFound("Memory not found"))
        at = at or timezone.now()
        Memory.objects.filter(pk=memory.pk).update(deleted_at=at, updated_at=at)
    memory.deleted_at = memory.updated_at = at
    return memory


@transaction.atomic
def memory_restore(*, memory: Memory) -> Memory:
    agent_gone = Invalid("Restore the memory's agent first", field="agent_id")
    locked_live(Agent, memory.agent_id, agent_gone, no_key=True)
    row = db.locked(Memory.objects.without_vectors(), memory.pk, NotFound("Memory not found"))
    if row.deleted_at is not None:
        memory.deleted_at = None
        memory.save(update_fields=["deleted_at", "updated_at"])
    return memory


@dataclass(frozen=True)
class BatchOutcome:
    index: int
    status: str  # "success", "failed" or "skipped" (a duplicate that was not stored)
    memory: Memory | None = None
    error: str | None = None
    error_code: str | None = None


def memories_batch_create(*, account, items: list[dict | ServiceError]) -> list[BatchOutcome]:
    """Stores many memories, embedding them in one call. ``items`` holds the keyword
    arguments of :func:`memory_create` for each item, or the error that rejected it; a
    bad item fails alone and the others are stored, in one transaction (:func:`_store`:
    the agents resolved and held once, the rows inserted together)."""
    outcomes = {i: BatchOutcome(i, "failed", error=e.message, error_code=e.type)
                for i, e in enumerate(items) if isinstance(e, ServiceError)}
    writes: list[tuple[int, _Write]] = []
    for i, item in enumerate(items):
        if isinstance(item, ServiceError):
            continue
        try:
            writes.append((i, _write_of(account, **item)))
        except ServiceError as exc:
            outcomes[i] = BatchOutcome(i, "failed", error=exc.message, error_code=exc.type)
    matrix = embed_or_none([write.content for _, write in writes])
    for position, (_, write) in enumerate(writes):
        write.vector = matrix[position] if matrix is not None else None
    with transaction.atomic():
        answers = _store(account, [write for _, write in writes]) if writes else []
    for (i, _), answer in zip(writes, answers, strict=True):
        if isinstance(answer, ServiceError):
            outcomes[i] = BatchOutcome(i, "failed", error=answer.message,
                                       error_code=answer.type)
        else:
            duplicate = getattr(answer, "is_duplicate", False)
            outcomes[i] = BatchOutcome(i, "skipped" if duplicate else "success", memory=answer)
    return [outcomes[i] for i in range(len(items))]


def memory_search(
    *,
    account,
    text: str,
    mode: str = "hybrid",
    limit: int = 10,
    min_score: float = 0.0,
    agent_ref: str | None = None,
    session_id=None,
    project: str | None = None,
    tier: str | None = None,
    min_importance: float | None = None,
    metadata_filter: dict | None = None,
    include_confidential: bool = False,
    exclude_ids: list | None = None,
    entity: str | None = None,
    judged: bool = False,
) -> list[search.Hit]:
    """Ranks the account's live memories for ``text``; filters only narrow the candidates
    (``entity``: linked to that entity, by id or by name in any spelling; ``judged``: an LLM
    may judge the first hits when one is configured, memories_app/rerank.py)."""
    queryset = Memory.objects.live().for_account(account).with_project_id()
    if exclude_ids:
        queryset = queryset.exclude(pk__in=exclude_ids)
    if entity:
        queryset = memories_mentioning(queryset, ref=entity)
    if agent_ref:
        queryset = queryset.filter(agent__in=Agent.objects.live().for_account(account)
                                   .by_ref(agent_ref))
    if session_id:
        queryset = queryset.filter(session_id=session_id)
    if project:
        queryset = queryset.filter(project=project)
    if tier:
        queryset = queryset.filter(tier=tier)
    if min_importance is not None:
        queryset = queryset.filter(importance__gte=min_importance)
    if not include_confidential:
        queryset = queryset.exclude(visibility="confidential")
    for n, (key, value) in enumerate((metadata_filter or {}).items()):
        queryset = queryset.alias(**{f"_meta{n}": ObjectKey(key, "metadata"),
                                     f"_metatype{n}": ObjectKeyType(key, "metadata")}).filter(
            **{f"_meta{n}": value, f"_metatype{n}": json_type(value)})
    try:
        return search.run(queryset, search.Query(text=text, mode=mode, limit=limit,
                                                 min_score=min_score, judged=judged))
    except search.SearchUnavailable as exc:
        raise Invalid(str(exc), field="search_mode") from None


class ObjectKey(KeyTransform):
    """The value of a top-level key of a JSON object, also of a key made of digits (Django's
    KeyTransform reads "7" as the array index 7, so ``{"7": "seven"}`` never matched)."""

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.lhs)
        return f"({lhs} {self.postgres_operator} %s)", (*params, self.key_name)

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.lhs)
        path = "$." + json.dumps(self.key_name)
        types = ",".join(repr(t) for t in connection.ops.jsonfield_datatype_values)
        return (f"(CASE WHEN JSON_TYPE({lhs}, %s) IN ({types}) THEN JSON_TYPE({lhs}, %s) "
                f"ELSE JSON_EXTRACT({lhs}, %s) END)"), (*params, path) * 3


def json_type(value: Any) -> str:
    """The JSON type of ``value``, named as PostgreSQL's ``jsonb_typeof`` names it."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


class ObjectKeyType(Func):
    """The JSON type (:func:`json_type`) of a top-level key's value. A metadata filter matches
    the type as well as the value: on SQLite the value alone could not tell ``"true"`` from
    ``true`` (nor ``"null"`` from ``null``), so ``{"flag": "true"}`` matched a boolean there
    and not on PostgreSQL."""

    output_field = CharField()

    def __init__(self, key_name: str, field: str):
        super().__init__(F(field))
        self.key_name = key_name

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.source_expressions[0])
        return f"jsonb_typeof({lhs} -> %s)", (*params, self.key_name)

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.source_expressions[0])
        path = "$." + json.dumps(self.key_name)
        sql = (f"(CASE JSON_TYPE({lhs}, %s) WHEN 'text' THEN 'string' WHEN 'true' THEN "
               f"'boolean' WHEN 'false' THEN 'boolean' WHEN 'integer' THEN 'number' "
               f"WHEN 'real' THEN 'number' ELSE JSON_TYPE({lhs}, %s) END)")
        return sql, (*params, path, *params, path)


@dataclass(frozen=True)
class Context:
    text: str
    hits: list


def memory_context(*, account, text: str, limit: int = 10, threshold: float = 0.5,
                   max_tokens: int | None = None, agent_ref: str | None = None) -> Context:
    """The best memories for ``text`` as one block of lines, within ``max_tokens``
    (about four characters a token)."""
    hits = memory_search(account=account, text=text, limit=limit, min_score=threshold,
                         agent_ref=agent_ref)
    budget = max_tokens * CHARS_PER_TOKEN if max_tokens else None
    lines, used, size = [], [], -1  # -1: no newline before the first line
    for hit in hits:
        line = "- " + " ".join(hit.memory.content.split())
        if budget is not None and size + 1 + len(line) > budget:
            if not lines and budget > 3:  # one over-long memory: cut it, never return nothing
                lines.append(line[: budget - 1].rstrip() + "…")
                used.append(hit)
            break
        lines.append(line)
        used.append(hit)
        size += 1 + len(line)
    return Context("\n".join(lines), used)


@dataclass(frozen=True)
class ReembedReport:
    stale: int
    failed: int


def memories_reembed(*, batch_size: int = 64, dry_run: bool = False,
                     progress=None) -> ReembedReport:
    """Embeds, batch by batch, the live memories whose vector is missing or stale.
    ``progress(total)`` is called once with the count (it returns the per-batch callback,
    called with each batch's size; memoryrelay_site.progress)."""
    provider = get_provider()
    stale = Memory.objects.stale_embeddings(provider.name).without_vectors()
    total = stale.count()
    step = progress(total) if progress is not None and not dry_run else None
    failed = 0 if dry_run else rows_reembed(stale, lambda m: m.content,
                                            batch_size=batch_size, step=step)
    return ReembedReport(stale=total, failed=failed)


def rows_reembed(stale, text_of, *, batch_size: int = 64, step=None) -> int:
    """Embeds the rows of ``stale`` (memories, decisions or patterns: any model with the
    embedding columns), keyset page by page in primary-key order, each page in one call to
    the provider and one transaction; ``step(n)`` after each page. A row changed while its
    page was embedded (``updated_at`` moved: its update stored its own vector) is left as it
    is. An asynchronous write that had failed for want of its vector is ``ready`` once it
    has one. Returns how many the provider failed to embed (they stay stale, for the next
    run)."""
    failed, after = 0, None
    while True:
        page = stale.filter(pk__gt=after) if after is not None else stale
        batch = list(page.order_by("pk")[:batch_size])
        if not batch:
            return failed
        after = batch[-1].pk
        matrix = embed_or_none([text_of(row) for row in batch])
        if step is not None:
            step(len(batch))
        if matrix is None:
            failed += len(batch)
            continue
        with transaction.atomic():
            for row, vector in zip(batch, matrix, strict=True):
                fields = vector_fields(vector)
                if getattr(row, "status", None) == WriteStatus.FAILED:
                    fields.update(status=WriteStatus.READY, status_error="",
                                  status_changed_at=timezone.now())
                stale.model.objects.filter(pk=row.pk, updated_at=row.updated_at).update(
                    **fields)


@dataclass(frozen=True)
class PurgeReport:
    memories: int
    sessions: int
    agents: int
    project_relationships: int = 0
    projects: int = 0
    webhook_deliveries: int = 0
    along: Counter = dataclass_field(default_factory=Counter)  # removed with them, by model


PURGED = (Memory, Session, Agent, ProjectRelationship, Project, WebhookDelivery)


def purge_deleted(*, older_than_days: int, dry_run: bool = False,
                  now: datetime | None = None) -> PurgeReport:
    """Removes for good the rows soft-deleted more than ``older_than_days`` ago.

    Memories first, then sessions and agents that no other row names any more (a live
    memory of a deleted session keeps it, and so does a decision of a deleted agent: a
    purge changes no row it does not remove), then project relationships and projects (a
    purged project takes its hidden relationships and adoptions along; one a pattern names
    as its source is kept), and the record of
    webhook deliveries settled (sent, given up or refused) before the cutoff. ``along``
    counts what went with them (their entity links, extraction records, ...)."""
    if older_than_days < 0:
        raise Invalid("older_than_days must be at least 0", field="older_than_days")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    querysets = [
        Memory.objects.filter(deleted_at__lt=cutoff),
        Session.objects.filter(deleted_at__lt=cutoff).exclude(named_by_another_row(Session)),
        Agent.objects.filter(deleted_at__lt=cutoff).exclude(named_by_another_row(Agent)),
        ProjectRelationship.objects.filter(deleted_at__lt=cutoff),
        Project.objects.filter(deleted_at__lt=cutoff).exclude(
            named_by_another_row(Project, along_too=False)),
        WebhookDelivery.objects.filter(updated_at__lt=cutoff, status__in=SETTLED_DELIVERIES),
    ]
    counts, with_them = tally(delete_in_order(querysets, dry_run=dry_run), PURGED)
    return PurgeReport(*counts, along=with_them)
