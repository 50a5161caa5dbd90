"""An account's own LLM provider keys for entity extraction ("bring your own key", the
SDK 0.4.0 ``extraction`` resource). The key is stored encrypted (memoryrelay_site.secrets)
and never returned: answers show ``masked_key``. At most one key of an account is active
(a partial unique index); while one is, that account's memories are extracted by its LLM,
with the rules as the fallback."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Provider(models.TextChoices):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GOOGLE = "google"
    AZURE = "azure"
    OLLAMA = "ollama"
    CUSTOM = "custom"


# Each provider's OpenAI-compatible chat endpoint, when the key does not name its own.
DEFAULT_BASE_URLS = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.ANTHROPIC: "https://api.anthropic.com/v1",
    Provider.GOOGLE: "https://generativelanguage.googleapis.com/v1beta/openai",
    Provider.OLLAMA: "http://127.0.0.1:11434/v1",
}


class ExtractionKey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="extraction_keys")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    label = models.CharField(max_length=255, blank=True, default="")
    model = models.CharField(max_length=255)
    base_url = models.URLField(max_length=2000, blank=True, default="")
    encrypted_key = models.TextField(editable=False)
    masked_key = models.CharField(max_length=32, editable=False)
    is_active = models.BooleanField(default=False)
    last_validated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=Q(is_active=True),
                                    name="extraction_key_one_active_per_account"),
            models.CheckConstraint(condition=Q(provider__in=Provider.values),
                                   name="extraction_key_provider_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.model} {self.masked_key}"

    @property
    def endpoint_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider, "")
