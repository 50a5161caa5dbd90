"""Decisions and patterns: what coding agents decide and the conventions projects adopt.

Both are searched like memories (same embedding provider, indexes and score scale: see
``memories_app.search``), over ``title`` + ``rationale`` for a decision and ``title`` +
``description`` for a pattern. A decision's ``project_slug`` is a label, as a memory's
``project`` is: it names a registered project when one has that slug."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from memories_app.vectors import VectorField
from memoryrelay_site.models import SoftDeleteModel, SoftDeleteQuerySet
from sessions_app.models import Agent, Session


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
