"""The LLM extractor against a fake OpenAI-compatible server on 127.0.0.1: its answer
mapped to mentions (invented names dropped, types checked), and the rules answering when
the server fails, with the memory's extraction recording which one ran."""

from __future__ import annotations

import json

import pytest

from entities_app import extraction, pipeline
from entities_app.extraction.llm import LLMExtractor
from entities_app.extraction.rules import RuleExtractor
from entities_app.models import EntityLink, MemoryExtraction

TEXT = "Maria Lopez from Acme Corp moved JIRA-4812 to pgvector."


def answer(*entities) -> str:
    return json.dumps({"entities": [{"name": n, "type": t} for n, t in entities]})


def test_the_llm_answer_becomes_mentions_of_names_in_the_text(fake_llm):
    fake_llm["answer"] = "```json\n" + answer(
        ("Maria Lopez", "person"), ("acme corp", "organization"), ("Atlantis", "place"),
        ("pgvector", "technology"), ("JIRA-4812", "ticket")) + "\n```"
    tool = LLMExtractor(url=fake_llm["url"], model="tiny", api_key="k", fallback=RuleExtractor())
    mentions, method, model = tool.run(TEXT)
    assert (method, model) == ("llm", "tiny")
    assert {(m.name, m.entity_type) for m in mentions} == {
        ("Maria Lopez", "person"), ("Acme Corp", "organization"), ("pgvector", "technology"),
        ("JIRA-4812", "other")}
    assert all(TEXT[m.start:m.end] == m.name for m in mentions)
    path, auth, body = fake_llm["requests"][0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["model"] == "tiny" and body["messages"][-1]["content"] == TEXT


@pytest.mark.parametrize("status, content", [(500, "oops"), (200, "not json"),
                                             (200, '{"people": []}')])
def test_a_failing_llm_falls_back_to_the_rules(fake_llm, status, content):
    fake_llm["status"], fake_llm["answer"] = status, content
    tool = LLMExtractor(url=fake_llm["url"], model="tiny", fallback=RuleExtractor())
    mentions, method, _ = tool.run(TEXT)
    assert method == "rules" and ("Maria Lopez", "person") in {
        (m.name, m.entity_type) for m in mentions}


def test_an_unreachable_llm_falls_back_quickly():
    tool = LLMExtractor(url="http://127.0.0.1:9", model="tiny", timeout=2,
                        fallback=RuleExtractor())
    assert tool.run(TEXT)[1] == "rules"


@pytest.fixture
def servers_llm(fake_llm, settings):
    """The server's extractor is the LLM at the fake endpoint (model "tiny")."""
    settings.MEMORYRELAY_ENTITY_EXTRACTOR = "llm"
    settings.MEMORYRELAY_EXTRACTION_LLM_URL = fake_llm["url"] + "/v1"
    settings.MEMORYRELAY_EXTRACTION_LLM_MODEL = "tiny"
    extraction.reset()
    yield fake_llm
    extraction.reset()


@pytest.mark.django_db
def test_the_pipeline_records_the_method_that_ran(servers_llm, client):
    memory_id = client.post("/v1/memories", {"agent_id": "a", "content": TEXT,
                                             "auto_extract_entities": False},
                            format="json").json()["id"]
    servers_llm["answer"] = answer(("Acme Corp", "organization"))
    assert pipeline.extraction_run_now(memory_ids=[memory_id]) == 1
    row = MemoryExtraction.objects.get(memory_id=memory_id)
    assert (row.method, row.model, row.entity_count) == ("llm", "tiny", 1)
    assert EntityLink.objects.get(memory_id=memory_id).relevance_score == 0.8
    servers_llm["status"] = 500
    pipeline.extraction_run_now(memory_ids=[memory_id])
    row.refresh_from_db()
    assert row.method == "rules" and row.entity_count >= 3


@pytest.mark.django_db
def test_the_servers_llm_never_sees_a_confidential_memory(servers_llm, client):
    memory_id = client.post("/v1/memories", {"agent_id": "a", "content": TEXT,
                                             "visibility": "confidential",
                                             "auto_extract_entities": False},
                            format="json").json()["id"]
    queued = client.post(f"/v1/memories/{memory_id}/extract-entities").json()
    assert queued["extraction_method"] == "rules"
    assert pipeline.extraction_run_now(memory_ids=[memory_id]) == 1
    row = MemoryExtraction.objects.get(memory_id=memory_id)
    assert row.method == "rules" and row.entity_count >= 3
    assert servers_llm["requests"] == []
