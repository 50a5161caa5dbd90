"""API key services: create, revoke, find, authenticate. Used by the API, admin and commands."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from . import db
from .errors import Conflict, Invalid, NotFound, ServiceError, Unauthorized
from .models import ApiKey, all_scopes
from .ratelimit import key_limit, per_minute
from .serializers import iso_z

KEY_PREFIX = "mem_prod_"
VISIBLE_CHARS = 12  # "mem_prod_" plus three random characters
LAST_USED_RESOLUTION = timedelta(minutes=1)
logger = logging.getLogger("memoryrelay.keys")


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def generate_raw_key() -> str:
    # 32 random bytes give 43 URL-safe characters.
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyExpired(ServiceError):
    """A real, unrevoked key past its ``expires_at``: a 401 that says so."""

    status = 401
    type = "unauthorized"


class AmbiguousApiKey(ServiceError):
    status = 409
    type = "conflict"


@transaction.atomic
def api_key_create(
    *, user, name: str = "", expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None, scopes: list[str] | None = None,
    rate_bucket=None,
) -> tuple[ApiKey, str]:
    """Create a key for ``user``; returns the row and the raw key, which is never stored.
    ``scopes``: what it may do (default: everything, as an operator's key)."""
    raw = generate_raw_key()
    key = ApiKey.objects.create(
        user=user, name=name, prefix=raw[:VISIBLE_CHARS], key_hash=hash_key(raw),
        expires_at=expires_at, rate_limit_per_minute=rate_limit_per_minute,
        scopes=list(scopes) if scopes is not None else all_scopes(), rate_bucket=rate_bucket,
    )
    return key, raw


def api_key_issue(*, parent: ApiKey, expires_at: datetime | None,
                  rate_limit_per_minute: int | None, **key_fields) -> tuple[ApiKey, str]:
    """A key made by the key ``parent`` of the same account (``POST /v1/keys``): no laxer
    than ``parent`` (it expires no later, its rate limit is no higher, and its requests
    count in ``parent``'s rate-limit window, ``rate_bucket``), and only while the
    account holds fewer than MEMORYRELAY_MAX_KEYS_PER_ACCOUNT unrevoked keys (its row
    locked, so concurrent creates queue and never pass the cap)."""
    if parent.expires_at is not None and (expires_at is None or expires_at > parent.expires_at):
        raise Invalid(f"the new key may expire no later than this one "
                      f"({parent.expires_at:%Y-%m-%dT%H:%M:%SZ}): ask for fewer days",
                      field="expires_days")
    ceiling, wanted = key_limit(parent), per_minute(rate_limit_per_minute)
    if ceiling and (wanted == 0 or wanted > ceiling):
        raise Invalid(f"the new key's rate limit may be no higher than this one's "
                      f"({ceiling} per minute)", field="rate_limit_per_minute")
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=parent.user_id).first()
        # The parent's row too: a revoke of it waits for this create, or this create sees
        # it revoked (then no key is made by a key that no longer works).
        if not ApiKey.objects.select_for_update().filter(
                pk=parent.pk, revoked_at__isnull=True).values_list("pk", flat=True).first():
            raise Unauthorized("Invalid or revoked API key")
        cap = settings.MEMORYRELAY_MAX_KEYS_PER_ACCOUNT
        if ApiKey.objects.active().filter(user_id=parent.user_id).count() >= cap:
            raise Conflict(f"the account holds {cap} unrevoked keys, the most it may "
                           "(MEMORYRELAY_MAX_KEYS_PER_ACCOUNT): revoke one first")
        # A limited key's keys share its window; an unlimited key (an operator's) has no
        # window to multiply, and the keys it hands out keep their own.
        bucket = (parent.rate_bucket or parent.pk) if key_limit(parent) else None
        return api_key_create(user=parent.user, expires_at=expires_at,
                              rate_limit_per_minute=rate_limit_per_minute,
                              rate_bucket=bucket, **key_fields)


@transaction.atomic
def account_key_create(*, username: str, **key_fields) -> tuple[ApiKey, str]:
    """Create the account (a Django user) if needed, then a key for it (``api_key_create``'s
    keyword arguments)."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    return api_key_create(user=user, **key_fields)


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke ``key`` (idempotent: a revoked key keeps its first ``revoked_at``). Its time
    is read once the row is locked: after any key it was making (:func:`api_key_issue`)."""
    revoked_at = ApiKey.objects.select_for_update().values_list(
        "revoked_at", flat=True).get(pk=key.pk)
    if revoked_at is None:
        revoked_at = timezone.now()
        ApiKey.objects.filter(pk=key.pk).update(revoked_at=revoked_at)
    key.revoked_at = revoked_at
    return key


def api_key_find(*, ref: str) -> ApiKey:
    """The one key that ``ref`` names: its id, the whole raw key, or its whole visible prefix
    (``mem_prod_Ab3``; less, "mem_prod_" or "m", named every key of a one-key install).
    Unrevoked keys are preferred, so an old revoked key never makes a live one ambiguous.
    Unknown is :class:`NotFound`; several is :class:`AmbiguousApiKey`."""
    ref = ref.strip()
    if not ref:
        raise NotFound("No API key matches an empty prefix")
    if _is_uuid(ref):
        candidates = ApiKey.objects.filter(pk=ref)
    elif len(ref) > VISIBLE_CHARS:
        candidates = ApiKey.objects.filter(key_hash=hash_key(ref))
    elif len(ref) < VISIBLE_CHARS:
        raise NotFound(f"No API key is named by {ref!r}: name one by its whole visible prefix "
                       f"({VISIBLE_CHARS} characters, as {KEY_PREFIX}Ab3), its id, or the "
                       "whole key")
    else:
        candidates = ApiKey.objects.filter(prefix=ref)
    candidates = candidates.select_related("user").order_by("-created_at")
    matches = list(candidates.active()[:20]) or list(candidates[:20])
    if not matches and len(ref) > VISIBLE_CHARS and not _is_uuid(ref):
        raise NotFound(f"No API key matches {ref!r}: it is not a whole key, and only the first "
                       f"{VISIBLE_CHARS} characters of a key are kept (name it by "
                       f"{ref[:VISIBLE_CHARS]!r}, its id, or the whole key)")
    if not matches:
        raise NotFound(f"No API key matches {ref!r}")
    if len(matches) > 1:
        listed = ", ".join(f"{k.pk} ({k.prefix}…, {k.user})" for k in matches)
        raise AmbiguousApiKey(f"{len(matches)} keys match {ref!r}: {listed}")
    return matches[0]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The unrevoked key matching ``raw_key`` with its active user, or None; a matching key
    past its expiry raises :class:`ApiKeyExpired`."""
    if not raw_key.startswith("mem_") or len(raw_key) > 200:
        return None
    key = (
        ApiKey.objects.active()
        .select_related("user")
        .filter(key_hash=hash_key(raw_key), user__is_active=True)
        .first()
    )
    if key is None:
        return None
    if key.is_expired():
        raise ApiKeyExpired(f"API key expired at {iso_z(key.expires_at)}; create a new key")
    _touch(key)
    return key


def _touch(key: ApiKey) -> None:
    """Records the key's use, to the minute. Bookkeeping only: while the database takes no
    writes (read-only, or another writer holding SQLite's lock) the request is served all
    the same, without waiting, and this process tries again for the key a minute later."""
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at <= LAST_USED_RESOLUTION:
        return
    refused = _touch_refused.get(key.pk)
    if refused is not None and time.monotonic() - refused < LAST_USED_RESOLUTION.seconds:
        return
    try:
        with db.without_waiting():
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    except DatabaseError as exc:
        reason = db.unavailable_reason(exc)
        if reason is None or (connection.in_atomic_block and connection.vendor != "sqlite"):
            raise
        if len(_touch_refused) >= 10_000:
            _touch_refused.clear()
        _touch_refused[key.pk] = time.monotonic()
        logger.info("key %s used; its last use not recorded: database %s (%s)",
                    key.prefix, reason, db.summary(exc))
        return
    _touch_refused.pop(key.pk, None)
    key.last_used_at = now


# Keys whose last use this process could not record, with when (time.monotonic()).
_touch_refused: dict = {}
