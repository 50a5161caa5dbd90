"""The memories app's tasks (memoryrelay_site.tasks: the queue and its rules).

``memory_embed`` finishes an asynchronous write (POST /v2/memories): it embeds the memory
and, when asked, deduplicates it. It is idempotent: it claims the memory only while the
memory is ``pending`` or ``processing`` and live, so a second delivery, a retry of a
finished write or a run after the memory was deleted does nothing. A failed attempt puts
the memory back to ``pending`` and enqueues itself again after a backoff; the last allowed
attempt leaves it ``failed`` with the error. A worker killed mid-task leaves the memory
``processing``: ``memory_embeds_sweep`` (run by every worker) hands it out again once its
claim is older than the lease."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Min
from django.utils import timezone
from django_tasks import task

from memoryrelay_site.sqlite_stats import stats_sweeper
from memoryrelay_site.tasks import (
    log_not_queued,
    register_dispatcher,
    register_sweeper,
    retry_delay,
    task_enqueue,
)
from sessions_app.models import Agent

from .embeddings import EmbeddingError, get_provider
from .models import UNFINISHED, Memory, WriteStatus
from .services import _duplicate_of, vector_fields
from .signals import announce_written
from .webhooks import webhook_queue, webhook_send

logger = logging.getLogger("memoryrelay.tasks")

# Rough figure for the 202 body: one embedding, plus the queue's poll interval.
ESTIMATED_SECONDS = 1


@task()
def memory_embed(memory_id: str) -> str:
    now = timezone.now()
    claimed = Memory.objects.live().filter(pk=memory_id, status__in=UNFINISHED).update(
        status=WriteStatus.PROCESSING, status_changed_at=now,
        status_attempts=F("status_attempts") + 1,
    )
    if not claimed:
        return "skipped"
    memory = Memory.objects.without_vectors().select_related("agent").get(pk=memory_id)
    try:
        return _embed(memory)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then retried
        return _failed(memory, exc)


EMBED_ROUNDS = 3  # embeddings of one claim, when the content keeps changing under it


def _embed(memory: Memory) -> str:
    """Embeds (and deduplicates) the content as it is when the result is written: the write
    holds only while the content is the one embedded. A PATCH that changed it meanwhile
    stored its own embedding; the new content is then embedded and judged again, so neither
    a stale vector nor a duplicate verdict on the old text lands on it."""
    provider = get_provider()
    for _ in range(EMBED_ROUNDS):
        vector = provider.embed([memory.content])[0] if provider.available else None
        duplicate = None
        claimed = Memory.objects.filter(pk=memory.pk, status=WriteStatus.PROCESSING,
                                        deleted_at__isnull=True)
        with transaction.atomic():  # the verdict, the outcome and its webhook event, together
            if memory.dedup_threshold is not None:
                # Under the agent's row lock, as a synchronous write judges its duplicates:
                # two workers finishing the same text at once judge one after the other, so
                # the second sees the first (each used to miss the other, both kept).
                Agent.objects.select_for_update(no_key=True).filter(
                    pk=memory.agent_id).values_list("pk", flat=True).first()
                duplicate = _duplicate_of(memory.account, memory.agent, memory.content, vector,
                                          memory.dedup_threshold, exclude=memory.pk,
                                          visibility=memory.visibility)
            fields = {**vector_fields(vector), "status": WriteStatus.READY, "status_error": "",
                      "status_changed_at": timezone.now()}
            if duplicate is not None:
                fields.update(duplicate_of=duplicate.pk, deleted_at=timezone.now())
            done = claimed.filter(content=memory.content).update(**fields)
            event = webhook_queue(memory, WriteStatus.READY) if done else None
        if done:
            break
        memory = claimed.without_vectors().select_related("agent").first()
        if memory is None:  # deleted, or finished by another delivery
            return "skipped"
    else:
        raise RuntimeError("the content kept changing while it was embedded")
    if duplicate is None:
        announce_written(account_id=memory.account_id, memory_ids=[memory.pk],
                         extract=memory.extract_entities, reason="ready")
    webhook_send(event)  # by a task of its own, retried apart
    return "ready"


def _failed(memory: Memory, exc: Exception) -> str:
    error = (str(exc) or type(exc).__name__)[:2000]
    if not isinstance(exc, EmbeddingError):
        logger.exception("memory_embed %s failed", memory.pk)
    attempts = memory.status_attempts
    last = attempts >= settings.MEMORYRELAY_TASK_MAX_ATTEMPTS
    with transaction.atomic():  # the outcome and its webhook event, together
        settled = Memory.objects.filter(pk=memory.pk, status=WriteStatus.PROCESSING).update(
            status=WriteStatus.FAILED if last else WriteStatus.PENDING,
            status_error=error, status_changed_at=timezone.now(),
        )
        event = webhook_queue(memory, WriteStatus.FAILED) if settled and last else None
    if last:
        webhook_send(event)
        return "failed"
    task_enqueue(memory_embed, str(memory.pk), delay=retry_delay(attempts))
    return "retrying"


def memory_embed_retry(*, memory_ids) -> int:
    """Failed writes start over (the admin's retry): attempts reset, status ``pending``. A
    queue out of reach (Redis down) leaves them pending for the sweep to queue."""
    failed = Memory.objects.live().filter(status=WriteStatus.FAILED)
    # Each taken by a conditional update, so of two retries at once one queues it (both
    # read it failed, and both queued it and counted it).
    ids = [pk for pk in failed.filter(pk__in=list(memory_ids)).values_list("pk", flat=True)
           if failed.filter(pk=pk).update(status=WriteStatus.PENDING, status_attempts=0,
                                          status_changed_at=timezone.now())]
    for pk in ids:
        try:
            task_enqueue(memory_embed, str(pk))
        except Exception as exc:  # noqa: BLE001 - pending: the sweep queues it after the lease
            log_not_queued(f"memory {pk}", exc, "the sweep queues it later")
    return len(ids)


def _undispatched():
    """Asynchronous writes no task was asked for yet (POST /v2/memories on the database
    queue makes one insert)."""
    return Memory.objects.live().filter(status=WriteStatus.PENDING,
                                        status_changed_at__isnull=True)


def memory_embeds_dispatch(limit: int = 200) -> int:
    """The undispatched writes, oldest first, each taken by one dispatcher and queued. A
    dispatcher that dies between the two leaves the memory claimed: the sweep queues it
    again after the lease."""
    waiting = _undispatched().order_by("created_at").values_list("pk", flat=True)[:limit]
    return _hand_out((pk, {"status_changed_at__isnull": True}) for pk in list(waiting))


def memory_embeds_backlog() -> tuple[int, datetime | None]:
    found = _undispatched().aggregate(n=Count("pk"), oldest=Min("created_at"))
    return found["n"], found["oldest"]


def memory_embeds_sweep(cutoff: datetime) -> int:
    """Unfinished writes untouched since ``cutoff`` (their worker died, or their task was
    never queued) are queued again: each taken by one sweeper."""
    stale = (Memory.objects.live()
             .filter(status__in=UNFINISHED, status_changed_at__lt=cutoff)
             .values_list("pk", "status_changed_at")[:1000])
    return _hand_out((pk, {"status_changed_at": changed_at}) for pk, changed_at in list(stale))


def _hand_out(claims) -> int:
    """Queues ``memory_embed`` for each ``(pk, still)`` taken by a conditional update (the
    memory unfinished and ``still`` as it was read), so of several takers one queues it;
    returns how many were queued."""
    handed = 0
    for pk, still in claims:
        taken = Memory.objects.filter(pk=pk, status__in=UNFINISHED, **still).update(
            status=WriteStatus.PENDING, status_changed_at=timezone.now())
        if taken:
            task_enqueue(memory_embed, str(pk))
            handed += 1
    return handed


register_sweeper(memory_embeds_sweep)
register_dispatcher(memory_embeds_dispatch, backlog=memory_embeds_backlog)
# SQLite: the planner's statistics of the memories table, refreshed as it grows.
register_sweeper(stats_sweeper([Memory._meta.db_table]))
