"""The memories matching every term of a query, found without asking the text index again
when a term's list is complete (vectors.keyword_matches), checked against a brute-force
reading of a small data set with tiny caps, on both databases. "swim" is written in any of
its forms (swim, swam, swum: memories_app/wordforms.py) and asked as "swim"."""

from __future__ import annotations

import itertools
import random

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from memories_app import vectors
from memories_app.models import Memory
from memories_app.wordforms import forms
from tests.conftest import real_queries

# Each word's share of the memories: common, middling and rare terms.
WORDS = {"pelican": 0.7, "zeppelin": 0.5, "swim": 0.3, "tundra": 0.12, "saffron": 0.05}


@pytest.fixture
def corpus(account, agent, other_account):
    """40 live memories with seeded word sets, plus a deleted one and another account's
    one holding every word (never found). Returns each live memory's pk and words."""
    from sessions_app.services import agent_get_or_create

    rng, forms_rng = random.Random(7), random.Random(11)
    texts = []
    for n in range(40):
        words = [w for w, share in WORDS.items() if rng.random() < share]
        written = [forms_rng.choice(forms(w)) for w in words]
        texts.append((words, " ".join(written + ["note", str(n)])))
    rows = Memory.objects.bulk_create(
        [Memory(account=account, agent=agent, content=text) for _, text in texts])
    everything = " ".join(WORDS)
    Memory.objects.create(account=account, agent=agent, content=everything).delete()
    theirs = agent_get_or_create(account=other_account, name="b")[0]
    Memory.objects.create(account=other_account, agent=theirs, content=everything)
    return {row.pk: set(words) for row, (words, _) in zip(rows, texts, strict=True)}


@pytest.mark.parametrize("analyzed", [False, True])
def test_every_term_matches_agree_with_a_brute_force_reading(account, corpus, analyzed):
    if analyzed:
        if connection.vendor != "postgresql":
            pytest.skip("the planner's statistics of common terms: PostgreSQL")
        # With statistics, the terms in most memories are checked on the rows instead of
        # through the index when every term's list is capped: same rows.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE memories_app_memory")
            cursor.execute("SELECT most_common_elems::text FROM pg_stats WHERE tablename = "
                           "'memories_app_memory' AND attname = 'search_vector'")
            assert "pelican" in cursor.fetchone()[0]
    mine = Memory.objects.live().for_account(account)
    truth = {w: {pk for pk, words in corpus.items() if w in words} for w in WORDS}
    paths = set()
    for k in (1, 2, 3, 5):
        for terms in itertools.combinations(WORDS, k):
            terms = list(terms)
            for cap in (2, 3, 6, 15, 100):
                with transaction.atomic(), CaptureQueriesContext(connection) as captured:
                    found, every = vectors.keyword_matches(mine, terms, cap, pool=4)
                statements = real_queries(captured)
                if connection.vendor == "postgresql":  # sequential scans from page 0
                    assert statements.pop(0) == "SET LOCAL synchronize_seqscans = off"
                assert len(statements) == 1
                capped = [len(truth[t]) >= cap for t in terms]
                for term, ids in zip(terms, found, strict=True):
                    assert len(ids) == len(set(ids)) == min(cap, len(truth[term]))
                    assert set(ids) <= truth[term]
                every_truth = set.intersection(*(truth[t] for t in terms))
                if k == 1 or not any(capped):
                    path = "none needed"
                    assert every == []
                elif all(capped):
                    path = "index AND"
                    assert set(every) <= every_truth
                    assert len(every) == len(set(every)) == min(4, len(every_truth))
                else:
                    path = "complete lists"
                    assert sorted(every) == sorted(every_truth)
                paths.add((path, bool(every)))
    # The data set reaches every path, with and without rows matching every term.
    assert paths == {("none needed", False), ("index AND", True), ("index AND", False),
                     ("complete lists", True), ("complete lists", False)}


def test_no_terms_look_up_nothing(account):
    assert vectors.keyword_matches(Memory.objects.all(), [], 3, 4) == ([], [])


def test_a_memory_matching_every_term_scores_1_past_a_common_terms_cap(client, monkeypatch):
    from memories_app import search as search_module

    monkeypatch.setattr(search_module, "TERM_MATCH_CAP", 3)

    def post(content):
        return client.post("/v1/memories", {"content": content, "agent_id": "a"},
                           format="json").json()["id"]

    for n in range(5):
        post(f"Pelican note {n}")
    rare = post("A quokka note")
    both = post("The pelican met a quokka.")
    for n in range(5, 10):
        post(f"Pelican note {n}")
    # "pelican" stops at its cap of 3 (which of the 11 is the index's order), "quokka" is
    # complete (2): the memory matching both comes from the complete list, checked on the
    # row itself, and scores 1.
    body = client.post("/v1/memories/search", {"query": "pelican quokka",
                                               "search_mode": "keyword"}, format="json").json()
    ids = [hit["memory"]["id"] for hit in body["data"]]
    assert ids[0] == both and body["data"][0]["score"] == 1.0
    assert rare in ids and body["data"][ids.index(rare)]["score"] < 1.0


def test_postgres_a_terms_share_of_the_rows_sums_its_forms(account, corpus):
    """With statistics, a term's share of the rows (what decides whether the rows matching
    every term are looked up through the index) is the sum of its forms' shares: "swim" is
    written as swim, swam or swum, so no one lexeme has its share; a term none of whose
    forms is common has none (a share of 1 made a rare term's search at 1M memories take
    650 ms instead of 14)."""
    if connection.vendor != "postgresql":
        pytest.skip("the planner's statistics of common terms: PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memories_app_memory")
        cursor.execute("SELECT most_common_elems::text::text[], most_common_elem_freqs FROM "
                       "pg_stats WHERE tablename = 'memories_app_memory' AND attname = "
                       "'search_vector'")
        lexemes, freqs = cursor.fetchone()
        known = dict(zip(lexemes, freqs, strict=False))
        mine = Memory.objects.live().for_account(account)
        ctes, params, _, _ = vectors._pg_every_sql(mine, ["swim", "pelican", "zyzzyva"], 3,
                                                   4, "0")
        cursor.execute("WITH _t (lookup, id) AS (SELECT 0, NULL::uuid WHERE false), "
                       + ", ".join(ctes) + " SELECT q::text, share FROM _r", params)
        shares = {query: share for query, share in cursor.fetchall()}
    swim = next(share for query, share in shares.items() if "swam" in query)
    assert swim == pytest.approx(sum(known.get(form, 0) for form in forms("swim")), abs=1e-6)
    assert swim > max(known.get(form, 0) for form in forms("swim"))
    assert shares["'pelican'"] == pytest.approx(known["pelican"], abs=1e-6)
    # a term in no memory, so among no common lexemes, is rare: its lookup takes the index
    assert "zyzzyva" not in known and shares["'zyzzyva'"] == 0


def test_postgres_forms_read_as_one_lexeme_count_once(account, agent):
    """"try", "tried" and "tries" are one lexeme on PostgreSQL ('tri'): the term's share of
    the rows is that lexeme's once. Summed for each form it was three times as much (a term
    in 30% of the rows read as in 90%, so a rarer-looking term went to the index first)."""
    if connection.vendor != "postgresql":
        pytest.skip("the planner's statistics of common terms: PostgreSQL")
    Memory.objects.bulk_create(
        [Memory(account=account, agent=agent, content=f"tried the pelican recipe {n}"
                if n % 10 < 3 else f"pelican note {n}") for n in range(40)])
    assert {"try", "tried", "tries"} <= set(forms("try"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memories_app_memory")
        cursor.execute("SELECT most_common_elems::text::text[], most_common_elem_freqs FROM "
                       "pg_stats WHERE tablename = 'memories_app_memory' AND attname = "
                       "'search_vector'")
        known = dict(zip(*cursor.fetchone(), strict=False))
        mine = Memory.objects.live().for_account(account)
        ctes, params, _, _ = vectors._pg_every_sql(mine, ["try", "pelican"], 3, 4, "0")
        cursor.execute("WITH _t (lookup, id) AS (SELECT 0, NULL::uuid WHERE false), "
                       + ", ".join(ctes) + " SELECT q::text, share FROM _r", params)
        shares = dict(cursor.fetchall())
    assert known["tri"] == pytest.approx(0.3, abs=1e-6)
    share = next(share for query, share in shares.items() if "tri" in query)
    assert share == pytest.approx(known["tri"], abs=1e-6)
