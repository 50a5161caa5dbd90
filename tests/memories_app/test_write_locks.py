"""No write lock while embedding, and reads take no write lock (SQLite, the default).

Embeddings are computed before a transaction opens; transactions are short; a read runs
outside any transaction, which in SQLite's WAL mode takes no lock at all. The server tests
run a real server on a SQLite file, with an embedding endpoint that takes
``EMBED_SECONDS`` per call (a slow provider: the case where a lock held while embedding
hurts most).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from django.conf import settings
from django.db import connection

from memories_app import embeddings, services
from memories_app.embeddings import DIMENSION, Provider
from memories_app.models import Memory

# --- Embedding runs with no transaction open (deterministic, every database) ---------------


class SpyProvider(Provider):
    """Records, for each embed call, whether a transaction was open on this thread."""

    name = "spy"
    available = True

    def __init__(self):
        self.in_transaction: list[bool] = []

    def embed(self, texts):
        self.in_transaction.append(connection.in_atomic_block)
        matrix = np.random.default_rng(len(texts)).standard_normal((len(texts), DIMENSION))
        return embeddings.normalise(matrix)


@pytest.fixture
def spy(monkeypatch):
    provider = SpyProvider()
    monkeypatch.setattr(embeddings, "get_provider", lambda: provider)
    monkeypatch.setattr(services, "get_provider", lambda: provider)
    return provider


@pytest.mark.django_db(transaction=True)
def test_a_memory_is_embedded_before_its_transaction_opens(client, spy):
    response = client.post("/v1/memories", {"agent_id": "a", "content": "the cache is warm"},
                           format="json")
    assert response.status_code == 201
    assert spy.in_transaction == [False]
    assert Memory.objects.get().embedding_model == "spy"


@pytest.mark.django_db(transaction=True)
def test_new_content_is_embedded_before_the_update_transaction_opens(client, spy, memory):
    spy.in_transaction.clear()
    response = client.patch(f"/v1/memories/{memory.id}", {"content": "the cache is cold"},
                            format="json")
    assert response.status_code == 200 and response.json()["content"] == "the cache is cold"
    assert spy.in_transaction == [False]
    assert Memory.objects.get(pk=memory.pk).embedding_model == "spy"


@pytest.mark.django_db(transaction=True)
def test_a_batch_is_embedded_in_one_call_before_any_transaction_opens(client, spy, session):
    items = [{"content": f"fact {i}", "session_id": str(session.id)} for i in range(5)]
    response = client.post("/v1/memories/batch", {"agent_id": "a", "memories": items},
                           format="json")
    assert response.status_code == 200 and response.json()["succeeded"] == 5
    assert spy.in_transaction == [False]


@pytest.mark.django_db(transaction=True)
def test_a_vector_search_on_postgresql_runs_in_one_transaction(client, spy, memory,
                                                               monkeypatch):
    """Its SET LOCAL tuning must apply to its query; on SQLite a read opens none."""
    from memories_app import vectors

    seen, real = [], vectors.nearest
    monkeypatch.setattr(vectors, "nearest", lambda *a: seen.append(
        connection.in_atomic_block) or real(*a))
    response = client.post("/v1/memories/search", {"query": "retry counter",
                                                   "search_mode": "semantic"}, format="json")
    assert response.status_code == 200
    assert seen == [connection.vendor == "postgresql"]


# --- A real server on a SQLite file ----------------------------------------------------------

EMBED_SECONDS = 2.5  # per call to the embedding endpoint; a batch embeds in one call
LOCK_TIMEOUT = 1  # s a writer waits for SQLite's lock (MEMORYRELAY_DB_LOCK_TIMEOUT)
BATCH = 100


class SlowEmbeddings(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/embeddings that answers after EMBED_SECONDS."""

    def do_POST(self):
        texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["input"]
        time.sleep(EMBED_SECONDS)
        rng = np.random.default_rng(len(texts))
        data = [{"index": i, "embedding": rng.standard_normal(DIMENSION).round(4).tolist()}
                for i in range(len(texts))]
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env, *args, timeout=120) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


class Server:
    def __init__(self, url: str, key: str):
        self.url, self.key = url, key

    def call(self, method: str, path: str, body=None, timeout: float = 60):
        """(status, parsed body, seconds taken)."""
        request = urllib.request.Request(
            self.url + path, method=method, data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, json.loads(raw or b"null"), time.monotonic() - started


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("SQLite's write lock; this run is on PostgreSQL")
    embedder = ThreadingHTTPServer(("127.0.0.1", 0), SlowEmbeddings)
    threading.Thread(target=embedder.serve_forever, daemon=True).start()
    folder = tmp_path_factory.mktemp("sqlite-server")
    env = {
        **os.environ, "DATABASE_URL": "", "MEMORYRELAY_SQLITE_PATH": str(folder / "db.sqlite3"),
        "MEMORYRELAY_EMBEDDINGS": "openai",
        "MEMORYRELAY_EMBEDDINGS_URL": f"http://127.0.0.1:{embedder.server_address[1]}",
        "MEMORYRELAY_DB_LOCK_TIMEOUT": str(LOCK_TIMEOUT), "REDIS_URL": "",
        "MEMORYRELAY_RATE_LIMIT_PER_MINUTE": "100000", "DJANGO_LOG_LEVEL": "WARNING",
    }
    _manage(env, "migrate", "--noinput")
    key = _manage(env, "create_api_key", "--user", "writer").strip().splitlines()[-1]
    port = _free_port()
    with open(folder / "server.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)
    try:
        live = Server(f"http://127.0.0.1:{port}", key)
        _wait_until_up(live, process)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        embedder.shutdown()
        embedder.server_close()


def _wait_until_up(server: Server, process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if server.call("GET", "/v1/memories?limit=1", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not start")


def _batch(server: Server, tag: str):
    items = [{"content": f"{tag} fact number {i} about the build cache"} for i in range(BATCH)]
    return server.call("POST", "/v1/memories/batch", {"agent_id": f"writer-{tag}",
                                                      "memories": items})


def _in_background(call):
    results = []
    thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
    thread.start()
    return thread, results


def _reads_while(threads, server: Server, seconds: float = 60) -> list[float]:
    """Times GETs, one after another, until ``threads`` have finished."""
    times, deadline = [], time.monotonic() + seconds
    time.sleep(0.1)  # the batch is in the server
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        status, _, took = server.call("GET", "/v1/memories?limit=5")
        assert status == 200
        times.append(took)
        time.sleep(0.05)
    return times


def test_a_get_answers_at_once_while_a_100_memory_batch_is_written(server):
    thread, results = _in_background(lambda: _batch(server, "one"))
    times = _reads_while([thread], server)
    thread.join(60)
    status, body, _ = results[0]
    assert status == 200 and body["succeeded"] == BATCH, body
    # Before the fix the first GET waited for the whole batch (its embedding included).
    assert len(times) >= 5, times
    assert max(times) < 1.0 and sorted(times)[len(times) * 9 // 10 - 1] < 0.2, times


def test_two_concurrent_batches_both_succeed_and_reads_stay_fast(server):
    started = [_in_background(lambda tag=tag: _batch(server, tag)) for tag in ("two", "three")]
    times = _reads_while([thread for thread, _ in started], server)
    outcomes = []
    for thread, results in started:
        thread.join(60)
        outcomes.append(results[0])
    # Before the fix the second batch waited for the first's lock and gave up: a 500.
    assert [(status, body["succeeded"]) for status, body, _ in outcomes] == [(200, BATCH)] * 2
    assert len(times) >= 5 and max(times) < 1.0, times


def test_reembed_leaves_a_memory_changed_while_its_page_was_embedded(client, monkeypatch):
    """``manage.py reembed`` embeds a page of stale memories, then writes their vectors: a
    content PATCH in between stored the new text's vector, which must not be overwritten
    with the old text's."""
    made = client.post("/v1/memories", {"agent_id": "a", "content": "Deploys run at noon"},
                       format="json").json()
    Memory.objects.filter(pk=made["id"]).update(embedding=None, embedding_model="")
    real = services.embed_or_none
    patched = []

    def embed_or_none(texts):
        if list(texts) == ["Deploys run at noon"] and not patched:  # the reembed's page
            patched.append(None)
            patched[0] = client.patch(f"/v1/memories/{made['id']}", {
                "content": "Bananas are rich in potassium"}, format="json").status_code
        return real(texts)

    monkeypatch.setattr(services, "embed_or_none", embed_or_none)
    assert services.memories_reembed().stale == 1
    assert patched == [200]
    row = Memory.objects.get(pk=made["id"])
    expected = embeddings.get_provider().embed(["Bananas are rich in potassium"])[0]
    assert float(np.dot(np.asarray(row.embedding), expected)) > 0.999
