"""Project services: register, update, delete and restore projects, and relate them.

Split from ``services.py`` (past ~300 lines); the same rules hold: short transactions, an
update writes only the fields that change on the re-read live row, a delete locks what it
deletes, and races are settled by the database's constraints (a slug is unique among the
live projects of an account: two concurrent registrations end with one project and a 409).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from memoryrelay_site.db import locked, locked_live
from memoryrelay_site.errors import Conflict, Invalid, NotFound

from .models import DEPENDENCY_TYPES, RESERVED_SLUGS, Project, ProjectRelationship

PROJECT_UPDATABLE = ("name", "description", "stack", "repo_url", "metadata")


def _not_found() -> NotFound:
    return NotFound("Project not found")


def project_get(*, account, slug: str, queryset=None) -> Project:
    """The live project of ``account`` with this slug (from ``queryset``, which may carry
    annotations); another account's slug is a NotFound like a missing one."""
    queryset = Project.objects.all() if queryset is None else queryset
    project = queryset.for_account(account).by_slug(slug).first()
    if project is None:
        raise _not_found()
    return project


def project_find(*, account, slug: str) -> Project | None:
    """The live project with this slug, or None: an unregistered slug is a plain label."""
    return Project.objects.for_account(account).by_slug(slug).first() if slug else None


def project_create(
    *,
    account,
    slug: str,
    name: str,
    description: str | None = None,
    stack: dict | None = None,
    repo_url: str | None = None,
    metadata: dict | None = None,
) -> Project:
    """Registers a project. A slug taken by a live project of the account is a Conflict,
    also when the other registration commits while this one runs (the unique constraint
    decides). A slug the API serves as a path of its own is refused."""
    if slug in RESERVED_SLUGS:
        raise Invalid(f"{slug!r} is a path of the API (/v1/projects/{slug}), not a free slug",
                      field="slug")
    try:
        with transaction.atomic():
            project = Project.objects.create(
                account=account, slug=slug, live_slug=slug, name=name,
                description=description or "", stack=stack or {}, repo_url=repo_url or "",
                metadata=metadata or {},
            )
    except IntegrityError:
        raise Conflict(f"A project with slug {slug!r} already exists", field="slug") from None
    project.memory_count = project.memories.filter(deleted_at__isnull=True).count()
    return project


def project_update(*, project: Project, changes: dict[str, Any]) -> Project:
    """Partial update of the live project: absent or None values are left unchanged, and
    only the fields whose value changes are written. The slug is the project's address and
    never changes. A project deleted meanwhile is a NotFound."""
    slug = changes.get("slug")
    if slug is not None and slug != project.slug:
        raise Invalid("slug cannot be changed", field="slug")
    with transaction.atomic():
        row = locked_live(Project, project.pk, _not_found())
        changed = [f for f in PROJECT_UPDATABLE
                   if changes.get(f) is not None and changes[f] != getattr(row, f)]
        for field in changed:
            setattr(row, field, changes[field])
        if changed:
            row.save(update_fields=[*changed, "updated_at"])
    return row


def project_delete(*, project: Project, at: datetime | None = None) -> Project:
    """Soft-deletes the project: its slug becomes free, the labels of its sessions and
    memories stay (plain labels again), and its relationships are hidden."""
    with transaction.atomic():
        row = locked_live(Project, project.pk, _not_found())
        row.mark_deleted(at or timezone.now())
        row.save(update_fields=["deleted_at", "live_slug", "updated_at"])
    return row


def project_restore(*, project: Project) -> Project:
    """Undoes a soft delete; refused while a live project uses the slug (also one
    registered while this runs: the unique constraint decides)."""
    taken = Conflict("A live project already uses this slug", field="slug")
    try:
        with transaction.atomic():
            row = locked(Project.objects, project.pk, NotFound("Project not found"))
            if row.deleted_at is None:
                return row
            if Project.objects.for_account(row.account_id).by_slug(row.slug).exists():
                raise taken
            row.mark_restored()
            row.save(update_fields=["deleted_at", "live_slug", "updated_at"])
    except IntegrityError:
        raise taken from None
    return row


# --- Relationships ------------------------------------------------------------------------


RELATE_ATTEMPTS = 3


def project_relate(
    *, project: Project, target_slug: str, relationship_type: str,
    metadata: dict | None = None,
) -> tuple[ProjectRelationship, bool]:
    """The live relationship ``project`` → ``target`` of that type, created when there is
    none (``created`` says which; a given ``metadata`` is kept only on creation). Both
    projects are held while it is written, so a concurrent delete of either waits or wins."""
    target = project_find(account=project.account_id, slug=target_slug)
    if target is None:
        raise Invalid(f"No project with slug {target_slug!r}", field="target_project")
    if target.pk == project.pk:
        raise Invalid("A project cannot be related to itself", field="target_project")
    edge = {"source_id": project.pk, "target_id": target.pk,
            "relationship_type": relationship_type}
    gone = {project.pk: _not_found(),  # a target deleted meanwhile is as unknown
            target.pk: Invalid(f"No project with slug {target_slug!r}", field="target_project")}
    for _ in range(RELATE_ATTEMPTS):
        existing = _live_edge(edge)
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                for pk in sorted(gone):  # one lock order: no deadlock
                    locked_live(Project, pk, gone[pk], no_key=True)
                made = ProjectRelationship.objects.create(
                    account_id=project.account_id, metadata=metadata or {}, **edge)
        except IntegrityError:  # a concurrent call created it first: read it (again)
            continue
        made.source, made.target = project, target
        return made, True
    # each time, the edge a concurrent call made was deleted before it could be read
    raise Conflict("The relationship kept changing while it was written; try again",
                   field="target_project")


def _live_edge(edge: dict) -> ProjectRelationship | None:
    return (ProjectRelationship.objects.live().select_related("source", "target")
            .filter(**edge).first())


def project_dependencies(*, project: Project):
    """Outgoing ``depends_on`` and ``api_consumer`` edges to live projects."""
    return project_edges(project=project, outgoing=True, incoming=False, types=DEPENDENCY_TYPES)


def project_dependents(*, project: Project):
    """Incoming ``depends_on`` and ``api_consumer`` edges from live projects."""
    return project_edges(project=project, outgoing=False, incoming=True, types=DEPENDENCY_TYPES)


def project_edges(*, project: Project, outgoing: bool = True, incoming: bool = True,
                  types=None):
    """The visible relationships touching ``project``, newest first."""
    touching = Q()
    if outgoing:
        touching |= Q(source=project)
    if incoming:
        touching |= Q(target=project)
    rows = ProjectRelationship.objects.visible().filter(touching)
    if types is not None:
        rows = rows.filter(relationship_type__in=types)
    return rows.select_related("source", "target").order_by("-created_at", "-id")


def relationship_delete(*, relationship: ProjectRelationship,
                        at: datetime | None = None) -> ProjectRelationship:
    """Soft-deletes one relationship (the admin's action; the API has no call for it)."""
    with transaction.atomic():
        row = locked_live(ProjectRelationship, relationship.pk,
                          NotFound("Relationship not found"))
        row.deleted_at = at or timezone.now()
        row.save(update_fields=["deleted_at"])
    return row


@transaction.atomic
def relationship_restore(*, relationship: ProjectRelationship) -> ProjectRelationship:
    """Undoes a relationship's soft delete; refused while a live one has the same edge."""
    row = locked(ProjectRelationship.objects, relationship.pk,
                 NotFound("Project relationship not found"))
    if row.deleted_at is None:
        return row
    edge = {"source_id": row.source_id, "target_id": row.target_id,
            "relationship_type": row.relationship_type}
    taken = Conflict("A live relationship already joins these projects with this type")
    if _live_edge(edge) is not None:
        raise taken
    row.deleted_at = None
    try:  # one made since the check holds the edge now
        with transaction.atomic():
            row.save(update_fields=["deleted_at"])
    except IntegrityError:
        raise taken from None
    return row
