"""Webhooks of asynchronous writes (memories_app.webhooks): signed JSON POSTs when a memory
is ready or failed, retried with backoff, never to local addresses unless allowed."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from memories_app import embeddings, tasks
from memories_app.models import Memory, WebhookDelivery
from memories_app.webhooks import (
    webhook_deliver,
    webhook_deliveries_sweep,
    webhook_secret,
)
from memoryrelay_site.tasks import task_enqueue, tasks_sweep
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


class Receiver(BaseHTTPRequestHandler):
    received: list = []
    paths: list = []
    failures = 0
    slow_first = 0.0

    def do_POST(self):  # noqa: N802
        type(self).paths.append(self.path)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers, body))  # names in any case
        if len(type(self).received) == 1 and type(self).slow_first:
            time.sleep(type(self).slow_first)
        status = 500 if len(type(self).received) <= type(self).failures else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = True
    settings.MEMORYRELAY_TASK_BACKOFF = 0
    Receiver.received, Receiver.failures, Receiver.slow_first = [], 0, 0.0
    Receiver.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def post(client, **body):
    return client.post("/v2/memories", {"agent_id": "a", **body}, format="json")


def test_a_ready_memory_posts_a_signed_webhook(client, account, receiver, task_queue):
    memory_id = post(client, content="tell me when ready", webhook_url=receiver).json()["id"]
    task_queue.run()
    assert len(Receiver.received) == 1
    headers, body = Receiver.received[0]
    payload = json.loads(body)
    assert payload["event"] == "memory.ready" and payload["id"] == memory_id
    assert payload["status"] == "ready" and "error" not in payload
    timestamp = headers["X-MemoryRelay-Timestamp"]
    expected = hmac.new(webhook_secret(account=account).encode(),
                        f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-MemoryRelay-Signature"] == f"sha256={expected}"
    assert headers["Content-Type"] == "application/json"


def test_a_failed_memory_posts_its_error(client, receiver, task_queue, settings, monkeypatch):
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 1
    provider = embeddings.get_provider()

    def down(self, texts):
        raise embeddings.EmbeddingError("provider down (test)")

    monkeypatch.setattr(type(provider), "embed", down)
    monkeypatch.setattr(type(provider), "available", True, raising=False)
    post(client, content="never embeds", webhook_url=receiver)
    task_queue.run()
    payload = json.loads(Receiver.received[0][1])
    assert (payload["event"], payload["error"]) == ("memory.failed", "provider down (test)")


def test_a_failing_receiver_is_retried_until_it_answers(client, receiver, task_queue):
    Receiver.failures = 2
    post(client, content="retried webhook", webhook_url=receiver)
    task_queue.run()
    assert len(Receiver.received) == 3
    assert len({body for _, body in Receiver.received}) == 1  # the same event each time


def test_a_receiver_slower_than_the_timeout_gets_the_event_again(client, receiver,
                                                                  task_queue, settings):
    settings.MEMORYRELAY_WEBHOOK_TIMEOUT = 0.3
    Receiver.slow_first = 5.0
    started = time.monotonic()
    post(client, content="slow receiver", webhook_url=receiver)
    task_queue.run()
    assert len(Receiver.received) == 2
    # The first call was cut short, not waited on (the queue's own polling takes a second
    # or two on a busy machine).
    assert time.monotonic() - started < 4.5


def test_a_receiver_that_keeps_failing_is_given_up_after_the_attempts(client, receiver,
                                                                      task_queue, settings):
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 2
    Receiver.failures = 99
    memory_id = post(client, content="nobody listens", webhook_url=receiver).json()["id"]
    task_queue.run()
    assert len(Receiver.received) == 2
    assert Memory.objects.get(pk=memory_id).status == "ready"  # the write itself is done


# --- every event is recorded, and sent at least once -------------------------------------------


def test_each_event_is_recorded_with_how_its_delivery_went(client, receiver, task_queue):
    Receiver.failures = 1
    memory_id = post(client, content="recorded event", webhook_url=receiver).json()["id"]
    task_queue.run()
    delivery = WebhookDelivery.objects.get(memory_id=memory_id)
    assert (delivery.event, delivery.status, delivery.attempts) == (
        "memory.ready", "delivered", 2)
    assert delivery.delivered_at is not None and delivery.last_error == ""


def test_an_event_whose_task_was_never_queued_is_sent_by_the_sweep(client, receiver,
                                                                   task_queue, monkeypatch,
                                                                   settings):
    """The worker dies right after the write's outcome commits, before it queues the
    webhook's task: the event was written with the outcome, and the sweep sends it."""
    settings.MEMORYRELAY_AUTO_EXTRACT_ENTITIES = False  # the sweep's count: webhooks only
    monkeypatch.setattr(tasks, "webhook_send", lambda delivery, **kwargs: None)
    memory_id = post(client, content="died before queueing", webhook_url=receiver).json()["id"]
    task_queue.run()
    assert Memory.objects.get(pk=memory_id).status == "ready" and not Receiver.received
    assert tasks_sweep() == 0  # not before the lease
    assert tasks_sweep(lease_seconds=0) == 1
    task_queue.run()
    assert [json.loads(body)["id"] for _, body in Receiver.received] == [memory_id]
    assert WebhookDelivery.objects.get(memory_id=memory_id).status == "delivered"


def test_a_delivery_left_sending_by_a_killed_worker_is_sent_again_once(client, receiver,
                                                                        task_queue):
    memory_id = post(client, content="killed mid delivery").json()["id"]
    task_queue.run()
    Memory.objects.filter(pk=memory_id).update(webhook_url=receiver)
    long_ago = timezone.now() - timedelta(hours=1)
    WebhookDelivery.objects.create(memory_id=memory_id, event="memory.ready", status="sending",
                                   attempts=1, updated_at=long_ago, next_attempt_at=long_ago)
    cutoff = timezone.now() - timedelta(minutes=5)
    assert webhook_deliveries_sweep(cutoff) == 1
    assert webhook_deliveries_sweep(cutoff) == 0  # taken once, by one sweeper
    task_queue.run()
    assert len(Receiver.received) == 1
    delivery = WebhookDelivery.objects.get(memory_id=memory_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_a_retry_waiting_for_its_backoff_is_not_handed_out_early(client, receiver,
                                                                 task_queue):
    memory_id = post(client, content="backing off").json()["id"]
    task_queue.run()
    WebhookDelivery.objects.create(
        memory_id=memory_id, event="memory.ready", attempts=1,
        next_attempt_at=timezone.now() + timedelta(minutes=4))
    assert webhook_deliveries_sweep(timezone.now() - timedelta(minutes=5)) == 0


def test_a_task_queued_by_a_release_before_deliveries_had_rows_still_delivers(
        client, receiver, task_queue):
    memory_id = post(client, content="queued by the older release").json()["id"]
    task_queue.run()
    Memory.objects.filter(pk=memory_id).update(webhook_url=receiver)
    task_enqueue(webhook_deliver, memory_id)  # the older task's argument: the memory's id
    task_queue.run()
    assert json.loads(Receiver.received[0][1])["event"] == "memory.ready"
    assert WebhookDelivery.objects.get(memory_id=memory_id).status == "delivered"


def test_a_receiver_given_up_on_and_a_refused_url_are_recorded(client, receiver, task_queue,
                                                              settings):
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 2
    Receiver.failures = 99
    failing = post(client, content="nobody answers", webhook_url=receiver).json()["id"]
    task_queue.run()
    delivery = WebhookDelivery.objects.get(memory_id=failing)
    assert (delivery.status, delivery.attempts) == ("failed", 2) and "500" in delivery.last_error
    refused = post(client, content="refused later", webhook_url=receiver).json()["id"]
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = False  # the address is checked again on sending
    task_queue.run()
    assert WebhookDelivery.objects.get(memory_id=refused).status == "refused"


@pytest.fixture
def raw_receiver(settings, raw_http_server):
    """A receiver that answers each connection with ``raw_receiver.answer`` (bytes, then a
    pause of ``raw_receiver.pause`` seconds between the bytes of ``raw_receiver.trickle``)."""
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = True
    settings.MEMORYRELAY_TASK_BACKOFF = 0
    return raw_http_server


def test_a_malformed_answer_is_a_failed_attempt_and_ends_failed(client, raw_receiver,
                                                                 task_queue, settings):
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 3
    raw_receiver.answer = b"FOO BAR\r\n\r\n"
    memory_id = post(client, content="garbled", webhook_url=raw_receiver.url).json()["id"]
    task_queue.run()
    delivery = WebhookDelivery.objects.get(memory_id=memory_id)
    assert (delivery.status, delivery.attempts, raw_receiver.calls) == ("failed", 3, 3)
    assert "FOO BAR" in delivery.last_error


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_timeout(client, raw_receiver,
                                                                    task_queue, settings):
    """Each read comes in time, so only a deadline on the whole exchange ends it."""
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 2
    settings.MEMORYRELAY_WEBHOOK_TIMEOUT = 0.5
    raw_receiver.answer = b"HTTP/1.1 200 OK\r\n"  # then headers, a byte every 0.1 s
    raw_receiver.trickle, raw_receiver.pause = b"X-Slow: " + b"x" * 1000 + b"\r\n\r\n", 0.1
    started = time.monotonic()
    memory_id = post(client, content="trickled", webhook_url=raw_receiver.url).json()["id"]
    task_queue.run()
    assert time.monotonic() - started < 5  # two attempts of 0.5 s, not 2 x 100 s
    assert WebhookDelivery.objects.get(memory_id=memory_id).status == "failed"
    # An answer whose status came in time is delivered, however slowly its body follows.
    raw_receiver.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    raw_receiver.trickle = b"x" * 1000
    started = time.monotonic()
    memory_id = post(client, content="slow body", webhook_url=raw_receiver.url).json()["id"]
    task_queue.run()
    assert time.monotonic() - started < 5
    assert WebhookDelivery.objects.get(memory_id=memory_id).status == "delivered"


def test_a_deadline_passed_while_connecting_still_ends_the_exchange(
        client, raw_receiver, task_queue, settings, monkeypatch):
    """The watchdog fires before there is a socket to shut down (a slow name lookup here; a
    slow connect or TLS handshake alike): the exchange must still end, not read on."""
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 1
    settings.MEMORYRELAY_WEBHOOK_TIMEOUT = 0.5
    port = int(raw_receiver.url.split(":")[2].split("/")[0])
    real = socket.getaddrinfo

    def slow_lookup(host, service, *args, **kwargs):
        if service == port:
            time.sleep(0.7)
        return real(host, service, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    raw_receiver.answer = b"HTTP/1.1 200 OK\r\n"  # then headers, a byte every 0.2 s
    raw_receiver.trickle, raw_receiver.pause = b"X-Slow: " + b"x" * 30 + b"\r\n\r\n", 0.2
    started = time.monotonic()
    memory_id = post(client, content="slow lookup", webhook_url=raw_receiver.url).json()["id"]
    task_queue.run()
    assert time.monotonic() - started < 3  # not the 8 s of the trickled headers
    assert WebhookDelivery.objects.get(memory_id=memory_id).status == "failed"


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    b"HTTP/1.1 200 OK\r\n\r\npartial",
])
def test_a_2xx_whose_body_never_ends_is_delivered(client, raw_receiver, task_queue, settings,
                                                  answer):
    settings.MEMORYRELAY_WEBHOOK_TIMEOUT = 0.5
    raw_receiver.answer, raw_receiver.trickle, raw_receiver.pause = answer, b"x", 3.0
    memory_id = post(client, content="unended body", webhook_url=raw_receiver.url).json()["id"]
    task_queue.run()
    delivery = WebhookDelivery.objects.get(memory_id=memory_id)
    assert (delivery.status, delivery.attempts, raw_receiver.calls) == ("delivered", 1, 1)


def test_a_path_with_unicode_is_sent_percent_encoded(client, receiver, task_queue):
    assert post(client, content="unicode path",
                webhook_url=receiver + "/café?q=é&r=%C3%A9").status_code == 202
    task_queue.run()
    assert Receiver.paths == ["/hook/caf%C3%A9?q=%C3%A9&r=%C3%A9"]


def test_the_sweep_leaves_a_send_that_may_still_run_and_ends_one_out_of_attempts(
        client, task_queue, settings):
    settings.MEMORYRELAY_WEBHOOK_TIMEOUT = 30
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 3
    memory_id = post(client, content="swept").json()["id"]
    task_queue.run()
    now = timezone.now()
    young = WebhookDelivery.objects.create(  # claimed 40 s ago: its 30 s send may still run
        memory_id=memory_id, event="memory.ready", status="sending", attempts=1,
        updated_at=now - timedelta(seconds=40))
    spent = WebhookDelivery.objects.create(
        memory_id=memory_id, event="memory.ready", status="sending", attempts=3,
        updated_at=now - timedelta(hours=1))
    assert webhook_deliveries_sweep(now - timedelta(seconds=5)) == 0  # a lease of 5 s
    young.refresh_from_db()
    spent.refresh_from_db()
    assert young.status == "sending"
    assert spent.status == "failed" and "worker stopped" in spent.last_error


@pytest.mark.parametrize("url", [
    "http://example.com/hook", "https://127.0.0.1/hook", "https://10.1.2.3/hook",
    "https://192.168.1.1/hook", "https://169.254.169.254/latest", "https://[::1]/hook",
    "https://localhost/hook", "ftp://example.com/hook", "https://example.com:99999/hook",
    "https://example.com:http/hook", "https://[::1/hook",
])
def test_http_and_local_addresses_are_refused_without_the_setting(client, url, settings):
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = False
    assert_error(post(client, content="x", webhook_url=url), 422, "validation_error",
                 "webhook_url")
    assert Memory.objects.count() == 0


def test_a_public_https_url_is_taken(client, settings):
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = False
    assert post(client, content="x", webhook_url="https://93.184.215.14/hook").status_code == 202


def test_a_host_name_resolving_to_a_private_address_is_refused_at_delivery(
        client, task_queue, monkeypatch, settings):
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = False
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]
        if host == "hooks.example.com" else real(host, *a, **k))
    memory_id = post(client, content="private",
                     webhook_url="https://hooks.example.com/x").json()["id"]
    task_queue.run()
    delivery = WebhookDelivery.objects.get(memory_id=memory_id)
    assert (delivery.status, delivery.attempts) == ("refused", 1)
    assert "private" in delivery.last_error


def test_a_name_rebound_to_this_machine_after_its_check_is_never_connected_to(
        client, task_queue, settings, rebinding_dns):
    """The addresses checked are the ones connected to: a name server answering a public
    address to the check and 127.0.0.1 to the connection reaches nothing here."""
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = False
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 1
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    dns = rebinding_dns("hooks.example.com", listener.getsockname()[1])
    memory_id = post(client, content="rebound",
                     webhook_url="https://hooks.example.com/x").json()["id"]
    task_queue.run()
    with pytest.raises(TimeoutError):
        listener.accept()[0].close()  # nothing connected to this machine
    listener.close()
    assert [address[0] for address in dns["connects"]] == ["93.184.215.14"]
    assert dns["lookups"] == 1
    assert WebhookDelivery.objects.get(memory_id=memory_id).status == "failed"


def test_a_host_name_that_does_not_resolve_for_now_is_retried_not_refused(
        client, task_queue, settings, monkeypatch):
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = False
    settings.MEMORYRELAY_TASK_BACKOFF = 0
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 3

    real = socket.getaddrinfo

    def no_name_server(host, *args, **kwargs):
        if host != "hooks.example.com":
            return real(host, *args, **kwargs)  # the queue's own connections
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_name_server)
    memory_id = post(client, content="dns down",
                     webhook_url="https://hooks.example.com/x").json()["id"]
    task_queue.run()
    delivery = WebhookDelivery.objects.get(memory_id=memory_id)
    assert (delivery.status, delivery.attempts) == ("failed", 3)  # tried each time
    assert "name resolution" in delivery.last_error


def test_the_secret_is_per_account_and_printed_by_a_command(account, other_account):
    assert webhook_secret(account=account) != webhook_secret(account=other_account)
    out = StringIO()
    call_command("webhook_secret", "--user", account.username, stdout=out)
    assert out.getvalue().strip() == webhook_secret(account=account)
