"""Tiers over time: which memories are in use, and the maintenance that demotes the others.

A memory is *used* when it is written (``updated_at``) or returned by a read: fetched by id,
found by a search or a context build, or shown in its project's context
(``last_accessed_at``). Lists (``GET /v1/memories``, a session's memories) do not count: an
export or a client paging through everything would otherwise keep every memory hot.
``last_accessed_at`` is kept to the hour: a read writes it only when the memory's last use
(its last write or recorded read) is an hour old or more, in one UPDATE for all the
memories a response returned, after the response is built and outside any transaction, so
most reads write nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from memoryrelay_site import db
from memoryrelay_site.errors import Invalid

from .models import Memory, Tier

logger = logging.getLogger("memoryrelay.tiering")

ACCESS_PRECISION = timedelta(hours=1)
DEMOTED = {Tier.HOT: Tier.WARM, Tier.WARM: Tier.COLD}
ACTIONS = ("demote_cold",)


def memories_mark_used(*, memories: Iterable[Memory], now: datetime | None = None) -> int:
    """Records that ``memories`` were returned by a read: one UPDATE for those last used
    (written or read) an hour ago or more, none when all are fresh. Call it outside any
    transaction; a failure (another writer holding SQLite's lock: it is not waited for, a
    read-only database) is logged and loses only this mark."""
    now = now or timezone.now()
    stale = now - ACCESS_PRECISION
    ids = [m.pk for m in memories if m.updated_at < stale
           and (m.last_accessed_at is None or m.last_accessed_at < stale)]
    if not ids:
        return 0
    try:
        with db.without_waiting():  # a read never waits for a writer to record itself
            return Memory.objects.filter(pk__in=ids).filter(
                Q(last_accessed_at__isnull=True) | Q(last_accessed_at__lt=stale)
            ).update(last_accessed_at=now)
    except DatabaseError as exc:
        logger.warning("could not record that %d memories were read: %s", len(ids), exc)
        return 0


def memories_maintain(*, account, action: str, now: datetime | None = None) -> int:
    """Runs one maintenance ``action`` over the account's live memories; the count changed."""
    if action not in ACTIONS:
        raise Invalid(f"action must be one of: {', '.join(ACTIONS)}", field="action")
    return memories_demote_cold(account=account, now=now)


def memories_demote_cold(*, account, idle_days: int | None = None,
                         now: datetime | None = None) -> int:
    """Drops one tier (hot to warm, warm to cold) for each live memory of ``account`` neither
    written nor read for ``idle_days`` (MEMORYRELAY_COLD_AFTER_DAYS). The demotion restarts
    the idle clock (``last_accessed_at``), so a memory drops at most one tier per idle period
    however often this runs; it is no write of the memory (``updated_at`` stays: the
    recency a context bundle ranks by is its author's, not this job's). One UPDATE: a
    memory written or read meanwhile no longer matches and keeps its tier."""
    now = now or timezone.now()
    days = settings.MEMORYRELAY_COLD_AFTER_DAYS if idle_days is None else idle_days
    cutoff = now - timedelta(days=days)
    return Memory.objects.live().for_account(account).filter(
        Q(last_accessed_at__isnull=True) | Q(last_accessed_at__lt=cutoff),
        tier__in=list(DEMOTED), updated_at__lt=cutoff,
    ).update(
        tier=Case(*[When(tier=old, then=Value(new)) for old, new in DEMOTED.items()]),
        last_accessed_at=now,
    )
