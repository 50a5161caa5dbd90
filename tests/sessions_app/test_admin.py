"""The staff admin: soft-deleted rows visible and restorable, actions through services."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from memories_app.models import Memory
from memories_app.services import memory_create
from memoryrelay_site.models import ApiKey
from memoryrelay_site.services import api_key_create
from sessions_app.models import Agent, Session
from sessions_app.services import agent_delete, session_delete
from tests.conftest import make_client


def changelist(name: str) -> str:
    return reverse(f"admin:{name}_changelist")


def act(admin_client, name: str, action: str, rows):
    return admin_client.post(changelist(name), {"action": action,
                                                "_selected_action": [str(r.pk) for r in rows]},
                             follow=True)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_session_changelist_shows_deleted_rows_and_filters_them(admin_client, session, account):
    gone = Session.objects.create(account=account, title="Gone session")
    session_delete(session=gone)
    page = admin_client.get(changelist("sessions_app_session")).content.decode()
    assert "Fix email queue retry logic" in page and "Gone session" in page
    live = admin_client.get(changelist("sessions_app_session") + "?deleted=no").content.decode()
    assert "Gone session" not in live
    dead = admin_client.get(changelist("sessions_app_session") + "?deleted=yes").content.decode()
    assert "Gone session" in dead and "Fix email queue" not in dead


@pytest.mark.parametrize("term", ["retry logic", "auto:abc"])
def test_sessions_are_searchable_by_title_and_external_id(admin_client, account, term):
    Session.objects.create(account=account, title="Fix retry logic", external_id="auto:abc:1")
    Session.objects.create(account=account, title="Other", external_id="zzz")
    page = admin_client.get(changelist("sessions_app_session") + f"?q={term}").content.decode()
    assert "auto:abc:1" in page and "zzz" not in page


def test_session_page_lists_its_memories_and_links_to_all(admin_client, session, memory):
    page = admin_client.get(reverse("admin:sessions_app_session_change", args=[session.pk]))
    html = page.content.decode()
    assert "Identified root cause" in html and "View all 1 memories" in html
    assert f"session__id__exact={session.pk}" in html


def test_end_and_summarize_actions_call_the_session_services(admin_client, session, memory):
    act(admin_client, "sessions_app_session", "summarize_selected_sessions", [session])
    act(admin_client, "sessions_app_session", "end_selected_sessions", [session])
    session.refresh_from_db()
    assert session.summary == memory.content + "."
    assert session.status == "ended" and session.ended_at is not None


def test_summarizing_a_session_without_memories_warns_and_changes_nothing(admin_client,
                                                                          session):
    response = act(admin_client, "sessions_app_session", "summarize_selected_sessions",
                   [session])
    assert any("no memories" in m for m in texts(response))
    session.refresh_from_db()
    assert session.summary is None


def test_restore_brings_a_session_back_with_the_memories_deleted_with_it(admin_client,
                                                                          session, memory):
    session_delete(session=session, cascade_memories=True)
    act(admin_client, "sessions_app_session", "restore_selected", [session])
    assert Session.objects.get(pk=session.pk).deleted_at is None
    assert Memory.objects.get(pk=memory.pk).deleted_at is None


def test_agent_restore_brings_back_its_sessions_and_memories(admin_client, agent, session,
                                                             memory):
    agent_delete(agent=agent)
    page = admin_client.get(changelist("sessions_app_agent")).content.decode()
    assert "my-assistant" in page
    act(admin_client, "sessions_app_agent", "restore_selected", [agent])
    assert Agent.objects.live().filter(pk=agent.pk).exists()
    assert Session.objects.live().filter(pk=session.pk).exists()
    assert Memory.objects.live().filter(pk=memory.pk).exists()


def test_an_agent_whose_sessions_conversation_went_on_elsewhere_is_not_restored(
        admin_client, client, account):
    """Its session's external_id was taken by a new session of another agent: the restore
    is refused as a warning, and the agent, its sessions and memories stay as they were."""
    sid = client.post("/v1/sessions/get-or-create", {"external_id": "shared:1",
                                                     "agent_id": "owner1"}, format="json")
    sid = sid.json()["id"]
    mid = client.post("/v1/memories", {"agent_id": "owner1", "session_id": sid,
                                       "content": "owner memory"}, format="json").json()["id"]
    owner = Agent.objects.get(name="owner1")
    assert client.delete("/v1/agents/owner1").status_code == 200
    again = client.post("/v1/sessions/get-or-create", {"external_id": "shared:1",
                                                       "agent_id": "helper1"}, format="json")
    assert again.status_code == 201
    response = act(admin_client, "sessions_app_agent", "restore_selected", [owner])
    assert response.status_code == 200
    assert any("'shared:1'" in m and "external_id" in m for m in texts(response))
    assert Agent.objects.get(pk=owner.pk).deleted_at is not None
    assert Session.objects.get(pk=sid).deleted_at is not None
    assert Memory.objects.get(pk=mid).deleted_at is not None
    assert Session.objects.live().filter(external_id="shared:1").count() == 1


def test_a_session_restore_that_loses_the_external_id_to_a_racing_create_is_refused(
        admin_client, account, monkeypatch):
    """The check passes, then a concurrent get-or-create commits the external_id first:
    the unique constraint answers, as the same refusal (not a 500)."""
    from sessions_app import services

    gone = Session.objects.create(account=account, title="Gone", external_id="run:7")
    session_delete(session=gone)
    Session.objects.create(account=account, title="New", external_id="run:7")
    monkeypatch.setattr(services, "_live_by_external_id", lambda *args: None)
    response = act(admin_client, "sessions_app_session", "restore_selected", [gone])
    assert any("'run:7'" in m for m in texts(response))
    assert Session.objects.get(pk=gone.pk).deleted_at is not None


def test_an_agent_restore_that_loses_the_name_to_a_racing_create_is_refused(
        admin_client, account, agent, session, memory, monkeypatch):
    """The check passes, then a write naming the agent makes a new one first: the unique
    constraint answers, as the same refusal (it was a 500), and nothing comes back."""
    from sessions_app import services

    agent_delete(agent=agent)
    services.agent_get_or_create(account=account, name=agent.name)
    monkeypatch.setattr(services, "_live_agent_named", lambda *args: False)
    response = act(admin_client, "sessions_app_agent", "restore_selected", [agent])
    assert response.status_code == 200
    assert any("already uses this name" in m for m in texts(response))
    for model, pk in ((Agent, agent.pk), (Session, session.pk), (Memory, memory.pk)):
        assert model.objects.get(pk=pk).deleted_at is not None


def test_a_relationship_restore_that_loses_the_edge_to_a_racing_create_is_refused(
        admin_client, account, monkeypatch):
    from sessions_app import projects
    from sessions_app.models import ProjectRelationship

    api = projects.project_create(account=account, slug="api", name="api")
    db = projects.project_create(account=account, slug="db", name="db")
    edge = projects.project_relate(project=api, target_slug="db",
                                   relationship_type="depends_on")[0]
    projects.relationship_delete(relationship=edge)
    projects.project_relate(project=api, target_slug=db.slug, relationship_type="depends_on")
    monkeypatch.setattr(projects, "_live_edge", lambda edge: None)
    response = act(admin_client, "sessions_app_projectrelationship", "restore_selected",
                   [edge])
    assert response.status_code == 200
    assert any("already joins these projects" in m for m in texts(response))
    assert ProjectRelationship.objects.get(pk=edge.pk).deleted_at is not None


def test_admin_soft_deletes_instead_of_removing(admin_client, agent, memory):
    act(admin_client, "memories_app_memory", "soft-delete_selected", [memory])
    assert Memory.objects.get(pk=memory.pk).deleted_at is not None
    response = act(admin_client, "memories_app_memory", "delete_selected", [memory])
    assert Memory.objects.filter(pk=memory.pk).exists()
    assert response.status_code == 200


def test_memories_are_searchable_by_content_and_restorable(admin_client, account, agent):
    keep = memory_create(account=account, agent_ref=agent.name, content="pager duty rota")
    memory_create(account=account, agent_ref=agent.name, content="lunch menu")
    page = admin_client.get(changelist("memories_app_memory") + "?q=pager").content.decode()
    assert "pager duty rota" in page and "lunch menu" not in page
    Memory.objects.filter(pk=keep.pk).update(deleted_at="2026-01-01T00:00:00Z")
    act(admin_client, "memories_app_memory", "restore_selected", [keep])
    assert Memory.objects.get(pk=keep.pk).deleted_at is None


def test_editing_a_memory_in_the_admin_goes_through_the_update_service(admin_client, memory):
    url = reverse("admin:memories_app_memory_change", args=[memory.pk])
    form = {"agent": memory.agent_id, "session": memory.session_id, "project": "northrelay",
            "content": "Edited by staff", "metadata": "{}", "memory_type": "fact",
            "importance": "0.9", "tier": "warm", "visibility": "private"}
    assert admin_client.post(url, form).status_code == 302
    memory.refresh_from_db()
    assert memory.content == "Edited by staff" and memory.importance == 0.9


def test_adding_an_api_key_shows_the_raw_key_once_and_it_works(admin_client, account):
    response = admin_client.post(reverse("admin:memoryrelay_site_apikey_add"),
                                 {"user": account.pk, "name": "staff-made",
                                  "scopes": ["read", "write", "delete", "admin"]}, follow=True)
    raw = re.search(r'id="api-key"[^>]*>(mem_prod_[\w-]+)<', response.content.decode())[1]
    assert not any(raw in m for m in texts(response))  # on the page, not in a message
    assert ApiKey.objects.filter(name="staff-made").count() == 1
    assert make_client(raw).get("/v1/sessions").status_code == 200
    key = ApiKey.objects.get(name="staff-made")
    page = admin_client.get(reverse("admin:memoryrelay_site_apikey_change", args=[key.pk]))
    assert raw not in page.content.decode() and key.key_hash not in page.content.decode()


def test_revoking_a_key_in_the_admin_makes_it_a_401(admin_client, account, api_key):
    act(admin_client, "memoryrelay_site_apikey", "revoke", ApiKey.objects.all())
    assert make_client(api_key).get("/v1/sessions").status_code == 401


def test_revoking_counts_only_the_keys_it_revoked(admin_client, account, api_key):
    """An already revoked key was counted as revoked again ("Revoked 2 keys")."""
    first = ApiKey.objects.get()
    act(admin_client, "memoryrelay_site_apikey", "revoke", [first])
    at = ApiKey.objects.get(pk=first.pk).revoked_at
    second = api_key_create(user=account, name="second")[0]
    response = act(admin_client, "memoryrelay_site_apikey", "revoke", [first, second])
    assert texts(response) == ["Revoked 1 keys.", "Left alone (already revoked): 1."]
    assert ApiKey.objects.get(pk=first.pk).revoked_at == at
    assert ApiKey.objects.get(pk=second.pk).revoked_at is not None


def test_api_keys_are_revoked_in_the_admin_never_deleted(admin_client, account, api_key):
    """The change page's Delete and "delete selected" removed the row the API only revokes
    (who made the key, when, its last use), and with it the account's keys went when the
    account was deleted."""
    key = ApiKey.objects.get()
    page = admin_client.get(reverse("admin:memoryrelay_site_apikey_change", args=[key.pk]))
    assert reverse("admin:memoryrelay_site_apikey_delete", args=[key.pk]) \
        not in page.content.decode()
    delete = reverse("admin:memoryrelay_site_apikey_delete", args=[key.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    listing = admin_client.get(changelist("memoryrelay_site_apikey"))
    assert "delete_selected" not in dict(listing.context["action_form"].fields["action"].choices)
    act(admin_client, "memoryrelay_site_apikey", "delete_selected", [key])
    admin_client.post(reverse("admin:auth_user_delete", args=[account.pk]), {"post": "yes"})
    assert ApiKey.objects.filter(pk=key.pk).exists()
    act(admin_client, "memoryrelay_site_apikey", "revoke", [key])
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def key_page(admin_client, key) -> tuple[str, dict]:
    """The key's change page and its form as a browser sends it (every checked box)."""
    from tests.memoryrelay_site.test_admin_edits import _Form

    url = reverse("admin:memoryrelay_site_apikey_change", args=[key.pk])
    html = admin_client.get(url).content.decode()
    parser = _Form()
    parser.feed(html)
    form = dict(parser.data)
    for name in ("scopes", "initial-scopes"):
        boxes = re.findall(rf'name="{name}" value="(\w+)"([^>]*)>', html)
        if boxes:
            form[name] = [value for value, rest in boxes
                          if "checked" in rest or name.startswith("initial")]
    return url, form


def test_a_key_page_opened_before_its_scopes_were_narrowed_does_not_widen_them(
        admin_client, account, api_key):
    """The stale page's boxes were written back with the field staff did change: "admin",
    just taken away in another tab, was the key's again."""
    key = ApiKey.objects.get()
    url, stale = key_page(admin_client, key)
    _, fresh = key_page(admin_client, key)
    assert admin_client.post(url, {**fresh, "scopes": ["read"],
                                   "expires_at_0": "2031-01-01",
                                   "expires_at_1": "00:00:00"}).status_code == 302
    assert admin_client.post(url, {**stale, "rate_limit_per_minute": "5"}).status_code == 302
    key.refresh_from_db()
    assert (key.scopes, key.rate_limit_per_minute) == (["read"], 5)
    assert key.expires_at.year == 2031


@pytest.mark.parametrize("name", ["sessions_app_session", "sessions_app_agent",
                                  "memories_app_memory", "memoryrelay_site_apikey"])
def test_changelists_use_a_fixed_number_of_queries(admin_client, account, agent, name,
                                                   max_queries):
    for i in range(15):
        s = Session.objects.create(account=account, agent=agent, title=f"s{i}")
        memory_create(account=account, agent_ref=agent.name, content=f"m{i}", session_id=s.id)
    admin_client.get(changelist(name))
    with max_queries(12):
        assert admin_client.get(changelist(name)).status_code == 200
