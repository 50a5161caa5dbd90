"""A memory's entities, read through the reverse relation ``Memory.entity_links`` that the
entities app (a layer above) declares: this module imports nothing of it, and reaches its
models through that relation.

``memory.entities`` in the API lists ``{type, value, confidence}`` for each live entity
linked to the memory, highest relevance first: one query for a whole page of memories
(:func:`with_entities`), never one per memory."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Exists, OuterRef, Prefetch, prefetch_related_objects

from .models import Memory

RELATION = "entity_links"


def _link_model():
    """The model behind ``Memory.entity_links`` (None when no app above declares it)."""
    try:
        return Memory._meta.get_field(RELATION).related_model
    except FieldDoesNotExist:
        return None


def entity_links_prefetch() -> Prefetch | None:
    """The links of a memory to live entities, each with its entity, best first."""
    links = _link_model()
    if links is None:
        return None
    return Prefetch(RELATION, queryset=links.objects.filter(entity__deleted_at__isnull=True)
                    .select_related("entity").order_by("-relevance_score", "id"))


def with_entities(memories: Iterable[Memory]) -> list[Memory]:
    """Reads the entities of every memory in ``memories`` that lacks them, in one query."""
    rows = [m for m in memories if m is not None]
    prefetch = entity_links_prefetch()
    if rows and prefetch is not None:
        prefetch_related_objects(rows, prefetch)
    return rows


def mark_unlinked(memories: Iterable[Memory]) -> None:
    """Memories just inserted have no links yet: their entities read as ``[]`` without a
    query (a write's answer costs no read of links)."""
    links = _link_model()
    if links is None:
        return
    for memory in memories:
        memory.__dict__.setdefault("_prefetched_objects_cache", {})[RELATION] = (
            links.objects.none())


def entities_of(memory: Memory) -> list[dict]:
    """``[{type, value, confidence}]`` of the memory's live entities (read now unless a
    page read them already)."""
    if RELATION not in getattr(memory, "_prefetched_objects_cache", {}):
        if memory._state.adding or _link_model() is None:
            return []
        with_entities([memory])
    return [{"type": link.entity.entity_type, "value": link.entity.name,
             "confidence": link.relevance_score}
            for link in getattr(memory, RELATION).all()]


def memories_mentioning(queryset, *, ref: str):
    """Narrows ``queryset`` (already the caller's memories) to those linked to a live
    entity whose UUID is ``ref`` or whose name has the key of ``ref`` (any spelling, any
    type: "acme" finds memories of "Acme Corp"). Matches nothing without an entities app."""
    links = _link_model()
    if links is None:
        return queryset.none()
    entities = links._meta.get_field("entity").related_model.objects.live().by_ref(ref)
    return queryset.filter(Exists(links.objects.filter(memory=OuterRef("pk"),
                                                       entity__in=entities)))
