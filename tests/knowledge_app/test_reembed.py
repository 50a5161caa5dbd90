"""Decisions and patterns written while the embedding provider is down are stored (keyword
searchable) and ``manage.py reembed`` fills their vectors in, as it does for memories."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from knowledge_app.models import Decision, Pattern
from memories_app.embeddings import get_provider
from memories_app.models import Memory
from tests.knowledge_app.conftest import create_pattern, record
from tests.memories_app.test_openai_provider import FakeEmbeddings
from tests.memories_app.test_openai_provider import fake_server as fake_server  # noqa: F401
from tests.memories_app.test_openai_provider import openai_settings as openai_settings  # noqa: F401


def test_an_outage_leaves_rows_keyword_searchable_and_reembed_fills_them(client,
                                                                         openai_settings):
    FakeEmbeddings.mode = "error"
    decision = record(client, title="Freeze deploys on Fridays", rationale="Weekend on-call.")
    pattern = create_pattern(client, title="Friday freeze", description="No deploys.")
    assert Decision.objects.get(pk=decision["id"]).embedding is None
    assert Pattern.objects.get(pk=pattern["id"]).embedding is None
    found = client.get("/v1/decisions/check", {"query": "Fridays", "threshold": 0}).json()
    assert [h["decision"]["id"] for h in found["data"]] == [decision["id"]]
    FakeEmbeddings.mode = "ok"
    out = StringIO()
    call_command("reembed", "--dry-run", stdout=out)
    assert "Would re-embed 0 memories, 1 decisions, 1 patterns" in out.getvalue()
    call_command("reembed", stdout=out)
    assert "Re-embedded 0 memories, 1 decisions, 1 patterns" in out.getvalue()
    for row in (Decision.objects.get(pk=decision["id"]), Pattern.objects.get(pk=pattern["id"])):
        assert row.embedding is not None and row.embedding_model == "openai:nomic-embed-text"


def test_a_model_change_makes_their_vectors_stale(client, openai_settings):
    record(client)
    openai_settings.MEMORYRELAY_EMBEDDINGS_MODEL = "another-model"
    get_provider.cache_clear()
    call_command("reembed", stdout=StringIO())
    assert Decision.objects.get().embedding_model == "openai:another-model"


def test_an_asynchronous_write_that_failed_for_its_vector_is_ready_once_reembedded(
        client, openai_settings):
    """It stayed failed, with the old error, though searchable by meaning."""
    FakeEmbeddings.mode = "error"
    written = client.post("/v1/memories", {"content": "Nightly backups at 02:00",
                                           "agent_id": "a"}, format="json").json()["id"]
    Memory.objects.filter(pk=written).update(status="failed", status_error="provider down")
    FakeEmbeddings.mode = "ok"
    call_command("reembed", stdout=StringIO())
    row = Memory.objects.get(pk=written)
    assert row.embedding is not None and row.status == "ready" and row.status_error == ""


@pytest.mark.django_db(transaction=True)
def test_a_second_reembed_while_one_runs_redoes_none_of_its_rows(client, monkeypatch):
    """Two runs at once both read the same stale rows and both embedded them: the second
    now embeds nothing while the first runs (held inside its second page, its first done),
    and says so; a run after it finds nothing left."""
    for i in range(4):
        client.post("/v1/memories", {"content": f"stale memory {i}", "agent_id": "a"},
                    format="json")
    Memory.objects.update(embedding=None, embedding_model="")
    provider = get_provider()
    real = provider.embed
    holding, release, embedded = threading.Event(), threading.Event(), []

    def embed(texts):
        embedded.append((threading.current_thread().name, list(texts)))
        if threading.current_thread().name == "first" and len(embedded) == 2:
            holding.set()
            release.wait(30)
        return real(texts)

    monkeypatch.setattr(provider, "embed", embed)
    done = []

    def first():
        try:
            out = StringIO()
            call_command("reembed", "--batch-size", "2", stdout=out, stderr=StringIO())
            done.append(out.getvalue())
        finally:
            connection.close()

    runner = threading.Thread(target=first, name="first")
    runner.start()
    try:
        assert holding.wait(30)
        with pytest.raises(CommandError, match="another reembed is running"):
            call_command("reembed", stdout=StringIO(), stderr=StringIO())
    finally:
        release.set()
        runner.join(30)
    assert [name for name, _ in embedded] == ["first", "first"]
    assert sorted(t for _, texts in embedded for t in texts) == [
        f"stale memory {i}" for i in range(4)]
    assert "Re-embedded 4 memories" in done[0]
    out = StringIO()
    call_command("reembed", stdout=out, stderr=StringIO())
    assert "Re-embedded 0 memories, 0 decisions, 0 patterns" in out.getvalue()
    assert len(embedded) == 2


def test_on_a_sqlite_file_a_second_run_finds_the_first_ones_lock_beside_it(tmp_path):
    """Two processes on one SQLite file: the lock is a file beside it, held while the
    first runs and let go when it ends (the file stays, for the next run to lock)."""
    from memoryrelay_site.db import file_alone

    path = str(tmp_path / "db.sqlite3.reembed.lock")
    with file_alone(path) as first:
        with file_alone(path) as second:
            assert (first, second) == (True, False)
    with file_alone(path) as again:
        assert again
    with file_alone(str(tmp_path / "missing" / "lock")) as unlockable:
        assert unlockable  # a lock that cannot be made holds nothing back
