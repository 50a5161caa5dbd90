"""MemoryExtraction: where a memory's entity extraction stands (one row per memory, made
when extraction is first asked for; a memory without one was never processed)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from memories_app.models import Memory


class ExtractionStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


UNFINISHED_EXTRACTIONS = (ExtractionStatus.PENDING, ExtractionStatus.PROCESSING)


class MemoryExtraction(models.Model):
    memory = models.OneToOneField(Memory, on_delete=models.CASCADE, related_name="extraction")
    status = models.CharField(max_length=16, choices=ExtractionStatus.choices,
                              default=ExtractionStatus.PENDING)
    method = models.CharField(max_length=32, blank=True, default="")
    model = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    entity_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    # A fresh tag at every request: a run finishes only the request it claimed, so a
    # content update during a run leaves the row pending for the run queued after it.
    generation = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ExtractionStatus.values),
                                   name="memory_extraction_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "updated_at"],
                                name="memory_extraction_status")]

    def __str__(self) -> str:
        return f"{self.memory_id}: {self.status}"
