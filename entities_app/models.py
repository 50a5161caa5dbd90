"""Entities: the people, organisations, technologies and concepts that memories mention,
and the links that say which memories mention which entity.

An entity is unique per account by (``key``, ``entity_type``) among live entities, ``key``
being :func:`entities_app.names.entity_key` of its name: "Acme Corp" and "ACME" are one
organization. A link is unique per (entity, memory)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from memories_app.models import Memory
from memoryrelay_site.models import SoftDeleteModel, SoftDeleteQuerySet

from .names import ENTITY_TYPE_CHOICES, ENTITY_TYPES, entity_key


class EntityQuerySet(SoftDeleteQuerySet):
    def with_counts(self):
        """``memory_count``: the live memories linked to the entity; ``relationship_count``:
        the other live entities linked to at least one of those memories (the entities it
        co-occurs with), read from the co-occurrence table the database keeps (graph.py):
        an index range, where aggregating a hub's links took hundreds of milliseconds per
        entity of a page. Two correlated subqueries, so a page costs one query."""
        from .graph import memory_count, relationship_count

        return self.annotate(memory_count=memory_count(),
                             relationship_count=relationship_count())

    def named(self, name: str):
        """Entities whose name has the key of ``name`` (any spelling, any type)."""
        return self.filter(key=entity_key(name))

    def by_ref(self, ref: str):
        """Entities whose UUID is ``ref``, or whose name has its key."""
        if "\x00" in ref:
            return self.none()
        try:
            return self.filter(Q(pk=uuid.UUID(ref)) | Q(key=entity_key(ref)))
        except ValueError:
            return self.named(ref)


class Entity(SoftDeleteModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="entities"
    )
    name = models.CharField(max_length=255, help_text="The display name, as first given")
    key = models.CharField(max_length=255, db_index=True, editable=False,
                           help_text="entity_key(name): one key for the spellings of a name")
    entity_type = models.CharField(max_length=32, choices=ENTITY_TYPE_CHOICES)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EntityQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "entities"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "key", "entity_type"],
                condition=Q(deleted_at__isnull=True),
                name="entity_unique_live_key_per_account",
            ),
            models.CheckConstraint(condition=Q(entity_type__in=ENTITY_TYPES),
                                   name="entity_type_valid"),
        ]
        indexes = [models.Index(fields=["account", "created_at"], name="entity_account_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.entity_type})"

    def save(self, *args, **kwargs):
        self.key = entity_key(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "key"}
        super().save(*args, **kwargs)


class LinkSource(models.TextChoices):
    MANUAL = "manual"
    EXTRACTED = "extracted"


class EntityLink(models.Model):
    """An entity mentioned in a memory: one per (entity, memory)."""

    id = models.BigAutoField(primary_key=True)
    # Denormalised (the entity's and the memory's account): graph queries filter on it.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="entity_links"
    )
    # Both looked up through the indexes below (the unique pair leads with entity).
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="links",
                               db_index=False)
    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="entity_links",
                               db_index=False)
    relationship = models.CharField(max_length=64, default="mentioned_in")
    relevance_score = models.FloatField(default=1.0)
    source = models.CharField(max_length=16, choices=LinkSource.choices,
                              default=LinkSource.MANUAL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-relevance_score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "memory"],
                                    name="entity_link_unique_per_memory"),
            models.CheckConstraint(
                condition=Q(relevance_score__gte=0.0, relevance_score__lte=1.0),
                name="entity_link_relevance_between_0_and_1",
            ),
            models.CheckConstraint(condition=Q(source__in=LinkSource.values),
                                   name="entity_link_source_valid"),
        ]
        indexes = [
            models.Index(fields=["account", "entity"], name="entity_link_account_entity"),
            models.Index(fields=["memory"], name="entity_link_memory"),
        ]

    def __str__(self) -> str:
        return f"{self.entity_id} {self.relationship} {self.memory_id}"


from .models_byok import ExtractionKey  # noqa: E402, F401  (registered with the app)
from .models_extraction import MemoryExtraction  # noqa: E402, F401  (registered with the app)
