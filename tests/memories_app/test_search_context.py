"""Conversation context in ranking (memories_app/neighbours.py): a memory of a session is
scored with the one written before it, and the memory after a candidate is a candidate."""

from __future__ import annotations

import pytest

from tests.conftest import real_queries, requires_model

pytestmark = requires_model

QUESTION = "Melanie: How long have you been painting, Caroline?"
REPLY = "Caroline: Seven years now, and I have finally found my own style."
QUERY = "How long has Caroline been painting?"
DISTRACTORS = [
    "Caroline: I painted a sunrise over the lake last weekend.",
    "Melanie: My painting class meets on Mondays at the community centre.",
    "Caroline: The gallery wants two of my paintings for the spring show.",
    "Melanie: Painting with kids is messy but so much fun.",
    "Caroline: I bought new brushes and oil paints yesterday.",
]


def add(client, content, **fields):
    body = {"content": content, "agent_id": "chat", **fields}
    response = client.post("/v1/memories", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def new_session(client, name="talk"):
    response = client.post("/v1/sessions", {"agent_id": "chat", "title": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def ranked(client, query=QUERY, **fields):
    response = client.post("/v1/memories/search", {"query": query, "limit": 3, **fields},
                           format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def ids(hits):
    return [hit["memory"]["id"] for hit in hits]


def conversation(client, session=None, reply_fields=None):
    for text in DISTRACTORS:
        add(client, text)
    where = {"session_id": session} if session else {}
    question = add(client, QUESTION, **where)
    reply = add(client, REPLY, **where, **(reply_fields or {}))
    return question, reply


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_a_reply_is_found_through_the_question_it_answers_in_its_session(client, mode):
    _, reply = conversation(client, session=new_session(client))
    assert reply in ids(ranked(client, search_mode=mode))


def test_outside_a_session_the_same_reply_is_ranked_alone(client):
    _, reply = conversation(client)
    assert reply not in ids(ranked(client))


def test_context_comes_only_from_the_memory_written_just_before_in_the_same_session(client):
    session = new_session(client)
    for text in DISTRACTORS:
        add(client, text)
    add(client, QUESTION, session_id=new_session(client, "another talk"))
    add(client, "Melanie: The weather is lovely today.", session_id=session)
    reply = add(client, REPLY, session_id=session)
    assert reply not in ids(ranked(client))


def test_a_deleted_question_gives_no_context(client):
    question, reply = conversation(client, session=new_session(client))
    assert client.delete(f"/v1/memories/{question}").status_code == 200
    assert reply not in ids(ranked(client))


def test_a_follower_the_caller_may_not_see_is_never_added(client):
    session = new_session(client)
    _, confidential = conversation(client, session=session,
                                   reply_fields={"visibility": "confidential"})
    assert confidential not in ids(ranked(client, limit=10))
    assert confidential in ids(ranked(client, include_confidential=True))
    other = add(client, REPLY.replace("Seven", "Eight"), session_id=session, agent_id="other")
    assert other not in ids(ranked(client, agent_id="chat", limit=10))


def test_scores_stay_within_0_and_1_in_every_mode(client):
    conversation(client, session=new_session(client))
    for mode in ("hybrid", "semantic", "keyword"):
        hits = ranked(client, search_mode=mode, limit=10)
        assert hits and all(0 < hit["score"] <= 1 for hit in hits), mode


def test_a_reply_inherits_a_share_of_its_questions_keyword_score(client):
    session = new_session(client)
    question = add(client, "How long have you been painting?", session_id=session)
    reply = add(client, "Seven years now.", session_id=session)
    hits = ranked(client, query="painting how long", search_mode="keyword", limit=10)
    score = {hit["memory"]["id"]: hit["score"] for hit in hits}
    assert 0 < score[reply] < score[question]


def test_context_costs_the_same_statements_whatever_the_number_of_hits(client, max_queries):
    def count(limit):
        with max_queries(100) as captured:
            ranked(client, limit=limit)
        return len(real_queries(captured))

    for text in DISTRACTORS:
        add(client, text)
    alone = count(limit=10)
    session = new_session(client)
    for n in range(4):
        add(client, f"{QUESTION} ({n})", session_id=session)
        add(client, f"{REPLY} ({n})", session_id=session)
    assert count(limit=3) == count(limit=20) == alone + 2


SEASON = [  # the answer comes two turns after what the question is about
    ("chat", "John: It was an intense season with tough losses and great wins for us."),
    ("chat", "Maria: That sounds like quite a ride, well done to all of you!"),
    ("chat", "John: All that hard work was worth it. We even took home a trophy!"),
]
SEASON_QUERY = "What did John's team win at the end of the season?"
SEASON_DISTRACTORS = [
    "John: Our team trains every Tuesday and Thursday evening.",
    "John: The season opener is against the Tigers next month.",
    "Maria: My team at the shelter won an award for volunteering.",
    "John: I bought new shoes for the team practice this season.",
    "John: We lost the last game of the season by two points.",
]


def season(client, session=None):
    for text in SEASON_DISTRACTORS:
        add(client, text)
    where = {"session_id": session} if session else {}
    return [add(client, text, agent_id=agent, **where) for agent, text in SEASON]


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_a_memory_two_turns_after_a_strong_hit_is_found_with_it(client, mode):
    *_, answer = season(client, session=new_session(client))
    assert answer in ids(ranked(client, query=SEASON_QUERY, search_mode=mode, limit=5))


def test_outside_a_session_the_answer_two_turns_later_is_not_found(client):
    *_, answer = season(client)
    assert answer not in ids(ranked(client, query=SEASON_QUERY, limit=5))


def test_a_window_member_the_caller_may_not_see_is_never_added(client):
    session = new_session(client)
    for text in SEASON_DISTRACTORS:
        add(client, text)
    add(client, SEASON[0][1], session_id=session)
    add(client, SEASON[1][1], session_id=session)
    hidden = add(client, SEASON[2][1], session_id=session, visibility="confidential")
    deleted = add(client, SEASON[2][1].replace("trophy", "cup"), session_id=session)
    assert client.delete(f"/v1/memories/{deleted}").status_code == 200
    found = ids(ranked(client, query=SEASON_QUERY, limit=20))
    assert hidden not in found and deleted not in found
    assert hidden in ids(ranked(client, query=SEASON_QUERY, include_confidential=True, limit=5))


def test_a_memory_beside_a_higher_hit_of_its_session_weighs_less_but_by_keywords(client):
    session = new_session(client)
    first = add(client, "zephyr quokka marmalade", session_id=session)
    second = add(client, "zephyr quokka marmalade", session_id=session)
    for mode, weight in (("hybrid", 0.93), ("semantic", 0.93), ("keyword", 1.0)):
        hits = ranked(client, query="zephyr quokka marmalade", search_mode=mode, limit=10)
        assert ids(hits)[:2] == [second, first], mode  # equal before: the newest first
        score = {hit["memory"]["id"]: hit["score"] for hit in hits}
        assert score[first] == pytest.approx(score[second] * weight, abs=2e-6), mode


def test_diversify_weighs_each_neighbour_placed_above_and_keeps_scores_going_down():
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from memories_app import neighbours, search

    when = datetime(2026, 1, 1, tzinfo=UTC)

    def hit(pk, score):
        return search.Hit(SimpleNamespace(pk=pk, created_at=when), score=score)

    # a, b, c consecutive in a session (b between a and c); x outside any session
    ranked_hits = [hit("a", 0.90), hit("c", 0.89), hit("b", 0.88), hit("x", 0.80)]
    out = neighbours.diversify(ranked_hits, {"b": "a", "c": "b"}, search._order)
    assert [h.item.pk for h in out] == ["a", "c", "x", "b"]
    score = {h.item.pk: h.score for h in out}
    assert score["a"] == 0.90 and score["c"] == 0.89 and score["x"] == 0.80
    assert score["b"] == pytest.approx(0.88 * 0.93 ** 2)  # beside both a and c
    assert [h.score for h in out] == sorted((h.score for h in out), reverse=True)
    # with no session in sight, the list is as it was
    plain = [hit("p", 0.5), hit("q", 0.4)]
    assert neighbours.diversify(plain, {}, search._order) == plain
