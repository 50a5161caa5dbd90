"""Staff act in the admin only as far as their permissions go: an action that changes rows
is offered, and runs, only for staff who may change (or, to delete and restore, delete)
the rows; staff who may only view see lists and pages and change nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from entities_app.models import Entity
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
