"""Entity services: the only code that changes entities and their links to memories.

As elsewhere (``sessions_app.services``): transactions are short; an update re-reads the
live row under its lock and writes only the fields that change; a delete locks what it
deletes. The database settles races: the partial unique constraint on (account, key, type)
makes a create that lost a race answer the winner, and the unique (entity, memory) pair
makes linking idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from memories_app.models import Memory
from memoryrelay_site.db import locked, locked_live
from memoryrelay_site.errors import Conflict, Invalid, NotFound, ServiceError
from memoryrelay_site.serializers import METADATA_MAX_BYTES, metadata_size
from sessions_app.models import Agent

from .models import Entity, EntityLink, LinkSource
from .names import entity_key

DEFAULT_RELATIONSHIP = "mentioned_in"
# A create that keeps losing to a delete of the row it found gives up after this many tries.
CREATE_ATTEMPTS = 3


def entity_not_found() -> NotFound:
    return NotFound("Entity not found")


def entities_visible(*, account):
    """The live entities of ``account``, with their counts (every read shape starts here)."""
    return Entity.objects.live().for_account(account).with_counts()


def entity_get(*, account, entity_id) -> Entity:
    entity = entities_visible(account=account).filter(pk=entity_id).first()
    if entity is None:
        raise entity_not_found()
    return entity


def entity_find(*, account, name: str, entity_type: str) -> Entity | None:
    """The live entity of ``account`` whose name has the key of ``name``, of that type."""
    return (Entity.objects.live().for_account(account)
            .filter(key=entity_key(name), entity_type=entity_type).first())


def entity_get_or_create(
    *, account, name: str, entity_type: str, metadata: dict | None = None
) -> tuple[Entity, bool]:
    """The live entity of ``account`` with the key of ``name`` and ``entity_type``, or a new
    one (``created`` True). The existing one is returned as it is (its first name and
    metadata are kept). Concurrent creates of one entity make one row: the losers of the
    race find the winner's row."""
    for _ in range(CREATE_ATTEMPTS):
        existing = entity_find(account=account, name=name, entity_type=entity_type)
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                entity = Entity.objects.create(account=account, name=name,
                                               entity_type=entity_type, metadata=metadata or {})
            return entity, True
        except IntegrityError:
            continue  # another request created it since: read it (or, deleted since, retry)
    raise Conflict("The entity was created and deleted concurrently; try again", field="name")


ENTITY_UPDATABLE = ("name", "entity_type", "metadata")


def entity_update(*, entity: Entity, changes: dict[str, Any]) -> Entity:
    """Partial update of the live entity: absent or None values are left unchanged;
    ``metadata`` is replaced. A new name or type that another live entity of the account
    already has (by key, so "ACME" when "Acme Corp" exists) is a 409."""
    given = {f: changes[f] for f in ENTITY_UPDATABLE if changes.get(f) is not None}
    try:
        with transaction.atomic():
            row = locked_live(Entity, entity.pk, entity_not_found())
            changed = {f: v for f, v in given.items() if getattr(row, f) != v}
            for field, value in changed.items():
                setattr(row, field, value)
            if changed:  # nothing new: nothing written, updated_at stays
                row.save(update_fields=[*changed, "updated_at"])
    except IntegrityError:
        name = given.get("name", entity.name)
        kind = given.get("entity_type", entity.entity_type)
        raise Conflict(f"An entity named {name!r} of type {kind!r} already exists",
                       field="name") from None
    return row


def entity_delete(*, entity: Entity, at: datetime | None = None) -> Entity:
    """Soft-deletes the live entity under its row lock; its links stay (for a restore) and
    are hidden with it. One deleted meanwhile is a NotFound."""
    with transaction.atomic():
        row = locked_live(Entity, entity.pk, entity_not_found())
        row.deleted_at = at or timezone.now()
        row.save(update_fields=["deleted_at", "updated_at"])
    return row


def entity_restore(*, entity: Entity) -> Entity:
    """Brings a deleted entity back, unless a live one took its name and type meanwhile."""
    try:
        with transaction.atomic():
            row = locked(Entity.objects, entity.pk, NotFound("Entity not found"))
            if row.deleted_at is not None:
                row.deleted_at = None
                row.save(update_fields=["deleted_at", "updated_at"])
    except IntegrityError:
        raise Conflict(f"A live entity named {entity.name!r} of type {entity.entity_type!r} "
                       "exists; merge them instead", field="name") from None
    return row


# --- links --------------------------------------------------------------------------------


def _memory_for_link(*, account, memory_id) -> Memory:
    """The live memory ``memory_id`` of ``account``, locked until commit so that a delete
    waits for the link (an id of another account is a missing memory: a 422 on the field)."""
    memory = (Memory.objects.select_for_update(no_key=True).only("id", "account")
              .filter(pk=memory_id, account=account, deleted_at__isnull=True).first())
    if memory is None:
        raise Invalid("Memory not found", field="memory_id")
    return memory


def entity_link(
    *,
    account,
    entity: Entity,
    memory_id,
    relationship: str | None = None,
    relevance_score: float | None = None,
    source: str = LinkSource.MANUAL,
    missing_entity: ServiceError | None = None,
) -> tuple[EntityLink, bool]:
    """Links the live ``entity`` to the live memory ``memory_id`` of the account; linking
    again changes nothing but the relationship and score given (``created`` False). Both
    rows are held while the link is written, so neither is deleted under it. A link made
    or changed is a change of the memory (its ``entities``): its ``updated_at`` moves, so a
    backup taken after carries the link over an older copy of the memory."""
    given = {"relationship": relationship, "relevance_score": relevance_score,
             # A link asked for by hand stays through re-extraction, even one it found too.
             "source": source if source == LinkSource.MANUAL else None}
    with transaction.atomic():
        # The memory before the entity, as an extraction (the memory, then its links and
        # their entities) and a merge take them.
        memory = _memory_for_link(account=account, memory_id=memory_id)
        locked_live(Entity, entity.pk, missing_entity or entity_not_found(), no_key=True)
        try:
            with transaction.atomic():
                link = EntityLink.objects.create(
                    account=account, entity=entity, memory=memory,
                    relationship=relationship or DEFAULT_RELATIONSHIP,
                    relevance_score=1.0 if relevance_score is None else relevance_score,
                    source=source)
            created, changed = True, {"link": True}
        except IntegrityError:  # linked already (or concurrently): idempotent
            link = EntityLink.objects.select_for_update().get(entity=entity, memory=memory)
            created = False
            changed = {f: v for f, v in given.items() if v is not None and getattr(link, f) != v}
            if changed:
                EntityLink.objects.filter(pk=link.pk).update(**changed)
                for field, value in changed.items():
                    setattr(link, field, value)
        if changed and source == LinkSource.MANUAL:
            Memory.objects.filter(pk=memory.pk).update(updated_at=timezone.now())
    return link, created


def entity_for_link_missing() -> Invalid:
    return Invalid("Entity not found", field="entity_id")


def entity_for_link(*, account, entity_id) -> Entity:
    """The live entity named by an ``entity_id`` in a body: a missing one, or one of
    another account, is a 422 on that field."""
    entity = Entity.objects.live().for_account(account).filter(pk=entity_id).first()
    if entity is None:
        raise entity_for_link_missing()
    return entity


# --- reads --------------------------------------------------------------------------------


def entities_of_agent(queryset, *, account, agent_ref: str):
    """Narrows ``queryset`` to the entities linked to a live memory of the live agent
    ``agent_ref`` (UUID or name); an unknown agent matches nothing."""
    agents = Agent.objects.live().for_account(account).by_ref(agent_ref)
    return queryset.filter(Exists(EntityLink.objects.filter(
        entity=OuterRef("pk"), memory__deleted_at__isnull=True, memory__agent__in=agents)))


# --- merge --------------------------------------------------------------------------------


def entities_merge(*, entities: list[Entity]) -> Entity:
    """Merges entities of one account into one: the one with the most links is kept (the
    oldest among equals); every link of the others moves to it, a memory linked to several
    of them keeps one link with the highest relevance, and the others are soft-deleted.
    One transaction. Locks go in the order every writer of links takes them: the memories
    the links name (moving or deleting a link takes its memory, through the co-occurrence
    trigger, and an extraction or a link request takes the memory first), then the
    entities, then the links, each in id order. The memories whose links moved are written
    (``updated_at``), as a link made by hand writes its memory."""
    if len({e.account_id for e in entities}) > 1:
        raise Invalid("Entities of different accounts cannot be merged", field="entities")
    ids = sorted({e.pk for e in entities})
    if len(ids) < 2:
        raise Invalid("Select at least two entities to merge", field="entities")
    with transaction.atomic():
        rows = _merge_held(ids)
        if len(rows) < 2:
            raise Invalid("At least two of the entities must be live", field="entities")
        links = list(EntityLink.objects.select_for_update().filter(entity__in=rows)
                     .order_by("pk"))
        counts = {row.pk: 0 for row in rows}
        for link in links:
            counts[link.entity_id] += 1
        ranked = sorted(rows, key=lambda r: (-counts[r.pk], r.created_at, str(r.pk)))
        kept, metadata = ranked[0], _metadata_merged(ranked)
        changed = {link.memory_id for link in links if link.entity_id != kept.pk}
        best: dict = {}  # memory id -> the link it keeps
        for link in links:
            current = best.get(link.memory_id)
            if current is None or _better(link, current, kept):
                best[link.memory_id] = link
        keep_ids = {link.pk for link in best.values()}
        EntityLink.objects.filter(pk__in=[lk.pk for lk in links if lk.pk not in keep_ids]).delete()
        moved = [lk for lk in best.values() if lk.entity_id != kept.pk]
        # Links already on ``kept`` stay put; the others move over (their (entity, memory)
        # pairs are free now that the duplicates are gone).
        for link in moved:
            link.entity_id = kept.pk
        EntityLink.objects.bulk_update(moved, ["entity"])
        at = timezone.now()
        # A memory whose link moved or went is changed (its ``entities``), as by a link
        # made by hand: its ``updated_at`` moves, so a newer backup carries the merge over
        # an older copy of it.
        Memory.objects.filter(pk__in=changed).update(updated_at=at)
        Entity.objects.filter(pk__in=[r.pk for r in rows if r.pk != kept.pk]).update(
            deleted_at=at, updated_at=at)
        Entity.objects.filter(pk=kept.pk).update(updated_at=at, metadata=metadata)
        kept.metadata = metadata
    return kept


class _LinkedMeanwhile(Exception):
    """A link to a memory not held yet was made before the entities were held."""


def _merge_held(ids: list) -> list[Entity]:
    """Inside the merge's transaction: the memories linked to the entities ``ids``, then
    the live ones of those entities, held until commit (in the writers' order). Once the
    entities are held no link to them can be made; one made before, to a memory not held,
    would have the merge take that memory after the entities (moving its link), against a
    writer holding the memory and waiting for the entity: a deadlock. So the memories are
    read again once the entities are held, and, when there are new ones, both are let go
    (a savepoint) and taken again with them."""
    linked = EntityLink.objects.filter(entity_id__in=ids).values_list("memory_id", flat=True)
    memory_ids: set = set()
    for _ in range(CREATE_ATTEMPTS):
        memory_ids |= set(linked.all())
        try:
            with transaction.atomic():
                list(Memory.objects.select_for_update(no_key=True).filter(pk__in=memory_ids)
                     .order_by("pk").values_list("pk", flat=True))
                rows = list(Entity.objects.select_for_update()
                            .filter(pk__in=ids, deleted_at__isnull=True).order_by("pk"))
                if not set(linked.all()) <= memory_ids:
                    raise _LinkedMeanwhile
            return rows
        except _LinkedMeanwhile:
            continue
    raise Conflict("Memories kept being linked to these entities during the merge; try again",
                   field="entities")


def _metadata_merged(ranked: list[Entity]) -> dict:
    """The metadata of merged entities, one dict: on a key in several, the value of the
    entity ranked first (the kept one). Over the size the API takes, the merge is refused
    rather than a part dropped."""
    merged: dict = {}
    for row in reversed(ranked):
        merged.update(row.metadata or {})
    size = metadata_size(merged)
    if size > METADATA_MAX_BYTES:
        raise Invalid(f"the entities' metadata together would be {size} bytes as JSON, at "
                      f"most {METADATA_MAX_BYTES}: trim it, then merge", field="metadata")
    return merged


def _better(link: EntityLink, current: EntityLink, kept: Entity) -> bool:
    """Of two links to one memory, the higher relevance wins; on a tie, the kept entity's
    own link, then the older link."""
    if link.relevance_score != current.relevance_score:
        return link.relevance_score > current.relevance_score
    if (link.entity_id == kept.pk) != (current.entity_id == kept.pk):
        return link.entity_id == kept.pk
    return link.pk < current.pk


# --- purge --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityPurgeReport:
    entities: int
    links: int


def entities_purge_deleted(*, older_than_days: int, dry_run: bool = False,
                           now: datetime | None = None) -> EntityPurgeReport:
    """Removes for good the entities soft-deleted more than ``older_than_days`` ago, their
    links with them. (Links to a purged memory go with the memory.)"""
    if older_than_days < 0:
        raise Invalid("older_than_days must be at least 0", field="older_than_days")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    entities = Entity.objects.filter(deleted_at__lt=cutoff)
    links = EntityLink.objects.filter(entity__in=entities)
    with transaction.atomic():
        # The entities locked first: a restore racing the purge waits for it and finds the
        # entity gone, or committed first and the entity (its links too) is not chosen.
        # Before, its links could go, or it all went after the restore answered.
        list(entities.select_for_update().values_list("pk", flat=True))
        counts = EntityPurgeReport(entities.count(), links.count())
        if not dry_run:
            links.delete()
            entities.delete()
    return counts
