"""The entities app's tasks (memoryrelay_site.tasks: the queue and its rules).

``memory_extract_entities`` extracts a memory's entities and links them
(entities_app.pipeline). It is idempotent: it claims the memory's extraction only while it
is ``pending``, so a second delivery or a run after the memory was deleted does nothing. A
failed attempt goes back to ``pending`` and is enqueued again after a backoff; the last
allowed attempt leaves it ``failed`` with the error. An extraction left ``pending`` or
``processing`` past the lease (its task lost, its worker killed) is handed out again by
``extractions_sweep``, which every worker runs; a recent memory whose extraction request
was lost after its write (``pipeline.lost_requests_sweep``) is asked for again."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django_tasks import task

from memoryrelay_site.tasks import register_sweeper, retry_delay, task_enqueue

from . import pipeline
from .models_extraction import UNFINISHED_EXTRACTIONS, ExtractionStatus, MemoryExtraction

logger = logging.getLogger("memoryrelay.tasks")


@task()
def memories_extract_entities(memory_ids: list[str]) -> dict[str, int]:
    """The extraction of several memories (a batch write queues one task, not one per
    memory); each is claimed, retried and reported on its own, as by
    ``memory_extract_entities``."""
    outcomes: dict[str, int] = {}
    for memory_id in memory_ids:
        outcome = memory_extract_entities.call(memory_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@task()
def memory_extract_entities(memory_id: str) -> str:
    claim = pipeline.extraction_claim(memory_id=memory_id)
    if claim is None:
        return "skipped"
    try:
        linked = pipeline.extraction_apply(claim=claim)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then retried
        logger.exception("memory_extract_entities %s failed", memory_id)
        final = claim.attempts >= settings.MEMORYRELAY_TASK_MAX_ATTEMPTS
        error = str(exc) or type(exc).__name__
        if pipeline.extraction_failed(claim=claim, error=error, final=final) and not final:
            task_enqueue(memory_extract_entities, memory_id, delay=retry_delay(claim.attempts))
            return "retrying"
        return "failed"
    return "skipped" if linked is None else "done"


def extractions_sweep(cutoff: datetime) -> int:
    """Unfinished extractions untouched since ``cutoff`` are queued again, each taken by
    one sweeper through a conditional update."""
    stale = (MemoryExtraction.objects
             .filter(status__in=UNFINISHED_EXTRACTIONS, updated_at__lt=cutoff,
                     memory__deleted_at__isnull=True)
             .values_list("memory_id", "updated_at")[:1000])
    handed = 0
    for memory_id, updated_at in list(stale):
        taken = MemoryExtraction.objects.filter(
            memory_id=memory_id, status__in=UNFINISHED_EXTRACTIONS, updated_at=updated_at,
        ).update(status=ExtractionStatus.PENDING, updated_at=timezone.now())
        if taken:
            task_enqueue(memory_extract_entities, str(memory_id))
            handed += 1
    return handed


register_sweeper(extractions_sweep)
register_sweeper(pipeline.lost_requests_sweep)
