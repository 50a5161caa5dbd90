"""The staff admin for decisions (search, filters, soft delete and restore through the
services) and the purge command covering them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from knowledge_app import services
from knowledge_app.models import Decision, Pattern
from memoryrelay_site.errors import NotFound
from tests.conftest import real_queries
from tests.knowledge_app.conftest import adopt, create_pattern, project, record

CHANGELIST = reverse("admin:knowledge_app_decision_changelist")


def act(admin_client, action: str, rows):
    return admin_client.post(CHANGELIST, {"action": action,
                                          "_selected_action": [str(r.pk) for r in rows]},
                             follow=True)


def test_decisions_are_searchable_and_filterable_by_status_and_deletion(admin_client, client):
    record(client, title="Use PostgreSQL", project_slug="api")
    gone = record(client, title="Use Kafka", rationale="Event log.")
    services.decision_delete(decision=Decision.objects.get(pk=gone["id"]))
    page = admin_client.get(CHANGELIST + "?q=kafka").content.decode()
    assert "Use Kafka" in page and "Use PostgreSQL" not in page
    live = admin_client.get(CHANGELIST + "?deleted=no").content.decode()
    assert "Use PostgreSQL" in live and "Use Kafka" not in live
    active = admin_client.get(CHANGELIST + "?status__exact=active&deleted=yes").content.decode()
    assert "Use Kafka" in active


def test_restore_and_soft_delete_actions_call_the_services(admin_client, client):
    decision = Decision.objects.get(pk=record(client)["id"])
    act(admin_client, "soft-delete_selected", [decision])
    assert Decision.objects.get(pk=decision.pk).deleted_at is not None
    act(admin_client, "restore_selected", [decision])
    assert Decision.objects.get(pk=decision.pk).deleted_at is None
    assert client.get(f"/v1/decisions/{decision.pk}").status_code == 200


def test_an_admin_edit_writes_only_the_changed_fields(client):
    decision = Decision.objects.without_vectors().get(pk=record(client, tags=["a"])["id"])
    with CaptureQueriesContext(connection) as captured:
        services.decision_update(decision=decision, changes={"tags": ["b"], "title": None,
                                                             "status": "active"})
    update = [q for q in real_queries(captured) if q.startswith("UPDATE")]
    assert len(update) == 1 and '"tags"' in update[0] and '"title"' not in update[0]
    assert '"status"' not in update[0] and '"deleted_at"' not in update[0]


def test_an_edit_of_a_decision_deleted_meanwhile_is_refused(client):
    decision = Decision.objects.get(pk=record(client)["id"])
    services.decision_delete(decision=decision)
    with pytest.raises(NotFound):
        services.decision_update(decision=decision, changes={"title": "x"})
    assert Decision.objects.get(pk=decision.pk).deleted_at is not None


def test_purge_removes_decisions_deleted_past_retention(client):
    old = Decision.objects.get(pk=record(client, title="old")["id"])
    recent = Decision.objects.get(pk=record(client, title="recent")["id"])
    record(client, title="live")
    Decision.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=40))
    Decision.objects.filter(pk=recent.pk).update(deleted_at=timezone.now() - timedelta(days=5))
    out = StringIO()
    call_command("purge_deleted", "--older-than-days", "30", "--dry-run", stdout=out)
    assert "Would purge 0 memories, 0 sessions, 0 agents, 1 decisions, 0 patterns" in (
        out.getvalue())
    assert Decision.objects.count() == 3
    call_command("purge_deleted", "--older-than-days", "30", stdout=out)
    assert set(Decision.objects.values_list("title", flat=True)) == {"recent", "live"}


def test_purge_keeps_a_deleted_decision_that_a_kept_decision_is_superseded_by(client):
    """A live decision superseded by a deleted one, through a chain of deleted ones: none of
    the chain goes, so no kept decision is left superseded by nothing."""
    first = record(client, title="Use REST")["id"]
    second = client.post(f"/v1/decisions/{first}/supersede",
                         {"title": "Use gRPC", "rationale": "fast"}, format="json").json()["id"]
    third = client.post(f"/v1/decisions/{second}/supersede",
                        {"title": "Use GraphQL", "rationale": "flexible"},
                        format="json").json()["id"]
    record(client, title="Deleted alone")
    # Deleted as releases before the delete gave the topic back left them (a delete now
    # puts the first back in force, so nothing would name a deleted decision).
    Decision.objects.exclude(pk=first).update(deleted_at=timezone.now() - timedelta(days=40))
    call_command("purge_deleted", "--older-than-days", "30", stdout=StringIO())
    assert set(Decision.objects.values_list("pk", flat=True)) == {
        uuid.UUID(first), uuid.UUID(second), uuid.UUID(third)}
    assert str(Decision.objects.get(pk=first).superseded_by_id) == second
    assert str(Decision.objects.get(pk=second).superseded_by_id) == third
    # once the live one is deleted and old too, the whole chain goes
    Decision.objects.filter(pk=first).update(deleted_at=timezone.now() - timedelta(days=40))
    call_command("purge_deleted", "--older-than-days", "30", stdout=StringIO())
    assert not Decision.objects.exists()


def test_purge_removes_patterns_deleted_past_retention_with_their_adoptions(client, account):
    from sessions_app.projects import project_delete

    project(account, "api")
    gone = project(account, "gone")
    old = create_pattern(client, title="old")
    adopt(client, old, "api")
    live = create_pattern(client, title="live")
    adopt(client, live, "gone")
    Pattern.objects.filter(pk=old["id"]).update(deleted_at=timezone.now() - timedelta(days=40))
    project_delete(project=gone, at=timezone.now() - timedelta(days=40))
    out = StringIO()
    call_command("purge_deleted", "--older-than-days", "30", stdout=out)
    assert "0 decisions, 1 patterns, 1 projects" in out.getvalue()
    assert list(Pattern.objects.values_list("title", flat=True)) == ["live"]
    assert client.get(f"/v1/patterns/{live['id']}").json()["adoption_count"] == 0


PATTERNS = reverse("admin:knowledge_app_pattern_changelist")


def test_patterns_are_searchable_filterable_and_show_their_adoptions(admin_client, client,
                                                                     account):
    project(account, "billing-api")
    kept = create_pattern(client, title="Errors follow RFC 7807", category="errors")
    create_pattern(client, title="Feature flags", category="release", scope="project")
    adopt(client, kept, "billing-api")
    page = admin_client.get(PATTERNS + "?q=7807").content.decode()
    assert "Errors follow RFC 7807" in page and "Feature flags" not in page
    scoped = admin_client.get(PATTERNS + "?scope__exact=project").content.decode()
    assert "Feature flags" in scoped and "RFC 7807" not in scoped
    detail = admin_client.get(reverse("admin:knowledge_app_pattern_change", args=[kept["id"]]))
    assert detail.status_code == 200 and "billing-api" in detail.content.decode()


def test_pattern_restore_and_soft_delete_actions_call_the_services(admin_client, client):
    pattern = Pattern.objects.get(pk=create_pattern(client)["id"])
    admin_client.post(PATTERNS, {"action": "soft-delete_selected",
                                 "_selected_action": [str(pattern.pk)]}, follow=True)
    assert client.get(f"/v1/patterns/{pattern.pk}").status_code == 404
    admin_client.post(PATTERNS, {"action": "restore_selected",
                                 "_selected_action": [str(pattern.pk)]}, follow=True)
    assert client.get(f"/v1/patterns/{pattern.pk}").status_code == 200


def test_an_admin_edit_of_a_pattern_goes_through_the_update_service(admin_client, client):
    pattern = create_pattern(client, title="Old title")
    url = reverse("admin:knowledge_app_pattern_change", args=[pattern["id"]])
    form = {"title": "New title", "description": pattern["description"], "scope": "global",
            "category": "", "tags": "[]", "example_code": "", "metadata": "{}",
            "adoptions-TOTAL_FORMS": "0", "adoptions-INITIAL_FORMS": "0"}
    response = admin_client.post(url, form, follow=True)
    assert response.status_code == 200
    assert client.get(f"/v1/patterns/{pattern['id']}").json()["title"] == "New title"
