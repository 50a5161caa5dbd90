"""POST /v1/memories/search, dedup on create, /batch and /context (API.md §5), with the
real all-MiniLM-L6-v2 model, on whichever database the suite runs on."""

from __future__ import annotations

import pytest

from memories_app import search as search_module
from memories_app.embeddings import get_provider
from memories_app.models import Memory
from tests.conftest import assert_error, real_queries, requires_model

pytestmark = requires_model

MEMORIES = {
    "peanut": "The user is allergic to peanuts and carries an EpiPen.",
    "friday": "Production deploys are frozen on Fridays after 2pm.",
    "reset": "Mobile clients see ERR_CONN_RESET when the load balancer idle timeout is short.",
    "refused": "Local dev shows ERR_CONN_REFUSED until the API container has booted.",
    "dark": "Alex likes the editor in a dark colour scheme.",
}


@pytest.fixture
def stored(client):
    ids = {}
    for key, content in MEMORIES.items():
        body = client.post("/v1/memories", {"content": content, "agent_id": "my-assistant"},
                           format="json").json()
        ids[key] = body["id"]
    return ids


def search(client, query, **fields):
    response = client.post("/v1/memories/search", {"query": query, **fields}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def found(body):
    return [hit["memory"]["id"] for hit in body["data"]]


def test_search_answers_search_results_with_full_memories_and_scores(client, stored):
    body = search(client, "peanut allergy")
    assert body["object"] == "search_results" and body["query"] == "peanut allergy"
    hit = body["data"][0]
    assert hit["memory"]["id"] == stored["peanut"]
    assert hit["memory"] == client.get(f"/v1/memories/{stored['peanut']}").json()
    assert 0.0 <= hit["score"] <= 1.0


def test_created_memories_carry_the_local_models_vector(client, stored):
    memory = Memory.objects.get(pk=stored["peanut"])
    assert memory.embedding_model == "all-MiniLM-L6-v2" and memory.embedding_dimension == 384
    assert client.get("/v1/health").json()["services"]["embeddings"] == (
        "all-MiniLM-L6-v2 (local)")


def test_semantic_search_finds_a_paraphrase_that_keywords_miss(client, stored):
    query = "which food could make them seriously ill"
    assert found(search(client, query, search_mode="semantic"))[0] == stored["peanut"]
    assert stored["peanut"] not in found(search(client, query, search_mode="keyword"))
    assert found(search(client, query))[0] == stored["peanut"]


def test_keyword_search_finds_the_exact_error_code_over_a_near_twin(client, stored):
    body = search(client, "ERR_CONN_RESET", search_mode="keyword")
    assert found(body) == [stored["reset"]]
    assert body["data"][0]["score"] == 1.0
    assert found(search(client, "ERR_CONN_RESET"))[0] == stored["reset"]


def test_min_score_compares_the_score_as_shown(db, monkeypatch):
    """A score is shown to six decimals; passing a hit's shown score back as min_score keeps
    that hit (0.6962268 shows as 0.696227, which it is under)."""
    hits = [search_module.Hit(item=None, score=0.6962268), search_module.Hit(item=None,
                                                                             score=0.0972)]
    monkeypatch.setattr(search_module, "_ranked", lambda queryset, query, vector: hits)
    query = search_module.Query(text="q", mode="keyword", min_score=0.696227)
    assert search_module.run(None, query) == hits[:1]
    assert search_module.shown(hits[0].score) == 0.696227


def test_every_mode_scores_within_0_and_1_and_min_score_cuts_off(client, stored):
    for mode in ("hybrid", "semantic", "keyword"):
        body = search(client, "deploys on Friday", search_mode=mode, limit=100)
        scores = [hit["score"] for hit in body["data"]]
        assert scores and all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)
        cut = search(client, "deploys on Friday", search_mode=mode, min_score=scores[0])
        assert found(cut) == found(body)[:1]
        assert found(search(client, "deploys on Friday", search_mode=mode,
                            threshold=scores[0])) == found(body)[:1]


def test_limit_bounds_the_results_and_large_limits_are_clamped(client, stored):
    assert len(search(client, "user", limit=2, search_mode="semantic")["data"]) == 2
    clamped = search(client, "user", limit=1000, search_mode="semantic")["data"]
    assert 2 < len(clamped) <= 5  # memories with no relevance at all (score 0) are not hits
    assert all(hit["score"] > 0 for hit in clamped)


def test_search_filters_narrow_by_agent_session_tier_importance_and_metadata(client, session):
    def add(content, **fields):
        body = {"content": content, "agent_id": "my-assistant", **fields}
        return client.post("/v1/memories", body, format="json").json()["id"]

    in_session = add("retry counter fixed in the queue worker", session_id=str(session.id))
    other_agent = add("retry counter fixed in the mailer", agent_id="reviewer")
    hot = add("retry counter must be capped at five", importance=0.9)
    tagged = add("retry counter metrics dashboard", metadata={"env": "prod", "team": "core",
                                                              "7": "seven", "0": [1, 2]})
    query = "retry counter"
    assert found(search(client, query, session_id=str(session.id))) == [in_session]
    assert found(search(client, query, agent_id="reviewer")) == [other_agent]
    reviewer_id = client.get("/v1/agents/reviewer").json()["id"]
    assert found(search(client, query, agent_id=reviewer_id)) == [other_agent]
    assert found(search(client, query, agent_id="nobody")) == []
    assert found(search(client, query, tier="hot")) == [hot]
    assert found(search(client, query, min_importance=0.8)) == [hot]
    assert found(search(client, query, metadata_filter={"env": "prod"})) == [tagged]
    assert found(search(client, query, metadata_filter={"env": "dev"})) == []
    # a key made of digits is a key, not an array index
    assert found(search(client, query, metadata_filter={"7": "seven"})) == [tagged]
    assert found(search(client, query, metadata_filter={"0": [1, 2], "env": "prod"})) == [tagged]
    assert found(search(client, query, metadata_filter={"7": "eight"})) == []
    assert found(search(client, query, metadata_filter={"team": None})) == []
    assert len(found(search(client, query))) == 4


def test_a_metadata_filter_matches_the_json_type_as_well_as_the_value(client):
    """On SQLite ``{"flag": "true"}`` matched a stored boolean (and ``{"flag": true}`` a
    stored string "true"), where PostgreSQL tells them apart."""
    def add(metadata):
        body = {"content": "release checklist", "agent_id": "a", "metadata": metadata}
        return client.post("/v1/memories", body, format="json").json()["id"]

    typed = add({"flag": True, "off": False, "none": None, "n": 1, "f": 1.5})
    texts = add({"flag": "true", "off": "false", "none": "null", "n": "1", "f": "1.5"})
    query = "release checklist"
    for key, value, text in [("flag", True, "true"), ("off", False, "false"),
                             ("none", None, "null"), ("n", 1, "1"), ("n", 1.0, "1"),
                             ("f", 1.5, "1.5")]:
        assert found(search(client, query, metadata_filter={key: value})) == [typed], key
        assert found(search(client, query, metadata_filter={key: text})) == [texts], key
    assert found(search(client, query, metadata_filter={"missing": None})) == []


def test_a_session_given_in_the_query_string_scopes_the_search(client, session):
    """OpenClaw's session recall: ``?q=..&scope=session&session_id=..`` with a body that
    holds the query but not the session. The body's own session_id wins."""
    inside = client.post("/v1/memories", {"content": "deploy window is friday", "agent_id": "a",
                                          "session_id": str(session.id)}, format="json")
    client.post("/v1/memories", {"content": "deploy window moved", "agent_id": "a"},
                format="json")
    url = f"/v1/memories/search?q=deploy&limit=5&scope=session&session_id={session.id}"
    body = client.post(url, {"query": "deploy window", "limit": 5}, format="json").json()
    assert found(body) == [inside.json()["id"]]
    both = client.post(url, {"query": "deploy window", "session_id": None}, format="json")
    assert len(found(both.json())) == 2
    assert_error(client.post("/v1/memories/search?session_id=nope", {"query": "deploy"},
                             format="json"), 422, "validation_error", "session_id")


def test_confidential_memories_need_include_confidential(client):
    made = client.post("/v1/memories", {"content": "The vault password rotates monthly",
                                        "agent_id": "a", "visibility": "confidential"},
                       format="json").json()
    assert found(search(client, "vault password")) == []
    assert found(search(client, "vault password", include_confidential=True)) == [made["id"]]


def test_only_the_accounts_live_memories_are_candidates(client, other_client, stored):
    client.delete(f"/v1/memories/{stored['dark']}")
    for mode in ("hybrid", "semantic", "keyword"):
        assert stored["dark"] not in found(search(client, "dark colour scheme", search_mode=mode))
        assert found(search(other_client, "dark colour scheme", search_mode=mode)) == []
        assert found(search(other_client, "ERR_CONN_RESET", search_mode=mode)) == []


@pytest.mark.parametrize(("fields", "field"), [
    ({"query": ""}, "query"), ({"query": "   "}, "query"), ({"query": 5}, "query"),
    ({"query": "x", "limit": 0}, "limit"), ({"query": "x", "limit": "many"}, "limit"),
    ({"query": "x", "min_score": 1.5}, "min_score"), ({"query": "x", "threshold": -1},
                                                       "threshold"),
    ({"query": "x", "search_mode": "fuzzy"}, "search_mode"),
    ({"query": "x", "metadata_filter": [1]}, "metadata_filter"),
    ({"query": "x", "session_id": "nope"}, "session_id"),
    ({"query": "x", "tier": "boiling"}, "tier"),
    ({"query": "x", "min_importance": 3}, "min_importance"),
    ({}, "query"),
])
def test_bad_search_input_is_a_422_naming_the_field(client, fields, field):
    response = client.post("/v1/memories/search", fields, format="json")
    assert_error(response, 422, "validation_error", field)


def test_without_an_embedding_provider_keyword_search_still_works(client, stored, settings):
    settings.MEMORYRELAY_EMBEDDINGS = "none"
    get_provider.cache_clear()
    try:
        assert found(search(client, "ERR_CONN_RESET"))[0] == stored["reset"]
        response = client.post("/v1/memories/search", {"query": "x", "search_mode": "semantic"},
                               format="json")
        assert_error(response, 422, "validation_error", "search_mode")
        assert client.get("/v1/health").json()["services"]["embeddings"] == (
            "none (keyword search only)")
    finally:
        get_provider.cache_clear()


# --- dedup --------------------------------------------------------------------------------


def test_without_embeddings_dedup_matches_a_copy_differing_in_case_and_spacing(client,
                                                                              settings):
    settings.MEMORYRELAY_EMBEDDINGS = "none"
    get_provider.cache_clear()
    try:
        first = client.post("/v1/memories", {"content": "Deploys  freeze on\tFridays",
                                             "agent_id": "a"}, format="json").json()["id"]
        for copy in ("deploys freeze on fridays", "Deploys freeze  on Fridays\n"):
            again = client.post("/v1/memories", {"content": copy, "agent_id": "a",
                                                 "deduplicate": True}, format="json")
            assert again.status_code == 200 and again.json()["id"] == first, copy
        other = client.post("/v1/memories", {"content": "Deploys freeze on Mondays",
                                             "agent_id": "a", "deduplicate": True},
                            format="json")
        assert other.status_code == 201
    finally:
        get_provider.cache_clear()


def test_deduplicate_returns_the_existing_near_identical_memory(client):
    first = client.post("/v1/memories", {"content": "User prefers dark mode.", "agent_id": "a"},
                        format="json").json()
    again = client.post("/v1/memories", {"content": "user prefers dark mode", "agent_id": "a",
                                         "deduplicate": True}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"] and again.json()["is_duplicate"] is True
    assert Memory.objects.count() == 1


def test_deduplicate_stores_different_content_and_other_agents_copies(client):
    client.post("/v1/memories", {"content": "User prefers dark mode.", "agent_id": "a"},
                format="json")
    other = client.post("/v1/memories", {"content": "User prefers dark mode.", "agent_id": "b",
                                         "deduplicate": True}, format="json")
    different = client.post("/v1/memories", {"content": "Deploys are frozen on Friday",
                                             "agent_id": "a", "deduplicate": True},
                            format="json")
    assert other.status_code == 201 and other.json()["is_duplicate"] is False
    assert different.status_code == 201
    assert Memory.objects.count() == 3


def test_dedup_threshold_decides_what_counts_as_a_duplicate(client):
    client.post("/v1/memories", {"content": "The deploy failed because the migration timed out",
                                 "agent_id": "a"}, format="json")
    paraphrase = {"content": "Migration timeout broke the deploy", "agent_id": "a",
                  "deduplicate": True}
    strict = client.post("/v1/memories", {**paraphrase, "dedup_threshold": 0.99}, format="json")
    assert strict.status_code == 201
    loose = client.post("/v1/memories", {**paraphrase, "dedup_threshold": 0.5}, format="json")
    assert loose.status_code == 200 and loose.json()["is_duplicate"] is True
    assert_error(client.post("/v1/memories", {**paraphrase, "dedup_threshold": 1.5},
                             format="json"), 422, "validation_error", "dedup_threshold")


@requires_model
@pytest.mark.parametrize(("stored", "correction"), [
    ("The API rate limit is 100 requests per minute", "The API rate limit is 1000 requests "
     "per minute"),
    ("Release 1.29 fixed the login bug", "Release 1.30 fixed the login bug"),
    ("The standup is on Tuesday at 3pm", "The standup is on Wednesday at 3pm"),
    ("The staging database is at 10.0.0.12", "The staging database is at 10.0.0.13"),
    ("Deploys happen on Fridays", "Deploys never happen on Fridays"),
])
def test_deduplicate_keeps_a_correction_of_a_number_a_day_or_a_negation(client, stored,
                                                                       correction):
    """Near-identical to the model (0.95 and more), another fact: deduplicate answered the
    old memory, and the correction was lost (an MCP or OpenClaw client saw success)."""
    first = client.post("/v1/memories", {"content": stored, "agent_id": "a"},
                        format="json").json()["id"]
    again = client.post("/v1/memories", {"content": correction, "agent_id": "a",
                                         "deduplicate": True}, format="json")
    assert again.status_code == 201 and again.json()["is_duplicate"] is False
    assert again.json()["content"] == correction and again.json()["id"] != first
    same = client.post("/v1/memories", {"content": stored + ".", "agent_id": "a",
                                        "deduplicate": True}, format="json")
    assert same.status_code == 200 and same.json()["id"] == first  # a copy still is one


def test_deduplicate_never_takes_a_memory_of_another_visibility(client):
    """A private write answered with a confidential memory vanished from every default
    read (search, context); a confidential one answered with a private memory left the
    secret in context bundles."""
    secret = client.post("/v1/memories", {"content": "The vault code is kept by Dana",
                                          "agent_id": "a", "visibility": "confidential"},
                         format="json").json()["id"]
    shared = client.post("/v1/memories", {"content": "The vault code is kept by Dana",
                                          "agent_id": "a", "deduplicate": True},
                         format="json")
    assert shared.status_code == 201 and shared.json()["id"] != secret
    again = client.post("/v1/memories", {"content": "The vault code is kept by Dana",
                                         "agent_id": "a", "visibility": "confidential",
                                         "deduplicate": True}, format="json")
    assert again.status_code == 200 and again.json()["id"] == secret


# --- batch --------------------------------------------------------------------------------


def test_batch_stores_good_items_and_fails_bad_ones_alone(client, session):
    items = [
        {"content": "first fact", "agent_id": "a", "session_id": str(session.id)},
        {"content": "", "agent_id": "a"},
        {"content": "third fact", "agent_id": "b", "importance": 0.9},
        "not an object",
        {"content": "no agent given"},
        None,  # fails alone too (it refused the whole batch while a string failed alone)
    ]
    response = client.post("/v1/memories/batch", {"memories": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["total"], body["succeeded"], body["failed"],
            body["skipped"]) == (False, 6, 2, 4, 0)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["success", "failed", "success", "failed", "failed", "failed"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4, 5]
    assert "content" in body["results"][1]["error"]
    assert body["results"][4]["error"].startswith("agent_id")
    stored = Memory.objects.get(pk=body["results"][0]["id"])
    assert stored.session_id == session.id and stored.embedding is not None
    assert body["results"][0]["memory_id"] == body["results"][0]["id"]
    assert Memory.objects.get(pk=body["results"][2]["id"]).tier == "hot"
    assert Memory.objects.count() == 2


def test_batch_takes_a_default_agent_and_skips_duplicates(client):
    client.post("/v1/memories", {"content": "User prefers dark mode.", "agent_id": "a"},
                format="json")
    body = client.post("/v1/memories/batch", {"agent_id": "a", "memories": [
        {"content": "user prefers dark mode", "deduplicate": True},
        {"content": "Standup is at 9:30"},
    ]}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["skipped", "success"]
    assert body["success"] is True and body["skipped"] == 1
    assert Memory.objects.count() == 2


@pytest.mark.parametrize("payload", [{}, {"memories": []}, {"memories": "x"},
                                     {"memories": [{"content": "x", "agent_id": "a"}] * 101}])
def test_a_batch_that_is_not_1_to_100_items_is_a_422(client, payload):
    assert_error(client.post("/v1/memories/batch", payload, format="json"), 422,
                 "validation_error", "memories")
    assert Memory.objects.count() == 0


# --- context ------------------------------------------------------------------------------


def test_context_returns_the_hits_as_one_text_block(client, stored):
    response = client.post("/v1/memories/context",
                           {"query": "what is the user allergic to", "threshold": 0.3},
                           format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["context"].startswith("- The user is allergic to peanuts")
    assert body["memories_used"] == len(body["context"].splitlines())
    assert body["total_chars"] == len(body["context"])


def test_context_stays_within_max_tokens(client, stored):
    body = client.post("/v1/memories/context", {"query": "user", "threshold": 0.0,
                                                "max_tokens": 20}, format="json").json()
    assert 0 < body["total_chars"] <= 80 and body["memories_used"] >= 1


def test_context_with_nothing_above_the_threshold_is_empty(client, stored):
    body = client.post("/v1/memories/context", {"query": "quantum chromodynamics lecture",
                                                "threshold": 0.99}, format="json").json()
    assert body == {"context": "", "memories_used": 0, "total_chars": 0}


def test_bad_context_input_is_a_422(client):
    assert_error(client.post("/v1/memories/context", {"query": "x", "max_tokens": 0},
                             format="json"), 422, "validation_error", "max_tokens")


def test_context_cuts_a_single_over_long_hit_instead_of_returning_nothing(client, stored):
    body = client.post("/v1/memories/context", {"query": "peanut allergy", "threshold": 0.2,
                                                "max_tokens": 5}, format="json").json()
    assert body["memories_used"] == 1 and body["total_chars"] <= 20
    assert body["context"].startswith("- The user") and body["context"].endswith("…")


def test_a_batch_item_naming_another_accounts_session_fails_alone(client, other_client):
    theirs = other_client.post("/v1/sessions", {}, format="json").json()["id"]
    body = client.post("/v1/memories/batch", {"agent_id": "a", "memories": [
        {"content": "mine", "session_id": theirs}, {"content": "also mine"}]},
        format="json").json()
    assert [r["status"] for r in body["results"]] == ["failed", "success"]
    assert body["results"][0]["error"] == "Session not found"
    assert other_client.get(f"/v1/sessions/{theirs}").json()["memory_count"] == 0


def test_a_memory_matching_every_term_is_found_past_each_terms_match_cap(
        client, monkeypatch):
    from memories_app import search as search_module

    monkeypatch.setattr(search_module, "TERM_MATCH_CAP", 3)

    def one_term_notes(start):
        for n in range(start, start + 4):
            client.post("/v1/memories", {"content": f"Pelican note {n}", "agent_id": "a"},
                        format="json")
            client.post("/v1/memories", {"content": f"Zeppelin note {n}", "agent_id": "a"},
                        format="json")

    # Older and newer one-term notes around it: neither term's capped list reaches it,
    # whichever end the index starts from.
    one_term_notes(0)
    both = client.post("/v1/memories", {"content": "The pelican rode a zeppelin.",
                                        "agent_id": "a"}, format="json").json()["id"]
    one_term_notes(4)
    body = search(client, "pelican zeppelin", search_mode="keyword")
    assert found(body)[0] == both and body["data"][0]["score"] == 1.0


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_search_query_count_does_not_grow_with_hits_or_memories(client, max_queries, mode):
    """Memories with a project label too: each hit's project id comes with its row (on
    SQLite the nearest rows were read again without it, one project query per hit)."""
    client.post("/v1/projects", {"slug": "billing", "name": "Billing"}, format="json")

    def count(limit):
        with max_queries(100) as captured:
            search(client, "retry counter deploy", limit=limit, search_mode=mode)
        return len(real_queries(captured))

    def write(n):
        client.post("/v1/memories", {"content": f"Deploy {n}: the retry counter reset.",
                                     "agent_id": f"agent-{n}",
                                     "project": ("billing", "ops", None)[n % 3]},
                    format="json")

    for n in range(3):
        write(n)
    few = count(limit=2)
    for n in range(3, 20):
        write(n)
    assert count(limit=20) == few
    with max_queries(8):  # key, nearest (+2 SET LOCAL on PG), the keyword statement (+1 on
        # PG), keyword-only hits
        body = search(client, "retry counter deploy", limit=20, search_mode=mode)
    labelled = [hit["memory"]["project_id"] for hit in body["data"]]
    assert None in labelled and any(p and p != "ops" for p in labelled) and "ops" in labelled


def test_a_longer_questions_partial_match_counts_as_is_and_a_single_word_is_squared(client):
    answer = client.post("/v1/memories", {"content": "Caroline joined a support group.",
                                          "agent_id": "a"}, format="json").json()["id"]
    aside = client.post("/v1/memories", {"content": "Tuesday meeting notes.",
                                         "agent_id": "a"}, format="json").json()["id"]
    # Six informative terms, each in at most one memory, so every term weighs the same.
    body = search(client, "Did Caroline go to the LGBTQ support group meeting?",
                  search_mode="keyword")
    scores = {hit["memory"]["id"]: hit["score"] for hit in body["data"]}
    assert scores[answer] == pytest.approx(3 / 6, abs=1e-6)  # three of six terms: the share as is
    assert scores[aside] == pytest.approx((1 / 6) ** 2, abs=1e-6)  # one word in common: squared
    short = search(client, "support group schedule", search_mode="keyword")
    # a short query's partial match: squared
    assert short["data"][0]["score"] == pytest.approx((2 / 3) ** 2, abs=1e-6)


def test_pronouns_are_not_query_terms_on_either_database(client):
    from memories_app.search import query_terms

    # PostgreSQL's english configuration drops them from the index; SQLite's FTS5 keeps
    # them, where "his" would match half of a conversation.
    assert query_terms("What did his sister tell her about him?") == ["sister", "tell"]
    client.post("/v1/memories", {"content": "He lost his keys.", "agent_id": "a"},
                format="json")
    assert found(search(client, "his her", search_mode="keyword")) == []


def test_a_long_term_is_matched_by_its_first_words(client):
    """SQLite's text index reads a term of many words as a phrase, at a cost of its length
    times its words' matches: "a.a.a..." of 5,000 words took 79 s. A long URL still finds
    its memory, on both databases."""
    from memories_app.vectors import PHRASE_WORDS, _fts_term

    assert _fts_term(".".join(["a"] * 5000)) == '"' + " ".join(["a"] * PHRASE_WORDS) + '"'
    assert _fts_term("error_code-42") == '"error_code-42"'  # short terms as they are
    url = "https://example.com/" + "/".join(f"segment{i}" for i in range(30))
    stored = client.post("/v1/memories", {"content": f"The runbook lives at {url}",
                                          "agent_id": "a"}, format="json").json()["id"]
    assert found(search(client, url, search_mode="keyword")) == [stored]
    assert search(client, ".".join(["a"] * 5000), search_mode="keyword")["data"] == []
