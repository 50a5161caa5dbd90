"""Every page of the admin reads a fixed number of queries, however many rows it lists and
however many rows hang off the one it shows (an inline, a related name in a column)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from memories_app.models import Memory, WebhookDelivery
from tests.conftest import real_queries

pytestmark = pytest.mark.django_db


def populate(client, tag: str, n: int, shared: dict | None = None) -> dict:
    """``n`` rows of every kind, each hanging off the ``shared`` rows (made on the first
    call: two projects, a pattern, two entities, a session of one agent, a superseded
    decision, a memory), so that a second call grows both the lists and the children of
    those: the hub's dependencies, hot memories and decisions (tagged), the spoke's
    dependents, the patterns the hub shares with the spoke or is suggested, the entities'
    co-occurrences, the agents, the API keys."""
    def post(path, body):
        response = client.post(path, body, format="json")
        assert response.status_code in (200, 201), (path, response.content)
        return response.json()

    if shared is None:
        first = post("/v1/decisions", {"title": "use PostgreSQL", "rationale": "JSONB"})
        post(f"/v1/decisions/{first['id']}/supersede", {"title": "use PostgreSQL 16",
                                                        "rationale": "pgvector 0.8"})
        session = post("/v1/sessions", {"agent_id": "shared-agent", "title": "shared"})
        shared = {
            "hub": post("/v1/projects", {"slug": "hub", "name": "hub"}),
            "spoke": post("/v1/projects", {"slug": "spoke", "name": "spoke"}),
            "pattern": post("/v1/patterns", {"title": "errors follow RFC 7807",
                                             "description": "Every error is problem+json."}),
            "entity": post("/v1/entities", {"name": "Acme", "entity_type": "organization"}),
            "other_entity": post("/v1/entities", {"name": "Globex",
                                                  "entity_type": "organization"}),
            "session": session,
            "decision": first,
            "key": post("/v1/keys", {"name": "shared key"})["key_info"],
            "memory": post("/v1/memories", {"agent_id": "shared-agent", "content": "shared",
                                            "session_id": session["id"]}),
        }
        post("/v1/entities/links", {"entity_id": shared["entity"]["id"],
                                    "memory_id": shared["memory"]["id"]})
    post("/v1/extraction/keys", {"provider": "openai", "api_key": f"sk-{tag}-0123456789",
                                 "model": "gpt-4o-mini"})
    for i in range(n):
        slug = f"{tag}-p{i}"
        post("/v1/projects", {"slug": slug, "name": slug})
        post(f"/v1/projects/{shared['hub']['slug']}/relationships",
             {"target_project": slug, "relationship_type": "depends_on"})
        post(f"/v1/patterns/{shared['pattern']['id']}/adopt", {"project": slug})
        post("/v1/sessions", {"agent_id": "shared-agent", "title": slug})
        memory = post("/v1/memories", {"agent_id": "shared-agent", "content": f"{tag} {i}",
                                       "session_id": shared["session"]["id"],
                                       "project": slug})
        hot = post("/v1/memories", {"agent_id": f"{tag}-agent-{i}", "content": f"{tag} hot {i}",
                                    "project": shared["hub"]["slug"], "tier": "hot"})
        for entity in (shared["entity"], shared["other_entity"]):
            post("/v1/entities/links", {"entity_id": entity["id"], "memory_id": memory["id"]})
        post("/v1/decisions", {"title": f"{tag} decision {i}", "rationale": "because",
                               "project_slug": slug, "agent_id": "shared-agent",
                               "session_id": shared["session"]["id"], "tags": ["shared", tag]})
        post("/v1/decisions", {"title": f"{tag} hub decision {i}", "rationale": "because",
                               "project_slug": shared["hub"]["slug"], "tags": ["shared"],
                               "session_id": shared["session"]["id"]})
        post(f"/v1/projects/{slug}/relationships",
             {"target_project": shared["spoke"]["slug"], "relationship_type": "depends_on"})
        suggested = post("/v1/patterns", {"title": f"{tag} pattern {i}", "description": "d",
                                          "tags": ["shared"]})
        post(f"/v1/patterns/{suggested['id']}/adopt", {"project": slug})
        both = post("/v1/patterns", {"title": f"{tag} shared pattern {i}", "description": "d"})
        for project in (shared["hub"]["slug"], shared["spoke"]["slug"]):
            post(f"/v1/patterns/{both['id']}/adopt", {"project": project})
        post("/v1/keys", {"name": f"{tag} key {i}"})
        near = post("/v1/entities", {"name": f"{tag} entity {i}", "entity_type": "concept"})
        for target in (hot["id"], shared["memory"]["id"]):
            post("/v1/entities/links", {"entity_id": near["id"], "memory_id": target})
        for target in (memory["id"], shared["memory"]["id"]):
            WebhookDelivery.objects.create(memory=Memory.objects.get(pk=target),
                                           event="memory.ready")
    return shared


APPS = {"sessions_app", "memories_app", "knowledge_app", "entities_app", "memoryrelay_site"}


def ours() -> dict:
    return {model: model_admin for model, model_admin in admin.site._registry.items()
            if model._meta.app_label in APPS}


def pages(model_admin, obj_pk) -> list[str]:
    meta = model_admin.model._meta
    name = f"admin:{meta.app_label}_{meta.model_name}"
    return [reverse(f"{name}_changelist"), reverse(f"{name}_change", args=[obj_pk])]


def count(admin_client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(real_queries(captured))


def test_every_admin_page_costs_the_same_for_few_rows_as_for_many(admin_client, client):
    shared = populate(client, "few", 1)
    first = {model: model._base_manager.order_by("pk").first() for model in ours()}
    from entities_app.models import Entity
    from knowledge_app.models import Pattern
    from sessions_app.models import Agent, Project, Session

    first.update({  # the rows whose children grow
        Project: Project.objects.get(pk=shared["hub"]["id"]),
        Pattern: Pattern.objects.get(pk=shared["pattern"]["id"]),
        Entity: Entity.objects.get(pk=shared["entity"]["id"]),
        Session: Session.objects.get(pk=shared["session"]["id"]),
        Memory: Memory.objects.get(pk=shared["memory"]["id"]),
        Agent: Agent.objects.get(name="shared-agent")})
    urls = {model: pages(model_admin, first[model].pk)
            for model, model_admin in ours().items() if first[model] is not None}
    assert len(urls) >= 11  # every model of the API has rows here
    for url_list in urls.values():  # once beforehand: once-a-minute bookkeeping stays out
        for url in url_list:
            count(admin_client, url)
    few = {url: count(admin_client, url) for url_list in urls.values() for url in url_list}
    populate(client, "many", 8, shared)
    many = {url: count(admin_client, url) for url_list in urls.values() for url in url_list}
    grown = {url: (few[url], many[url]) for url in few if many[url] != few[url]}
    assert grown == {}
    assert max(many.values()) <= 12


def test_a_pattern_page_reads_its_adoptions_with_their_projects(admin_client, client):
    """The adoption inline named each row's project and pattern: two queries a row."""
    shared = populate(client, "one", 1)
    from knowledge_app.models import Pattern

    pattern = Pattern.objects.get(pk=shared["pattern"]["id"])
    url = reverse("admin:knowledge_app_pattern_change", args=[pattern.pk])
    count(admin_client, url)
    one = count(admin_client, url)
    for i in range(6):
        client.post("/v1/projects", {"slug": f"extra-{i}", "name": f"extra {i}"}, format="json")
        client.post(f"/v1/patterns/{pattern.pk}/adopt", {"project": f"extra-{i}"},
                    format="json")
    assert count(admin_client, url) == one


@pytest.mark.parametrize("model, related", [("memories_app_memory", "agent"),
                                            ("sessions_app_session", "agent"),
                                            ("sessions_app_agent", "account"),
                                            ("sessions_app_project", "account")])
def test_a_list_filtered_by_agent_or_account_costs_the_same_for_few_as_for_thousands(
        admin_client, account, agent, session, memory, model, related):
    """Its sidebar listed every agent (or account): the page, and its reading, grew with
    their number. Any of them is still a filter by its id in the address."""
    from django.contrib.auth import get_user_model

    from sessions_app.models import Agent

    def more(start: int, n: int) -> list:
        if related == "agent":
            return Agent.objects.bulk_create(
                Agent(account=account, name=f"agent-{i:05d}") for i in range(start, start + n))
        return get_user_model().objects.bulk_create(
            get_user_model()(username=f"user-{i:05d}") for i in range(start, start + n))

    url = reverse(f"admin:{model}_changelist")
    more(0, 30)
    count(admin_client, url)
    few = (count(admin_client, url), len(admin_client.get(url).content))
    last = more(30, 300)[-1]
    assert (count(admin_client, url), len(admin_client.get(url).content)) == few
    chosen = admin_client.get(url, {f"{related}__id__exact": str(last.pk)})
    assert chosen.status_code == 200
    assert f'<li class="selected">\n    <a href="?{related}__id__exact={last.pk}"' \
        in chosen.content.decode()


@pytest.mark.parametrize("model, field", [("sessions_app_session", "project"),
                                          ("knowledge_app_decision", "project_slug"),
                                          ("knowledge_app_pattern", "category")])
def test_a_list_filtered_by_a_label_lists_a_few_of_its_values(admin_client, account, model,
                                                              field):
    """Its sidebar listed every distinct value (a project label, a category): the page grew
    with their number. Any of them is still a filter in the address."""
    import re

    from knowledge_app.models import Decision, Pattern
    from sessions_app.models import Session

    made = {"project": lambda i: Session(account=account, project=f"label-{i:04d}"),
            "project_slug": lambda i: Decision(account=account, title="t", rationale="r",
                                               project_slug=f"label-{i:04d}"),
            "category": lambda i: Pattern(account=account, title="t", description="d",
                                          category=f"label-{i:04d}")}[field]
    rows = [made(i) for i in range(300)]
    type(rows[0]).objects.bulk_create(rows)
    url = reverse(f"admin:{model}_changelist")

    def listed(page) -> list[str]:
        block = re.search(r'<details data-filter-title="[^"]*(?:project|category)[^"]*"'
                          r".*?</details>", page.content.decode(), re.S | re.I)
        return list(dict.fromkeys(re.findall(r"label-\d{4}", block.group(0))))

    assert listed(admin_client.get(url)) == [f"label-{i:04d}" for i in range(20)]
    chosen = admin_client.get(url, {field: "label-0299"})
    assert chosen.status_code == 200 and len(chosen.context["cl"].result_list) == 1
    assert "label-0299" in listed(chosen)
