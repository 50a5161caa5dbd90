"""SDK 0.4.0 (installed) drives the extraction endpoints against a live test server: its
extract_entities, get_extraction_status and backfill_entities, and Memory.entities after."""

from __future__ import annotations

import pytest

from entities_app.tasks import memory_extract_entities


@pytest.mark.django_db(transaction=True)
def test_sdk_040_extraction_round_trip(sdk, settings):
    from memoryrelay.exceptions import NotFoundError
    from memoryrelay.models import MemoryCreate

    settings.MEMORYRELAY_AUTO_EXTRACT_ENTITIES = False  # the SDK's MemoryCreate cannot say

    memory = sdk.memories.create(MemoryCreate(
        agent_id="sdk-agent", content="Maria Lopez from Acme Corp moved JIRA-7 to pgvector.",
        metadata={"auto": "off"}))
    assert sdk.memories.get_extraction_status(memory.id)["status"] == "not_started"
    queued = sdk.memories.extract_entities(memory.id)
    assert queued["status"] == "queued" and queued["memory_id"] == str(memory.id)
    assert queued["extraction_method"] == "rules"
    assert memory_extract_entities.call(str(memory.id)) == "done"
    status = sdk.memories.get_extraction_status(memory.id)
    assert status["status"] == "done" and status["entity_count"] >= 4
    entities = {(e.type, e.value) for e in sdk.memories.get(memory.id).entities}
    assert {("person", "Maria Lopez"), ("organization", "Acme Corp"),
            ("document", "JIRA-7"), ("technology", "pgvector")} <= entities
    sdk.memories.create(MemoryCreate(agent_id="sdk-agent", content="Priya owns Redis."))
    assert sdk.memories.backfill_entities(limit=100, agent_id="sdk-agent") == {
        "status": "queued", "queued": 1}
    with pytest.raises(NotFoundError):
        sdk.memories.extract_entities("00000000-0000-4000-8000-000000000000")
