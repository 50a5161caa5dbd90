"""Fixture chain: account → api_key → client → agent → session → memory."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from memoryrelay_site.models import ApiKey
from memoryrelay_site.services import api_key_create

REQUIRE_POSTGRES = os.environ.get("MEMORYRELAY_REQUIRE_POSTGRES") == "1"
REQUIRE_MODEL = os.environ.get("MEMORYRELAY_REQUIRE_MODEL") == "1"


def _model_installed() -> bool:
    from memories_app.embeddings import local_model_installed

    return local_model_installed()


# Tests that need the local all-MiniLM-L6-v2 model; `make test` installs it and requires it.
requires_model = pytest.mark.skipif(
    not REQUIRE_MODEL and not _model_installed(),
    reason="needs the local embedding model: `make test` installs it",
)


def pytest_sessionstart(session):
    """A DATABASE_URL (set for another purpose, say) naming a PostgreSQL out of reach made
    every test an error, each after its own wait: one line says so instead."""
    from django.conf import settings

    given = settings.DATABASES["default"]
    if given["ENGINE"] != "django.db.backends.postgresql":
        return
    import psycopg

    try:
        psycopg.connect(host=given["HOST"] or None, port=given["PORT"] or None,
                        user=given["USER"] or None, password=given["PASSWORD"] or None,
                        dbname="postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines())[:300]
        pytest.exit(f"DATABASE_URL names a PostgreSQL this run cannot reach ({reason}): start "
                    "it, or unset DATABASE_URL to run the suite on SQLite", 3)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("postgres"):
            item.fixturenames.append("_needs_postgres")


@pytest.fixture
def _needs_postgres(db):
    if connection.vendor != "postgresql":
        if REQUIRE_POSTGRES:
            pytest.fail("PostgreSQL is required here (MEMORYRELAY_REQUIRE_POSTGRES=1)")
        pytest.skip(
            "needs PostgreSQL: run `make test-postgres` (DATABASE_URL pointing at a server)"
        )


@pytest.fixture(scope="session", autouse=True)
def _database_is_the_one_asked_for(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        if REQUIRE_POSTGRES and connection.vendor != "postgresql":
            pytest.exit("MEMORYRELAY_REQUIRE_POSTGRES=1 but the database is not PostgreSQL", 3)


@pytest.fixture(autouse=True)
def _task_queue_offered_again():
    """A test that made Redis fail to take a task pauses this process's enqueues for a few
    seconds (memoryrelay_site.tasks.task_enqueue); the next test starts with none paused."""
    from memoryrelay_site import tasks

    tasks._queue_failed_at[0] = float("-inf")
    yield


def real_queries(captured: CaptureQueriesContext) -> list[str]:
    """The captured SQL without the SAVEPOINT statements that per-request transactions add
    only inside a test's own transaction."""
    return [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]


@pytest.fixture
def max_queries(db):
    """Like ``max_queries``, counting only ``real_queries``."""

    @contextmanager
    def check(limit: int):
        with CaptureQueriesContext(connection) as captured:
            yield captured
        real = real_queries(captured)
        assert len(real) <= limit, f"{len(real)} queries > {limit}:\n" + "\n".join(real)

    return check


def make_client(raw_key: str | None = None, header: str = "bearer") -> APIClient:
    client = APIClient()
    if raw_key and header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    elif raw_key:
        client.credentials(HTTP_X_API_KEY=raw_key)
    return client


@pytest.fixture
def account(db):
    return get_user_model().objects.create(username="alice")


@pytest.fixture
def api_key(account) -> str:
    key, raw = api_key_create(user=account, name="test")
    # Marked as just used, so the once-a-minute "last used" write stays out of query counts.
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return raw


@pytest.fixture
def client(api_key) -> APIClient:
    return make_client(api_key)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def other_account(db):
    return get_user_model().objects.create(username="mallory")


@pytest.fixture
def other_client(other_account) -> APIClient:
    return make_client(api_key_create(user=other_account)[1])


@pytest.fixture
def agent(account):
    from sessions_app.services import agent_get_or_create

    return agent_get_or_create(account=account, name="my-assistant")[0]


@pytest.fixture
def session(account, agent):
    from sessions_app.services import session_create

    return session_create(
        account=account, agent_ref=str(agent.id), project="northrelay",
        title="Fix email queue retry logic", metadata={"environment": "development"},
    )


@pytest.fixture
def memory(account, agent, session):
    from memories_app.services import memory_create

    return memory_create(
        account=account, agent_ref=agent.name, session_id=session.id,
        content="Identified root cause: retry counter not incremented on timeout",
    )


@pytest.fixture
def fake_llm():
    """An OpenAI-compatible chat endpoint on 127.0.0.1 (``state["url"]``): it answers
    ``state["answer"]`` as the assistant's message with ``state["status"]``, or the bytes
    ``state["raw"]`` when set, or ``state["respond"](body)`` when set (the answer read off the
    request), after ``state["delay"]`` seconds; ``state["requests"]`` holds (path,
    Authorization header, JSON body) of each call; ``state["close"]()`` stops it and
    ``state["fail"](how)`` makes it fail."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"answer": None, "status": 200, "raw": None, "delay": 0.0, "requests": [],
             "respond": None}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append((self.path, self.headers.get("Authorization"), body))
            time.sleep(state["delay"])
            answer = state["respond"](body) if state["respond"] else state["answer"]
            payload = state["raw"] if state["raw"] is not None else json.dumps(
                {"choices": [{"message": {"content": answer}}]}).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    closed = []

    def close():
        if not closed:
            closed.append(True)
            server.shutdown()
            server.server_close()

    def fail(how: str):
        """Makes the endpoint fail: "error" (HTTP 500), "garbage" (a body that is not JSON),
        "slow" (1.5 s before answering) or "down" (stopped)."""
        if how == "error":
            state["status"] = 500
        elif how == "garbage":
            state["raw"] = b"not json"
        elif how == "slow":
            state["delay"] = 1.5
        elif how == "down":
            close()
        else:
            raise ValueError(how)

    state["close"], state["fail"] = close, fail
    yield state
    close()


@pytest.fixture
def raw_http_server():
    """A peer on 127.0.0.1 (``state.url``) that answers each connection with the bytes
    ``state.answer``, then those of ``state.trickle`` one every ``state.pause`` seconds, then
    closes; ``state.calls`` counts the connections. For answers no HTTP server would give."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    state = type("State", (), {"answer": b"", "trickle": b"", "pause": 0.0, "calls": 0})()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                state.calls += 1
                conn.recv(65536)
                try:
                    conn.sendall(state.answer)
                    for byte in state.trickle:
                        time.sleep(state.pause)
                        conn.sendall(bytes([byte]))
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    state.url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    yield state
    listener.close()


@pytest.fixture
def rebinding_dns(monkeypatch):
    """A name server that rebinds: ``rebinding_dns(host, port)`` makes the first lookup of
    ``host`` answer a public address and every later one 127.0.0.1 (where ``port`` is
    served), the trick that turns a URL checked once into a request to this machine.
    Connecting to the public address is refused at once (tests stay off the internet);
    ``state["connects"]`` holds every address connected to for ``host`` (either one)."""
    import socket

    real_lookup, real_socket = socket.getaddrinfo, socket.socket
    state = {"host": None, "port": None, "lookups": 0, "connects": []}

    def lookup(host, port, *args, **kwargs):
        if host != state["host"]:
            return real_lookup(host, port, *args, **kwargs)
        state["lookups"] += 1
        address = PUBLIC_ADDRESS if state["lookups"] == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, state["port"]))]

    class Socket(real_socket):
        def connect(self, address):
            if address[0] == PUBLIC_ADDRESS or address[1:2] == (state["port"],):
                state["connects"].append(address)
            if address[0] == PUBLIC_ADDRESS:
                raise ConnectionRefusedError("a test does not go on the internet")
            return super().connect(address)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket, "socket", Socket)

    def rebind(host: str, port: int) -> dict:
        state["host"], state["port"] = host, port
        return state

    return rebind


PUBLIC_ADDRESS = "93.184.215.14"


@pytest.fixture
def sdk(live_server):
    """The installed SDK 0.4.0's client, against the live test server, as an account of its
    own (a test using it needs ``django_db(transaction=True)``)."""
    from memoryrelay import MemoryRelay

    user = get_user_model().objects.create(username="sdk-user")
    _, raw = api_key_create(user=user, name="sdk")
    with MemoryRelay(api_key=raw, base_url=live_server.url) as client:
        yield client


def assert_error(response, status: int, type_: str, field: str | None = None) -> dict:
    """Checks the one error body of the API (and its request id header)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["type"] == type_
    assert body["code"] == status
    assert body["message"] and body["detail"] == body["message"]
    assert body["request_id"] and body["request_id"] == response["X-Request-ID"]
    if field is not None:
        assert field in {d["field"] for d in body["details"]}, body
    return body
