"""API key services: create, revoke, authenticate. Used by the API, admin and commands."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from .models import ApiKey

KEY_PREFIX = "mem_prod_"
VISIBLE_CHARS = 12  # "mem_prod_" plus three random characters
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def generate_raw_key() -> str:
    # 32 random bytes give 43 URL-safe characters.
    return KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def api_key_create(*, user, name: str = "") -> tuple[ApiKey, str]:
    """Create a key for ``user``; returns the row and the raw key, which is never stored."""
    raw = generate_raw_key()
    key = ApiKey.objects.create(
        user=user, name=name, prefix=raw[:VISIBLE_CHARS], key_hash=hash_key(raw)
    )
    return key, raw


@transaction.atomic
def account_key_create(*, username: str, name: str = "") -> tuple[ApiKey, str]:
    """Create the account (a Django user) if needed, then a key for it."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    return api_key_create(user=user, name=name)


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key`` with its active user, or None."""
    if not raw_key.startswith("mem_") or len(raw_key) > 200:
        return None
    key = (
        ApiKey.objects.active()
        .select_related("user")
        .filter(key_hash=hash_key(raw_key), user__is_active=True)
        .first()
    )
    if key is not None:
        _touch(key)
    return key


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
