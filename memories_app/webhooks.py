"""Webhooks of asynchronous writes: when a memory written through POST /v2/memories with a
``webhook_url`` ends ``ready`` or ``failed``, a task POSTs JSON to that URL:

    {"event": "memory.ready", "id": "…", "status": "ready", "created_at": 1710672000,
     "updated_at": 1710672001}                      (and "error" when failed)

signed with the account's webhook secret (``manage.py webhook_secret --user NAME`` prints
it): header ``X-MemoryRelay-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
and ``X-MemoryRelay-Timestamp: <unix seconds>``. A delivery that fails (no answer within
MEMORYRELAY_WEBHOOK_TIMEOUT seconds, or not a 2xx) is retried with the queue's backoff up to
MEMORYRELAY_TASK_MAX_ATTEMPTS times. Each event is a row (``WebhookDelivery``) written with
the outcome it reports, so a worker killed mid-delivery or a task lost on the way never
loses it: the sweep sends it again (at least once; a receiver may see an event twice).

Only ``https`` URLs are taken, and never one whose host is or resolves to a loopback,
private, link-local or otherwise non-public address, unless MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL
is set (for local setups and tests: it also allows ``http``)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tasks import task

from memoryrelay_site.errors import Invalid
from memoryrelay_site.outbound import OutboundRefused, outbound_post, outbound_refusal
from memoryrelay_site.tasks import log_not_queued, register_sweeper, retry_delay, task_enqueue

from .models import DeliveryStatus, Memory, WebhookDelivery, WriteStatus

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
        _check_url(url)
    except WebhookRefused as exc:
        raise Invalid(str(exc), field="webhook_url") from None


def _allow_local() -> bool:
    return bool(settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL)


def _check_url(url: str) -> None:
    refusal = outbound_refusal(url, name="webhook_url", allow_local=_allow_local())
    if refusal:
        raise WebhookRefused(refusal)


def webhook_payload(memory: Memory, event: str) -> dict:
    status = event.removeprefix("memory.")
    body = {"event": event, "id": str(memory.pk), "status": status,
            "created_at": int(memory.created_at.timestamp()),
            "updated_at": int(memory.updated_at.timestamp())}
    if status == WriteStatus.FAILED:
        body["error"] = memory.status_error
    if memory.duplicate_of is not None:
        body["duplicate_of"] = str(memory.duplicate_of)
    return body


def webhook_queue(memory: Memory, status: str) -> WebhookDelivery | None:
    """Records the event of the memory's outcome (``ready`` or ``failed``) for its
    webhook_url, if it has one. Call it in the transaction that writes the outcome, and
    :func:`webhook_send` after the commit: the event is then never lost, even when the
    process dies between the two (the sweep sends it)."""
    if not memory.webhook_url or status not in (WriteStatus.READY, WriteStatus.FAILED):
        return None
    return WebhookDelivery.objects.create(memory_id=memory.pk, event=f"memory.{status}")


def webhook_send(delivery: WebhookDelivery | None, *, delay: float = 0) -> None:
    """Queues the task that sends ``delivery``. A queue that cannot be reached leaves it to
    the sweep (the delivery row is the record)."""
    if delivery is None:
        return
    try:
        task_enqueue(webhook_deliver, str(delivery.pk), delay=delay)
    except Exception as exc:  # noqa: BLE001 - the sweep hands it out after the lease
        log_not_queued(f"webhook delivery {delivery.pk}", exc, "the sweep will send it")


@task()
def webhook_deliver(delivery_id: str, attempt: int = 1) -> str:
    """Sends one delivery (``attempt`` is no longer read: the row counts them). Before
    deliveries had rows this task took a memory's id: such a task, queued by an older
    release, records its event first."""
    claimed_at = timezone.now()
    if not _claim(delivery_id, claimed_at):
        if WebhookDelivery.objects.filter(pk=delivery_id).exists():
            return "skipped"  # sent, or being sent, by another delivery of this task
        with transaction.atomic():  # an older release's task: its argument is the memory's
            legacy = Memory.objects.filter(pk=delivery_id).first()
            delivery = webhook_queue(legacy, legacy.status) if legacy is not None else None
        if delivery is None or not _claim(delivery.pk, claimed_at):
            return "skipped"
        delivery_id = delivery.pk
    delivery = WebhookDelivery.objects.select_related("memory__account").get(pk=delivery_id)
    ours = WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING,
                                          updated_at=claimed_at)
    try:
        _post(delivery.memory, delivery.event)
    except WebhookRefused as exc:
        logger.warning("webhook of memory %s refused: %s", delivery.memory_id, exc)
        ours.update(status=DeliveryStatus.REFUSED, last_error=str(exc)[:2000],
                    updated_at=timezone.now())
        return "refused"
    except Exception as exc:  # noqa: BLE001 - every other failure is a failed attempt
        if not isinstance(exc, (OSError, http.client.HTTPException, DeliveryFailed)):
            logger.exception("webhook of memory %s: unexpected failure", delivery.memory_id)
        error = (str(exc) or type(exc).__name__)[:2000]
        if delivery.attempts >= settings.MEMORYRELAY_TASK_MAX_ATTEMPTS:
            logger.warning("webhook of memory %s failed for good: %s", delivery.memory_id, exc)
            ours.update(status=DeliveryStatus.FAILED, last_error=error,
                        updated_at=timezone.now())
            return "failed"
        delay = retry_delay(delivery.attempts)
        now = timezone.now()
        if ours.update(status=DeliveryStatus.PENDING, last_error=error, updated_at=now,
                       next_attempt_at=now + timedelta(seconds=delay)):
            webhook_send(delivery, delay=delay)
        return "retrying"
    ours.update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(),
                updated_at=timezone.now(), last_error="")
    return "delivered"


def _claim(delivery_id, at) -> bool:
    """Takes the delivery while it waits to be sent: one claim of several wins."""
    return bool(WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
                .update(status=DeliveryStatus.SENDING, attempts=F("attempts") + 1,
                        updated_at=at))


class DeliveryFailed(Exception):
    """The receiver answered, but not 2xx."""


def _post(memory: Memory, event: str) -> None:
    """POSTs the memory's event, signed; raises on a refused URL (:class:`WebhookRefused`:
    its addresses are checked on the connection that sends it), no answer, a malformed
    answer or not 2xx. The whole exchange has MEMORYRELAY_WEBHOOK_TIMEOUT seconds, not each
    read (``outbound_post``). A 2xx whose status came in time is delivered, however its
    body ends. A redirect is not followed (it could lead to an address the check refuses)."""
    body = json.dumps(webhook_payload(memory, event)).encode()
    timestamp = int(time.time())
    try:
        answer = outbound_post(memory.webhook_url, body=body, headers={
            "Content-Type": "application/json",
            "User-Agent": "memoryrelay-server-webhook",
            "X-MemoryRelay-Timestamp": str(timestamp),
            "X-MemoryRelay-Signature": webhook_sign(
                secret=webhook_secret(account=memory.account), timestamp=timestamp, body=body),
        }, timeout=settings.MEMORYRELAY_WEBHOOK_TIMEOUT, name="webhook_url",
            allow_local=_allow_local(), read_limit=1024)
    except OutboundRefused as exc:
        raise WebhookRefused(str(exc)) from None
    if not 200 <= answer.status < 300:
        raise DeliveryFailed(f"the receiver answered {answer.status} {answer.reason}")


def webhook_deliveries_sweep(cutoff: datetime) -> int:
    """Deliveries claimed before ``cutoff`` and never settled (their worker died), or due
    before it and never claimed (their task was lost), are queued again: each taken by one
    sweeper through a conditional update. A claim is never judged dead while a send could
    still be running (twice the webhook timeout), and one whose attempts are spent (its
    worker died on each) ends ``failed``."""
    sending_cutoff = min(cutoff, timezone.now() - timedelta(
        seconds=2 * settings.MEMORYRELAY_WEBHOOK_TIMEOUT + 10))
    stale = (WebhookDelivery.objects
             .filter(Q(status=DeliveryStatus.SENDING, updated_at__lt=sending_cutoff)
                     | Q(status=DeliveryStatus.PENDING, next_attempt_at__lt=cutoff))
             .values_list("pk", "status", "updated_at", "attempts")[:1000])
    handed = 0
    for pk, status, updated_at, attempts in list(stale):
        now = timezone.now()
        still = WebhookDelivery.objects.filter(pk=pk, status=status, updated_at=updated_at)
        if attempts >= settings.MEMORYRELAY_TASK_MAX_ATTEMPTS:
            still.update(status=DeliveryStatus.FAILED, updated_at=now,
                         last_error="no attempt finished (its worker stopped each time)")
        elif still.update(status=DeliveryStatus.PENDING, updated_at=now, next_attempt_at=now):
            webhook_send(WebhookDelivery(pk=pk))
            handed += 1
    return handed


register_sweeper(webhook_deliveries_sweep)
