"""The optional LLM judge of a hybrid search's first hits (memories_app/rerank.py), against a
fake OpenAI-compatible endpoint on 127.0.0.1: off unless configured, the offline ranking on
any failure, scores kept in [0, 1], confidential memories never shown."""

from __future__ import annotations

import json
import re

import pytest

from memories_app import rerank
from tests.conftest import requires_model

pytestmark = requires_model

NIGHTLY = "PostgreSQL backups run every night at two"
BILLING = "Billing moved to PostgreSQL last spring"
UPGRADE = "The PostgreSQL upgrade is planned for June"
QUERY = "When do the PostgreSQL backups run?"
_LINE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


def shown(body) -> list[str]:
    """The memories' texts in the order the request numbered them."""
    return [text for _, text in _LINE.findall(body["messages"][-1]["content"])]


def judge(grade_of):
    """An endpoint answering one grade per memory shown, ``grade_of(text)``."""
    return lambda body: json.dumps({"grades": [grade_of(text) for text in shown(body)]})


@pytest.fixture
def memories(client):
    ids = {}
    for content in (NIGHTLY, BILLING, UPGRADE):
        response = client.post("/v1/memories", {"content": content, "agent_id": "ops"},
                               format="json")
        assert response.status_code == 201, response.content
        ids[content] = response.json()["id"]
    return ids


@pytest.fixture
def llm(settings, fake_llm):
    settings.MEMORYRELAY_RERANK_LLM_URL = fake_llm["url"]
    settings.MEMORYRELAY_RERANK_LLM_MODEL = "tiny-judge"
    settings.MEMORYRELAY_RERANK_LLM_API_KEY = "secret"
    settings.MEMORYRELAY_RERANK_LLM_TIMEOUT = 1.0
    return fake_llm


def search(client, query=QUERY, **fields):
    response = client.post("/v1/memories/search", {"query": query, "limit": 10, **fields},
                           format="json")
    assert response.status_code == 200, response.content
    return [(hit["memory"]["content"], hit["score"]) for hit in response.json()["data"]]


def test_off_unless_configured(client, memories, fake_llm):
    search(client)
    assert fake_llm["requests"] == []


def test_the_llm_grades_reorder_the_hits_and_scores_stay_in_range(client, memories, settings,
                                                                  fake_llm):
    offline = dict(search(client))
    assert next(iter(offline)) == NIGHTLY  # offline, the answer comes first
    grades = {BILLING: 10, UPGRADE: 6, NIGHTLY: 2}  # a judge that disagrees
    fake_llm["respond"] = judge(lambda text: grades[text])
    settings.MEMORYRELAY_RERANK_LLM_URL = fake_llm["url"] + "/v1"
    settings.MEMORYRELAY_RERANK_LLM_MODEL = "tiny-judge"
    settings.MEMORYRELAY_RERANK_LLM_API_KEY = "secret"
    judged = search(client)
    assert [content for content, _ in judged] == [BILLING, UPGRADE, NIGHTLY]
    for content, score in judged:
        assert score == pytest.approx((offline[content] + grades[content] / 10) / 2, abs=1e-6)
        assert 0.0 <= score <= 1.0
    [(path, auth, body)] = fake_llm["requests"]
    assert (path, auth, body["model"], body["temperature"]) == (
        "/v1/chat/completions", "Bearer secret", "tiny-judge", 0)
    assert f"Query: {QUERY}" in body["messages"][-1]["content"]
    assert shown(body) == list(offline)  # in the offline order, each once


def test_min_score_applies_to_the_judged_score(client, memories, llm):
    llm["respond"] = judge(lambda text: 10 if text == NIGHTLY else 0)
    assert [content for content, _ in search(client, min_score=0.5)] == [NIGHTLY]


@pytest.mark.parametrize("failure", ["error", "garbage", "slow", "down", "prose",
                                     "too few", "not numbers", "not finite"])
def test_any_failure_answers_the_offline_ranking(client, memories, llm, settings, failure):
    settings.MEMORYRELAY_RERANK_LLM_URL = ""
    offline = search(client)
    settings.MEMORYRELAY_RERANK_LLM_URL = llm["url"]
    llm["answer"] = {"prose": "The second memory answers it best.",
                     "too few": '{"grades": [3, 9]}',
                     "not numbers": '{"grades": ["high", "low", true]}',
                     "not finite": "[NaN, 1, 2]"}.get(failure, "[1, 2, 3]")
    if failure in ("error", "garbage", "slow", "down"):
        llm["fail"](failure)
    assert search(client) == offline
    assert llm["requests"] or failure == "down"  # it was asked, and failed


@pytest.mark.parametrize("mode", ["keyword", "semantic"])
def test_modes_asked_for_by_name_are_not_judged(client, memories, llm, mode):
    llm["respond"] = judge(lambda text: 5)
    search(client, search_mode=mode)
    assert llm["requests"] == []


def test_a_confidential_memory_is_never_shown(client, memories, llm):
    secret = "The PostgreSQL backups key is kept in the vault"
    client.post("/v1/memories", {"content": secret, "agent_id": "ops",
                                 "visibility": "confidential"}, format="json")
    llm["respond"] = judge(lambda text: 5)
    found = dict(search(client, include_confidential=True))
    assert secret in found
    [(_, _, body)] = llm["requests"]
    assert set(shown(body)) == {NIGHTLY, BILLING, UPGRADE}


def test_depth_bounds_what_is_shown_and_later_hits_stay_after(client, memories, llm, settings,
                                                             monkeypatch):
    llm["respond"] = judge(lambda text: 0)
    settings.MEMORYRELAY_RERANK_DEPTH = 1
    search(client, limit=2)  # never fewer than the limit
    assert len(shown(llm["requests"][-1][2])) == 2
    monkeypatch.setattr(rerank, "MAX_DEPTH", 1)  # and never more than MAX_DEPTH
    found = search(client, limit=3)
    assert len(shown(llm["requests"][-1][2])) == 1
    scores = [score for _, score in found]
    assert len(found) == 3 and scores == sorted(scores, reverse=True)


def test_long_memories_are_cut_in_the_prompt(client, llm):
    client.post("/v1/memories", {"content": "PostgreSQL " + "word " * 2000, "agent_id": "ops"},
                format="json")
    llm["respond"] = judge(lambda text: 5)
    search(client, query="PostgreSQL")
    [text] = shown(llm["requests"][0][2])
    assert len(text) <= rerank.ITEM_CHARS + 1 and text.endswith("…")


def test_decision_check_is_judged_too(client, llm):
    for title in ("Use PostgreSQL as the primary datastore", "Deploy with blue-green releases"):
        client.post("/v1/decisions", {"title": title, "rationale": "Agreed."}, format="json")
    llm["respond"] = judge(lambda text: 10 if "blue-green" in text else 0)
    body = client.get("/v1/decisions/check", {"query": "PostgreSQL datastore releases",
                                              "threshold": 0}).json()
    assert body["data"][0]["decision"]["title"] == "Deploy with blue-green releases"
    assert len(llm["requests"]) == 1


@pytest.mark.parametrize(("answer", "grades"), [
    ('{"grades": [7, 2.5, 0]}', [7.0, 2.5, 0.0]),
    ('```json\n{"grades": [10, 3, 1]}\n```', [10.0, 3.0, 1.0]),
    ("[12, -4, 5]", [10.0, 0.0, 5.0]),  # clamped
    # a model that thinks aloud first: its final answer counts
    ("<think>Maybe [1, 1, 1]? Memory 2 fits best.</think>\n[2, 9, 4]", [2.0, 9.0, 4.0]),
    ("Memory 1 mentions [backups]. Grades: [8, 1, 0]", [8.0, 1.0, 0.0]),
])
def test_grades_are_read_from_the_answer(answer, grades):
    assert rerank.parse_grades(answer, 3) == grades


@pytest.mark.parametrize("answer", ["", "no grades", "[1, 2]", "[1, 2, [3]]", "[true, 1, 2]",
                                    '{"grades": [1, 2, 3, 4]}', "[1, 2, Infinity]",
                                    "<think>[1, 2, 3]", '[{"id": 1, "grade": 3}, 2, 1]'])
def test_answers_without_one_grade_per_hit_are_refused(answer):
    with pytest.raises(ValueError):
        rerank.parse_grades(answer, 3)


def test_no_transaction_waits_on_the_llm(client, memories, llm, monkeypatch):
    """The database is read in a snapshot (a transaction on PostgreSQL) that ends before
    the LLM is asked: a slow LLM holds no connection in a transaction."""
    from django.db import connection

    from memoryrelay_site.llm import ChatEndpoint
    around = len(connection.atomic_blocks)  # the test's own transaction
    depths = []
    asked = ChatEndpoint.complete

    def complete(self, *args, **kwargs):
        depths.append(len(connection.atomic_blocks))
        return asked(self, *args, **kwargs)

    monkeypatch.setattr(ChatEndpoint, "complete", complete)
    llm["respond"] = judge(lambda text: 5)
    search(client)
    assert depths == [around]
