"""The optional LLM summarizer, against a fake OpenAI-compatible endpoint on 127.0.0.1:
used when configured, the extractive summary on any failure, and an end with
auto_summarize never waits on it (a task brings the LLM's summary after)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sessions_app.models import Session
from tests.memories_app.conftest import task_queue  # noqa: F401 - both queue backends

ANSWER = "The team chose PostgreSQL for billing; the retry bug is fixed; docs remain open."


class FakeChat:
    """An OpenAI-compatible /v1/chat/completions: answers ``answer`` (or fails as told)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.mode = "ok"  # "ok", "error", "garbage" or "slow"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body,
                                      "auth": self.headers.get("Authorization")})
                if fake.mode == "slow":
                    time.sleep(1.5)
                if fake.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                text = (b"not json" if fake.mode == "garbage" else json.dumps({"choices": [
                    {"message": {"role": "assistant", "content": f"  {ANSWER}  "}}]}).encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def llm(settings):
    fake = FakeChat()
    settings.MEMORYRELAY_SUMMARY_LLM_URL = fake.url
    settings.MEMORYRELAY_SUMMARY_LLM_MODEL = "tiny-local"
    settings.MEMORYRELAY_SUMMARY_LLM_API_KEY = "secret"
    settings.MEMORYRELAY_SUMMARY_LLM_TIMEOUT = 1.0
    yield fake
    fake.close()


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
    sent = llm.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer secret"
    assert sent["body"]["model"] == "tiny-local"
    prompt = sent["body"]["messages"][-1]["content"]
    assert "move billing to PostgreSQL 16" in prompt and "Docs for the new API" in prompt
    assert prompt.index("move billing") < prompt.index("Docs for the new API")  # oldest first


@pytest.mark.parametrize("mode", ["error", "garbage", "slow", "down"])
def test_any_llm_failure_falls_back_to_the_extractive_summary(client, notes, llm, mode,
                                                              settings):
    llm.mode = mode
    if mode == "down":
        llm.close()
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
    assert llm.requests == []  # the request did not call it
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
