"""Projects over HTTP: register, list, get, update, delete by slug; relationships and the
views over them; memory_count and the memories' project_id."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from memories_app.models import Memory
from memories_app.services import memory_create, memory_delete
from sessions_app import projects
from sessions_app.models import Project, ProjectRelationship
from tests.conftest import assert_error, real_queries
from tests.memoryrelay_site.test_openapi import (
    KNOWLEDGE_PATHS,
    PROJECT_PATHS,
    Conformance,
    properties,
)
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture
from tests.sessions_app.test_concurrency import THREADS, run_together

PROJECT_FIELDS = {"object", "id", "slug", "name", "description", "stack", "repo_url",
                  "metadata", "memory_count", "created_at", "updated_at"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def register(client, slug="my-api", **fields):
    return client.post("/v1/projects", {"slug": slug, "name": slug.title(), **fields},
                       format="json")


def test_registering_a_project_answers_201_with_every_field(client):
    response = register(client, description="Production REST API", repo_url="https://x/y",
                        stack={"languages": ["python"]}, metadata={"team": "core"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == PROJECT_FIELDS
    assert body["object"] == "project" and body["slug"] == "my-api"
    assert body["stack"] == {"languages": ["python"]} and body["metadata"] == {"team": "core"}
    assert body["memory_count"] == 0
    assert ISO.match(body["created_at"]) and ISO.match(body["updated_at"])
    assert client.get("/v1/projects/my-api").json() == body


def test_a_project_without_optional_fields_never_shows_null_objects(client):
    body = register(client).json()
    assert (body["description"], body["stack"], body["repo_url"], body["metadata"]) == (
        "", {}, "", {})


def test_registering_a_taken_slug_is_a_409_but_another_account_may_use_it(client, other_client):
    register(client)
    assert_error(register(client), 409, "conflict", "slug")
    assert register(other_client).status_code == 201
    assert Project.objects.count() == 2


@pytest.mark.parametrize(("fields", "field"), [
    ({"slug": None}, "slug"),
    ({"slug": ""}, "slug"),
    ({"slug": "My_API"}, "slug"),
    ({"slug": "-api"}, "slug"),
    ({"slug": "a" * 101}, "slug"),
    ({"slug": 7}, "slug"),
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "n" * 256}, "name"),
    ({"description": "d" * 5001}, "description"),
    ({"stack": ["python"]}, "stack"),
    ({"stack": {"x": "s" * 10_300}}, "stack"),
    ({"repo_url": "u" * 501}, "repo_url"),
    ({"metadata": {"x": "m" * 10_300}}, "metadata"),
    ({"metadata": "x"}, "metadata"),
])
def test_each_field_limit_is_a_422_naming_the_field(client, fields, field):
    body = {"slug": "ok", "name": "Ok", **fields}
    assert_error(client.post("/v1/projects", body, format="json"), 422, "validation_error",
                 field)
    assert Project.objects.count() == 0


def test_the_longest_allowed_values_are_accepted(client):
    response = register(client, slug="a" * 100, name="n" * 255, description="d" * 5000,
                        repo_url="u" * 500)
    assert response.status_code == 201, response.content


def test_projects_are_listed_newest_first_and_paged_by_cursor(client):
    for slug in ("one", "two", "three"):
        register(client, slug)
    first = client.get("/v1/projects", {"limit": 2}).json()
    assert first["object"] == "list" and first["total_count"] == 3 and first["has_more"]
    assert [p["slug"] for p in first["data"]] == ["three", "two"]
    second = client.get("/v1/projects", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [p["slug"] for p in second["data"]] == ["one"]
    assert second["has_more"] is False and second["next_cursor"] is None


def test_another_accounts_project_is_a_404_everywhere(client, other_client):
    register(other_client, "theirs")
    assert client.get("/v1/projects").json()["data"] == []
    for method, path in [("get", ""), ("put", ""), ("patch", ""), ("delete", ""),
                         ("get", "/dependencies"), ("get", "/dependents"), ("get", "/related")]:
        response = getattr(client, method)(f"/v1/projects/theirs{path}", {}, format="json")
        assert_error(response, 404, "not_found")
    response = client.post("/v1/projects/theirs/relationships",
                           {"target_project": "x", "relationship_type": "depends_on"},
                           format="json")
    assert_error(response, 404, "not_found")
    assert_error(client.get("/v1/projects/no-such-project"), 404, "not_found")


def test_put_and_patch_update_only_the_fields_given(client):
    register(client, description="first", metadata={"a": 1})
    body = client.patch("/v1/projects/my-api", {"name": "Renamed", "description": None},
                        format="json").json()
    assert body["name"] == "Renamed" and body["description"] == "first"
    body = client.put("/v1/projects/my-api", {"stack": {"db": "pg"}}, format="json").json()
    assert body["stack"] == {"db": "pg"} and body["name"] == "Renamed"
    assert body["metadata"] == {"a": 1}


def test_an_update_writes_only_the_changed_columns(client):
    register(client, description="same")
    with CaptureQueriesContext(connection) as captured:
        client.patch("/v1/projects/my-api", {"name": "New", "description": "same"},
                     format="json")
    updates = [q for q in real_queries(captured) if q.startswith("UPDATE")]
    assert len(updates) == 1 and '"name"' in updates[0] and '"description"' not in updates[0]
    with CaptureQueriesContext(connection) as captured:
        client.patch("/v1/projects/my-api", {"name": "New"}, format="json")
    assert not [q for q in real_queries(captured) if q.startswith("UPDATE")]


def test_the_slug_cannot_be_changed_by_an_update(client):
    register(client)
    assert client.put("/v1/projects/my-api", {"slug": "my-api"}, format="json").status_code == 200
    assert_error(client.put("/v1/projects/my-api", {"slug": "other"}, format="json"), 422,
                 "validation_error", "slug")
    assert_error(client.patch("/v1/projects/my-api", {"name": "n" * 256}, format="json"), 422,
                 "validation_error", "name")


def test_deleting_a_project_is_soft_frees_its_slug_and_keeps_its_memories_labels(
        client, account, agent):
    project_id = register(client).json()["id"]
    memory = memory_create(account=account, agent_ref=agent.name, content="x", project="my-api")
    response = client.delete("/v1/projects/my-api")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == project_id and body["deleted"] is True and ISO.match(body["deleted_at"])
    assert_error(client.get("/v1/projects/my-api"), 404, "not_found")
    assert_error(client.delete("/v1/projects/my-api"), 404, "not_found")
    assert Project.objects.get(pk=project_id).deleted_at is not None
    assert client.get(f"/v1/memories/{memory.id}").json()["project_id"] == "my-api"
    again = register(client).json()
    assert again["id"] != project_id and again["memory_count"] == 1


def test_memory_count_counts_exactly_the_accounts_live_memories_with_the_label(
        client, account, agent, session, other_account):
    register(client, "northrelay")
    memory_create(account=account, agent_ref=agent.name, content="in session",
                  session_id=session.id)  # inherits the session's project label
    memory_create(account=account, agent_ref=agent.name, content="labelled", project="northrelay")
    gone = memory_create(account=account, agent_ref=agent.name, content="gone",
                         project="northrelay")
    memory_delete(memory=gone)
    memory_create(account=account, agent_ref=agent.name, content="elsewhere", project="other")
    memory_create(account=other_account, agent_ref="theirs", content="x", project="northrelay")
    assert client.get("/v1/projects/northrelay").json()["memory_count"] == 2
    assert client.get("/v1/projects").json()["data"][0]["memory_count"] == 2


def test_a_memory_shows_its_registered_projects_id_and_otherwise_its_label(client, agent):
    created = client.post("/v1/memories", {"content": "retry counter", "agent_id": agent.name,
                                           "project": "northrelay"}, format="json").json()
    assert created["project_id"] == "northrelay"
    project_id = register(client, "northrelay").json()["id"]
    assert client.get(f"/v1/memories/{created['id']}").json()["project_id"] == project_id
    listed = client.get("/v1/memories").json()["data"]
    assert [m["project_id"] for m in listed] == [project_id]
    found = client.post("/v1/memories/search", {"query": "retry", "search_mode": "keyword"},
                        format="json").json()["data"]
    assert [h["memory"]["project_id"] for h in found] == [project_id]


def test_a_memory_created_with_project_id_gets_the_projects_label(client, agent):
    project_id = register(client, "northrelay").json()["id"]
    response = client.post("/v1/memories", {"content": "a", "agent_id": agent.name,
                                            "project_id": project_id}, format="json")
    assert response.status_code == 201
    assert response.json()["project_id"] == project_id
    assert Memory.objects.get(pk=response.json()["id"]).project == "northrelay"
    assert client.get("/v1/projects/northrelay").json()["memory_count"] == 1


def test_a_project_id_of_no_live_project_is_a_422(client, other_client, agent):
    theirs = register(other_client, "theirs").json()["id"]
    response = client.post("/v1/memories", {"content": "a", "agent_id": agent.name,
                                            "project_id": theirs}, format="json")
    assert_error(response, 422, "validation_error", "project_id")
    mine = register(client, "mine").json()["id"]
    response = client.post("/v1/memories", {"content": "a", "agent_id": agent.name,
                                            "project_id": mine, "project": "other"},
                           format="json")
    assert_error(response, 422, "validation_error", "project_id")
    assert Memory.objects.count() == 0


# --- Relationships ------------------------------------------------------------------------


def relate(client, source, target, kind="depends_on", **extra):
    return client.post(f"/v1/projects/{source}/relationships",
                       {"target_project": target, "relationship_type": kind, **extra},
                       format="json")


def test_a_relationship_is_created_once_and_found_again(client):
    register(client, "web")
    register(client, "api")
    first = relate(client, "web", "api", metadata={"via": "rest"})
    assert first.status_code == 201
    body = first.json()
    assert body["object"] == "project_relationship"
    assert (body["source_project"], body["relationship_type"], body["target_project"]) == (
        "web", "depends_on", "api")
    assert body["metadata"] == {"via": "rest"} and ISO.match(body["created_at"])
    again = relate(client, "web", "api")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert relate(client, "web", "api", "shares_schema").status_code == 201
    assert ProjectRelationship.objects.count() == 2


@pytest.mark.parametrize(("fields", "field"), [
    ({"target_project": "nowhere"}, "target_project"),
    ({"target_project": "web"}, "target_project"),
    ({"target_project": None}, "target_project"),
    ({"relationship_type": "likes"}, "relationship_type"),
    ({"relationship_type": None}, "relationship_type"),
    ({"metadata": {"x": "m" * 10_300}}, "metadata"),
])
def test_a_bad_relationship_is_a_422_naming_the_field(client, fields, field):
    register(client, "web")
    register(client, "api")
    body = {"target_project": "api", "relationship_type": "depends_on", **fields}
    response = client.post("/v1/projects/web/relationships", body, format="json")
    assert_error(response, 422, "validation_error", field)
    assert ProjectRelationship.objects.count() == 0


def test_a_target_deleted_while_the_relationship_is_written_is_a_422_on_it(client,
                                                                          monkeypatch):
    """The target found, then deleted before its row is held: the same answer as a target
    deleted before the call (it was a 404, as if the source project were missing)."""
    register(client, "web")
    register(client, "api")
    real = projects.project_find

    def found_then_deleted(*, account, slug):
        row = real(account=account, slug=slug)
        if slug == "api":
            assert client.delete("/v1/projects/api").status_code == 200
        return row

    monkeypatch.setattr(projects, "project_find", found_then_deleted)
    response = client.post("/v1/projects/web/relationships",
                           {"target_project": "api", "relationship_type": "depends_on"},
                           format="json")
    assert_error(response, 422, "validation_error", "target_project")
    assert ProjectRelationship.objects.count() == 0


def test_an_edge_made_by_a_concurrent_call_and_deleted_before_it_is_read_is_made_again(
        client, monkeypatch):
    """A concurrent call made the edge first (this one's insert hit the constraint), and
    it was deleted before this one read it back: the answer was built from nothing (a
    500). Now the edge is made again and answered."""
    register(client, "web")
    register(client, "api")
    first = relate(client, "web", "api", metadata={"via": "rest"}).json()
    real, calls = projects._live_edge, []

    def raced(edge):
        calls.append(edge)
        if len(calls) == 1:
            return None  # read before the concurrent call's edge was committed
        if len(calls) == 2:  # ... which is deleted before it is read back
            ProjectRelationship.objects.filter(pk=first["id"]).update(deleted_at=timezone.now())
        return real(edge)

    monkeypatch.setattr(projects, "_live_edge", raced)
    response = relate(client, "web", "api")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] != first["id"] and body["metadata"] == {}
    assert (body["source_project"], body["target_project"]) == ("web", "api")
    assert ProjectRelationship.objects.live().get().pk == uuid.UUID(body["id"])


def test_a_relationship_cannot_target_another_accounts_project(client, other_client):
    register(client, "web")
    register(other_client, "api")
    assert_error(relate(client, "web", "api"), 422, "validation_error", "target_project")


def edges(client, slug, view):
    return client.get(f"/v1/projects/{slug}/{view}").json()


def test_dependencies_dependents_and_related_show_each_edge_from_its_side(client):
    for slug in ("web", "api", "db", "docs"):
        register(client, slug)
    relate(client, "web", "api")
    relate(client, "api", "db", "api_consumer")
    relate(client, "api", "docs", "shares_schema")
    relate(client, "web", "api", "forked_from")
    deps = edges(client, "api", "dependencies")
    assert deps["project"] == "api" and deps["total_count"] == 1
    assert [(e["project"]["slug"], e["relationship_type"], e["direction"])
            for e in deps["data"]] == [("db", "api_consumer", "outgoing")]
    dependents = edges(client, "api", "dependents")["data"]
    assert [(e["project"]["slug"], e["relationship_type"], e["direction"])
            for e in dependents] == [("web", "depends_on", "incoming")]
    related = edges(client, "api", "related")["data"]
    assert sorted((e["project"]["slug"], e["relationship_type"], e["direction"])
                  for e in related) == [
        ("db", "api_consumer", "outgoing"), ("docs", "shares_schema", "outgoing"),
        ("web", "depends_on", "incoming"), ("web", "forked_from", "incoming")]
    assert set(related[0]["project"]) == PROJECT_FIELDS


def test_a_deleted_projects_relationships_are_hidden(client):
    for slug in ("web", "api"):
        register(client, slug)
    relate(client, "web", "api")
    client.delete("/v1/projects/api")
    assert edges(client, "web", "dependencies")["data"] == []
    register(client, "api")
    assert edges(client, "web", "dependencies")["data"] == []
    assert relate(client, "web", "api").status_code == 201


def test_the_related_views_are_limited_and_say_so(client):
    register(client, "hub")
    for n in range(3):
        register(client, f"leaf-{n}")
        relate(client, f"leaf-{n}", "hub")
    page = client.get("/v1/projects/hub/dependents", {"limit": 2}).json()
    assert len(page["data"]) == 2 and page["total_count"] == 3 and page["has_more"] is True
    assert_error(client.get("/v1/projects/hub/dependents", {"limit": 0}), 422,
                 "validation_error", "limit")


@pytest.mark.parametrize("view", ["dependents", "related"])
def test_the_related_views_page_on_by_offset_and_by_cursor_like_every_list(client, view):
    register(client, "hub")
    for n in range(5):
        register(client, f"leaf-{n}")
        relate(client, f"leaf-{n}", "hub")
    whole = client.get(f"/v1/projects/hub/{view}").json()
    assert whole["total_count"] == 5 and whole["has_more"] is False
    assert whole["next_cursor"] is None
    order = [e["relationship_id"] for e in whole["data"]]
    by_offset = [e["relationship_id"] for offset in (0, 2, 4) for e in client.get(
        f"/v1/projects/hub/{view}", {"limit": 2, "offset": offset}).json()["data"]]
    assert by_offset == order
    by_cursor, params = [], {"limit": 2}
    while True:
        page = client.get(f"/v1/projects/hub/{view}", params).json()
        assert page["total_count"] == 5
        by_cursor += [e["relationship_id"] for e in page["data"]]
        if not page["has_more"]:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert by_cursor == order
    assert_error(client.get(f"/v1/projects/hub/{view}", {"cursor": "nope"}), 422,
                 "validation_error", "cursor")


# --- Query counts -------------------------------------------------------------------------


def queries_of(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200, response.content
    return len(real_queries(captured))


def test_list_and_detail_cost_the_same_queries_for_few_rows_as_for_many(
        client, account, agent):
    register(client, "hub")
    register(client, "p0")
    relate(client, "p0", "hub")
    memory_create(account=account, agent_ref=agent.name, content="x", project="p0")
    few = [queries_of(lambda: client.get("/v1/projects")),
           queries_of(lambda: client.get("/v1/projects/hub")),
           queries_of(lambda: client.get("/v1/projects/hub/related")),
           queries_of(lambda: client.get("/v1/memories"))]
    for n in range(1, 8):
        register(client, f"p{n}")
        relate(client, f"p{n}", "hub")
        memory_create(account=account, agent_ref=agent.name, content="x", project=f"p{n}")
    many = [queries_of(lambda: client.get("/v1/projects")),
            queries_of(lambda: client.get("/v1/projects/hub")),
            queries_of(lambda: client.get("/v1/projects/hub/related")),
            queries_of(lambda: client.get("/v1/memories"))]
    assert few == many
    # key; count + page | the project | the project, count + page, the related projects;
    # memories: count + page (project ids joined in) + the page's links to entities
    assert many == [3, 2, 5, 4]


# --- Races --------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_one_slug_end_with_one_project_and_409s(account, api_key):
    from tests.conftest import make_client

    def call(i):
        return make_client(api_key).post("/v1/projects", {"slug": "raced", "name": f"n{i}"},
                                         format="json").status_code

    statuses = run_together(THREADS, call)
    assert sorted(statuses) == [201] + [409] * (THREADS - 1)
    assert Project.objects.filter(slug="raced").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_relationship_calls_end_with_one_edge(account):
    web = projects.project_create(account=account, slug="web", name="Web")
    projects.project_create(account=account, slug="api", name="Api")
    results = run_together(THREADS, lambda i: projects.project_relate(
        project=web, target_slug="api", relationship_type="depends_on"))
    assert len({r.pk for r, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert ProjectRelationship.objects.count() == 1


# --- Admin --------------------------------------------------------------------------------


def test_the_admin_lists_searches_filters_and_restores_projects(admin_client, account):
    project = projects.project_create(account=account, slug="web", name="Web frontend")
    projects.project_delete(project=project)
    url = reverse("admin:sessions_app_project_changelist")
    assert "Web frontend" in admin_client.get(url, {"q": "frontend"}).content.decode()
    assert "Web frontend" not in admin_client.get(url, {"deleted": "no"}).content.decode()
    admin_client.post(url, {"action": "restore_selected", "_selected_action": [project.pk]})
    assert Project.objects.by_slug("web").exists()
    relationships = reverse("admin:sessions_app_projectrelationship_changelist")
    assert admin_client.get(relationships, {"q": "web"}).status_code == 200


def test_restoring_a_project_whose_slug_was_taken_again_is_refused(account):
    first = projects.project_create(account=account, slug="web", name="Web")
    projects.project_delete(project=first)
    projects.project_create(account=account, slug="web", name="Web again")
    with pytest.raises(projects.Conflict):
        projects.project_restore(project=first)


# --- OpenAPI ------------------------------------------------------------------------------


def test_every_project_response_matches_its_documented_schema(schema, client, other_client):
    check = Conformance(schema)
    body = check(register(client, "web"), "/v1/projects", "post")
    assert properties(schema, "Project") == set(body)
    check(register(client, "api"), "/v1/projects", "post")
    check(register(client, "web"), "/v1/projects", "post")  # 409
    check(register(client, "Bad Slug"), "/v1/projects", "post")  # 422
    check(client.get("/v1/projects"), "/v1/projects", "get")
    check(client.get("/v1/projects/web"), "/v1/projects/{slug}", "get")
    check(other_client.get("/v1/projects/web"), "/v1/projects/{slug}", "get")  # 404
    check(client.put("/v1/projects/web", {"name": "W"}, format="json"),
          "/v1/projects/{slug}", "put")
    check(client.patch("/v1/projects/web", {"stack": {}}, format="json"),
          "/v1/projects/{slug}", "patch")
    for _ in range(2):  # 201, then 200
        check(relate(client, "web", "api"), "/v1/projects/{slug}/relationships", "post")
    check(relate(client, "web", "nowhere"), "/v1/projects/{slug}/relationships", "post")
    for view in ("dependencies", "dependents", "related"):
        check(client.get(f"/v1/projects/web/{view}"), f"/v1/projects/{{slug}}/{view}", "get")
    check(client.delete("/v1/projects/web"), "/v1/projects/{slug}", "delete")
    documented = {(p, m) for p, ops in schema["paths"].items() for m in ops
                  if p.startswith(PROJECT_PATHS) and not p.startswith(KNOWLEDGE_PATHS)}
    assert documented == {(p, m) for p, m, _ in check.seen}


def test_the_purge_removes_projects_and_relationships_deleted_long_enough_ago(account):
    from datetime import timedelta

    from django.utils import timezone

    from memories_app.services import purge_deleted

    web = projects.project_create(account=account, slug="web", name="Web")
    api = projects.project_create(account=account, slug="api", name="Api")
    old_edge, _ = projects.project_relate(project=web, target_slug="api",
                                          relationship_type="depends_on")
    projects.project_relate(project=web, target_slug="api", relationship_type="shares_infra")
    long_ago = timezone.now() - timedelta(days=40)
    projects.relationship_delete(relationship=old_edge, at=long_ago)
    projects.project_delete(project=api, at=long_ago)
    report = purge_deleted(older_than_days=30, dry_run=True)
    # The deleted edge, and the live one that goes with its purged target: every row counted.
    assert (report.project_relationships, report.projects) == (2, 1)
    assert Project.objects.count() == 2
    purge_deleted(older_than_days=30)
    assert list(Project.objects.values_list("slug", flat=True)) == ["web"]
    assert ProjectRelationship.objects.count() == 0  # the live one went with its target


def test_memories_are_listed_and_searched_by_project_label(client, agent):
    for content, project in [("retry counter in api", "my-api"), ("retry counter in web", "web"),
                             ("retry counter nowhere", None)]:
        client.post("/v1/memories", {"content": content, "agent_id": agent.name,
                                     "project": project}, format="json")
    register(client, "my-api")
    listed = client.get("/v1/memories", {"project": "my-api"}).json()["data"]
    assert [m["content"] for m in listed] == ["retry counter in api"]
    found = client.post("/v1/memories/search", {"query": "retry counter", "project": "web",
                                                "search_mode": "keyword"},
                        format="json").json()["data"]
    assert [h["memory"]["content"] for h in found] == ["retry counter in web"]


def test_a_slug_with_a_nul_is_a_404(client):
    assert_error(client.get("/v1/projects/a%00b"), 404, "not_found")
    assert_error(client.get("/v1/projects/a%00b/related"), 404, "not_found")


def test_a_restore_racing_a_registration_of_its_slug_is_refused_by_the_constraint(
        account, monkeypatch):
    """The check-then-write window, forced: the check misses the live project."""
    from sessions_app.models import ProjectQuerySet

    first = projects.project_create(account=account, slug="web", name="Web")
    projects.project_delete(project=first)
    projects.project_create(account=account, slug="web", name="Web again")
    monkeypatch.setattr(ProjectQuerySet, "by_slug", lambda self, slug: self.none())
    with pytest.raises(projects.Conflict):
        projects.project_restore(project=first)
    assert Project.objects.get(pk=first.pk).deleted_at is not None


def _routes(patterns=None, prefix=""):
    """Every route's full pattern, the prefixes of its includes joined."""
    from django.urls import URLResolver, get_resolver

    for entry in get_resolver().url_patterns if patterns is None else patterns:
        here = prefix + str(entry.pattern).lstrip("^").rstrip("$")
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, here)
        else:
            yield here


def test_a_slug_the_api_serves_as_a_path_is_refused(client):
    """projects/impact-analysis and projects/shared-patterns win over projects/{slug}: a
    project with such a slug could never be read, changed or deleted. Every literal path
    under projects/ is reserved (a new one fails here until it is)."""
    literal = {m.group(1) for route in _routes()
               if (m := re.fullmatch(r"v1/projects/([a-z0-9][a-z0-9-]*)/\?", route))}
    assert literal == projects.RESERVED_SLUGS == {"impact-analysis", "shared-patterns"}
    for slug in sorted(literal):
        assert_error(register(client, slug), 422, "validation_error", "slug")
    assert not Project.objects.exists()
    assert register(client, "impact-analysis-v2").status_code == 201
