"""Webhooks of asynchronous writes: when a memory written through POST /v2/memories with a
``webhook_url`` ends ``ready`` or ``failed``, a task POSTs JSON to that URL:

    {"event": "memory.ready", "id": "…", "status": "ready", "created_at": 1710672000,
     "updated_at": 1710672001}                      (and "error" when failed)

signed with the account's webhook secret (``manage.py webhook_secret --user NAME`` prints
it): header ``X-MemoryRelay-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
and ``X-MemoryRelay-Timestamp: <unix seconds>``. A delivery that fails (no answer within
MEMORYRELAY_WEBHOOK_TIMEOUT seconds, or not a 2xx) is retried with the queue's backoff up to
MEMORYRELAY_TASK_MAX_ATTEMPTS times.

Only ``https`` URLs are taken, and never one whose host is or resolves to a loopback,
private, link-local or otherwise non-public address, unless MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL
is set (for local setups and tests: it also allows ``http``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request

from django.conf import settings
from django_tasks import task

from memoryrelay_site.errors import Invalid
from memoryrelay_site.outbound import outbound_refusal
from memoryrelay_site.tasks import retry_delay, task_enqueue

from .models import Memory, WriteStatus

logger = logging.getLogger("memoryrelay.webhooks")


class WebhookRefused(Exception):
    """The URL may not be called (scheme or address)."""


def webhook_secret(*, account) -> str:
    """The account's signing secret: derived from the server's SECRET_KEY, so nothing is
    stored and every process computes the same one."""
    return hmac.new(settings.SECRET_KEY.encode(), f"webhook:{account.pk}".encode(),
                    hashlib.sha256).hexdigest()


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_url_check(url: str) -> None:
    """Refuses (Invalid on ``webhook_url``) a URL that is not https or names a non-public
    address literally; host names are resolved and checked again at delivery."""
    try:
        _check_url(url, resolve=False)
    except WebhookRefused as exc:
        raise Invalid(str(exc), field="webhook_url") from None


def _allow_local() -> bool:
    return bool(settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL)


def _check_url(url: str, *, resolve: bool) -> None:
    refusal = outbound_refusal(url, name="webhook_url", allow_local=_allow_local(),
                               resolve=resolve)
    if refusal:
        raise WebhookRefused(refusal)


def webhook_payload(memory: Memory) -> dict:
    body = {"event": f"memory.{memory.status}", "id": str(memory.pk), "status": memory.status,
            "created_at": int(memory.created_at.timestamp()),
            "updated_at": int(memory.updated_at.timestamp())}
    if memory.status == WriteStatus.FAILED:
        body["error"] = memory.status_error
    if memory.duplicate_of is not None:
        body["duplicate_of"] = str(memory.duplicate_of)
    return body


@task()
def webhook_deliver(memory_id: str, attempt: int = 1) -> str:
    memory = (Memory.objects.without_vectors().select_related("account")
              .filter(pk=memory_id).first())
    if memory is None or not memory.webhook_url or memory.status not in (
            WriteStatus.READY, WriteStatus.FAILED):
        return "skipped"
    body = json.dumps(webhook_payload(memory)).encode()
    timestamp = int(time.time())
    try:
        _check_url(memory.webhook_url, resolve=True)
        request = urllib.request.Request(memory.webhook_url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "User-Agent": "memoryrelay-server-webhook",
            "X-MemoryRelay-Timestamp": str(timestamp),
            "X-MemoryRelay-Signature": webhook_sign(
                secret=webhook_secret(account=memory.account), timestamp=timestamp, body=body),
        })
        opener = urllib.request.build_opener(_NoRedirect)
        with opener.open(request, timeout=settings.MEMORYRELAY_WEBHOOK_TIMEOUT) as response:
            response.read(1024)
        return "delivered"
    except WebhookRefused as exc:
        logger.warning("webhook of memory %s refused: %s", memory_id, exc)
        return "refused"
    except (OSError, urllib.error.URLError, ValueError) as exc:
        if attempt >= settings.MEMORYRELAY_TASK_MAX_ATTEMPTS:
            logger.warning("webhook of memory %s failed for good: %s", memory_id, exc)
            return "failed"
        task_enqueue(webhook_deliver, memory_id, attempt + 1, delay=retry_delay(attempt))
        return "retrying"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed (it could lead to an address the check refuses)."""

    def redirect_request(self, *args, **kwargs):
        return None
