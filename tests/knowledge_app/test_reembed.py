"""Decisions and patterns written while the embedding provider is down are stored (keyword
searchable) and ``manage.py reembed`` fills their vectors in, as it does for memories."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from knowledge_app.models import Decision, Pattern
from memories_app.embeddings import get_provider
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
    from memories_app.models import Memory

    FakeEmbeddings.mode = "error"
    written = client.post("/v1/memories", {"content": "Nightly backups at 02:00",
                                           "agent_id": "a"}, format="json").json()["id"]
    Memory.objects.filter(pk=written).update(status="failed", status_error="provider down")
    FakeEmbeddings.mode = "ok"
    call_command("reembed", stdout=StringIO())
    row = Memory.objects.get(pk=written)
    assert row.embedding is not None and row.status == "ready" and row.status_error == ""
