"""Issue 7, point 7: one batch costs a bounded amount of CPU.

The cost of a batch is the embedding model's work, which grows with each memory's tokens up
to the model's 256-token window; a batch may need at most MEMORYRELAY_BATCH_MAX_TOKENS of
them (413 payload_too_large on ``memories`` over it, before anything is embedded).
"""

from __future__ import annotations

import time

import pytest

from memories_app.embeddings import get_provider
from memories_app.models import Memory
from tests.conftest import assert_error, requires_model

pytestmark = requires_model


def batch(contents):
    return {"agent_id": "a", "memories": [{"content": c} for c in contents]}


def test_a_batch_over_the_token_budget_is_a_413_on_memories_and_stores_nothing(
    client, settings, monkeypatch
):
    settings.MEMORYRELAY_BATCH_MAX_TOKENS = 100
    embedded = []
    monkeypatch.setattr(get_provider(), "embed", lambda texts: embedded.append(texts))
    response = client.post("/v1/memories/batch", batch(["word " * 60, "word " * 60]),
                           format="json")
    body = assert_error(response, 413, "payload_too_large", "memories")
    assert "124 tokens" in body["message"] and "at most 100" in body["message"]
    assert Memory.objects.count() == 0 and embedded == []


def test_a_batch_within_the_token_budget_is_stored(client, settings):
    settings.MEMORYRELAY_BATCH_MAX_TOKENS = 100
    contents = ["word " * 40, "word " * 40]
    assert get_provider().count_tokens(contents) <= 100
    response = client.post("/v1/memories/batch", batch(contents), format="json")
    assert response.status_code == 200, response.content
    assert response.json()["succeeded"] == 2


def test_each_memory_counts_at_most_the_models_window(client, settings):
    settings.MEMORYRELAY_BATCH_MAX_TOKENS = 2 * 256
    response = client.post("/v1/memories/batch", batch(["long text " * 2000] * 2),
                           format="json")
    assert response.status_code == 200, response.content
    assert response.json()["succeeded"] == 2


def test_a_maximal_1_mb_batch_is_refused_before_the_model_runs(client):
    """The batch of the issue (100 memories, 1 MB of prose) cost 16 to 65 s of CPU; the
    default budget refuses it after tokenizing alone."""
    contents = [f"memory {i}: " + "the deploy froze on friday again " * 300 for i in range(100)]
    client.post("/v1/memories/batch", batch(["warm the model up"]), format="json")
    started = time.process_time()
    response = client.post("/v1/memories/batch", batch(contents), format="json")
    assert_error(response, 413, "payload_too_large", "memories")
    assert time.process_time() - started < 3  # measured: about 0.3 s
    assert Memory.objects.count() == 1


@pytest.mark.parametrize("provider", ["none"])
def test_without_a_local_model_no_token_budget_applies(client, settings, provider):
    from memories_app import embeddings

    settings.MEMORYRELAY_EMBEDDINGS = provider
    settings.MEMORYRELAY_BATCH_MAX_TOKENS = 10
    embeddings.get_provider.cache_clear()
    try:
        response = client.post("/v1/memories/batch", batch(["word " * 100]), format="json")
    finally:
        embeddings.get_provider.cache_clear()
    assert response.status_code == 200 and response.json()["succeeded"] == 1
