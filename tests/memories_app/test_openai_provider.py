"""The OpenAI-compatible embedding provider, against a small fake server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from memories_app.embeddings import EmbeddingError, OpenAICompatible, get_provider
from memories_app.models import Memory


def bag_of_words(text: str, dims: int = 384) -> list[float]:
    vector = np.zeros(dims)
    for word in text.lower().split():
        vector[sum(map(ord, word)) % dims] += 1.0
    return vector.tolist()


class FakeEmbeddings(BaseHTTPRequestHandler):
    requests: list = []
    mode = "ok"

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEmbeddings.requests.append((self.path, dict(self.headers), body))
        if self.mode == "slow":
            time.sleep(1.5)
        if self.mode == "error":
            return self._send(500, {"error": "model not loaded"})
        dims = 128 if self.mode == "narrow" else 384
        data = [{"index": i, "embedding": bag_of_words(text, dims)}
                for i, text in enumerate(body["input"])]
        self._send(200, {"object": "list", "data": list(reversed(data)), "model": body["model"]})

    def _send(self, status, payload):
        raw = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out first ("slow" mode): nobody is listening

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEmbeddings)
    FakeEmbeddings.requests, FakeEmbeddings.mode = [], "ok"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def openai_settings(settings, fake_server):
    settings.MEMORYRELAY_EMBEDDINGS = "openai"
    settings.MEMORYRELAY_EMBEDDINGS_URL = fake_server
    settings.MEMORYRELAY_EMBEDDINGS_MODEL = "nomic-embed-text"
    settings.MEMORYRELAY_EMBEDDINGS_API_KEY = "sk-local"
    get_provider.cache_clear()
    yield settings
    get_provider.cache_clear()


def test_the_provider_posts_model_and_input_and_reads_vectors_in_index_order(fake_server):
    provider = OpenAICompatible(url=fake_server, model="all-minilm", api_key="sk-1")
    matrix = provider.embed(["retry counter bug", "dark mode"])
    path, headers, body = FakeEmbeddings.requests[0]
    assert path == "/v1/embeddings"
    assert body == {"model": "all-minilm", "input": ["retry counter bug", "dark mode"]}
    assert headers["Authorization"] == "Bearer sk-1"
    expected = np.asarray(bag_of_words("retry counter bug"), dtype=np.float32)
    assert np.allclose(matrix[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("url", ["{}", "{}/", "{}/v1", "{}/v1/embeddings"])
def test_the_base_url_may_be_given_with_or_without_the_path(fake_server, url):
    OpenAICompatible(url=url.format(fake_server), model="m").embed(["x"])
    assert FakeEmbeddings.requests[-1][0] == "/v1/embeddings"


@pytest.mark.parametrize(("mode", "message"), [("error", "failed"), ("narrow", "shape"),
                                               ("slow", "timed out")])
def test_a_failing_slow_or_mismatched_server_raises_embedding_error(fake_server, mode, message):
    FakeEmbeddings.mode = mode
    provider = OpenAICompatible(url=fake_server, model="m", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(EmbeddingError, match=message):
        provider.embed(["x"])
    assert time.monotonic() - started < 1.4


def test_an_unreachable_server_raises_embedding_error():
    with pytest.raises(EmbeddingError):
        OpenAICompatible(url="http://127.0.0.1:9", model="m", timeout=0.5).embed(["x"])


def test_memories_store_the_providers_vector_and_model_name(client, openai_settings):
    made = client.post("/v1/memories", {"content": "retry counter bug", "agent_id": "a"},
                       format="json").json()
    memory = Memory.objects.get(pk=made["id"])
    assert memory.embedding_model == "openai:nomic-embed-text"
    assert memory.embedding_dimension == 384 and memory.embedding.shape == (384,)
    health = client.get("/v1/health").json()["services"]["embeddings"]
    assert "nomic-embed-text" in health and "openai-compatible" in health


def test_writes_survive_a_provider_outage_and_reembed_fills_the_vectors(client, openai_settings):
    FakeEmbeddings.mode = "error"
    made = client.post("/v1/memories", {"content": "deploys frozen on Friday", "agent_id": "a"},
                       format="json")
    assert made.status_code == 201
    assert Memory.objects.get(pk=made.json()["id"]).embedding is None
    keyword = client.post("/v1/memories/search",
                          {"query": "Friday", "search_mode": "keyword"}, format="json").json()
    assert [hit["memory"]["id"] for hit in keyword["data"]] == [made.json()["id"]]
    FakeEmbeddings.mode = "ok"
    out = StringIO()
    call_command("reembed", stdout=out)
    assert "Re-embedded 1 memories" in out.getvalue()
    memory = Memory.objects.get(pk=made.json()["id"])
    assert memory.embedding is not None and memory.embedding_model == "openai:nomic-embed-text"


def test_a_model_change_makes_vectors_stale_and_reembed_refreshes_them(client, openai_settings):
    made = client.post("/v1/memories", {"content": "x y z", "agent_id": "a"}, format="json")
    openai_settings.MEMORYRELAY_EMBEDDINGS_MODEL = "another-model"
    get_provider.cache_clear()
    out = StringIO()
    call_command("reembed", "--dry-run", stdout=out)
    assert "Would re-embed 1 memories" in out.getvalue()
    assert Memory.objects.get(pk=made.json()["id"]).embedding_model == "openai:nomic-embed-text"
    call_command("reembed", stdout=StringIO())
    assert Memory.objects.get(pk=made.json()["id"]).embedding_model == "openai:another-model"


def test_a_failing_provider_tells_clients_nothing_of_its_address(client, openai_settings,
                                                                 caplog):
    """The provider's internal address was in semantic search's 422, in a write's status
    and webhook (the error stored), and in the unauthenticated health check."""
    address = openai_settings.MEMORYRELAY_EMBEDDINGS_URL.removeprefix("http://")
    assert address not in client.get("/v1/health").json()["services"]["embeddings"]
    FakeEmbeddings.mode = "error"
    with pytest.raises(EmbeddingError) as failed:
        get_provider().embed(["x"])
    assert address not in str(failed.value) and "500" in str(failed.value)
    with caplog.at_level("WARNING", logger="memoryrelay.embeddings"):
        response = client.post("/v1/memories/search",
                               {"query": "Friday", "search_mode": "semantic"}, format="json")
    assert response.status_code == 503 and response["Retry-After"].isdigit()
    assert address not in response.content.decode()
    assert "try again" in response.json()["message"]
    assert any(address in r.getMessage() for r in caplog.records)  # the operator's
    hybrid = client.post("/v1/memories/search", {"query": "Friday"}, format="json")
    assert hybrid.status_code == 200  # keywords answer alone


def test_semantic_search_without_a_provider_is_still_a_422_on_search_mode(client, settings):
    settings.MEMORYRELAY_EMBEDDINGS = "none"
    get_provider.cache_clear()
    try:
        response = client.post("/v1/memories/search",
                               {"query": "Friday", "search_mode": "semantic"}, format="json")
        assert response.status_code == 422
        assert response.json()["details"][0]["field"] == "search_mode"
    finally:
        get_provider.cache_clear()


def test_health_says_degraded_while_the_provider_fails_and_asks_it_seldom(client,
                                                                        openai_settings):
    """Health said healthy while every write was stored without a vector and semantic
    search failed."""
    from memories_app import embeddings

    FakeEmbeddings.mode = "error"
    body = client.get("/v1/health").json()
    assert body["status"] == "degraded" and body["services"]["embedding_provider"] == "down"
    asked = len(FakeEmbeddings.requests)
    client.get("/v1/health")
    assert len(FakeEmbeddings.requests) == asked  # answered from the last probe
    FakeEmbeddings.mode = "ok"
    embeddings._probed.clear()
    body = client.get("/v1/health").json()
    assert body["status"] == "healthy" and body["services"]["embedding_provider"] == "up"


def test_health_names_the_local_model_up_and_no_provider_none(client, settings):
    from memories_app import embeddings

    local = "up" if embeddings.local_model_installed() else "none"
    for choice, state in (("none", "none"), ("local", local)):
        settings.MEMORYRELAY_EMBEDDINGS = choice
        embeddings.get_provider.cache_clear()
        try:
            body = client.get("/v1/health").json()
        finally:
            embeddings.get_provider.cache_clear()
        assert body["services"]["embedding_provider"] == state
        assert body["status"] == "healthy"
