"""Plumbing models: API keys, task workers' heartbeats, and the soft-delete base every
product model shares."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class SoftDeleteQuerySet(models.QuerySet):
    def live(self):
        return self.filter(deleted_at__isnull=True)

    def deleted(self):
        return self.filter(deleted_at__isnull=False)

    def for_account(self, account):
        return self.filter(account=account)


class SoftDeleteModel(models.Model):
    """A row that is hidden, not removed, when deleted; a purge removes it after retention."""

    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = SoftDeleteQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


# What a key may do (``ApiKey.scopes``): read (GET, and searches sent as POST), write
# (create and update), delete, and admin (everything, API keys and account settings too).
SCOPES = ("read", "write", "delete", "admin")


def all_scopes() -> list[str]:
    return list(SCOPES)


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        """Not revoked (an expired key is still "active" here: it answers "expired")."""
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A revocable API key of an account. Only a SHA-256 hash of the key is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=255, blank=True, default="")
    prefix = models.CharField(max_length=20, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this moment the key is refused (401, expired). "
        "Empty: never expires.")
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="rate limit per minute",
        help_text="Requests per minute for this key (a batch counts its items). Empty: the "
        "server default (MEMORYRELAY_RATE_LIMIT_PER_MINUTE); 0: unlimited.")

    scopes = models.JSONField(
        default=all_scopes, help_text="What the key may do: a list of read, write, delete and "
        "admin (admin: everything, API keys and account settings too).")
    rate_bucket = models.UUIDField(
        null=True, blank=True, editable=False,
        help_text="The key whose rate-limit window this one's requests count in: a key made "
        "through /v1/keys counts in its maker's (and so on up), so minting keys multiplies "
        "no limit. Empty: its own.")

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired()

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class TaskWorker(models.Model):
    """A running ``manage.py task_worker``: it writes ``last_seen_at`` every
    ``HEARTBEAT_SECONDS`` and removes its row when it stops, so health can tell work that
    waits for a worker from work no worker will take (``memoryrelay_site.tasks``)."""

    HEARTBEAT_SECONDS = 10

    id = models.CharField(max_length=64, primary_key=True)
    backend = models.CharField(max_length=16)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.id
