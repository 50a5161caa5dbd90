"""Patterns (API.md §8): create, get, list, search, adopt, suggest, delete."""

from __future__ import annotations

import pytest

from knowledge_app.models import Pattern, PatternAdoption
from memoryrelay_site.serializers import METADATA_MAX_BYTES
from sessions_app.projects import project_delete
from tests.conftest import assert_error, make_client
from tests.knowledge_app.conftest import adopt, create_pattern, project, relate

PATTERN_FIELDS = {"object", "id", "title", "description", "scope", "category", "tags",
                  "example_code", "source_project_id", "source_project_slug", "metadata",
                  "adoption_count", "created_at", "updated_at"}


def test_creating_a_pattern_answers_201_with_every_field(client, account):
    api = project(account, "my-api")
    body = create_pattern(client, category="error-handling", tags=["api", "errors"],
                          example_code="raise Problem(status=404)", scope="project",
                          source_project="my-api", metadata={"owner": "core"})
    assert set(body) == PATTERN_FIELDS
    assert body["object"] == "pattern" and body["scope"] == "project"
    assert body["source_project_id"] == str(api.pk) and body["source_project_slug"] == "my-api"
    assert body["adoption_count"] == 0 and body["created_at"].endswith("Z")
    assert client.get(f"/v1/patterns/{body['id']}").json() == body


def test_a_pattern_from_an_unregistered_project_keeps_the_slug_as_a_label(client):
    body = create_pattern(client, source_project="not-registered")
    assert body["source_project_id"] is None and body["source_project_slug"] == "not-registered"
    assert body["scope"] == "global" and body["tags"] == [] and body["metadata"] == {}


@pytest.mark.parametrize("registered_again", [False, True])
def test_a_pattern_never_links_a_project_deleted_while_it_is_stored(client, account,
                                                                    monkeypatch,
                                                                    registered_again):
    """The project is found, then deleted (and perhaps registered anew) before the pattern
    is written: the pattern links the live project with the slug, or none."""
    from knowledge_app import services

    old = project(account, "my-api")
    find = services.project_find
    calls = []

    def find_then_lose(**kwargs):
        found = find(**kwargs)
        if not calls:
            project_delete(project=old)
            if registered_again:
                project(account, "my-api")
        calls.append(found)
        return found

    monkeypatch.setattr(services, "project_find", find_then_lose)
    body = create_pattern(client, source_project="my-api")
    live = Pattern.objects.get(pk=body["id"]).source_project
    assert live is None or live.deleted_at is None
    assert (live is not None) == registered_again and live != old
    assert body["source_project_slug"] == "my-api"


@pytest.mark.parametrize("body, field", [
    ({"title": ""}, "title"), ({"title": "x" * 501}, "title"),
    ({"description": " "}, "description"), ({"description": "x" * 50_001}, "description"),
    ({"scope": "team"}, "scope"), ({"category": "c" * 101}, "category"),
    ({"tags": [str(i) for i in range(21)]}, "tags"), ({"tags": ["x" * 101]}, "tags.0"),
    ({"example_code": "x" * 50_001}, "example_code"),
    ({"source_project": "s" * 101}, "source_project"),
    ({"metadata": {"k": "x" * METADATA_MAX_BYTES}}, "metadata"),
])
def test_every_field_limit_is_a_422_naming_the_field(client, body, field):
    full = {"title": "t", "description": "d", **body}
    assert_error(client.post("/v1/patterns", full, format="json"), 422, "validation_error",
                 field)
    assert not Pattern.objects.exists()


def test_another_accounts_pattern_is_a_404_everywhere(client, other_client, other_account):
    pattern = create_pattern(client)
    project(other_account, "theirs")
    assert_error(other_client.get(f"/v1/patterns/{pattern['id']}"), 404, "not_found")
    response = other_client.post(f"/v1/patterns/{pattern['id']}/adopt", {"project": "theirs"},
                                 format="json")
    assert_error(response, 404, "not_found")
    assert_error(other_client.delete(f"/v1/patterns/{pattern['id']}"), 404, "not_found")
    assert other_client.get("/v1/patterns").json()["total_count"] == 0
    assert not PatternAdoption.objects.exists()


def test_list_is_the_envelope_with_filters_and_cursors(client):
    a = create_pattern(client, category="auth", tags=["jwt"])
    b = create_pattern(client, category="errors", scope="project")
    c = create_pattern(client, category="errors", tags=["http", "jwt"])
    page = client.get("/v1/patterns", {"limit": 2}).json()
    assert [p["id"] for p in page["data"]] == [c["id"], b["id"]] and page["has_more"]
    rest = client.get("/v1/patterns", {"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [p["id"] for p in rest["data"]] == [a["id"]]

    def ids(**params):
        return {p["id"] for p in client.get("/v1/patterns", params).json()["data"]}

    assert ids(category="errors") == {b["id"], c["id"]}
    assert ids(scope="project") == {b["id"]} and ids(tags="jwt") == {a["id"], c["id"]}


# --- adopt --------------------------------------------------------------------------------


def test_adopting_is_idempotent_and_counts_adopting_projects(client, account):
    project(account, "api")
    project(account, "web")
    pattern = create_pattern(client)
    assert adopt(client, pattern, "api")["adoption_count"] == 1
    assert adopt(client, pattern, "api")["adoption_count"] == 1
    body = adopt(client, pattern, "web")
    assert body["adoption_count"] == 2 and set(body) == PATTERN_FIELDS
    assert client.get(f"/v1/patterns/{pattern['id']}").json()["adoption_count"] == 2
    assert PatternAdoption.objects.count() == 2


def test_a_deleted_project_no_longer_counts_as_an_adopter(client, account):
    api = project(account, "api")
    project(account, "web")
    pattern = create_pattern(client)
    adopt(client, pattern, "api")
    adopt(client, pattern, "web")
    project_delete(project=api)
    assert client.get(f"/v1/patterns/{pattern['id']}").json()["adoption_count"] == 1


@pytest.mark.parametrize("body, field", [({}, "project"), ({"project": "nope"}, "project"),
                                         ({"project": 7}, "project")])
def test_adopting_for_no_registered_project_is_a_422(client, body, field):
    pattern = create_pattern(client)
    response = client.post(f"/v1/patterns/{pattern['id']}/adopt", body, format="json")
    assert_error(response, 422, "validation_error", field)


def test_a_project_of_another_account_cannot_adopt(client, other_account):
    project(other_account, "theirs")
    pattern = create_pattern(client)
    response = client.post(f"/v1/patterns/{pattern['id']}/adopt", {"project": "theirs"},
                           format="json")
    assert_error(response, 422, "validation_error", "project")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_adoptions_leave_one_adoption_and_an_exact_count(account, api_key):
    from tests.sessions_app.test_concurrency import THREADS, run_together

    project(account, "api")
    project(account, "web")
    pattern = create_pattern(make_client(api_key))

    def call(i):
        response = make_client(api_key).post(f"/v1/patterns/{pattern['id']}/adopt",
                                             {"project": "api" if i % 2 else "web"},
                                             format="json")
        return response.status_code

    assert run_together(THREADS, call) == [200] * THREADS
    assert PatternAdoption.objects.count() == 2
    body = make_client(api_key).get(f"/v1/patterns/{pattern['id']}").json()
    assert body["adoption_count"] == 2


def test_the_database_refuses_a_second_adoption_of_one_pattern_by_one_project(client, account):
    from django.db import IntegrityError, transaction

    api = project(account, "api")
    pattern = Pattern.objects.get(pk=create_pattern(client)["id"])
    PatternAdoption.objects.create(account=account, pattern=pattern, project=api)
    with pytest.raises(IntegrityError), transaction.atomic():
        PatternAdoption.objects.create(account=account, pattern=pattern, project=api)


# --- search -------------------------------------------------------------------------------


def test_search_finds_a_pattern_by_meaning_with_scores_in_range(client):
    errors = create_pattern(client)
    create_pattern(client, title="Feature flags for risky releases",
                   description="Ship dark, turn on gradually with a flag service.")
    body = client.get("/v1/patterns/search", {"query": "how should API failures be reported"}
                      ).json()
    assert set(body) == {"data", "query", "total"} and body["total"] == len(body["data"])
    assert body["data"][0]["pattern"]["id"] == errors["id"]
    assert set(body["data"][0]["pattern"]) == PATTERN_FIELDS
    assert all(0 <= hit["score"] <= 1 for hit in body["data"])


def test_search_with_a_project_shows_global_patterns_and_the_ones_it_adopted(client, account):
    project(account, "api")
    glob = create_pattern(client, title="Retry with jitter", description="Backoff retries.")
    adopted = create_pattern(client, title="Retry budget", description="Cap retries.",
                             scope="project")
    create_pattern(client, title="Retry queue", description="Dead letters.", scope="project")
    adopt(client, adopted, "api")
    params = {"query": "retry", "threshold": 0}
    everything = client.get("/v1/patterns/search", params).json()
    assert everything["total"] == 3
    scoped = client.get("/v1/patterns/search", {**params, "project": "api"}).json()
    assert {h["pattern"]["id"] for h in scoped["data"]} == {glob["id"], adopted["id"]}
    assert {h["pattern"]["id"]: h["pattern"]["adoption_count"] for h in scoped["data"]} == {
        glob["id"]: 0, adopted["id"]: 1}
    unknown = client.get("/v1/patterns/search", {**params, "project": "unregistered"}).json()
    assert {h["pattern"]["id"] for h in unknown["data"]} == {glob["id"]}


def test_search_narrows_by_category_and_leaves_out_other_accounts(client, other_client):
    mine = create_pattern(client, title="Log as JSON", description="Structured logs.",
                          category="logging")
    create_pattern(client, title="Log levels", description="Structured logs.", category="ops")
    create_pattern(other_client, title="Log as JSON", description="Structured logs.",
                   category="logging")
    hits = client.get("/v1/patterns/search", {"query": "structured logs", "threshold": 0,
                                              "category": "logging"}).json()["data"]
    assert [h["pattern"]["id"] for h in hits] == [mine["id"]]


@pytest.mark.parametrize("params, field", [({}, "query"), ({"query": "q", "limit": 0}, "limit"),
                                           ({"query": "q", "threshold": -1}, "threshold")])
def test_search_parameters_out_of_range_are_422(client, params, field):
    assert_error(client.get("/v1/patterns/search", params), 422, "validation_error", field)


# --- suggest ------------------------------------------------------------------------------


def test_suggest_ranks_related_projects_adoptions_first_then_popularity(client, account):
    api, _web, _cli, ops = (project(account, s) for s in ("api", "web", "cli", "ops"))
    relate(api, "web")  # api depends on web: related either way
    relate(ops, "api", "shares_infra")
    mine, from_web, popular, from_ops, unadopted = (
        create_pattern(client, title=t) for t in ("mine", "web", "popular", "ops", "new"))
    adopt(client, mine, "api")
    adopt(client, from_web, "web")
    adopt(client, popular, "cli")
    adopt(client, popular, "ops")
    adopt(client, popular, "web")  # popular: 3 adopters, 2 of them related
    adopt(client, from_ops, "ops")
    body = client.get("/v1/patterns/suggest", {"project": "api"}).json()
    assert set(body) == {"data", "project", "total"} and body["project"] == "api"
    order = [p["title"] for p in body["data"]]
    assert order[0] == "popular"  # two related adopters
    assert set(order[1:3]) == {"web", "ops"} and order[3:] == ["new"]
    assert "mine" not in order and body["total"] == 4
    assert set(body["data"][0]) == PATTERN_FIELDS and body["data"][0]["adoption_count"] == 3
    limited = client.get("/v1/patterns/suggest", {"project": "api", "limit": 1}).json()
    assert [p["id"] for p in limited["data"]] == [popular["id"]]
    assert unadopted["id"] == body["data"][-1]["id"]


def test_suggest_for_an_unknown_project_is_a_404(client, other_account):
    project(other_account, "theirs")
    assert_error(client.get("/v1/patterns/suggest", {"project": "theirs"}), 404, "not_found")
    assert_error(client.get("/v1/patterns/suggest"), 422, "validation_error", "project")


# --- delete, query counts -----------------------------------------------------------------


def test_deleting_a_pattern_hides_it_from_reads_and_searches(client, account):
    project(account, "api")
    pattern = create_pattern(client)
    adopt(client, pattern, "api")
    assert client.delete(f"/v1/patterns/{pattern['id']}").json()["deleted"] is True
    assert_error(client.get(f"/v1/patterns/{pattern['id']}"), 404, "not_found")
    assert client.get("/v1/patterns/search", {"query": "RFC 7807", "threshold": 0}
                      ).json()["total"] == 0
    assert client.get("/v1/patterns/suggest", {"project": "api"}).json()["total"] == 0


@pytest.mark.parametrize("rows", [2, 12])
def test_list_detail_search_and_suggest_take_a_constant_number_of_queries(
        client, account, max_queries, rows):
    api = project(account, "api")
    project(account, "web")
    relate(api, "web")
    ids = []
    for i in range(rows):
        pattern = create_pattern(client, title=f"Idempotency key rule {i}", tags=["http"])
        adopt(client, pattern, "web")
        ids.append(pattern["id"])
    with max_queries(4):
        assert client.get("/v1/patterns", {"tags": "http"}).status_code == 200
    with max_queries(3):
        assert client.get(f"/v1/patterns/{ids[0]}").status_code == 200
    with max_queries(9):
        body = client.get("/v1/patterns/search", {"query": "idempotency key", "limit": 20,
                                                  "threshold": 0, "project": "web"}).json()
    assert body["total"] == rows
    with max_queries(6):
        assert client.get("/v1/patterns/suggest", {"project": "api", "limit": 50}
                          ).json()["total"] == rows
