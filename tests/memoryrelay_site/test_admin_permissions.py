"""Staff act in the admin only as far as their permissions go: an action that changes rows
is offered, and runs, only for staff who may change (or, to delete and restore, delete)
the rows; staff who may only view see lists and pages and change nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from entities_app.models import Entity, EntityLink
from entities_app.services import entity_get_or_create
from memories_app.models import Memory
from memoryrelay_site.models import ApiKey
from sessions_app.models import Session
from tests.memoryrelay_site.test_admin_queries import ours


def staff(name: str, *codenames: str) -> Client:
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    browser = Client()
    browser.force_login(user)
    return browser


def view_all() -> list[str]:
    return [f"view_{model._meta.model_name}" for model in ours()]


def offered(browser: Client, model) -> set[str]:
    page = browser.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}"
                               "_changelist"))
    assert page.status_code == 200
    form = page.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def act(browser: Client, model, action: str, rows) -> None:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    browser.post(url, {"action": action, "_selected_action": [row.pk for row in rows]})


def test_staff_who_may_only_view_are_offered_no_action_and_forged_ones_do_nothing(
        account, agent, session, memory, api_key):
    viewer = staff("viewer", *view_all())
    assert {model._meta.model_name: offered(viewer, model) for model in ours()} == {
        model._meta.model_name: set() for model in ours()}
    acme = entity_get_or_create(account=account, name="Acme", entity_type="organization")[0]
    globex = entity_get_or_create(account=account, name="Globex",
                                  entity_type="organization")[0]
    act(viewer, Memory, "soft-delete_selected", [memory])
    act(viewer, Session, "end_selected_sessions", [session])
    act(viewer, ApiKey, "revoke", ApiKey.objects.all())
    act(viewer, Entity, "merge_selected", [acme, globex])
    assert Memory.objects.get(pk=memory.pk).deleted_at is None
    assert Session.objects.get(pk=session.pk).status == "active"
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()
    assert Entity.objects.live().count() == 2


def test_staff_who_may_change_but_not_delete_neither_delete_nor_restore(account, agent,
                                                                       session, memory):
    editor = staff("editor", *view_all(), "change_memory", "change_session", "change_entity")
    assert offered(editor, Memory) == {"retry_failed_writes"}
    assert offered(editor, Session) == {"end_selected_sessions", "summarize_selected_sessions"}
    assert offered(editor, Entity) == set()  # a merge deletes the entities merged away
    act(editor, Memory, "soft-delete_selected", [memory])
    assert Memory.objects.get(pk=memory.pk).deleted_at is None
    act(editor, Session, "end_selected_sessions", [session])
    assert Session.objects.get(pk=session.pk).status == "ended"


@pytest.mark.parametrize("codename", ["delete_memory", "change_memory"])
def test_staff_who_may_delete_delete_and_restore_softly(memory, codename):
    browser = staff("deleter", "view_memory", codename)
    deleting = codename == "delete_memory"
    assert ({"soft-delete_selected", "restore_selected"} <= offered(browser, Memory)) \
        is deleting
    act(browser, Memory, "soft-delete_selected", [memory])
    assert (Memory.objects.get(pk=memory.pk).deleted_at is not None) is deleting


@pytest.mark.parametrize("may_view_memories", [False, True])
def test_memory_text_on_other_pages_is_only_for_staff_who_may_view_memories(
        account, session, memory, may_view_memories):
    """Staff allowed to view sessions, entities (with their links) or webhook deliveries,
    but not memories, read the memories' text on those pages."""
    from memories_app.models import WebhookDelivery

    acme = entity_get_or_create(account=account, name="Acme", entity_type="organization")[0]
    EntityLink.objects.create(account=account, entity=acme, memory=memory)
    delivery = WebhookDelivery.objects.create(memory=memory, event="memory.ready")
    browser = staff("reader", "view_session", "view_entity", "view_entitylink",
                    "view_webhookdelivery", *(["view_memory"] if may_view_memories else []))
    pages = {
        "session": reverse("admin:sessions_app_session_change", args=[session.pk]),
        "entity": reverse("admin:entities_app_entity_change", args=[acme.pk]),
        "deliveries": reverse("admin:memories_app_webhookdelivery_changelist"),
        "delivery": reverse("admin:memories_app_webhookdelivery_change", args=[delivery.pk]),
    }
    shown = {}
    for page, url in pages.items():
        response = browser.get(url)
        assert response.status_code == 200, page
        shown[page] = memory.content[:40] in response.content.decode()
    assert shown == dict.fromkeys(pages, may_view_memories)
    if not may_view_memories:  # what they may see of them: how many, which
        assert "field-memory_count" in browser.get(pages["session"]).content.decode()
        assert str(memory.pk) in browser.get(pages["entity"]).content.decode()
        assert str(memory.pk) in browser.get(pages["delivery"]).content.decode()
