"""Fixtures shared by the memories app's tests."""

import pytest

from tests.taskqueue import task_queue  # noqa: F401 - the fixture, on both queue backends


@pytest.fixture
def embedded(monkeypatch) -> list[str]:
    """The texts sent to the embedding provider from now on, in order."""
    from memories_app import embeddings

    provider = embeddings.get_provider()
    texts: list[str] = []
    real = provider.embed
    monkeypatch.setattr(provider, "embed", lambda batch: texts.extend(batch) or real(batch))
    return texts
