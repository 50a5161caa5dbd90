"""Memories: the short facts, events and decisions agents store."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from memoryrelay_site.models import SoftDeleteModel, SoftDeleteQuerySet
from sessions_app.models import Agent, Project, Session

from .vectors import VectorField


class MemoryType(models.TextChoices):
    FACT = "fact"
    EVENT = "event"
    INSIGHT = "insight"
    TASK = "task"
    PREFERENCE = "preference"
    ENTITY_REFERENCE = "entity_reference"
    SYSTEM = "system"


class Tier(models.TextChoices):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class Visibility(models.TextChoices):
    PRIVATE = "private"
    CONFIDENTIAL = "confidential"


def tier_for(importance: float) -> str:
    if importance >= 0.8:
        return Tier.HOT
    if importance >= 0.4:
        return Tier.WARM
    return Tier.COLD


class WriteStatus(models.TextChoices):
    """Where an asynchronous write (POST /v2/memories) stands; every other write is
    ``ready`` at once."""

    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


UNFINISHED = (WriteStatus.PENDING, WriteStatus.PROCESSING)


class MemoryQuerySet(SoftDeleteQuerySet):
    def without_vectors(self):
        """Reads that never need the embedding skip the widest column."""
        return self.defer("embedding")

    def with_project_id(self):
        """``registered_project_pk``: the id of the live project the label names, or None
        (one join, so a page of memories shows its project ids in the same query)."""
        return self.annotate(registered_project_pk=F("registered_project__id"))

    def stale_embeddings(self, model_name: str):
        """Live memories whose vector is missing or was made by another model."""
        return self.live().exclude(embedding_model=model_name, embedding__isnull=False)


class Memory(SoftDeleteModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memories"
    )
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="memories")
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="memories"
    )
    project = models.CharField(max_length=255, null=True, blank=True)
    # The live registered project whose slug is the ``project`` label, if any (no column:
    # a join on (account, label) = (account, live_slug)); its id is the memory's project_id.
    registered_project = models.ForeignObject(
        Project, on_delete=models.DO_NOTHING, from_fields=["account", "project"],
        to_fields=["account", "live_slug"], related_name="memories", null=True, blank=True,
        editable=False, serialize=False,
    )
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    entities = models.JSONField(default=list, blank=True)
    memory_type = models.CharField(max_length=32, choices=MemoryType.choices, default="fact")
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    importance = models.FloatField(default=0.5)
    tier = models.CharField(max_length=8, choices=Tier.choices, default=Tier.WARM)
    embedding = VectorField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=100, blank=True, default="", editable=False)
    embedding_dimension = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Last returned by a read or a search, to the hour (see tiering.py); null until then.
    # (Nullable without a default, so adding it never rebuilds the SQLite table.)
    last_accessed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The asynchronous write (memories_app/tasks.py): its state, the last error, the
    # attempts made, when the state last changed (a stale claim is handed out again), the
    # dedup threshold asked for (null: no dedup), the memory it duplicated (it is then
    # deleted) and where to report.
    status = models.CharField(max_length=12, choices=WriteStatus.choices,
                              default=WriteStatus.READY, editable=False)
    status_error = models.TextField(blank=True, default="", editable=False)
    status_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    dedup_threshold = models.FloatField(null=True, blank=True, editable=False)
    duplicate_of = models.UUIDField(null=True, blank=True, editable=False)
    webhook_url = models.URLField(max_length=2000, blank=True, default="", editable=False)
    # The write's ``auto_extract_entities`` (null: the server default), kept until an
    # asynchronous write is ready and its entities are extracted (signals.memories_written).
    extract_entities = models.BooleanField(null=True, blank=True, editable=False)

    objects = MemoryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "memories"
        constraints = [
            models.CheckConstraint(
                condition=Q(importance__gte=0.0, importance__lte=1.0),
                name="memory_importance_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=Q(tier__in=Tier.values), name="memory_tier_valid"
            ),
            models.CheckConstraint(
                condition=Q(memory_type__in=MemoryType.values), name="memory_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(visibility__in=Visibility.values), name="memory_visibility_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "created_at"], name="memory_account_created"),
            # The recent memories of every account (entities' lost-request sweep, the admin).
            models.Index(fields=["created_at"], name="memory_created"),
            models.Index(fields=["session", "created_at"], name="memory_session_created"),
            models.Index(fields=["agent", "created_at"], name="memory_agent_created"),
            models.Index(fields=["account", "project"], name="memory_account_project"),
            models.Index(fields=["status_changed_at"], name="memory_unfinished",
                         condition=Q(status__in=UNFINISHED)),
        ]

    def __str__(self) -> str:
        return self.content[:80]

    @property
    def search_text(self) -> str:
        """What search reads of it (memories_app/search.py): its content."""
        return self.content


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # to be sent (again) at next_attempt_at
    SENDING = "sending"  # claimed by a task at updated_at
    DELIVERED = "delivered"
    FAILED = "failed"  # the receiver never answered 2xx within the attempts
    REFUSED = "refused"  # the URL was not allowed at delivery


SETTLED_DELIVERIES = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.REFUSED)


class WebhookDelivery(models.Model):
    """One webhook event of an asynchronous write, written in the same transaction as the
    write's outcome (an outbox): a task sends it, and a delivery whose task was lost or
    whose worker died is handed out again by the sweep, so every event is sent at least
    once (receivers tell a repeat by ``id`` and ``event``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    memory = models.ForeignKey(Memory, on_delete=models.CASCADE,
                               related_name="webhook_deliveries")
    event = models.CharField(max_length=32)
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices,
                              default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)  # set by each claim and outcome
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"],
                                name="webhook_delivery_due")]

    def __str__(self) -> str:
        return f"{self.event} of {self.memory_id}: {self.status}"
