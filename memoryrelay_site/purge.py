"""Removing soft-deleted rows for good (``manage.py purge_deleted``), shared by every app's
purge: deletes run in order in one transaction, a dry run undoes them, and what each
removed is counted by model, cascades included, so a report never says less than happened.
"""

from __future__ import annotations

from collections import Counter

from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q

# Rows deleted per statement: the ids of a purge of millions are not one statement's
# parameters (SQLite takes at most 32,766).
CHUNK = 1000


def delete_in_order(querysets, *, dry_run: bool) -> list[Counter]:
    """Deletes each queryset in turn, in one transaction (rolled back for ``dry_run``, so its
    counts are the ones a real run gives): each sees what the ones before it removed. For
    each, what it removed by model label (``memories_app.Memory``), cascades included.

    The rows are locked as they are chosen (``FOR UPDATE``, which reads a row changed
    meanwhile again): a delete reads them first and then removes them by id, so a row
    restored in between (the admin) was removed all the same, restored and gone. Now the
    restore waits for the purge, and finds the row gone, or committed first and the row
    is no longer chosen."""
    removed = []
    with transaction.atomic():
        for queryset in querysets:
            chosen = list(queryset.select_for_update().values_list("pk", flat=True))
            manager = queryset.model._base_manager
            done = Counter()
            for start in range(0, len(chosen), CHUNK):
                _, per_model = manager.filter(pk__in=chosen[start:start + CHUNK]).delete()
                done.update(per_model)
            removed.append(Counter({k: v for k, v in done.items() if v}))
        if dry_run:
            transaction.set_rollback(True)
    return removed


def named_by_another_row(model, *, along_too: bool = True) -> Q:
    """True for the rows of ``model`` that a row of another kind still names (any foreign
    key to it, live row or deleted): such a row is kept, so that a purge never changes a
    row it does not remove (a live decision would lose its agent, a memory its session).
    ``along_too=False``: rows that would go along with it (``CASCADE``: a purged project's
    hidden relationships) or stay as they are (``DO_NOTHING``) do not keep it; only those
    it would change (``SET_NULL``: a pattern's source project) or that forbid it."""
    condition = Q(pk__in=[])
    for relation in model._meta.related_objects:
        if not (relation.one_to_many or relation.one_to_one):
            continue
        if not along_too and relation.on_delete in (models.CASCADE, models.DO_NOTHING):
            continue
        related = relation.related_model._base_manager
        condition |= Q(Exists(related.filter(**{relation.field.name: OuterRef("pk")})))
    return condition


def tally(removed: list[Counter], own) -> tuple[list[int], Counter]:
    """How many rows of each of the models ``own`` the deletes removed, in that order, and
    what they removed besides (by model label)."""
    total = Counter()
    for counts in removed:
        total.update(counts)
    labels = [model._meta.label for model in own]
    return [total.pop(label, 0) for label in labels], total
