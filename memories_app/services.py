"""Memory services: create, update, delete, and the retention purge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from memoryrelay_site.errors import Invalid, NotFound
from sessions_app.models import Agent, Session
from sessions_app.services import agent_resolve, agent_touch

from .models import Memory, tier_for

UPDATABLE = ("content", "metadata", "importance", "tier", "memory_type", "visibility")


def memory_get(*, account, memory_id) -> Memory:
    memory = Memory.objects.live().for_account(account).filter(pk=memory_id).first()
    if memory is None:
        raise NotFound("Memory not found")
    return memory


def _session_for_write(account, session_id) -> Session:
    session = Session.objects.live().for_account(account).filter(pk=session_id).first()
    if session is None:
        raise Invalid("Session not found", field="session_id")
    return session


@transaction.atomic
def memory_create(
    *,
    account,
    agent_ref: str,
    content: str,
    session_id=None,
    project: str | None = None,
    metadata: dict | None = None,
    memory_type: str | None = None,
    importance: float | None = None,
    tier: str | None = None,
    visibility: str | None = None,
) -> Memory:
    """Stores a memory; ``session_id`` attaches it to a live session of the account."""
    session = _session_for_write(account, session_id) if session_id else None
    agent = agent_resolve(account=account, ref=agent_ref)
    importance = 0.5 if importance is None else importance
    memory = Memory.objects.create(
        account=account,
        agent=agent,
        session=session,
        project=project if project is not None else getattr(session, "project", None),
        content=content,
        metadata=metadata or {},
        memory_type=memory_type or "fact",
        importance=importance,
        tier=tier or tier_for(importance),
        visibility=visibility or "private",
    )
    agent_touch(agent, memory.created_at)
    return memory


@transaction.atomic
def memory_update(*, memory: Memory, changes: dict[str, Any]) -> Memory:
    """Partial update: absent or None values are left unchanged.

    A new ``importance`` recomputes the tier unless a ``tier`` is given too."""
    given = {k: v for k, v in changes.items() if k in UPDATABLE and v is not None}
    for field, value in given.items():
        setattr(memory, field, value)
    if "importance" in given and "tier" not in given:
        memory.tier = tier_for(memory.importance)
    memory.save()
    return memory


@transaction.atomic
def memory_delete(*, memory: Memory, at: datetime | None = None) -> Memory:
    memory.deleted_at = at or timezone.now()
    memory.save(update_fields=["deleted_at", "updated_at"])
    return memory


@transaction.atomic
def memory_restore(*, memory: Memory) -> Memory:
    if memory.agent.deleted_at is not None:
        raise Invalid("Restore the memory's agent first", field="agent_id")
    memory.deleted_at = None
    memory.save(update_fields=["deleted_at", "updated_at"])
    return memory


@dataclass(frozen=True)
class PurgeReport:
    memories: int
    sessions: int
    agents: int


def purge_deleted(*, older_than_days: int, dry_run: bool = False,
                  now: datetime | None = None) -> PurgeReport:
    """Removes for good the rows soft-deleted more than ``older_than_days`` ago.

    Memories first, then sessions (memories kept from a purged session lose the link,
    not their content), then agents that no longer own any live row."""
    if older_than_days < 0:
        raise Invalid("older_than_days must be at least 0", field="older_than_days")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    owns_live = Exists(Memory.objects.live().filter(agent=OuterRef("pk"))) | Exists(
        Session.objects.live().filter(agent=OuterRef("pk")))
    querysets = [
        Memory.objects.filter(deleted_at__lt=cutoff),
        Session.objects.filter(deleted_at__lt=cutoff),
        Agent.objects.filter(deleted_at__lt=cutoff).exclude(owns_live),
    ]
    counts = [qs.count() for qs in querysets]
    if not dry_run:
        with transaction.atomic():
            for qs in querysets:
                qs.delete()
    return PurgeReport(*counts)
