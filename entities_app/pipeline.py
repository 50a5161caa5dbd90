"""Entity extraction of memories: asking for it, and applying what an extractor found.

``extraction_request`` marks memories ``pending`` (one MemoryExtraction row each, tagged
with a fresh generation) and enqueues one ``memory_extract_entities`` task each
(entities_app/tasks.py): in the same commit on the database queue, after it on RQ. The task
runs ``extraction_apply``: the extractor reads the content outside any transaction; then,
in one short transaction, each mention finds the account's entity by entity_key and type
(or creates it: the partial unique constraint settles a race) and the memory's extracted
links are replaced by the new ones (manual links are never touched, and a manual link to an
entity found again stays as it is)."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from memories_app.models import Memory, Visibility, WriteStatus
from memoryrelay_site.errors import Conflict
from memoryrelay_site.tasks import backend_name, log_not_queued, task_enqueue

from .byok import account_extractor, active_key
from .extraction import get_extractor
from .extraction.base import Mention
from .extraction.llm import LLMExtractor
from .models import Entity, EntityLink, LinkSource
from .models_extraction import ExtractionStatus, MemoryExtraction
from .names import KEY_MAX, entity_key
from .services import CREATE_ATTEMPTS, entity_get_or_create

logger = logging.getLogger("memoryrelay.entities")


def auto_extract(extract: bool | None) -> bool:
    """Whether a write's ``auto_extract_entities`` asks for extraction (None: the server's
    MEMORYRELAY_AUTO_EXTRACT_ENTITIES)."""
    return settings.MEMORYRELAY_AUTO_EXTRACT_ENTITIES if extract is None else bool(extract)


def extractor():
    return get_extractor(settings.MEMORYRELAY_ENTITY_EXTRACTOR)


def extractor_of(memory: Memory):
    """The extractor for ``memory``: the account's own LLM, else the server's. A
    confidential memory never leaves the server: an LLM's offline fallback takes it."""
    default = extractor()
    if memory.visibility == Visibility.CONFIDENTIAL:
        return _offline(default)
    return account_extractor(account_id=memory.account_id, fallback=default) or default


def extractor_named(memory: Memory) -> tuple[str, str]:
    """(method, model) of what :func:`extractor_of` will run for ``memory``, told without
    building the account's LLM (no key decrypted, no use recorded): ``"llm"`` and the
    model of the account's active key, else the server's extractor."""
    tool = extractor()
    if memory.visibility == Visibility.CONFIDENTIAL:
        tool = _offline(tool)
    else:
        own = active_key(account=memory.account_id)
        if own is not None:  # the account's own LLM (the rules if it fails)
            return "llm", own.model
    return tool.method, tool.model or tool.method


def _offline(tool):
    return tool.fallback if isinstance(tool, LLMExtractor) else tool


def run_extractor(tool, text: str) -> tuple[list[Mention], str, str]:
    """(mentions, method, model): of the extractor that answered (an LLM may fall back)."""
    if hasattr(tool, "run"):
        return tool.run(text)
    return tool.extract(text), tool.method, tool.model


def extraction_request(*, memory_ids: Iterable) -> int:
    """Marks the live memories ``memory_ids`` pending and enqueues their extraction;
    returns how many were queued. Asking again re-extracts (the newest request
    wins; a run in progress finishes without overwriting it)."""
    ids = list(Memory.objects.live().filter(pk__in=list(memory_ids)).values_list("pk", flat=True))
    return _request(ids)


def _request(ids: list, *, only_missing: bool = False) -> int:
    """One upsert marks them pending under a new generation (``only_missing``: only those
    with no record yet, so a request made meanwhile stands); returns how many it asked for.
    On the database queue their tasks commit with it (one commit); on RQ they are queued
    once it commits (a task run before the commit would find nothing pending; the sweep
    catches a lost enqueue)."""
    if not ids:
        return 0
    pending = _pending()
    rows = [MemoryExtraction(memory_id=pk, created_at=pending["updated_at"], **pending)
            for pk in ids]
    with transaction.atomic():
        _commit_without_waiting_for_disk()
        if only_missing:
            MemoryExtraction.objects.bulk_create(rows, ignore_conflicts=True)
            ids = list(MemoryExtraction.objects.filter(memory_id__in=ids,
                                                         generation=pending["generation"])
                       .values_list("memory_id", flat=True))
        else:
            MemoryExtraction.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["memory"],
                update_fields=list(pending))
        if ids and backend_name() == "database":
            _enqueue(ids)
        elif ids:
            transaction.on_commit(lambda: _enqueue(ids))
    return len(ids)


def _pending() -> dict:
    """The fields of an extraction asked for (again): pending under a new generation, with
    no attempt or error yet."""
    return {"status": ExtractionStatus.PENDING, "attempts": 0, "error": "",
            "generation": _generation(), "updated_at": timezone.now()}


LOST_REQUESTS_WINDOW = timedelta(days=1)


def lost_requests_sweep(cutoff: datetime) -> int:
    """Asks again for the extraction of memories written in the last day (before ``cutoff``:
    their request had time to be made) that should have had one and have no record of it:
    the request, made after the response was sent, failed (the database went away just
    after the commit, the process was killed). Older memories are left to
    ``backfill_entities``, which says what it will do: a backup restored long ago is not
    extracted again behind the operator's back."""
    wanted = Q(extract_entities=True)
    if settings.MEMORYRELAY_AUTO_EXTRACT_ENTITIES:
        wanted |= Q(extract_entities__isnull=True)
    ids = list(Memory.objects.live().filter(
        wanted, status=WriteStatus.READY, extraction__isnull=True,
        created_at__gte=cutoff - LOST_REQUESTS_WINDOW, created_at__lt=cutoff,
    ).values_list("pk", flat=True)[:1000])
    # Only where there is still no record: a request made since the read (its write's
    # response just finished) is not overwritten, nor its memory extracted twice.
    asked = _request(ids, only_missing=True)
    if asked:
        logger.warning("asked again for the extraction of %d memories whose request was "
                       "lost", asked)
    return asked


def _commit_without_waiting_for_disk() -> None:
    """On PostgreSQL, this transaction's commit does not wait for its WAL flush (the write
    it follows already did): the request no longer pays a second disk sync. A crash in the
    next fraction of a second may lose the request, never the memory; `manage.py
    backfill_entities` (memories never processed) recovers it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _generation() -> int:
    """A fresh tag for a request: a run finishes only if the row still carries its tag."""
    return secrets.randbelow(2**31 - 1) + 1


# Memories per task when several are queued at once (a batch write, a backfill).
TASK_CHUNK = 50


def _enqueue(ids) -> None:
    from .tasks import memories_extract_entities, memory_extract_entities

    if len(ids) == 1:
        task_enqueue(memory_extract_entities, str(ids[0]))
        return
    for start in range(0, len(ids), TASK_CHUNK):
        task_enqueue(memories_extract_entities, [str(pk) for pk in ids[start:start + TASK_CHUNK]])


@dataclass(frozen=True)
class Claim:
    memory_id: str
    generation: int
    attempts: int


def extraction_claim(*, memory_id) -> Claim | None:
    """Takes a pending extraction (``processing``, one more attempt); None when there is
    none to take (done already, taken by another run, or the memory is gone)."""
    now = timezone.now()
    taken = MemoryExtraction.objects.filter(
        memory_id=memory_id, status=ExtractionStatus.PENDING,
        memory__deleted_at__isnull=True,
    ).update(status=ExtractionStatus.PROCESSING, attempts=F("attempts") + 1, updated_at=now)
    if not taken:
        return None
    row = MemoryExtraction.objects.only("generation", "attempts").get(memory_id=memory_id)
    return Claim(str(memory_id), row.generation, row.attempts)


def extraction_apply(*, claim: Claim) -> int | None:
    """Extracts the memory's entities and links them; returns how many entities are
    linked, or None when the claim was overtaken (a newer request, or the memory deleted)."""
    memory = Memory.objects.live().only("id", "account_id", "content", "visibility").filter(
        pk=claim.memory_id).first()
    if memory is None:
        return None
    mentions, method, model = run_extractor(extractor_of(memory), memory.content)
    mentions = _best_per_entity(mentions)
    with transaction.atomic():
        # The memory first, as every writer of the memory or of its links takes it (a
        # link, an update, a delete): the co-occurrence triggers take it on each link
        # changed, so taking the links first could deadlock with a link being written.
        if not Memory.objects.live().select_for_update(no_key=True).filter(
                pk=memory.pk).values_list("pk", flat=True):
            return None
        current = (MemoryExtraction.objects.select_for_update()
                   .filter(memory_id=memory.pk, generation=claim.generation,
                           status=ExtractionStatus.PROCESSING).first())
        if current is None:
            return None
        linked = _replace_links(memory, mentions)
        MemoryExtraction.objects.filter(pk=current.pk).update(
            status=ExtractionStatus.DONE, method=method, model=model or "",
            error="", entity_count=linked, updated_at=timezone.now())
    return linked


def extraction_failed(*, claim: Claim, error: str, final: bool) -> bool:
    """Records a failed attempt: back to ``pending`` (to be retried) or, on the last
    attempt, ``failed`` with the error. False when the claim was overtaken meanwhile."""
    return bool(MemoryExtraction.objects.filter(
        memory_id=claim.memory_id, generation=claim.generation,
        status=ExtractionStatus.PROCESSING,
    ).update(status=ExtractionStatus.FAILED if final else ExtractionStatus.PENDING,
             error=error[:2000], updated_at=timezone.now()))


# The most entities one memory links by extraction. Each pair of a memory's entities is a
# co-occurrence row (entities_app/graph.py): a text of 3,000 made-up identifiers wrote 9
# million of them in one transaction, holding every other write for minutes.
ENTITIES_MAX = 50


def _best_per_entity(mentions: list[Mention]) -> list[Mention]:
    """One mention per entity (its most confident), at most ENTITIES_MAX of them: the most
    confident, the first in the text among equals."""
    best: dict[tuple[str, str], Mention] = {}
    for m in mentions:
        key = (entity_key(m.name)[:KEY_MAX], m.entity_type)
        if key[0] and (key not in best or m.confidence > best[key].confidence):
            best[key] = m
    return sorted(best.values(), key=lambda m: (-m.confidence, m.start))[:ENTITIES_MAX]


def _replace_links(memory: Memory, mentions: list[Mention]) -> int:
    """The memory's extracted links become exactly ``mentions``' entities; manual links
    stay. Runs inside the caller's transaction."""
    scores: dict = {}
    for m, entity in _entities_held(memory.account, mentions):
        scores[entity.pk] = max(scores.get(entity.pk, 0.0), round(float(m.confidence), 4))
    links = EntityLink.objects.filter(memory=memory)
    links.filter(source=LinkSource.EXTRACTED).exclude(entity_id__in=list(scores)).delete()
    existing = {link.entity_id: link for link in links.select_for_update()}
    EntityLink.objects.bulk_create(
        [EntityLink(account_id=memory.account_id, entity_id=pk, memory=memory,
                    relevance_score=score, source=LinkSource.EXTRACTED)
         for pk, score in scores.items() if pk not in existing],
        ignore_conflicts=True)
    for pk, score in scores.items():
        link = existing.get(pk)
        if (link is not None and link.source == LinkSource.EXTRACTED
                and link.relevance_score != score):
            EntityLink.objects.filter(pk=link.pk).update(relevance_score=score)
    return len(scores)


def _entities_held(account, mentions: list[Mention]) -> list[tuple[Mention, Entity]]:
    """Each mention with its live entity (found or created), every one held until commit
    as a link writer holds it, so a merge or a delete that took an entity first is waited
    for and not linked past: an entity it took away is looked up again (a merged-away name
    is then a new entity, as an extraction after the merge finds it)."""
    # Found or created in key order, so two runs creating the same new entities wait on
    # each other instead of deadlocking on the unique index; then held in one statement in
    # id order, as a merge takes its entities.
    wanted = sorted(mentions, key=lambda m: (entity_key(m.name), m.entity_type))
    if not wanted:
        return []
    found: dict[int, Entity] = {}
    for _ in range(CREATE_ATTEMPTS):
        for i, m in enumerate(wanted):
            if i not in found:
                found[i], _created = entity_get_or_create(
                    account=account, name=m.name[:255], entity_type=m.entity_type)
        live = set(Entity.objects.select_for_update(no_key=True)
                   .filter(pk__in={e.pk for e in found.values()}, deleted_at__isnull=True)
                   .order_by("pk").values_list("pk", flat=True))
        found = {i: e for i, e in found.items() if e.pk in live}
        if len(found) == len(wanted):
            return [(m, found[i]) for i, m in enumerate(wanted)]
    raise Conflict("The memory's entities were merged or deleted again and again while it "
                   "was linked to them; try again", field="entities")


def backfill_candidates(*, account=None, agent_ref: str | None = None, redo: bool = False):
    """Ids of the live memories to (re-)extract, oldest first: those extraction was never
    asked for (every live one with ``redo``), of ``account`` (every account when None),
    of its agent ``agent_ref`` (UUID or name) when given."""
    rows = Memory.objects.live().order_by("created_at", "id")
    if account is not None:
        rows = rows.for_account(account)
    if agent_ref:
        from sessions_app.models import Agent

        agents = Agent.objects.live().by_ref(agent_ref)
        rows = rows.filter(agent__in=agents if account is None else agents.for_account(account))
    if not redo:
        rows = rows.filter(extraction__isnull=True)
    return rows.values_list("pk", flat=True)


def entities_backfill(*, account=None, agent_ref: str | None = None, limit: int | None = None,
                      redo: bool = False, in_process: bool = False, batch: int = 200,
                      progress=None) -> int:
    """Queues extraction of the memories ``backfill_candidates`` names, at most ``limit``
    (or, ``in_process``, extracts them here, one after another); ``progress(n)`` after each
    batch. Returns how many were queued (or extracted)."""
    ids = list(backfill_candidates(account=account, agent_ref=agent_ref, redo=redo)[:limit]
               if limit else backfill_candidates(account=account, agent_ref=agent_ref,
                                                 redo=redo))
    done = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        if in_process:
            done += extraction_run_now(memory_ids=chunk)
        else:
            done += extraction_request(memory_ids=chunk)
        if progress is not None:
            progress(len(chunk))
    return done


def extraction_run_now(*, memory_ids) -> int:
    """Extracts the memories here and now (no queue): what a worker would do for each."""
    ids = list(Memory.objects.live().filter(pk__in=list(memory_ids)).values_list("pk", flat=True))
    now = timezone.now()
    MemoryExtraction.objects.bulk_create(
        [MemoryExtraction(memory_id=pk, generation=_generation(), created_at=now, updated_at=now)
         for pk in ids],
        update_conflicts=True, unique_fields=["memory"],
        update_fields=["status", "attempts", "error", "generation", "updated_at"])
    done = 0
    for pk in ids:
        claim = extraction_claim(memory_id=pk)
        if claim is not None and extraction_apply(claim=claim) is not None:
            done += 1
    return done


def extraction_of(*, memory: Memory) -> MemoryExtraction | None:
    return MemoryExtraction.objects.filter(memory=memory).first()


def extraction_entity_count(*, memory: Memory) -> int:
    return (EntityLink.objects.filter(memory=memory, entity__deleted_at__isnull=True)
            .count())



# Extraction asked for while a request is being served waits until its response is
# sent: request_finished fires after the last byte (WSGI servers, and Django's ASGI
# handler, close the response then, in the thread that ran the view). Elsewhere (tasks,
# commands) it is asked for at once.
_deferred = threading.local()


def _request_started(sender=None, **kwargs) -> None:
    _flush_deferred()  # a previous request of this thread that never finished
    _deferred.ids = []


def _request_finished(sender=None, **kwargs) -> None:
    if _flush_deferred():
        # Django's own request_finished receiver ran first and gave the request's database
        # connection back; give back (or keep, per CONN_MAX_AGE) the one used here too.
        close_old_connections()


def _flush_deferred() -> bool:
    ids, _deferred.ids = getattr(_deferred, "ids", None), None
    if not ids:
        return False
    try:
        _request(ids)
    except Exception as exc:  # noqa: BLE001 - the write is kept; the sweep asks again
        log_not_queued(f"the extraction of {len(ids)} memories", exc,
                       "the sweep asks for it again")
    return True


def connect_request_signals() -> None:
    request_started.connect(_request_started, dispatch_uid="entities_app.extraction_start")
    request_finished.connect(_request_finished, dispatch_uid="entities_app.extraction_finish")


def _ask(ids: list) -> None:
    pending = getattr(_deferred, "ids", None)
    if pending is None:
        _request(ids)
    else:
        pending.extend(ids)


def on_content_changed(sender=None, *, memory_id, **kwargs) -> None:
    """memories_app.signals.content_changed, inside the update's transaction: the memory's
    extraction, when it was ever asked for, is pending again under a new generation. A run
    under way on the old content is overtaken (it applies nothing), and should the request
    made after the response be lost, the sweep hands it out again (``extractions_sweep``)
    rather than the old content's links staying, marked done."""
    MemoryExtraction.objects.filter(memory_id=memory_id).update(**_pending())


def on_memories_written(sender=None, *, memory_ids, extract=None, reason="create",
                        **kwargs) -> None:
    """memories_app.signals.memories_written: queue extraction of the written memories
    when the write asked for it (or left it to MEMORYRELAY_AUTO_EXTRACT_ENTITIES). A
    content update re-extracts the memories extracted before (their links would be stale),
    and leaves alone those never processed (written with auto_extract_entities false)."""
    if reason == "update":
        if extract is not False:
            _ask(list(MemoryExtraction.objects.filter(memory_id__in=list(memory_ids))
                      .values_list("memory_id", flat=True)))
    elif auto_extract(extract):
        _ask(list(memory_ids))  # just committed: no need to look them up again
