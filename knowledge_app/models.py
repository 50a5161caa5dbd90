"""Decisions and patterns: what coding agents decide and the conventions projects adopt.

Both are searched like memories (same embedding provider, indexes and score scale: see
``memories_app.search``), over ``title`` + ``rationale`` for a decision and ``title`` +
``description`` for a pattern. A decision's ``project_slug`` is a label, as a memory's
``project`` is: it names a registered project when one has that slug. A pattern is adopted
by registered projects (one :class:`PatternAdoption` per pattern and project)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from memories_app.vectors import VectorField
from memoryrelay_site.models import SoftDeleteModel, SoftDeleteQuerySet
from sessions_app.models import Agent, Project, Session


class DecisionStatus(models.TextChoices):
    ACTIVE = "active"
    EXPERIMENTAL = "experimental"
    SUPERSEDED = "superseded"
    REVERTED = "reverted"


# What a new decision may start as (superseded and reverted come later).
RECORDABLE_STATUSES = [DecisionStatus.ACTIVE, DecisionStatus.EXPERIMENTAL]


class SearchableQuerySet(SoftDeleteQuerySet):
    def without_vectors(self):
        """Reads that never need the embedding skip the widest column."""
        return self.defer("embedding")


class DecisionQuerySet(SearchableQuerySet):
    def in_force(self):
        """Decisions not superseded by a later one."""
        return self.exclude(status=DecisionStatus.SUPERSEDED)


class Decision(SoftDeleteModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="decisions"
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    project_slug = models.CharField(max_length=100, null=True, blank=True)
    title = models.CharField(max_length=500)
    rationale = models.TextField()
    alternatives = models.TextField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=DecisionStatus.choices, default=DecisionStatus.ACTIVE
    )
    superseded_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="supersedes"
    )
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    embedding = VectorField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=100, blank=True, default="", editable=False)
    embedding_dimension = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DecisionStatus.values), name="decision_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(superseded_by__isnull=True) | Q(status=DecisionStatus.SUPERSEDED),
                name="decision_superseded_by_only_when_superseded",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "created_at"], name="decision_account_created"),
            models.Index(fields=["account", "project_slug"], name="decision_account_project"),
            models.Index(fields=["account", "status"], name="decision_account_status"),
        ]

    def __str__(self) -> str:
        return self.title[:80]

    @property
    def search_text(self) -> str:
        """What search reads of it (memories_app/search.py): what its text index holds."""
        return f"{self.title}. {self.rationale}"


# --- patterns ----------------------------------------------------------------------------


class PatternScope(models.TextChoices):
    GLOBAL = "global"
    PROJECT = "project"


class PatternQuerySet(SearchableQuerySet):
    def with_adoption_count(self):
        """``adoption_count``: the live projects that adopted the pattern (exact: one
        adoption row per pattern and project)."""
        rows = (
            PatternAdoption.objects.filter(pattern=OuterRef("pk"), project__deleted_at__isnull=True)
            .order_by().values("pattern").annotate(n=Count("pk")).values("n")
        )
        return self.annotate(adoption_count=Coalesce(
            Subquery(rows, output_field=models.IntegerField()), Value(0)))

    def adopted_by(self, project: Project):
        return self.filter(Exists(PatternAdoption.objects.filter(
            pattern=OuterRef("pk"), project=project)))

    def not_adopted_by(self, project: Project):
        return self.exclude(Exists(PatternAdoption.objects.filter(
            pattern=OuterRef("pk"), project=project)))

    def visible_in(self, account, slug: str):
        """Global patterns, and those the live project ``slug`` of ``account`` adopted."""
        adopted = PatternAdoption.objects.filter(
            pattern=OuterRef("pk"), project__account=account, project__live_slug=slug)
        return self.filter(Q(scope=PatternScope.GLOBAL) | Q(Exists(adopted)))


class Pattern(SoftDeleteModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="patterns"
    )
    title = models.CharField(max_length=500)
    description = models.TextField()
    scope = models.CharField(max_length=16, choices=PatternScope.choices,
                             default=PatternScope.GLOBAL)
    category = models.CharField(max_length=100, null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    example_code = models.TextField(null=True, blank=True)
    # The project registered with that slug when the pattern was created; the slug stays
    # as given (a label) either way.
    source_project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="source_patterns"
    )
    source_project_slug = models.CharField(max_length=100, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    embedding = VectorField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=100, blank=True, default="", editable=False)
    embedding_dimension = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PatternQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope__in=PatternScope.values), name="pattern_scope_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "created_at"], name="pattern_account_created"),
            models.Index(fields=["account", "category"], name="pattern_account_category"),
        ]

    def __str__(self) -> str:
        return self.title[:80]

    @property
    def search_text(self) -> str:
        """What search reads of it (memories_app/search.py): what its text index holds."""
        return f"{self.title}. {self.description}"


class PatternAdoption(models.Model):
    """A project's adoption of a pattern: at most one per (pattern, project), so adopting
    twice, or twice at once, leaves one row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pattern_adoptions"
    )
    pattern = models.ForeignKey(Pattern, on_delete=models.CASCADE, related_name="adoptions")
    project = models.ForeignKey(Project, on_delete=models.CASCADE,
                                related_name="pattern_adoptions")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["pattern", "project"],
                                    name="pattern_adoption_unique_per_project"),
        ]
        indexes = [models.Index(fields=["project", "pattern"], name="adoption_project_pattern")]

    def __str__(self) -> str:
        return f"{self.project} adopted {self.pattern}"
