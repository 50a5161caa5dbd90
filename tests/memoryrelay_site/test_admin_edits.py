"""Staff edits in the admin: checked as the API checks them, written as only what staff
changed, kept inside the row's account, and refused with a message, never a 500."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse

from knowledge_app.models import Decision, Pattern
from knowledge_app.services import decision_record, decision_supersede
from memories_app import services as memory_services
from memories_app.models import Memory, WebhookDelivery
from memories_app.services import memory_create, memory_delete
from sessions_app.models import Agent, Session
from sessions_app.services import agent_get_or_create, session_create


class _Form(HTMLParser):
    """The fields a browser would send from the page's change form."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._textarea = self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "checkbox", "file"):
            self.data[name] = a.get("value") or ""
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.data[name] = a.get("value") or "on"
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value") or ""

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            if self._textarea:
                # Django starts a textarea with a newline a browser drops.
                self.data[self._textarea] = self.data[self._textarea].removeprefix("\n")
            self._textarea = None
        elif tag == "select":
            self._select = None


def opened(admin_client, model: str, pk) -> tuple[str, dict[str, str]]:
    """The change page's URL and its form as a browser holds it once opened."""
    url = reverse(f"admin:{model}_change", args=[pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    parser = _Form()
    parser.feed(page.content.decode())
    return url, parser.data


def errors_of(response) -> str:
    return response.content.decode() if response.status_code == 200 else ""


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- only what staff changed ----------------------------------------------------------


def test_a_memory_edit_keeps_what_the_api_changed_while_the_page_was_open(admin_client,
                                                                          memory):
    url, form = opened(admin_client, "memories_app_memory", memory.pk)
    memory_services.memory_update(memory=memory, changes={"importance": 0.1})  # the API
    form["content"] = "Edited by staff"
    assert admin_client.post(url, form).status_code == 302
    memory.refresh_from_db()
    assert memory.content == "Edited by staff"
    assert memory.importance == 0.1 and memory.tier == "cold"


def test_a_session_edit_keeps_the_summary_an_end_wrote_meanwhile(admin_client, session,
                                                                 client):
    url, form = opened(admin_client, "sessions_app_session", session.pk)
    ended = client.post(f"/v1/sessions/{session.pk}/end",
                            {"summary": "API summary", "metadata": {"from": "api"}},
                            format="json")
    assert ended.status_code == 200
    form["title"] = "Renamed by staff"
    assert admin_client.post(url, form).status_code == 302
    session.refresh_from_db()
    assert session.title == "Renamed by staff"
    assert session.summary == "API summary" and session.metadata["from"] == "api"


def test_a_summary_staff_write_is_a_provided_one(admin_client, session):
    url, form = opened(admin_client, "sessions_app_session", session.pk)
    form["summary"] = "Written by staff"
    assert admin_client.post(url, form).status_code == 302
    session.refresh_from_db()
    assert (session.summary, session.summary_method) == ("Written by staff", "provided")


def test_a_summary_staff_empty_has_no_method_and_an_end_summarizes_again(
        admin_client, session, memory, client):
    """An emptied summary was still "provided": no end with auto_summarize wrote one."""
    client.post(f"/v1/sessions/{session.pk}/end", {"summary": "API summary"}, format="json")
    url, form = opened(admin_client, "sessions_app_session", session.pk)
    assert admin_client.post(url, {**form, "summary": ""}).status_code == 302
    session.refresh_from_db()
    assert not session.summary and session.summary_method == ""
    ended = client.post(f"/v1/sessions/{session.pk}/end", {"auto_summarize": True},
                        format="json").json()
    assert ended["summary_method"] == "extractive" and memory.content[:20] in ended["summary"]


def test_an_agent_edit_keeps_the_description_the_api_wrote_meanwhile(admin_client, agent,
                                                                     client):
    url, form = opened(admin_client, "sessions_app_agent", agent.pk)
    assert client.patch(f"/v1/agents/{agent.pk}", {"description": "from the API"},
                            format="json").status_code == 200
    form["config"] = '{"model": "fast"}'
    assert admin_client.post(url, form).status_code == 302
    agent.refresh_from_db()
    assert agent.config == {"model": "fast"} and agent.description == "from the API"


@pytest.mark.django_db(transaction=True)
def test_a_content_edit_embeds_outside_any_transaction(admin_client, memory, monkeypatch):
    """SQLite takes its write lock at BEGIN: a model running inside the admin's transaction
    held every API write out for as long as it ran."""
    seen = []
    real = memory_services.embedding_of

    def embedding_of(text):
        seen.append(connection.in_atomic_block)
        return real(text)

    monkeypatch.setattr(memory_services, "embedding_of", embedding_of)
    url, form = opened(admin_client, "memories_app_memory", memory.pk)
    form["content"] = "A new text to embed"
    assert admin_client.post(url, form).status_code == 302
    assert seen == [False]


# --- the row's own account ------------------------------------------------------------


def test_a_memory_cannot_be_moved_to_another_accounts_agent_or_session(admin_client, memory,
                                                                       other_account):
    eve = agent_get_or_create(account=other_account, name="eve")[0]
    theirs = session_create(account=other_account, agent_ref="eve")
    url, form = opened(admin_client, "memories_app_memory", memory.pk)
    response = admin_client.post(url, {**form, "agent": str(eve.pk), "session": str(theirs.pk)})
    assert "belongs to another account" in errors_of(response)
    memory.refresh_from_db()
    assert memory.agent_id != eve.pk and memory.session_id != theirs.pk
    assert not Memory.objects.filter(session=theirs).exists()


def test_a_session_cannot_be_given_another_accounts_or_a_deleted_agent(admin_client, session,
                                                                       other_account, account):
    eve = agent_get_or_create(account=other_account, name="eve")[0]
    url, form = opened(admin_client, "sessions_app_session", session.pk)
    assert "belongs to another account" in errors_of(
        admin_client.post(url, {**form, "agent": str(eve.pk)}))
    gone = agent_get_or_create(account=account, name="gone")[0]
    Agent.objects.filter(pk=gone.pk).update(deleted_at="2026-01-01T00:00:00Z")
    assert "is deleted" in errors_of(admin_client.post(url, {**form, "agent": str(gone.pk)}))
    assert Session.objects.get(pk=session.pk).agent_id == session.agent_id


def test_a_memory_is_not_moved_to_an_agent_deleted_after_the_form_was_checked(
        admin_client, account, memory, monkeypatch):
    """The form saw the agent live; deleted before the save, it was named by a live memory
    all the same (one its deletion had not deleted, and its restore would not bring)."""
    from memories_app.admin import MemoryAdmin
    from sessions_app.services import agent_delete

    other = agent_get_or_create(account=account, name="other")[0]
    save = MemoryAdmin.save_model

    def deleted_first(self, request, obj, form, change):
        agent_delete(agent=other)
        return save(self, request, obj, form, change)

    monkeypatch.setattr(MemoryAdmin, "save_model", deleted_first)
    url, form = opened(admin_client, "memories_app_memory", memory.pk)
    response = admin_client.post(url, {**form, "agent": str(other.pk)})
    assert any("deleted meanwhile" in m for m in said(response))
    assert Memory.objects.get(pk=memory.pk).agent_id == memory.agent_id


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_memory_moved_to_an_agent_as_it_is_deleted_goes_with_it_or_stays(admin_client,
                                                                         account, api_key):
    """Either the move lands first and the agent's delete takes the memory along, or the
    delete lands first and the move is refused; never a live memory of a deleted agent,
    and never a deadlock between the two."""
    from functools import partial

    from tests.conftest import make_client
    from tests.sessions_app.test_concurrency import run_together

    api = make_client(api_key)
    for trial in range(8):
        mine = memory_create(account=account, agent_ref="mine", content=f"moved {trial}")
        theirs = agent_get_or_create(account=account, name=f"theirs-{trial}")[0]
        url, form = opened(admin_client, "memories_app_memory", mine.pk)
        calls = [partial(admin_client.post, url, {**form, "agent": str(theirs.pk)}),
                 partial(api.delete, f"/v1/agents/{theirs.pk}")]
        moved, deleted = run_together(2, lambda i, calls=calls: calls[i]().status_code)
        # 302: the move was saved (before the delete, which took the memory along, or it
        # was refused under the lock and said so); 200: the form's check already found the
        # agent deleted and showed it again.
        assert deleted == 200 and moved in (200, 302), (trial, moved, deleted)
        row = Memory.objects.get(pk=mine.pk)
        assert row.agent_id == mine.agent_id or row.deleted_at is not None, trial
        if moved == 200:
            assert (row.agent_id, row.deleted_at) == (mine.agent_id, None), trial


# --- checked as the API checks ---------------------------------------------------------


@pytest.mark.parametrize(("model", "fixture", "field", "value", "error"), [
    ("memories_app_memory", "memory", "metadata", '"str"', "must be a JSON object"),
    ("memories_app_memory", "memory", "content", "x" * 50_001, "50000"),
    ("sessions_app_agent", "agent", "metadata", "", "Enter JSON"),
    ("sessions_app_agent", "agent", "metadata", "[1, 2]", "must be a JSON object"),
    ("sessions_app_session", "session", "metadata", "null", "Enter JSON"),
    ("memories_app_memory", "memory", "metadata", '{"a": "\\u0000"}', "NUL"),
    ("sessions_app_agent", "agent", "config", '{"\\u0000k": 1}', "NUL"),
    # What the API's parser refuses in a body: no JSON column takes these.
    ("memories_app_memory", "memory", "metadata", '{"a": NaN}', "out of range"),
    ("sessions_app_agent", "agent", "config", '{"a": -Infinity}', "out of range"),
    ("sessions_app_session", "session", "metadata", '{"n": 99999999999999999999}', "64 bits"),
    ("memories_app_memory", "memory", "metadata", '{"a": "\\udfff"}', "surrogates"),
    ("memories_app_memory", "memory", "metadata", '{"a": ' + "[" * 65 + "]" * 65 + "}",
     "nested deeper than 64"),
    ("sessions_app_agent", "agent", "metadata", '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
     "nested deeper than 64"),
])
def test_fields_are_checked_as_the_api_checks_them(admin_client, request, model, fixture,
                                                   field, value, error):
    row = request.getfixturevalue(fixture)
    url, form = opened(admin_client, model, row.pk)
    response = admin_client.post(url, {**form, field: value})
    assert response.status_code == 200 and error in response.content.decode()
    fresh = type(row).objects.get(pk=row.pk)
    assert getattr(fresh, field) == getattr(row, field)


def test_decision_tags_must_be_a_list_of_strings(admin_client, account):
    decision = decision_record(account=account, title="Use Postgres", rationale="JSONB")
    url, form = opened(admin_client, "knowledge_app_decision", decision.pk)
    response = admin_client.post(url, {**form, "tags": '"notalist"'})
    assert response.status_code == 200
    assert Decision.objects.get(pk=decision.pk).tags == decision.tags


@pytest.mark.parametrize("model", ["knowledge_app_decision", "knowledge_app_pattern"])
def test_a_value_is_written_as_the_api_writes_it(admin_client, client, model):
    """The API's field was only asked whether the value was fine: the value typed was
    written as it was, with the repeats and spaces the API drops."""
    kind = model.removeprefix("knowledge_app_")
    given = {"title": "Use Postgres", "rationale": "JSONB", "description": "JSONB",
             "tags": ["db", "db", " infra "]}
    made = client.post(f"/v1/{kind}s", given, format="json").json()
    assert made["tags"] == ["db", "infra"]
    url, form = opened(admin_client, model, made["id"])
    assert admin_client.post(url, {**form, "tags": '["ops", "ops", " db "]'}).status_code == 302
    row = (Decision if kind == "decision" else Pattern).objects.get(pk=made["id"])
    assert row.tags == ["ops", "db"]


def test_an_agent_name_another_agent_holds_is_a_form_error(admin_client, account, agent):
    other = agent_get_or_create(account=account, name="other")[0]
    url, form = opened(admin_client, "sessions_app_agent", other.pk)
    response = admin_client.post(url, {**form, "name": agent.name})
    assert response.status_code == 200 and "already exists with this" in response.content.decode()
    assert Agent.objects.get(pk=other.pk).name == "other"


def test_an_external_id_another_session_holds_is_a_form_error(admin_client, account, agent):
    first = session_create(account=account, agent_ref=agent.name, external_id="ext-1")
    second = session_create(account=account, agent_ref=agent.name, external_id="ext-2")
    url, form = opened(admin_client, "sessions_app_session", second.pk)
    response = admin_client.post(url, {**form, "external_id": first.external_id})
    assert response.status_code == 200 and "already exists with this" in response.content.decode()
    assert Session.objects.get(pk=second.pk).external_id == "ext-2"


def test_an_agent_named_after_another_agents_id_is_refused(admin_client, account, agent):
    other = agent_get_or_create(account=account, name="other")[0]
    url, form = opened(admin_client, "sessions_app_agent", other.pk)
    response = admin_client.post(url, {**form, "name": str(agent.pk)})
    assert response.status_code == 302 and any("Not saved" in m for m in said(response))
    assert Agent.objects.get(pk=other.pk).name == "other"


# --- refused, never a 500 --------------------------------------------------------------


def test_agents_are_not_added_in_the_admin(admin_client, agent):
    """The add page was offered, and every save of it (or "save as new" posted from an
    agent's page) was a server error: the new agent had no account."""
    assert admin_client.get(reverse("admin:sessions_app_agent_add")).status_code == 403
    assert admin_client.post(reverse("admin:sessions_app_agent_add"),
                             {"name": "new", "config": "{}", "metadata": "{}"}).status_code == 403
    url, form = opened(admin_client, "sessions_app_agent", agent.pk)
    assert admin_client.post(url, {**form, "name": "copy", "_saveasnew": "1"}).status_code == 403
    assert list(Agent.objects.values_list("name", flat=True)) == [agent.name]


def test_a_superseded_decision_stays_superseded(admin_client, account):
    old = decision_record(account=account, title="Use MySQL", rationale="familiar")
    decision_supersede(account=account, decision=old, title="Use Postgres", rationale="JSONB")
    url, form = opened(admin_client, "knowledge_app_decision", old.pk)
    response = admin_client.post(url, {**form, "status": "active"})
    assert response.status_code == 302
    assert any("stays superseded" in m for m in said(response))
    assert Decision.objects.get(pk=old.pk).status == "superseded"


def test_a_decision_becomes_superseded_only_by_superseding_it(admin_client, account):
    decision = decision_record(account=account, title="Use MySQL", rationale="familiar")
    url, form = opened(admin_client, "knowledge_app_decision", decision.pk)
    response = admin_client.post(url, {**form, "status": "superseded"})
    assert response.status_code == 302 and any("Not saved" in m for m in said(response))
    assert Decision.objects.get(pk=decision.pk).status == "active"


def test_a_refused_save_empties_nothing_either(admin_client, account):
    """The emptied field was written in a transaction of its own before the service
    refused the rest: "Not saved", yet the project was gone."""
    decision = decision_record(account=account, title="Use MySQL", rationale="familiar",
                               project_slug="northrelay")
    url, form = opened(admin_client, "knowledge_app_decision", decision.pk)
    response = admin_client.post(url, {**form, "project_slug": "", "status": "superseded"})
    assert any("Not saved" in m for m in said(response))
    assert Decision.objects.get(pk=decision.pk).project_slug == "northrelay"


def test_a_row_deleted_while_its_page_was_open_is_not_saved(admin_client, memory):
    url, form = opened(admin_client, "memories_app_memory", memory.pk)
    memory_delete(memory=memory)
    response = admin_client.post(url, {**form, "content": "too late"})
    assert response.status_code in (302, 403)
    assert Memory.objects.get(pk=memory.pk).content != "too late"


def test_a_deleted_rows_page_is_read_only(admin_client, memory):
    memory_delete(memory=memory)
    url = reverse("admin:memories_app_memory_change", args=[memory.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(url, {"content": "edited"}).status_code == 403


@pytest.mark.parametrize(("changelist", "query"), [
    ("memories_app_memory", "?status=%00"), ("memories_app_memory", "?memory_type=a%00b"),
    ("memories_app_webhookdelivery", "?event=%00"), ("entities_app_extractionkey", "?provider=%00"),
    ("memoryrelay_site_apikey", "?revoked_at__isnull=%00"),
    ("django_tasks_database_dbtaskresult", "?queue_name=a%00b"),
    ("django_tasks_database_dbtaskresult", "?status__exact=%00"),
])
def test_a_nul_in_a_filter_is_a_bad_filter_not_a_500(admin_client, memory, changelist, query):
    response = admin_client.get(reverse(f"admin:{changelist}_changelist") + query)
    assert response.status_code in (200, 302)


SEARCHED = [f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
            for model, model_admin in admin.site._registry.items() if model_admin.search_fields]


@pytest.mark.parametrize("changelist", SEARCHED)
def test_a_search_too_long_for_the_database_finds_nothing_and_says_so(admin_client, memory,
                                                                      changelist):
    """SQLite refused a query of more than ~1,000 words (nested too deep) or a word past
    50,000 bytes (a LIKE pattern too long): a server error."""
    for term in [" ".join(["retry"] * 1200), "x" * 60_000]:
        response = admin_client.get(reverse(changelist), {"q": term})
        assert response.status_code == 200
        assert any("Not searched" in m for m in said(response))


def test_the_longest_search_allowed_runs(admin_client, account, agent):
    words = memory_create(account=account, agent_ref=agent.name,
                          content=" ".join(f"w{i}" for i in range(100)))
    wide = memory_create(account=account, agent_ref=agent.name, content="\U0001F600" * 10_000)
    url = reverse("admin:memories_app_memory_changelist")
    for row in (words, wide):
        response = admin_client.get(url, {"q": row.content})
        assert [m.pk for m in response.context["cl"].result_list] == [row.pk]


def test_an_autocomplete_too_long_for_the_database_finds_nothing(admin_client, session):
    for term in [" ".join(["fix"] * 1200), "x" * 60_000]:
        response = admin_client.get("/admin/autocomplete/", {
            "term": term, "app_label": "memories_app", "model_name": "memory",
            "field_name": "session"})
        assert response.status_code == 200 and response.json()["results"] == []
        assert said(response) == []  # no message waiting for the next page


def test_webhook_deliveries_cannot_be_deleted_from_the_admin(admin_client, account, agent):
    memory = memory_create(account=account, agent_ref=agent.name, content="hook")
    delivery = WebhookDelivery.objects.create(memory=memory, event="memory.ready")
    url = reverse("admin:memories_app_webhookdelivery_delete", args=[delivery.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()


def test_restore_and_retry_count_only_the_rows_they_acted_on(admin_client, account, agent):
    live = memory_create(account=account, agent_ref=agent.name, content="still here")
    gone = memory_create(account=account, agent_ref=agent.name, content="deleted one")
    memory_delete(memory=gone)
    url = reverse("admin:memories_app_memory_changelist")
    response = admin_client.post(url, {"action": "restore_selected",
                                       "_selected_action": [live.pk, gone.pk]}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert "Restored: 1." in messages and "Left alone (not deleted): 1." in messages
    failed_then_deleted = memory_create(account=account, agent_ref=agent.name, content="x")
    Memory.objects.filter(pk=failed_then_deleted.pk).update(status="failed")
    memory_delete(memory=failed_then_deleted)  # a retry queues live writes only
    response = admin_client.post(url, {"action": "retry_failed_writes", "_selected_action": [
        live.pk, failed_then_deleted.pk]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Left alone (not failed, or deleted): 2."]
    assert Memory.objects.get(pk=failed_then_deleted.pk).status == "failed"


def test_a_field_staff_empty_is_emptied(admin_client, account):
    """The update services read None as "leave it"; an emptied box is written as empty."""
    decision = decision_record(account=account, title="Use Postgres", rationale="JSONB",
                               project_slug="northrelay")
    url, form = opened(admin_client, "knowledge_app_decision", decision.pk)
    assert admin_client.post(url, {**form, "project_slug": ""}).status_code == 302
    assert Decision.objects.get(pk=decision.pk).project_slug is None


def test_a_memory_moved_and_rewritten_in_one_save_is_one_write(admin_client, account, memory,
                                                                monkeypatch):
    """Its agent and session were committed first, its new content after, apart: a content
    write refused left the memory moved all the same."""
    other = agent_get_or_create(account=account, name="other")[0]
    theirs = session_create(account=account, agent_ref="other")

    def refused(**kwargs):
        raise memory_services.Invalid("refused")

    monkeypatch.setattr(memory_services, "announce_written", refused)
    url, form = opened(admin_client, "memories_app_memory", memory.pk)
    response = admin_client.post(url, {**form, "agent": str(other.pk),
                                       "session": str(theirs.pk), "content": "Moved and new"})
    assert any("refused" in m for m in said(response))
    row = Memory.objects.get(pk=memory.pk)
    assert (row.agent_id, row.session_id, row.content) == (
        memory.agent_id, memory.session_id, memory.content)
    monkeypatch.undo()
    assert admin_client.post(url, {**form, "agent": str(other.pk), "session": str(theirs.pk),
                                   "content": "Moved and new"}).status_code == 302
    row.refresh_from_db()
    assert (row.agent_id, row.session_id, row.content) == (other.pk, theirs.pk, "Moved and new")
