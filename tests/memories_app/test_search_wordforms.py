"""A query term matches a memory holding another form of it that the stemmers miss
("go" / "went", "child" / "children", and on SQLite "deploys" / "deployment":
memories_app/wordforms.py), on both databases."""

from __future__ import annotations

import pytest
from django.db import connection

from memories_app import search, wordforms
from memories_app.models import Memory
from memories_app.vectors import keyword_ids


def add(client, content):
    response = client.post("/v1/memories", {"content": content, "agent_id": "ops"},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def keyword_hits(client, query):
    response = client.post("/v1/memories/search",
                           {"query": query, "search_mode": "keyword", "limit": 5},
                           format="json")
    assert response.status_code == 200, response.content
    return [(hit["memory"]["id"], hit["score"]) for hit in response.json()["data"]]


@pytest.mark.parametrize(("query", "answer", "decoy"), [
    # base form asked, past told
    ("When did we go live with billing?", "We went live with billing on Monday.",
     "Billing is live in two regions."),
    # past asked, base told
    ("Who went to the Berlin offsite?", "Priya and Tom will go to the Berlin offsite.",
     "The Berlin offsite agenda is in the wiki."),
    # a participle
    ("Which vendor did we choose for payroll?", "Acme was chosen as the payroll vendor.",
     "The payroll vendor contract ends in May."),
    # an irregular plural
    ("Which children joined the coding camp?", "Every child in class joined the coding camp.",
     "The mentors joined the coding camp."),
    # a past the Porter stemmer keeps apart from its base
    ("Who will try the beta build?", "Sam tried the beta build yesterday.",
     "The beta build crashes on start."),
])
def test_a_term_matches_its_other_forms(client, query, answer, decoy):
    """The answer holds every term of the query, one in another form; the decoy, stored
    later (newer first among equals), all but that one: the answer ranks first, with the
    whole of the query matched."""
    answer_id = add(client, answer)
    decoy_id = add(client, decoy)
    hits = keyword_hits(client, query)
    assert [pk for pk, _ in hits] == [answer_id, decoy_id]
    assert hits[0][1] == pytest.approx(1.0)
    assert hits[1][1] < hits[0][1]


@pytest.mark.parametrize(("query", "content"), [
    ("deployment", "Deploys happen on Tuesdays"),
    ("deploys", "The deployment happens on Tuesdays"),
    ("deploy", "Deployments happen on Tuesdays"),
    ("employer", "Sam is employed at Acme"),
    ("employed", "Acme is a fair employer"),
    ("enjoy", "The hike was enjoyable"),
    ("enjoyment", "We enjoyed the hike"),
    ("annoying", "The noise is an annoyance"),
    ("betrayal", "She felt betrayed"),
    ("portrayed", "A portrayal of the city"),
    ("joy", "A joyful day"),
    ("playful", "The kids played outside"),
    ("focus", "She focused on her painting"),
    ("seriously", "It was a serious injury"),
    ("serious", "She took it seriously"),
    ("nervous", "Her nervousness showed"),
    ("status", "The statuses of the orders"),
    ("trying", "Sam tried the beta build"),
    ("crying", "The baby cried all night"),
    ("died", "Her grandfather will die"),
])
def test_a_word_the_porter_stemmer_splits_matches_its_other_forms(client, query, content):
    """SQLite's Porter stemmer reads "deploys" as "deploi" and "deployment" as "deploy",
    "focus" as "focu" and "focused" as "focus", "trying" as "try" and "tried" as "tri";
    PostgreSQL reads each pair as one stem: either finds the other on both databases."""
    memory_id = add(client, content)
    add(client, "Releases happen on Mondays")
    assert [pk for pk, _ in keyword_hits(client, query)] == [memory_id]


def test_derived_forms_of_a_us_word_join_only_its_family():
    """A word in -us has its plural as a form, an adjective in -ous its -ness noun, the
    adverb and noun their adjective; not where the stemmer joins them already (a measure
    of 2 or more before -ous: "dangerous" and "dangerously" are both "danger"), nor an
    inflection of a word that may end in -use ("caused", "used")."""
    assert wordforms.forms("focus") == ("focus", "focuses")
    assert wordforms.forms("serious") == ("serious", "seriousness")
    assert wordforms.forms("seriously") == ("seriously", "serious")
    assert wordforms.forms("nervousness") == ("nervousness", "nervous")
    for alone in ("dangerous", "dangerously", "focused", "caused", "used", "boss", "us"):
        assert wordforms.forms(alone) == (alone,), alone


def test_derived_forms_of_a_y_word_join_only_its_family():
    """The other form is the base of a derived word and a derived word of the base or its
    inflections; no suffix the stemmer keeps ("player", "payment": "pay" is too short for
    it), no name that SQLite's stemmer reads as a short base ("keyes", "hayes": "key",
    "hay"), no y after a consonant."""
    assert wordforms.forms("deployment") == ("deployment", "deploy")
    assert wordforms.forms("deploying") == ("deploying", "deployment")
    assert wordforms.forms("employers") == ("employers", "employ")
    assert wordforms.forms("joys") == ("joys", "joyful")
    for alone in ("player", "payment", "layer", "loyal", "key", "keyes", "hay", "hayes",
                  "carry", "carrier", "employee", "billing"):
        assert wordforms.forms(alone) == (alone,), alone
    assert wordforms.forms("paid") == ("paid", "pay")  # a group's forms stay as they were


def test_a_form_that_is_mostly_another_word_is_no_form(client):
    """"ground" is no form of "grind": a query about the ground finds no grinding."""
    assert wordforms.forms("ground") == ("ground",)
    add(client, "We grind the coffee beans every morning.")
    assert keyword_hits(client, "ground") == []


def test_forms_of_a_term_go_both_ways_once(db):
    """Every word of a group has the whole group as its forms, itself first; no word is in
    two groups, nor a stop word (those are never terms)."""
    seen = set()
    for group in wordforms.GROUPS:
        words = group.split()
        assert len(words) == len(set(words)) >= 2
        for word in words:
            assert word not in seen, word
            seen.add(word)
            assert word not in search.STOPWORDS
            found = wordforms.forms(word)
            assert found[0] == word and set(found) == set(words)
    assert wordforms.forms("billing") == ("billing",)
    if connection.vendor == "postgresql":  # nor one of its text search's stop words
        with connection.cursor() as cursor:
            cursor.execute("SELECT w FROM unnest(%s::text[]) AS w WHERE "
                           "numnode(plainto_tsquery('english', w)) = 0", [sorted(seen)])
            assert cursor.fetchall() == []


def test_every_term_in_any_of_its_forms(account, agent):
    """A lookup of several terms needs each of them, in any of its forms."""
    both = Memory.objects.create(account=account, agent=agent,
                                 content="The children went to the museum")
    Memory.objects.create(account=account, agent=agent, content="The children stayed home")
    Memory.objects.create(account=account, agent=agent, content="The adults went to the museum")
    mine = Memory.objects.live().for_account(account)
    assert keyword_ids(mine, ["child", "go"], 10) == [both.pk]
    assert keyword_ids(mine, ["children", "gone", "museum"], 10) == [both.pk]
