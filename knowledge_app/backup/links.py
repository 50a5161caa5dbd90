"""A memory's links to entities travel inside the memory's line (format version 3):

    {"kind": "memory", "id": "…", …, "entity_links": [{"entity_id": "…",
     "relationship": "mentioned_in", "relevance_score": 0.9, "source": "extracted",
     "created_at": "…"}]}

A link has no id of its own worth keeping (it is one per entity and memory), and carried
this way it needs no memory id kept while the file is read: only the entities, listed
before the memories, are. Import upserts each memory's links on (entity, memory) right
after the memory, in the same transaction."""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.utils import timezone

from entities_app.models import EntityLink, LinkSource
from entities_app.models_extraction import ExtractionStatus, MemoryExtraction

from .codec import ImportRefused, _load_datetime

FIELD = "entity_links"


def links_by_memory(memory_ids: list) -> dict:
    """The export's ``entity_links`` of each memory in ``memory_ids`` (one query), each
    memory's in the order they were made: import writes them in file order, so links of
    equal relevance are shown in the same order after a restore."""
    found: dict = {}
    rows = (EntityLink.objects.filter(memory_id__in=memory_ids)
            .order_by("memory_id", "id")
            .values_list("memory_id", "entity_id", "relationship", "relevance_score", "source",
                         "created_at"))
    for memory_id, entity_id, relationship, score, source, created_at in rows:
        found.setdefault(str(memory_id), []).append({
            "entity_id": str(entity_id), "relationship": relationship,
            "relevance_score": score, "source": source,
            "created_at": created_at.isoformat(timespec="microseconds")})
    return found


def links_read(raw: Any, *, number: int, account: str, entities: dict) -> list[dict]:
    """The memory line's links, checked: each names an entity of the same account listed
    before (``entities``: id → account)."""
    if not isinstance(raw, list):
        raise ImportRefused(f"{FIELD} must be a list", line=number)
    links, seen = [], set()
    for position, link in enumerate(raw):
        where = f"{FIELD}[{position}]"
        if not isinstance(link, dict) or set(link) - {"entity_id", "relationship",
                                                      "relevance_score", "source",
                                                      "created_at"}:
            raise ImportRefused(f"{where} must be an object of entity_id, relationship, "
                                "relevance_score, source and created_at", line=number)
        entity = _entity_of(link.get("entity_id"), entities)
        if entity is None or entities[entity] != account:
            raise ImportRefused(f"{where}: entity_id {link.get('entity_id')!r} is not an "
                                f"entity of account {account!r} listed before this line",
                                line=number)
        if entity in seen:
            raise ImportRefused(f"{where}: entity {entity} is linked twice", line=number)
        seen.add(entity)
        relationship = link.get("relationship", "mentioned_in")
        score = link.get("relevance_score", 1.0)
        source = link.get("source", LinkSource.MANUAL)
        if not isinstance(relationship, str) or not 1 <= len(relationship) <= 64:
            raise ImportRefused(f"{where}: relationship must be 1-64 characters", line=number)
        if (isinstance(score, bool) or not isinstance(score, (int, float))
                or not math.isfinite(score) or not 0.0 <= score <= 1.0):
            raise ImportRefused(f"{where}: relevance_score must be between 0 and 1",
                                line=number)
        if source not in LinkSource.values:
            raise ImportRefused(f"{where}: source must be one of {LinkSource.values}",
                                line=number)
        try:
            created_at = _load_datetime(link["created_at"]) if "created_at" in link else None
        except ValueError as exc:
            raise ImportRefused(f"{where}: created_at {exc}", line=number) from None
        links.append({"entity_id": entity, "relationship": relationship,
                      "relevance_score": float(score), "source": source,
                      "created_at": created_at})
    return links


def _entity_of(value: Any, entities: dict) -> uuid.UUID | None:
    try:
        ref = uuid.UUID(str(value))
    except ValueError:
        return None
    return ref if ref in entities else None


def links_write(memories: list, account_ids: dict, *, replace: bool = False) -> None:
    """Upserts the links the lines of ``memories`` carry: ``memories`` is a list of
    (memory id, account username, links). ``replace``: the memories' other links go (a
    roll-back to the file: a link made since, or left by a merge since, is undone)."""
    if replace:
        for memory_id, _, links in memories:
            (EntityLink.objects.filter(memory_id=memory_id)
             .exclude(entity_id__in=[link["entity_id"] for link in links]).delete())
    now = timezone.now()
    # Their entities are the file's: the memories count as extracted (a backfill after a
    # restore would extract them all again, bringing back entities deleted since). A memory
    # this server has a record of keeps it.
    MemoryExtraction.objects.bulk_create(
        [MemoryExtraction(memory_id=memory_id, status=ExtractionStatus.DONE, method="import",
                          entity_count=len(links), created_at=now, updated_at=now)
         for memory_id, _, links in memories], ignore_conflicts=True)
    rows = {(memory_id, link["entity_id"]): EntityLink(
        account_id=account_ids[account], memory_id=memory_id,
        **{**link, "created_at": link["created_at"] or now})
        for memory_id, account, links in memories for link in links}
    if not rows:
        return
    EntityLink.objects.bulk_create(
        list(rows.values()), update_conflicts=True, unique_fields=["entity", "memory"],
        update_fields=["relationship", "relevance_score", "source"])


