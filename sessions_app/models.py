"""Agents and the sessions that group their memories."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from memoryrelay_site.models import SoftDeleteModel, SoftDeleteQuerySet
from memoryrelay_site.serializers import is_uuid


def live_count(model, related_name: str, fk: str):
    """A correlated subquery counting the live rows behind a reverse relation."""
    related = model._meta.get_field(related_name).related_model
    rows = (
        related.objects.filter(**{fk: OuterRef("pk")}, deleted_at__isnull=True)
        .order_by()
        .values(fk)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=models.IntegerField()), Value(0))


class AgentQuerySet(SoftDeleteQuerySet):
    def with_counts(self):
        return self.annotate(
            memory_count=live_count(self.model, "memories", "agent"),
            session_count=live_count(self.model, "sessions", "agent"),
        )

    def by_ref(self, ref: str):
        """Agents whose UUID or name is ``ref`` (a UUID-shaped name still matches by name).
        No name holds a NUL (PostgreSQL text cannot), so such a ref matches nothing."""
        if "\x00" in ref:
            return self.none()
        if is_uuid(ref):
            return self.filter(Q(pk=ref) | Q(name=ref))
        return self.filter(name=ref)


class Agent(SoftDeleteModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents"
    )
    name = models.CharField(max_length=255)
    description = models.TextField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    last_active_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "name"],
                condition=Q(deleted_at__isnull=True),
                name="agent_unique_live_name_per_account",
                violation_error_message=("Another live agent of this account already exists with "
                                         "this name"),
            ),
        ]
        indexes = [models.Index(fields=["account", "created_at"], name="agent_account_created")]

    def entity_count(self) -> int:
        """Live entities linked to the agent's live memories, read through the reverse
        relations the apps above declare (Agent.memories, Memory.entity_links); 0 where no
        app links entities."""
        memory_model = self.memories.model
        try:
            links = memory_model._meta.get_field("entity_links").related_model
        except FieldDoesNotExist:
            return 0
        return (links.objects.filter(memory__agent=self, memory__deleted_at__isnull=True,
                                     entity__deleted_at__isnull=True)
                .values("entity_id").distinct().count())

    def __str__(self) -> str:
        return self.name


class SessionStatus(models.TextChoices):
    ACTIVE = "active"
    ENDED = "ended"


class SessionQuerySet(SoftDeleteQuerySet):
    def with_memory_count(self):
        return self.annotate(memory_count=live_count(self.model, "memories", "session"))

    def with_last_activity(self):
        """``last_activity_at``: the newest live memory's time, or the session start."""
        related = self.model._meta.get_field("memories").related_model
        newest = (
            related.objects.filter(session=OuterRef("pk"), deleted_at__isnull=True)
            .order_by("-created_at")
            .values("created_at")[:1]
        )
        return self.annotate(last_activity_at=Coalesce(Subquery(newest), F("started_at")))


class Session(SoftDeleteModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_sessions"
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="sessions"
    )
    external_id = models.CharField(max_length=255, null=True, blank=True)
    project = models.CharField(max_length=255, null=True, blank=True)
    # The live registered project whose slug is the ``project`` label, if any (no column:
    # a join on (account, label) = (account, live_slug)).
    registered_project = models.ForeignObject(
        "Project", on_delete=models.DO_NOTHING, from_fields=["account", "project"],
        to_fields=["account", "live_slug"], related_name="sessions", null=True, blank=True,
        editable=False, serialize=False,
    )
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.ACTIVE
    )
    title = models.CharField(max_length=500, null=True, blank=True)
    summary = models.TextField(null=True, blank=True)
    # How the stored summary was made: given by a client, "extractive" (summarizer.py) or
    # "llm" (summarizer_llm.py, when configured); empty while there is none.
    summary_method = models.CharField(max_length=16, blank=True, default="", editable=False)
    metadata = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "external_id"],
                condition=Q(deleted_at__isnull=True, external_id__isnull=False),
                name="session_unique_live_external_id_per_account",
                violation_error_message=("Another live session of this account already exists with "
                                         "this external_id"),
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="session_ended_at_after_started_at",
            ),
            models.CheckConstraint(
                condition=Q(status=SessionStatus.ACTIVE, ended_at__isnull=True)
                | Q(status=SessionStatus.ENDED, ended_at__isnull=False),
                name="session_status_matches_ended_at",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "created_at"], name="session_account_created"),
            models.Index(fields=["account", "project"], name="session_account_project"),
            models.Index(fields=["account", "status"], name="session_account_status"),
        ]

    def __str__(self) -> str:
        return self.title or self.external_id or str(self.id)

    def mark_ended(self, at: datetime) -> None:
        """Ends the session; an ended session keeps its first ``ended_at``."""
        if self.status != SessionStatus.ENDED:
            self.status = SessionStatus.ENDED
            self.ended_at = max(at, self.started_at)


SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# Paths under /v1/projects/ served literally (by the knowledge app, whose routes win over
# projects/{slug}): a project with such a slug could never be read, changed or deleted.
RESERVED_SLUGS = frozenset({"impact-analysis", "shared-patterns"})


class ProjectQuerySet(SoftDeleteQuerySet):
    def by_slug(self, slug: str):
        """The live project with this slug (slugs are unique among live projects only). No
        slug holds a NUL (PostgreSQL text cannot), so such a slug matches nothing."""
        if "\x00" in slug:
            return self.none()
        return self.live().filter(live_slug=slug)

    def with_memory_count(self):
        """``memory_count``: live memories whose ``project`` label is this live project's slug.
        The memories app declares the relation (``memories``) joining on the label."""
        related = self.model._meta.get_field("memories").related_model
        rows = (
            related.objects.filter(registered_project__id=OuterRef("pk"), deleted_at__isnull=True)
            .order_by()
            .values("registered_project__id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return self.annotate(
            memory_count=Coalesce(Subquery(rows, output_field=models.IntegerField()), Value(0))
        )


class Project(SoftDeleteModel):
    """A registered codebase. Sessions and memories name it by its slug (their ``project``
    label); ``live_slug`` is the slug while the project is live and NULL once it is deleted,
    so the label joins to the one live project of that slug and never to a deleted one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    slug = models.CharField(max_length=100)
    live_slug = models.CharField(max_length=100, null=True, blank=True, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    stack = models.JSONField(default=dict, blank=True)
    repo_url = models.CharField(max_length=500, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Unique among live projects: a deleted project's live_slug is NULL, and NULLs
            # never collide. A total constraint (not a partial one) so the label relations
            # of sessions and memories may target (account, live_slug).
            models.UniqueConstraint(
                fields=["account", "live_slug"], name="project_unique_live_slug_per_account"
            ),
            models.CheckConstraint(
                condition=Q(deleted_at__isnull=True, live_slug=F("slug"))
                | Q(deleted_at__isnull=False, live_slug__isnull=True),
                name="project_live_slug_is_slug_while_live",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "created_at"], name="project_account_created"),
            models.Index(fields=["account", "slug"], name="project_account_slug"),
        ]

    def __str__(self) -> str:
        return self.slug

    def mark_deleted(self, at: datetime) -> None:
        self.deleted_at = at
        self.live_slug = None

    def mark_restored(self) -> None:
        self.deleted_at = None
        self.live_slug = self.slug


class RelationshipType(models.TextChoices):
    DEPENDS_ON = "depends_on"
    API_CONSUMER = "api_consumer"
    SHARES_SCHEMA = "shares_schema"
    SHARES_INFRA = "shares_infra"
    PATTERN_SOURCE = "pattern_source"
    FORKED_FROM = "forked_from"


DEPENDENCY_TYPES = (RelationshipType.DEPENDS_ON, RelationshipType.API_CONSUMER)


class ProjectRelationshipQuerySet(SoftDeleteQuerySet):
    def visible(self):
        """Live relationships between two live projects (a deleted project hides its own)."""
        return self.filter(
            deleted_at__isnull=True,
            source__deleted_at__isnull=True,
            target__deleted_at__isnull=True,
        )


class ProjectRelationship(SoftDeleteModel):
    """A typed, directed edge: ``source`` depends_on / api_consumer / ... ``target``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_relationships"
    )
    source = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="outgoing_relationships"
    )
    target = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="incoming_relationships"
    )
    relationship_type = models.CharField(max_length=32, choices=RelationshipType.choices)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ProjectRelationshipQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "target", "relationship_type"],
                condition=Q(deleted_at__isnull=True),
                name="project_relationship_unique_live_edge",
            ),
            models.CheckConstraint(
                condition=~Q(source=F("target")), name="project_relationship_not_to_itself"
            ),
            models.CheckConstraint(
                condition=Q(relationship_type__in=RelationshipType.values),
                name="project_relationship_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.relationship_type} {self.target}"
