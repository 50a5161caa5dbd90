"""The optional LLM summarizer, against a fake OpenAI-compatible endpoint on 127.0.0.1:
used when configured, the extractive summary on any failure, and an end with
auto_summarize never waits on it (a task brings the LLM's summary after)."""

from __future__ import annotations

import time

import pytest

from sessions_app.models import Session
from tests.memories_app.conftest import task_queue  # noqa: F401 - both queue backends

ANSWER = "The team chose PostgreSQL for billing; the retry bug is fixed; docs remain open."


@pytest.fixture
def llm(settings, fake_llm):
    fake_llm["answer"] = f"  {ANSWER}  "
    settings.MEMORYRELAY_SUMMARY_LLM_URL = fake_llm["url"] + "/v1"
    settings.MEMORYRELAY_SUMMARY_LLM_MODEL = "tiny-local"
    settings.MEMORYRELAY_SUMMARY_LLM_API_KEY = "secret"
    settings.MEMORYRELAY_SUMMARY_LLM_TIMEOUT = 1.0
    return fake_llm


@pytest.fixture
def notes(client, session):
    for content in ("Decided to move billing to PostgreSQL 16",
                    "Fixed the retry counter bug on timeouts",
                    "Ran the test suite again", "Docs for the new API still to write"):
        client.post("/v1/memories", {"agent_id": "my-assistant", "content": content,
                                     "session_id": str(session.id)}, format="json")
    return session


def test_summarize_uses_the_llm_when_configured(client, notes, llm):
    response = client.post(f"/v1/sessions/{notes.id}/summarize")
    assert response.status_code == 200, response.content
    assert response.json()["summary"] == ANSWER
    stored = Session.objects.get(pk=notes.id)
    assert (stored.summary, stored.summary_method) == (ANSWER, "llm")
    assert client.get(f"/v1/sessions/{notes.id}").json()["summary_method"] == "llm"
    path, auth, sent = llm["requests"][0]
    assert path == "/v1/chat/completions" and auth == "Bearer secret"
    assert sent["model"] == "tiny-local"
    prompt = sent["messages"][-1]["content"]
    assert "move billing to PostgreSQL 16" in prompt and "Docs for the new API" in prompt
    assert prompt.index("move billing") < prompt.index("Docs for the new API")  # oldest first


@pytest.mark.parametrize("mode", ["error", "garbage", "slow", "down"])
def test_any_llm_failure_falls_back_to_the_extractive_summary(client, notes, llm, mode,
                                                              settings):
    llm["fail"](mode)
    started = time.monotonic()
    response = client.post(f"/v1/sessions/{notes.id}/summarize")
    assert response.status_code == 200, response.content
    assert time.monotonic() - started < 10
    summary = response.json()["summary"]
    assert summary and summary != ANSWER and "PostgreSQL 16" in summary
    assert Session.objects.get(pk=notes.id).summary_method == "extractive"


def test_end_with_auto_summarize_never_waits_on_the_llm(client, notes, llm, task_queue,  # noqa: F811
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ended = client.post(f"/v1/sessions/{notes.id}/end", {"auto_summarize": True},
                            format="json")
    assert ended.status_code == 200, ended.content
    body = ended.json()
    assert body["summary"] and body["summary"] != ANSWER
    assert body["summary_method"] == "extractive"
    assert llm["requests"] == []  # the request did not call it
    assert task_queue.run() == 1
    stored = Session.objects.get(pk=notes.id)
    assert (stored.summary, stored.summary_method) == (ANSWER, "llm")


def test_a_summary_given_before_the_task_runs_is_kept(client, notes, llm, task_queue,  # noqa: F811
                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/v1/sessions/{notes.id}/end", {"auto_summarize": True}, format="json")
    client.post(f"/v1/sessions/{notes.id}/end", {"summary": "Written by hand"},
                format="json")
    task_queue.run()
    stored = Session.objects.get(pk=notes.id)
    assert (stored.summary, stored.summary_method) == ("Written by hand", "provided")


def test_without_an_llm_end_summarizes_extractively_and_queues_nothing(
        client, notes, task_queue, django_capture_on_commit_callbacks):  # noqa: F811
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post(f"/v1/sessions/{notes.id}/end", {"auto_summarize": True},
                           format="json").json()
    assert body["summary_method"] == "extractive" and "PostgreSQL 16" in body["summary"]
    assert task_queue.pending() == 0


def test_confidential_memories_are_never_summarized_nor_sent_to_the_llm(client, notes, llm):
    secret = "The vault passphrase is Tr0ub4dor-and-3"
    client.post("/v1/memories", {"agent_id": "my-assistant", "content": secret,
                                 "visibility": "confidential", "importance": 1.0,
                                 "session_id": str(notes.id)}, format="json")
    response = client.post(f"/v1/sessions/{notes.id}/summarize")
    assert response.status_code == 200, response.content
    assert response.json()["memory_count"] == 5
    prompt = llm["requests"][0][2]["messages"][-1]["content"]
    assert "move billing to PostgreSQL 16" in prompt and "Tr0ub4dor" not in prompt
    llm["fail"]("error")
    extractive = client.post(f"/v1/sessions/{notes.id}/summarize").json()["summary"]
    assert "PostgreSQL 16" in extractive and "Tr0ub4dor" not in extractive


def test_a_session_of_confidential_memories_only_has_nothing_to_summarize(client, session):
    client.post("/v1/memories", {"agent_id": "my-assistant", "content": "the PIN is 4711",
                                 "visibility": "confidential",
                                 "session_id": str(session.id)}, format="json")
    response = client.post(f"/v1/sessions/{session.id}/summarize")
    assert response.status_code == 422
    assert "confidential memories are never summarized" in response.json()["message"]
    ended = client.post(f"/v1/sessions/{session.id}/end", {"auto_summarize": True},
                        format="json").json()
    assert ended["status"] == "ended" and "4711" not in (ended["summary"] or "")
