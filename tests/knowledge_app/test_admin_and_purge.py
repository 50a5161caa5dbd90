"""The staff admin for decisions (search, filters, soft delete and restore through the
services) and the purge command covering them."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from knowledge_app import services
from knowledge_app.models import Decision
from memoryrelay_site.errors import NotFound
from tests.conftest import real_queries
from tests.knowledge_app.conftest import record

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
    assert "Would purge 0 memories, 0 sessions, 0 agents, 1 decisions" in out.getvalue()
    assert Decision.objects.count() == 3
    call_command("purge_deleted", "--older-than-days", "30", stdout=out)
    assert set(Decision.objects.values_list("title", flat=True)) == {"recent", "live"}
