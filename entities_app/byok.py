"""Services of an account's own extraction keys (models_byok.py): add, activate (one at a
time), deactivate all, delete, the settings view, and the extractor an account's active key
gives the pipeline."""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from memoryrelay_site.errors import Conflict, Invalid, NotFound
from memoryrelay_site.outbound import outbound_refusal
from memoryrelay_site.secrets import (
    SecretUnreadable,
    secret_decrypt,
    secret_encrypt,
    secret_mask,
    secret_reencrypted,
)

from .models_byok import DEFAULT_BASE_URLS, ExtractionKey, Provider

logger = logging.getLogger("memoryrelay.entities")

API_KEY_MAX = 4096


def _enabled() -> None:
    if not settings.MEMORYRELAY_BYOK_ENABLED:
        raise Invalid("Accounts' own extraction keys are disabled on this server",
                      field="provider")


def byok_key_create(*, account, provider: str, api_key: str, model: str,
                    label: str | None = None, base_url: str | None = None) -> ExtractionKey:
    """Stores the key encrypted; it becomes the active one when the account has none."""
    _enabled()
    if provider not in Provider.values:
        raise Invalid(f"provider must be one of {', '.join(Provider.values)}", field="provider")
    if not api_key.strip() or len(api_key) > API_KEY_MAX:
        raise Invalid(f"api_key must be 1-{API_KEY_MAX} characters", field="api_key")
    if not api_key.strip().isprintable():  # it is sent in a header: no CR, LF or the like
        raise Invalid("api_key must not hold control characters", field="api_key")
    base_url = (base_url or "").strip()
    url = base_url or DEFAULT_BASE_URLS.get(provider, "")
    if not url:
        raise Invalid(f"base_url is required for the provider {provider!r}", field="base_url")
    refusal = outbound_refusal(url, name="base_url",
                               allow_local=settings.MEMORYRELAY_BYOK_ALLOW_LOCAL)
    if refusal and not base_url:
        refusal = (f"the {provider} default ({url}) is a local address this server may not "
                   "call (MEMORYRELAY_BYOK_ALLOW_LOCAL); give a base_url")
    if refusal:
        raise Invalid(refusal, field="base_url")
    if urlsplit(url).query or urlsplit(url).fragment:  # the chat path is added to it
        raise Invalid("base_url must not hold a query or a fragment", field="base_url")
    if "@" in urlsplit(url).netloc:  # stored, shown and logged in the clear: the key is apart
        raise Invalid("base_url must not hold a user name or password (give the key as "
                      "api_key)", field="base_url")
    fields = dict(account=account, provider=provider, model=model.strip(), label=label or "",
                  base_url=base_url, encrypted_key=secret_encrypt(api_key.strip()),
                  masked_key=secret_mask(api_key.strip()))
    has_active = ExtractionKey.objects.filter(account=account, is_active=True).exists()
    if not has_active:
        try:
            with transaction.atomic():
                return ExtractionKey.objects.create(**fields, is_active=True)
        except IntegrityError:
            pass  # a concurrent first key became the active one (one active per account)
    return ExtractionKey.objects.create(**fields, is_active=False)


def byok_key_get(*, account, key_id) -> ExtractionKey:
    key = ExtractionKey.objects.filter(account=account, pk=key_id).first()
    if key is None:
        raise NotFound("Extraction key not found")
    return key


def byok_key_activate(*, account, key_id) -> ExtractionKey:
    """Makes the key the account's active one and every other inactive, in one transaction
    holding all the account's keys (two activations take turns; the partial unique index
    keeps at most one active whatever happens)."""
    try:
        with transaction.atomic():
            keys = list(ExtractionKey.objects.select_for_update()
                        .filter(account=account).order_by("pk"))
            chosen = next((k for k in keys if str(k.pk) == str(key_id)), None)
            if chosen is None:
                raise NotFound("Extraction key not found")
            ExtractionKey.objects.filter(account=account, is_active=True).exclude(
                pk=chosen.pk).update(is_active=False, updated_at=timezone.now())
            if not chosen.is_active:
                chosen.is_active = True
                chosen.save(update_fields=["is_active", "updated_at"])
            return chosen
    except IntegrityError:
        raise Conflict("Another key was activated at the same time; try again",
                       field="id") from None


def byok_deactivate_all(*, account) -> int:
    return ExtractionKey.objects.filter(account=account, is_active=True).update(
        is_active=False, updated_at=timezone.now())


def byok_key_delete(*, account, key_id) -> datetime:
    """Deletes the key for good (a secret is not kept for a restore)."""
    deleted, _ = ExtractionKey.objects.filter(account=account, pk=key_id).delete()
    if not deleted:
        raise NotFound("Extraction key not found")
    return timezone.now()


def byok_settings(*, account) -> dict:
    keys = list(ExtractionKey.objects.filter(account=account))
    active = next((k for k in keys if k.is_active), None)
    return {
        "tier": "self_hosted",
        "extractor": "byok" if active else settings.MEMORYRELAY_ENTITY_EXTRACTOR,
        "byok_enabled_globally": bool(settings.MEMORYRELAY_BYOK_ENABLED),
        "byok_configured": bool(keys),
        "byok_active": active is not None,
        "masked_api_key": active.masked_key if active else None,
        "preferred_model": active.model if active else settings.MEMORYRELAY_ENTITY_EXTRACTOR,
        "base_url": active.endpoint_url if active else "",
        "last_validated_at": active.last_validated_at if active else None,
        "plan_limits": {},
        "keys": keys,
    }


def active_key(*, account) -> ExtractionKey | None:
    if not settings.MEMORYRELAY_BYOK_ENABLED:
        return None
    return ExtractionKey.objects.filter(account=account, is_active=True).first()


def _secret_of(key: ExtractionKey) -> str:
    """The key's secret. One stored under the fixed key of earlier releases after the
    migration that moved those ran (by a process of an earlier release still serving
    during an upgrade, or another machine not yet upgraded) is encrypted again with this
    install's key when first used, rather than left unreadable for good."""
    try:
        return secret_decrypt(key.encrypted_key)
    except SecretUnreadable:
        again = secret_reencrypted(key.encrypted_key)
        if again is None:
            raise
        ExtractionKey.objects.filter(pk=key.pk, encrypted_key=key.encrypted_key).update(
            encrypted_key=again)
        return secret_decrypt(again)


def account_extractor(*, account_id, fallback):
    """The LLM extractor of the account's active key (``fallback`` answering when it
    fails), or None: no active key, the feature off, the key unreadable, or its URL refused
    by the rules of the URL alone (the addresses a host name gives are checked on each
    request, and a refusal there falls back to the rules for that memory)."""
    if not settings.MEMORYRELAY_BYOK_ENABLED:
        return None
    key = ExtractionKey.objects.filter(account_id=account_id, is_active=True).first()
    if key is None:
        return None
    refusal = outbound_refusal(key.endpoint_url, name="base_url",
                               allow_local=settings.MEMORYRELAY_BYOK_ALLOW_LOCAL)
    try:
        if refusal:
            raise SecretUnreadable(refusal)
        api_key = _secret_of(key)
    except SecretUnreadable as exc:
        logger.warning("extraction key %s of account %s not used: %s", key.pk, account_id,
                       exc)
        return None
    from .extraction.llm import LLMExtractor

    ExtractionKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return LLMExtractor(url=key.endpoint_url, model=key.model, api_key=api_key,
                        timeout=settings.MEMORYRELAY_BYOK_TIMEOUT, fallback=fallback,
                        account_url=True, allow_local=settings.MEMORYRELAY_BYOK_ALLOW_LOCAL)
