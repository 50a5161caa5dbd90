"""Webhooks of asynchronous writes (memories_app.webhooks): signed JSON POSTs when a memory
is ready or failed, retried with backoff, never to local addresses unless allowed."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command

from memories_app import embeddings
from memories_app.models import Memory
from memories_app.webhooks import WebhookRefused, _check_url, webhook_secret
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


class Receiver(BaseHTTPRequestHandler):
    received: list = []
    failures = 0
    slow_first = 0.0

    def do_POST(self):  # noqa: N802
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
    Receiver.slow_first = 3.0
    started = time.monotonic()
    post(client, content="slow receiver", webhook_url=receiver)
    task_queue.run()
    assert len(Receiver.received) == 2
    assert time.monotonic() - started < 2.5  # the first call was cut short, not waited on


def test_a_receiver_that_keeps_failing_is_given_up_after_the_attempts(client, receiver,
                                                                      task_queue, settings):
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 2
    Receiver.failures = 99
    memory_id = post(client, content="nobody listens", webhook_url=receiver).json()["id"]
    task_queue.run()
    assert len(Receiver.received) == 2
    assert Memory.objects.get(pk=memory_id).status == "ready"  # the write itself is done


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


def test_a_host_name_resolving_to_a_private_address_is_refused_at_delivery(monkeypatch,
                                                                           settings):
    settings.MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = False
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))])
    with pytest.raises(WebhookRefused):
        _check_url("https://hooks.example.com/x", resolve=True)


def test_the_secret_is_per_account_and_printed_by_a_command(account, other_account):
    assert webhook_secret(account=account) != webhook_secret(account=other_account)
    out = StringIO()
    call_command("webhook_secret", "--user", account.username, stdout=out)
    assert out.getvalue().strip() == webhook_secret(account=account)
