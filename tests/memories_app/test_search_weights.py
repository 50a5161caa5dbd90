"""What a candidate keeps of its score (memories_app/search.py _weight): the agent a query
is about, the period it asks about, and memories that ask rather than tell."""

from __future__ import annotations

import datetime as dt

import pytest

from memories_app import periods, search
from memories_app.models import Memory
from tests.conftest import real_queries, requires_model

pytestmark = requires_model


def add(client, content, agent="Sam@talk", **fields):
    body = {"content": content, "agent_id": agent, "project": "talk", **fields}
    response = client.post("/v1/memories", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def search_for(client, query, **fields):
    response = client.post("/v1/memories/search",
                           {"query": query, "limit": 5, "project": "talk", **fields},
                           format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def ranked(client, query, **fields):
    return [hit["memory"]["id"] for hit in search_for(client, query, **fields)]


# --- two agents named: the first is the subject -------------------------------------------

PAINT_FOR = "What did Caroline paint for Melanie last weekend?"
MELANIE = "I painted a sunrise last weekend."
CAROLINE = "Last weekend I made a painting of a lighthouse."


def test_of_two_agents_named_the_first_is_the_subject(client, monkeypatch):
    melanie = add(client, MELANIE, "Melanie@talk")
    hers = add(client, CAROLINE, "Caroline@talk")
    assert ranked(client, PAINT_FOR)[:2] == [hers, melanie]
    monkeypatch.setattr(search, "named_author", lambda *args: None)
    assert ranked(client, PAINT_FOR)[:2] == [melanie, hers]


@pytest.mark.parametrize("query", [
    "What did Caroline and Melanie paint last weekend?",
    "What did Caroline or Melanie paint last weekend?",
    "What did Caroline's and Melanie's friends paint last weekend?",
    "What did Caroline, Melanie paint last weekend?",
])
def test_two_agents_named_together_favour_neither(client, monkeypatch, query):
    add(client, MELANIE, "Melanie@talk")
    add(client, CAROLINE, "Caroline@talk")
    with_feature = search_for(client, query)
    monkeypatch.setattr(search, "AUTHOR_WEIGHT", 1.0)
    assert search_for(client, query) == with_feature


def test_the_names_of_the_agents_named_are_no_keyword_terms(client, monkeypatch):
    """"Caroline" is in what Melanie says to her, seldom in what Caroline says."""
    melanie = add(client, "Caroline, I painted a sunrise.", "Melanie@talk")
    hers = add(client, "I painted a lighthouse.", "Caroline@talk")
    monkeypatch.setattr(search, "AUTHOR_WEIGHT", 1.0)  # the names alone

    def scores(query):
        hits = search_for(client, query, search_mode="keyword")
        return {hit["memory"]["id"]: hit["score"] for hit in hits}

    assert scores("What did Caroline paint?") == {melanie: 1.0, hers: 1.0}
    assert scores("Caroline?") == {melanie: 1.0}  # nothing but the name: kept
    real = search.KeywordMatches.keyword
    monkeypatch.setattr(search.KeywordMatches, "keyword",
                        lambda self, skip=frozenset(): real(self))
    found = scores("What did Caroline paint?")
    assert found[melanie] == 1.0 and found[hers] < 0.5


def test_the_subject_of_two_names_keeps_the_query_as_asked(client, embedded):
    """Only an agent named alone has its name read out of the query's meaning."""
    add(client, MELANIE, "Melanie@talk")
    add(client, CAROLINE, "Caroline@talk")
    embedded.clear()
    ranked(client, PAINT_FOR)
    assert embedded == [PAINT_FOR]


# --- memories that ask ---------------------------------------------------------------------

@pytest.mark.parametrize("text, share", [
    ("How long have you been painting?", 1.0),
    ("Wow, that's lovely! Where was it taken?", 0.5),
    ("Seven years now. I finally found my muses.", 0.0),
    ("Why? Because it's calming. Is it? Yes!", 0.5),
    ("", 0.0),
])
def test_asking_share(text, share):
    assert search.asking_share(text) == share


ASKS = "How long have you been painting landscapes?"
TELLS = "I've been painting landscapes for a long time: seven years now."


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "semantic"])
def test_a_memory_that_tells_ranks_above_one_that_asks(client, monkeypatch, mode):
    query = "How long has Sam been painting landscapes?"
    tells, asks = add(client, TELLS), add(client, ASKS)
    assert ranked(client, query, search_mode=mode)[:2] == [tells, asks]
    monkeypatch.setattr(search, "ASKING_WEIGHT", 1.0)
    assert ranked(client, query, search_mode=mode)[:2] == [asks, tells]


def test_the_weight_of_asking_keeps_scores_in_bounds(client):
    add(client, ASKS)
    hits = search_for(client, ASKS, search_mode="keyword")
    # an exact keyword match of a memory that only asks: 1 * ASKING_WEIGHT
    assert hits[0]["score"] == pytest.approx(search.ASKING_WEIGHT, abs=1e-6)


# --- the period a query asks about ---------------------------------------------------------

# ISO dates: the month's name is no keyword of either
MAY = "2023-05-04: Sam went to a Weight Watchers meeting yesterday."
JUNE = "2023-06-14: Sam went to the weekly meeting again, and it went great."


@pytest.mark.parametrize("query, first", [
    ("What meeting did Sam go to in May 2023?", "may"),
    ("What meeting did Sam go to on 3 May, 2023?", "may"),
    ("What meeting did Sam go to in June 2023?", "june"),
])
def test_memories_of_the_period_asked_about_come_first(client, monkeypatch, query, first):
    ids = {"may": add(client, MAY), "june": add(client, JUNE)}
    assert ranked(client, query)[0] == ids[first]
    monkeypatch.setattr(periods, "OUTSIDE_WEIGHT", 1.0)
    # without the feature the June memory, closer in words, ranks first either way
    assert ranked(client, query)[0] == ids["june"]


def test_a_memory_without_a_date_is_from_the_day_it_was_stored(client, monkeypatch):
    query = "Which database did we pick in March 2024?"
    march = add(client, "We picked PostgreSQL for the main store.", "Ops@talk")
    later = add(client, "We picked SQLite as the database for the embedded mode.", "Ops@talk")
    Memory.objects.filter(pk=march).update(created_at=dt.datetime(2024, 3, 12, tzinfo=dt.UTC))
    Memory.objects.filter(pk=later).update(created_at=dt.datetime(2024, 9, 2, tzinfo=dt.UTC))
    assert ranked(client, query)[:2] == [march, later]
    monkeypatch.setattr(periods, "OUTSIDE_WEIGHT", 1.0)
    assert ranked(client, query)[:2] == [later, march]


def test_a_query_without_a_period_is_ranked_as_before(client, monkeypatch):
    add(client, MAY)
    add(client, JUNE)
    hits = search_for(client, "What meeting did Sam go to?")
    monkeypatch.setattr(periods, "OUTSIDE_WEIGHT", 0.0)
    assert search_for(client, "What meeting did Sam go to?") == hits


def test_weights_cost_no_statement(client, max_queries, monkeypatch):
    def count(query):
        with max_queries(100) as captured:
            ranked(client, query)
        return len(real_queries(captured))

    add(client, MAY, "Sam@talk")
    add(client, JUNE, "Evan@talk")
    query = "What meeting did Sam go to with Evan in May 2023?"
    weighted = count(query)
    monkeypatch.setattr(periods, "asked_period", lambda text: None)
    monkeypatch.setattr(search, "asking_share", lambda text: 0.0)
    assert count(query) == weighted


# --- a query that asks when ------------------------------------------------------------------

def test_a_query_that_asks_when_favours_memories_that_say_when(client, monkeypatch):
    query = "When did Melanie paint a sunrise?"
    says = add(client, "[3 July, 2023] Melanie: I painted that lake sunrise last year!")
    silent = add(client, "[3 July, 2023] Melanie: I paint sunrises, they calm me down.")
    assert ranked(client, query)[:2] == [says, silent]
    monkeypatch.setattr(periods, "UNTIMED_WEIGHT", 1.0)
    assert ranked(client, query)[:2] == [silent, says]
    # a query that does not ask when is ranked by what the memories say
    monkeypatch.setattr(periods, "UNTIMED_WEIGHT", 0.0)
    assert ranked(client, "Did Melanie paint a sunrise?")[:2] == [silent, says]


def test_the_weights_read_the_start_of_a_long_memory(client, monkeypatch):
    """Their cost per candidate is bounded: a 50,000-character memory is read up to
    TEXT_READ characters."""
    read = []
    real = periods.tells_when
    monkeypatch.setattr(periods, "tells_when", lambda text: read.append(len(text)) or real(text))
    add(client, "Deploys need a green build. " * 1_700 + "We froze deploys on Fridays since May.")
    hits = search_for(client, "When did we freeze deploys?", search_mode="keyword")
    assert read == [search.TEXT_READ]
    # the time words past the start are not read: the memory does not say when
    assert hits[0]["score"] < periods.UNTIMED_WEIGHT + 1e-6
