"""Decision and pattern services: the only code that changes decisions and patterns.

As for memories (``memories_app.services``): embeddings are computed before any
transaction opens; transactions are short; an update re-reads the live row under a lock
and writes only the fields that change; a delete locks what it deletes; a write holds the
agent, then the session, it adds a row to."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from memories_app import search
from memories_app.embeddings import get_provider
from memories_app.services import embedding_of, rows_reembed, vector_fields
from memoryrelay_site.db import locked, locked_live
from memoryrelay_site.errors import Conflict, Invalid, NotFound
from memoryrelay_site.purge import delete_in_order, tally
from sessions_app.models import Project, ProjectRelationship
from sessions_app.projects import project_find, project_get
from sessions_app.services import agent_ref_checked, agents_for_write, parents_for_write

from .models import Decision, DecisionStatus, Pattern, PatternAdoption

CHECK_MODE = "hybrid"


# --- shared -------------------------------------------------------------------------------


def _soft_delete(model, pk, missing: NotFound, at: datetime | None):
    """Soft-deletes the live row under its lock; one deleted meanwhile is ``missing``."""
    with transaction.atomic():
        row = locked_live(model, pk, missing)
        row.deleted_at = at or timezone.now()
        row.save(update_fields=["deleted_at", "updated_at"])
    return row


@transaction.atomic
def _restore(model, pk):
    row = locked(model.objects.without_vectors(), pk,
                 NotFound(f"{model._meta.verbose_name.capitalize()} not found"))
    if row.deleted_at is not None:
        row.deleted_at = None
        row.save(update_fields=["deleted_at", "updated_at"])
    return row


def _given(changes: dict[str, Any], cleared: Iterable[str], updatable) -> dict[str, Any]:
    """What an update writes: the values given (None: unchanged), and None for each field
    ``cleared`` names."""
    given = {k: v for k, v in changes.items() if k in updatable and v is not None}
    given.update({k: None for k in cleared if k in updatable})
    return given


def _write_changes(row, given: dict[str, Any], embedded: dict | None, text_fields) -> Any:
    changed = {f: v for f, v in given.items() if getattr(row, f) != v}
    if embedded is not None and any(f in changed for f in text_fields):
        changed.update(embedded)
    if not changed:  # nothing new: nothing written, updated_at stays
        return row
    for field, value in changed.items():
        setattr(row, field, value)
    row.save(update_fields=[*changed, "updated_at"])
    return row


def search_rows(queryset, *, text: str, limit: int, threshold: float,
            vector: np.ndarray | None = None, mode: str = CHECK_MODE,
            judged: bool = False) -> list[search.Hit]:
    try:
        return search.run(queryset, search.Query(text=text, mode=mode, limit=limit,
                                                 min_score=threshold, judged=judged), vector)
    except search.SearchUnavailable as exc:
        raise Invalid(str(exc), field="search_mode") from None


# --- decisions ----------------------------------------------------------------------------


def decision_text(title: str, rationale: str) -> str:
    """What a decision's embedding is computed from (its text index covers the same)."""
    return f"{title}\n\n{rationale}"


def decision_get(*, account, decision_id) -> Decision:
    decision = (Decision.objects.live().for_account(account).without_vectors()
                .filter(pk=decision_id).first())
    if decision is None:
        raise NotFound("Decision not found")
    return decision


def decision_record(
    *,
    account,
    title: str,
    rationale: str,
    alternatives: str | None = None,
    status: str | None = None,
    agent_ref: str | None = None,
    session_id=None,
    project_slug: str | None = None,
    tags: list[str] | None = None,
    metadata: dict | None = None,
) -> Decision:
    """Records a decision (``active`` unless ``experimental``). ``agent_ref`` (a UUID or a
    name, created on first use) and ``session_id`` (a live session of the account, else a
    422) are optional; without ``project_slug`` the session's project labels it."""
    ref = agent_ref_checked(agent_ref) if agent_ref else None
    embedded = vector_fields(embedding_of(decision_text(title, rationale)))
    with transaction.atomic():
        at = timezone.now()
        agent, session = parents_for_write(account=account, agent_ref=ref,
                                           session_id=session_id, at=at)
        return _insert_decision(
            account=account, agent=agent, session=session, at=at, title=title,
            rationale=rationale, alternatives=alternatives, status=status, tags=tags,
            metadata=metadata, embedded=embedded,
            project_slug=project_slug if project_slug else getattr(session, "project", None),
        )


def _insert_decision(*, account, agent, session, at, embedded: dict, status, tags, metadata,
                     **fields) -> Decision:
    """Inside the transaction that holds its agent and session: inserts the row."""
    return Decision.objects.create(
        account=account, agent=agent, session=session, status=status or DecisionStatus.ACTIVE,
        tags=tags or [], metadata=metadata or {}, created_at=at, **fields, **embedded,
    )


def decision_supersede(
    *,
    account,
    decision: Decision,
    title: str,
    rationale: str,
    alternatives: str | None = None,
    status: str | None = None,
    agent_ref: str | None = None,
    session_id=None,
    project_slug: str | None = None,
    tags: list[str] | None = None,
    metadata: dict | None = None,
) -> Decision:
    """Records a new decision and marks ``decision`` superseded by it, in one transaction
    holding the old row's lock: of two concurrent supersedes one wins and the other is a
    409, as is superseding a superseded decision. The new decision keeps the old one's
    project, tags and agent unless given (the agent while it is live)."""
    ref = agent_ref_checked(agent_ref) if agent_ref else None
    embedded = vector_fields(embedding_of(decision_text(title, rationale)))
    with transaction.atomic():
        old = locked_live(Decision, decision.pk,
                          NotFound("Decision not found"))
        if old.status == DecisionStatus.SUPERSEDED:
            raise Conflict("Decision is already superseded", field="id")
        at = timezone.now()
        inherited = None
        if ref is None and old.agent_id is not None:
            # Its agent, held as a write holds it; one deleted since is not carried over
            # (the new decision has none) rather than refusing the supersede.
            inherited = agents_for_write(account=account, refs=[str(old.agent_id)], at=at,
                                         refused={}).get(str(old.agent_id))
        agent, session = parents_for_write(account=account, agent_ref=ref,
                                           session_id=session_id, at=at)
        agent = agent or inherited
        new = _insert_decision(
            account=account, agent=agent, session=session, at=at, title=title,
            rationale=rationale, alternatives=alternatives, status=status,
            tags=tags if tags is not None else old.tags, metadata=metadata,
            project_slug=project_slug or old.project_slug, embedded=embedded,
        )
        old.status, old.superseded_by = DecisionStatus.SUPERSEDED, new
        old.save(update_fields=["status", "superseded_by", "updated_at"])
    return new


DECISION_UPDATABLE = ("title", "rationale", "alternatives", "status", "project_slug", "tags",
                      "metadata")


def decision_update(*, decision: Decision, changes: dict[str, Any],
                    cleared: Iterable[str] = ()) -> Decision:
    """Partial update of the live decision (the admin's edits): only the fields that change
    are written, and those named in ``cleared`` emptied (a None in ``changes`` leaves its
    field as it is), all or nothing; a new title or rationale is re-embedded before the
    transaction opens. ``superseded`` is set only by :func:`decision_supersede`."""
    given = _given(changes, cleared, DECISION_UPDATABLE)
    if given.get("status") == DecisionStatus.SUPERSEDED and decision.superseded_by_id is None:
        raise Invalid("A decision becomes superseded by superseding it", field="status")
    embedded = None
    if {"title", "rationale"} & set(given):
        text = decision_text(given.get("title", decision.title),
                             given.get("rationale", decision.rationale))
        embedded = vector_fields(embedding_of(text))
    with transaction.atomic():
        row = locked_live(Decision, decision.pk,
                          NotFound("Decision not found"))
        if row.superseded_by_id is not None and given.get("status", row.status) != row.status:
            raise Invalid("A superseded decision stays superseded: record a new one to "
                          "change course", field="status")
        return _write_changes(row, given, embedded, ("title", "rationale"))


def decision_delete(*, decision: Decision, at: datetime | None = None) -> Decision:
    """Soft-deletes the live decision under its row lock; one deleted meanwhile is a
    NotFound. A decision in force that superseded another (the last of its chain) gives the
    topic back to it: the one it superseded is in force again (``active``: a supersede does
    not keep the status it replaced), not left superseded by a deleted decision with none in
    force. Deleting a decision itself superseded leaves the chain as it is (the last is in
    force). Restoring it later supersedes nothing again: supersede anew if it should."""
    with transaction.atomic():
        row = locked_live(Decision, decision.pk, NotFound("Decision not found"))
        row.deleted_at = at or timezone.now()
        row.save(update_fields=["deleted_at", "updated_at"])
        if row.superseded_by_id is None:
            for earlier in _live_predecessors(row):
                earlier.status, earlier.superseded_by = DecisionStatus.ACTIVE, None
                earlier.save(update_fields=["status", "superseded_by", "updated_at"])
    return row


def _live_predecessors(row: Decision) -> list[Decision]:
    """Inside a transaction: the live decisions nearest ``row`` back along its chain of
    supersedes (past the deleted ones between), held until commit."""
    found, frontier, seen = [], [row.pk], {row.pk}
    while frontier:
        earlier = list(Decision.objects.filter(superseded_by__in=frontier)
                       .exclude(pk__in=seen).select_for_update().order_by("pk"))
        found += [d for d in earlier if d.deleted_at is None]
        frontier = [d.pk for d in earlier if d.deleted_at is not None]
        seen.update(d.pk for d in earlier)
    return found


def decision_restore(*, decision: Decision) -> Decision:
    return _restore(Decision, decision.pk)


def decision_check(
    *,
    account,
    text: str,
    limit: int = 5,
    threshold: float = 0.3,
    project: str | None = None,
    include_superseded: bool = False,
    mode: str = CHECK_MODE,
) -> list[search.Hit]:
    """Earlier decisions on ``text``'s topic, by meaning and keywords (hybrid, the score
    scale of memory search), superseded ones only when asked."""
    queryset = Decision.objects.live().for_account(account)
    if project:
        queryset = queryset.filter(project_slug=project)
    if not include_superseded:
        queryset = queryset.in_force()
    return search_rows(queryset, text=text, limit=limit, threshold=threshold, mode=mode,
                       judged=True)


# --- patterns -----------------------------------------------------------------------------


def pattern_text(title: str, description: str) -> str:
    """What a pattern's embedding is computed from (its text index covers the same)."""
    return f"{title}\n\n{description}"


def pattern_get(*, account, pattern_id) -> Pattern:
    pattern = (Pattern.objects.live().for_account(account).without_vectors()
               .with_adoption_count().filter(pk=pattern_id).first())
    if pattern is None:
        raise NotFound("Pattern not found")
    return pattern


def pattern_create(
    *,
    account,
    title: str,
    description: str,
    scope: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    example_code: str | None = None,
    source_project: str | None = None,
    metadata: dict | None = None,
) -> Pattern:
    """Stores a pattern (``global`` unless ``project`` scope). ``source_project`` is a slug,
    kept as given; it also links the project registered with it, if any."""
    embedded = vector_fields(embedding_of(pattern_text(title, description)))
    with transaction.atomic():
        source = _project_held(account, source_project) if source_project else None
        pattern = Pattern.objects.create(
            account=account, title=title, description=description, scope=scope or "global",
            category=category or None, tags=tags or [], example_code=example_code,
            source_project=source, source_project_slug=source_project or None,
            metadata=metadata or {}, **embedded,
        )
    pattern.adoption_count = 0
    return pattern


def _project_held(account, slug: str) -> Project | None:
    """Inside a transaction: the live project registered with ``slug``, held until commit
    (a delete waits for the link to be written), or None. One deleted between its reading
    and its lock is read again: the slug may have been registered anew meanwhile."""
    for _ in range(3):
        found = project_find(account=account, slug=slug)
        if found is None:
            return None
        held = Project.objects.select_for_update(no_key=True).filter(
            pk=found.pk, deleted_at__isnull=True).first()
        if held is not None:
            return held
    return None


def pattern_adopt(*, account, pattern: Pattern, project_slug: str) -> Pattern:
    """``project`` adopts the pattern; adopting again changes nothing. The unique
    (pattern, project) constraint settles concurrent adoptions, so ``adoption_count`` stays
    exact. The pattern and the project are held while the adoption is written."""
    project = project_find(account=account, slug=project_slug)
    if project is None:
        raise Invalid(f"No project with slug {project_slug!r}", field="project")
    try:
        with transaction.atomic():
            locked_live(Pattern, pattern.pk, NotFound("Pattern not found"), no_key=True)
            locked_live(Project, project.pk, Invalid("Project not found", field="project"),
                        no_key=True)
            PatternAdoption.objects.create(account=account, pattern=pattern, project=project)
    except IntegrityError:  # adopted already (or concurrently): idempotent
        pass
    return pattern_get(account=account, pattern_id=pattern.pk)


def pattern_delete(*, pattern: Pattern, at: datetime | None = None) -> Pattern:
    """Soft-deletes the live pattern under its row lock (its adoptions stay, for a
    restore)."""
    return _soft_delete(Pattern, pattern.pk, NotFound("Pattern not found"), at)


def pattern_restore(*, pattern: Pattern) -> Pattern:
    return _restore(Pattern, pattern.pk)


PATTERN_UPDATABLE = ("title", "description", "scope", "category", "tags", "example_code",
                     "metadata")


def pattern_update(*, pattern: Pattern, changes: dict[str, Any],
                   cleared: Iterable[str] = ()) -> Pattern:
    """Partial update of the live pattern (the admin's edits): only the fields that change
    are written, and those named in ``cleared`` emptied, all or nothing; a new title or
    description is re-embedded before the transaction opens."""
    given = _given(changes, cleared, PATTERN_UPDATABLE)
    embedded = None
    if {"title", "description"} & set(given):
        text = pattern_text(given.get("title", pattern.title),
                            given.get("description", pattern.description))
        embedded = vector_fields(embedding_of(text))
    with transaction.atomic():
        row = locked_live(Pattern, pattern.pk, NotFound("Pattern not found"))
        return _write_changes(row, given, embedded, ("title", "description"))


def with_adoption_counts(patterns: list[Pattern]) -> list[Pattern]:
    """Sets ``adoption_count`` on rows read without it (search hits), in one query."""
    counts = dict(
        PatternAdoption.objects.filter(pattern__in=[p.pk for p in patterns],
                                       project__deleted_at__isnull=True)
        .order_by().values("pattern").annotate(n=Count("pk")).values_list("pattern", "n")
    ) if patterns else {}
    for pattern in patterns:
        pattern.adoption_count = counts.get(pattern.pk, 0)
    return patterns


def pattern_search(
    *,
    account,
    text: str,
    project: str | None = None,
    category: str | None = None,
    limit: int = 10,
    threshold: float = 0.3,
    mode: str = CHECK_MODE,
) -> list[search.Hit]:
    """Patterns for ``text`` by meaning and keywords (hybrid, the score scale of memory
    search); with ``project``, the global patterns and those the project adopted."""
    queryset = Pattern.objects.live().for_account(account)
    if project:
        queryset = queryset.visible_in(account, project)
    if category:
        queryset = queryset.filter(category=category)
    hits = search_rows(queryset, text=text, limit=limit, threshold=threshold, mode=mode,
                       judged=True)
    with_adoption_counts([hit.item for hit in hits])
    return hits


def related_projects(*, project: Project):
    """The live projects related to ``project`` by any visible relationship, either way."""
    edges = ProjectRelationship.objects.visible().filter(Q(source=project) | Q(target=project))
    ids = {pk for pair in edges.values_list("source_id", "target_id") for pk in pair}
    return ids - {project.pk}


def pattern_suggest(*, account, project_slug: str, limit: int = 10) -> list[Pattern]:
    """Patterns ``project`` has not adopted: those adopted by related projects first (the
    most such adoptions first), then by adoption count across all projects, newest first."""
    project = project_get(account=account, slug=project_slug)
    related = related_projects(project=project)
    by_related = (
        PatternAdoption.objects.filter(pattern=OuterRef("pk"), project_id__in=related,
                                       project__deleted_at__isnull=True)
        .order_by().values("pattern").annotate(n=Count("pk")).values("n")
    )
    return list(
        Pattern.objects.live().for_account(account).without_vectors().not_adopted_by(project)
        .with_adoption_count()
        .annotate(related_adoptions=Coalesce(
            Subquery(by_related, output_field=IntegerField()), Value(0)))
        .order_by("-related_adoptions", "-adoption_count", "-created_at", "-id")[:limit]
    )


# --- re-embedding -------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeReembedReport:
    decisions: int
    patterns: int
    failed: int


def _stale(model, provider_name: str):
    return (model.objects.live().exclude(embedding_model=provider_name, embedding__isnull=False)
            .without_vectors())


def knowledge_reembed(*, batch_size: int = 64, dry_run: bool = False,
                      progress=None) -> KnowledgeReembedReport:
    """Embeds, batch by batch, the live decisions and patterns whose vector is missing (a
    write while the provider was down) or was made by another model. ``progress`` as in
    memories_reembed, called once per kind with its label."""
    provider = get_provider()
    texts = {Decision: lambda d: decision_text(d.title, d.rationale),
             Pattern: lambda p: pattern_text(p.title, p.description)}
    counts, failed = {}, 0
    for model, text_of in texts.items():
        stale = _stale(model, provider.name)
        counts[model] = stale.count()
        step = (progress(counts[model], model._meta.verbose_name_plural)
                if progress is not None and not dry_run else None)
        if not dry_run:
            failed += rows_reembed(stale, text_of, batch_size=batch_size, step=step)
    return KnowledgeReembedReport(counts[Decision], counts[Pattern], failed)


# --- purge --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgePurgeReport:
    decisions: int
    patterns: int
    along: Counter = dataclass_field(default_factory=Counter)  # removed with them, by model


def _decisions_purged(cutoff) -> set:
    """The decisions deleted before ``cutoff`` that no decision kept names, the way a chain
    of supersedes is walked: each round keeps those named by a decision kept in the one
    before (a chain is as long as its supersedes)."""
    gone = set(Decision.objects.filter(deleted_at__lt=cutoff).values_list("pk", flat=True))
    links = Decision.objects.filter(superseded_by__in=gone).values_list("pk", "superseded_by")
    named_by: dict = {}
    for source, target in links:
        named_by.setdefault(target, set()).add(source)
    while kept := {pk for pk in gone if named_by.get(pk, set()) - gone}:
        gone -= kept
    return gone


def knowledge_purge_deleted(*, older_than_days: int, dry_run: bool = False,
                            now: datetime | None = None) -> KnowledgePurgeReport:
    """Removes for good the decisions and patterns soft-deleted more than
    ``older_than_days`` ago (a pattern's adoptions go with it, counted in ``along``). A
    deleted decision that a decision kept names as ``superseded_by`` is kept too: a purge
    changes no row it does not remove (the kept one would be superseded by nothing)."""
    if older_than_days < 0:
        raise Invalid("older_than_days must be at least 0", field="older_than_days")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    # Chosen before the purge's transaction: one restored since is left (it is chosen again,
    # locked, only while still deleted).
    chosen = Decision.objects.filter(pk__in=_decisions_purged(cutoff), deleted_at__lt=cutoff)
    removed = delete_in_order([chosen,
                               Pattern.objects.filter(deleted_at__lt=cutoff)], dry_run=dry_run)
    counts, with_them = tally(removed, (Decision, Pattern))
    return KnowledgePurgeReport(*counts, along=with_them)
