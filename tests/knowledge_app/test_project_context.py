"""The project views composed from several apps (API.md §6): context, impact analysis,
shared patterns."""

from __future__ import annotations

import pytest

from knowledge_app import projects as project_views
from memories_app.services import memory_create
from sessions_app.models import Project
from sessions_app.projects import project_delete
from tests.conftest import assert_error
from tests.knowledge_app.conftest import adopt, create_pattern, project, record, relate


def remember(account, slug: str, content: str, importance: float = 0.9, **fields):
    return memory_create(account=account, agent_ref="coder", content=content, project=slug,
                         importance=importance, **fields)


# --- context ------------------------------------------------------------------------------


def test_context_has_hot_memories_active_decisions_adopted_patterns_and_markdown(
        client, account):
    api = project(account, "billing-api")
    remember(account, "billing-api", "Invoices are immutable once sent.")
    remember(account, "billing-api", "Warm detail nobody needs.", importance=0.5)
    remember(account, "other", "Hot but another project.")
    remember(account, "billing-api", "Secret key rotation schedule.", visibility="confidential")
    active = record(client, title="Use Stripe for payments", rationale="PCI scope.",
                    project_slug="billing-api")
    old = record(client, title="Use PayPal", rationale="Legacy.", project_slug="billing-api")
    client.post(f"/v1/decisions/{old['id']}/supersede",
                {"title": "Drop PayPal", "rationale": "Fees."}, format="json")
    pattern = create_pattern(client, title="Money as integer cents", category="data")
    adopt(client, pattern, "billing-api")
    create_pattern(client, title="Not adopted")

    response = client.get("/v1/projects/billing-api/context")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"object", "project", "hot_memories", "active_decisions",
                         "adopted_patterns", "recent_decisions", "active_patterns", "context",
                         "total_chars", "truncated"}
    # OpenClaw's agent-start hook reads the decisions and patterns under these names
    assert body["recent_decisions"] == body["active_decisions"]
    assert body["active_patterns"] == body["adopted_patterns"]
    assert body["project"]["id"] == str(api.pk) and body["project"]["memory_count"] == 3
    assert [m["content"] for m in body["hot_memories"]] == ["Invoices are immutable once sent."]
    assert body["hot_memories"][0]["project_id"] == str(api.pk)
    titles = [d["title"] for d in body["active_decisions"]]
    assert active["title"] in titles and "Drop PayPal" in titles and "Use PayPal" not in titles
    assert [p["id"] for p in body["adopted_patterns"]] == [pattern["id"]]
    text = body["context"]
    assert text.startswith("# Project: Billing-Api (`billing-api`)")
    for part in ("## Key memories", "Invoices are immutable", "## Active decisions",
                 "**Use Stripe for payments**: PCI scope.", "## Adopted patterns",
                 "**Money as integer cents** (data)"):
        assert part in text
    assert "Secret key" not in text and "Warm detail" not in text
    assert body["total_chars"] == len(text) and body["truncated"] is False


def test_context_stays_within_its_size_bound(client, account, monkeypatch):
    project(account, "big")
    for i in range(25):
        remember(account, "big", f"Memory {i} " + "word " * 300)
    body = client.get("/v1/projects/big/context").json()
    assert len(body["hot_memories"]) == project_views.CONTEXT_ITEMS
    assert len(body["context"]) <= project_views.CONTEXT_MAX_CHARS
    assert all(len(line) <= project_views.ITEM_CHARS + 2 for line in
               body["context"].splitlines() if line.startswith("- "))
    monkeypatch.setattr(project_views, "CONTEXT_MAX_CHARS", 2_000)
    small = client.get("/v1/projects/big/context").json()
    assert len(small["context"]) <= 2_000 and small["truncated"] is True


def test_context_of_an_unknown_or_another_accounts_project_is_a_404(client, other_account):
    project(other_account, "theirs")
    assert_error(client.get("/v1/projects/theirs/context"), 404, "not_found")
    assert_error(client.get("/v1/projects/nope/context"), 404, "not_found")


def test_an_empty_project_has_a_context_with_only_its_heading(client, account):
    project(account, "empty")
    body = client.get("/v1/projects/empty/context").json()
    assert body["hot_memories"] == body["active_decisions"] == body["adopted_patterns"] == []
    assert body["context"] == "# Project: Empty (`empty`)"


@pytest.mark.parametrize("rows", [2, 12])
def test_context_takes_a_constant_number_of_queries(client, account, max_queries, rows):
    api = project(account, "api")
    for i in range(rows):
        remember(account, "api", f"Hot fact {i}")
        record(client, title=f"Decision {i}", project_slug="api")
        adopt(client, create_pattern(client, title=f"Pattern {i}"), "api")
    assert api
    with max_queries(6):
        body = client.get("/v1/projects/api/context").json()
    assert len(body["hot_memories"]) == len(body["active_decisions"]) == rows


# --- impact analysis ------------------------------------------------------------------------


@pytest.fixture
def chain(account):
    """core <- api <- web <- core (a cycle), and mobile api_consumer of api; docs only
    shares infra with core (not a dependent)."""
    core, api, web, mobile, docs = (project(account, s) for s in
                                    ("core", "api", "web", "mobile", "docs"))
    relate(api, "core")
    relate(web, "api")
    relate(core, "web")  # a cycle back to the root
    relate(mobile, "api", "api_consumer")
    relate(docs, "core", "shares_infra")
    return core


def test_impact_walks_dependents_transitively_through_a_cycle(client, account, chain):
    record(client, title="Web caches user sessions in Redis",
           rationale="Session tokens issued by the core auth service are cached.",
           project_slug="web")
    record(client, title="Web uses server-side rendering", rationale="SEO.",
           project_slug="web")
    remember(account, "mobile", "Mobile app refreshes the auth token every hour.",
             importance=0.5)
    response = client.post("/v1/projects/impact-analysis", {
        "project": "core", "change_description": "Change the auth token format of the core "
                                                 "authentication service"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"object", "project", "change_description", "affected_projects",
                         "total"}
    affected = {a["project"]["slug"]: a for a in body["affected_projects"]}
    assert set(affected) == {"api", "web", "mobile"} and body["total"] == 3
    assert affected["api"]["depth"] == 1 and affected["web"]["depth"] == 2
    assert affected["mobile"]["relationship_types"] == ["api_consumer"]
    web_titles = [h["decision"]["title"] for h in affected["web"]["decisions"]]
    assert web_titles[0] == "Web caches user sessions in Redis"
    assert [h["memory"]["content"] for h in affected["mobile"]["memories"]] == [
        "Mobile app refreshes the auth token every hour."]
    assert all(0 <= h["score"] <= 1 for a in body["affected_projects"]
               for h in a["decisions"] + a["memories"])


def test_impact_of_a_project_nothing_depends_on_is_empty(client, account, chain):
    body = client.post("/v1/projects/impact-analysis",
                       {"project": "docs", "change_description": "x"}, format="json").json()
    assert body["affected_projects"] == [] and body["total"] == 0


def test_a_deleted_dependent_is_not_walked(client, account, chain):
    from sessions_app.models import Project

    project_delete(project=Project.objects.get(slug="api"))
    body = client.post("/v1/projects/impact-analysis",
                       {"project": "core", "change_description": "x"}, format="json").json()
    assert body["affected_projects"] == []


@pytest.mark.parametrize("body, status, field", [
    ({"change_description": "x"}, 422, "project"),
    ({"project": "core"}, 422, "change_description"),
    ({"project": "core", "change_description": " "}, 422, "change_description"),
    ({"project": "core", "change_description": "x" * 10_001}, 422, "change_description"),
    ({"project": "nope", "change_description": "x"}, 404, None),
])
def test_impact_input_errors(client, account, chain, body, status, field):
    response = client.post("/v1/projects/impact-analysis", body, format="json")
    assert_error(response, status, "validation_error" if status == 422 else "not_found", field)


def test_impact_does_not_see_another_accounts_projects(other_client, chain):
    response = other_client.post("/v1/projects/impact-analysis",
                                 {"project": "core", "change_description": "x"}, format="json")
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("rows", [1, 8])
def test_impact_queries_do_not_grow_with_the_rows_searched(client, account, chain, rows,
                                                           max_queries):
    for i in range(rows):
        record(client, title=f"Token cache rule {i}", rationale="Auth tokens.",
               project_slug="web")
        remember(account, "api", f"Token fact {i}")
    with max_queries(40):  # 3 projects x 2 searches of one term, plus the walk
        body = client.post("/v1/projects/impact-analysis",
                           {"project": "core", "change_description": "token"},
                           format="json").json()
    assert body["total"] == 3


def test_impact_costs_a_fixed_number_of_queries_per_affected_project(client, account):
    """Each affected project is searched on its own (its decisions, its memories), so the
    statements grow with the projects the walk reaches, by the same number each, and never
    with their rows; the walk stops at IMPACT_MAX_PROJECTS."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.conftest import real_queries

    project(account, "core")

    def cost() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.post("/v1/projects/impact-analysis",
                                   {"project": "core", "change_description": "token cache"},
                                   format="json")
        assert response.status_code == 200, response.content
        return len(real_queries(captured))

    costs = []
    for n in range(1, 5):
        downstream = project(account, f"svc-{n}")
        relate(downstream, "core")
        record(client, title=f"Token cache rule {n}", rationale="Auth tokens.",
               project_slug=f"svc-{n}")
        remember(account, f"svc-{n}", f"Token cache fact {n}")
        cost()  # once beforehand: once-a-minute bookkeeping stays out
        costs.append(cost())
    steps = {later - earlier for earlier, later in zip(costs, costs[1:], strict=False)}
    assert len(steps) == 1, costs  # the same for every project added
    per_project = steps.pop()
    assert per_project <= (13 if connection.vendor == "postgresql" else 8), costs
    bound = costs[0] + per_project * (project_views.IMPACT_MAX_PROJECTS - 1)
    assert bound <= 350  # the most one analysis can cost


# --- shared patterns ----------------------------------------------------------------------


def test_shared_patterns_are_those_both_projects_adopted(client, account, other_account):
    for slug in ("api", "web", "cli"):
        project(account, slug)
    both, only_api, other = (create_pattern(client, title=t) for t in ("both", "api", "cli"))
    adopt(client, both, "api")
    adopt(client, both, "web")
    adopt(client, only_api, "api")
    adopt(client, other, "cli")
    body = client.get("/v1/projects/shared-patterns", {"a": "api", "b": "web"}).json()
    assert set(body) == {"a", "b", "data", "total"}
    assert [p["id"] for p in body["data"]] == [both["id"]] and body["total"] == 1
    assert body["data"][0]["adoption_count"] == 2
    assert client.get("/v1/projects/shared-patterns", {"a": "api", "b": "cli"}
                      ).json()["total"] == 0
    project(other_account, "theirs")
    assert_error(client.get("/v1/projects/shared-patterns", {"a": "api", "b": "theirs"}),
                 404, "not_found")
    assert_error(client.get("/v1/projects/shared-patterns", {"a": "api"}), 422,
                 "validation_error", "b")


def test_literal_project_routes_win_over_the_slug_route(client, account):
    # a slug spelled like the literal route (registering one is refused: test_project_api)
    Project.objects.create(account=account, slug="impact-analysis", live_slug="impact-analysis",
                           name="x")
    assert client.get("/v1/projects/impact-analysis").status_code == 405
    assert client.get("/v1/projects/shared-patterns", {"a": "x", "b": "y"}).status_code == 404
