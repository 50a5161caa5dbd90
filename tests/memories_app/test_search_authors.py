"""A query that names one of the agents whose memories it searches favours that agent's
memories (memories_app/search.py named_author)."""

from __future__ import annotations

import pytest

from tests.conftest import real_queries, requires_model

pytestmark = requires_model

QUERY = "What did Caroline paint last weekend?"
MELANIE = "I painted a sunrise last weekend."
CAROLINE = "Last weekend I made a painting of a lighthouse."


def add(client, content, agent, **fields):
    body = {"content": content, "agent_id": agent, "project": "talk", **fields}
    response = client.post("/v1/memories", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def ranked(client, query=QUERY, **fields):
    response = client.post("/v1/memories/search",
                           {"query": query, "limit": 5, "project": "talk", **fields},
                           format="json")
    assert response.status_code == 200, response.content
    return [hit["memory"]["id"] for hit in response.json()["data"]]


@pytest.mark.parametrize("caroline", ["Caroline", "caroline@talk"])
@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_the_memories_of_the_agent_the_query_names_come_first(client, caroline, mode):
    melanie = add(client, MELANIE, "Melanie@talk")
    hers = add(client, CAROLINE, caroline)
    assert ranked(client, search_mode=mode)[:2] == [hers, melanie]


def without_the_feature(monkeypatch):
    from memories_app import search

    monkeypatch.setattr(search, "named_author", lambda *args: None)


def test_the_named_agent_ranks_second_without_the_feature(client, monkeypatch):
    melanie = add(client, MELANIE, "Melanie@talk")
    hers = add(client, CAROLINE, "Caroline@talk")
    without_the_feature(monkeypatch)
    assert ranked(client)[:2] == [melanie, hers]


@pytest.mark.parametrize("query", [
    "What was painted last weekend?",
    "What did Carolines paint last weekend?",  # only inside a longer word
])
def test_unless_one_agent_is_named_the_ranking_is_unchanged(client, monkeypatch, query):
    add(client, MELANIE, "Melanie@talk")
    add(client, CAROLINE, "Caroline@talk")
    with_feature = ranked(client, query=query)
    without_the_feature(monkeypatch)
    assert ranked(client, query=query) == with_feature


def test_within_one_agent_nothing_changes(client):
    add(client, MELANIE, "Melanie@talk")
    hers = add(client, CAROLINE, "Caroline@talk")
    assert ranked(client, agent_id="Caroline@talk") == [hers]


def test_statements_only_when_the_hits_have_several_authors(client, max_queries,
                                                             monkeypatch):
    def count(**fields):
        with max_queries(100) as captured:
            ranked(client, **fields)
        return len(real_queries(captured))

    add(client, MELANIE, "Melanie@talk")
    add(client, CAROLINE, "Caroline@talk")
    named, unnamed = count(), count(query="What was painted last weekend?")
    one = count(agent_id="Melanie@talk")
    without_the_feature(monkeypatch)
    # the authors' names; when one is named, the candidates' cosines to the query read
    # without the name
    assert named == count() + 2
    assert unnamed == count(query="What was painted last weekend?") + 1
    assert one == count(agent_id="Melanie@talk")


def test_the_query_is_also_read_without_the_name(client, embedded):
    add(client, MELANIE, "Melanie@talk")
    add(client, CAROLINE, "Caroline@talk")
    embedded.clear()
    ranked(client, query="Where did Caroline's CAROLINE paint? Carolines")
    assert embedded == ["Where did Caroline's CAROLINE paint? Carolines",
                        "Where did their they paint? Carolines"]
    embedded.clear()
    ranked(client, query="What was painted last weekend?")
    assert embedded == ["What was painted last weekend?"]
