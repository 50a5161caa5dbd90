"""The admin's own actions are in its history as Django's edits are: one change entry per
row an action changed, saying what was done, written with the change; rows it left alone
have none."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType

from entities_app.models import Entity, ExtractionKey
from entities_app.services import entity_get_or_create
from knowledge_app.services import decision_record, pattern_create
from memories_app.models import Memory
from memories_app.services import memory_create, memory_delete
from memoryrelay_site.models import ApiKey
from memoryrelay_site.services import api_key_create, api_key_revoke
from sessions_app import projects
from sessions_app.models import Agent, Session
from sessions_app.services import agent_get_or_create, session_create, session_end
from tests.sessions_app.test_admin import act


def history(row) -> list[tuple[int, str]]:
    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(row),
                                      object_id=str(row.pk))
    return [(e.action_flag, e.change_message) for e in entries.order_by("pk")]


def name(model) -> str:
    return f"{model._meta.app_label}_{model._meta.model_name}"


def soft_deletable(account) -> list:
    """Two rows of each model staff soft-delete and restore."""
    def pair(make):
        return [make(i) for i in range(2)]

    return [
        pair(lambda i: agent_get_or_create(account=account, name=f"agent-{i}")[0]),
        pair(lambda i: session_create(account=account, agent_ref="owner", title=f"s{i}")),
        pair(lambda i: memory_create(account=account, agent_ref="owner", content=f"m {i}")),
        pair(lambda i: projects.project_create(account=account, slug=f"p{i}", name=f"p{i}")),
        pair(lambda i: projects.project_relate(
            project=projects.project_get(account=account, slug=f"p{i}"),
            target_slug=f"p{1 - i}", relationship_type="depends_on")[0]),
        pair(lambda i: entity_get_or_create(account=account, name=f"E{i}",
                                            entity_type="concept")[0]),
        pair(lambda i: decision_record(account=account, title=f"d{i}", rationale="r")),
        pair(lambda i: pattern_create(account=account, title=f"pt{i}", description="d")),
    ]


def test_soft_delete_and_restore_write_one_change_per_row_they_changed(admin_client,
                                                                       account):
    for changed, left in soft_deletable(account):
        model = type(changed)
        act(admin_client, name(model), "soft-delete_selected", [changed])
        assert history(changed) == [(CHANGE, "Soft-deleted")], model
        # Deleted already: the service refuses it, and nothing is written.
        act(admin_client, name(model), "soft-delete_selected", [changed])
        act(admin_client, name(model), "restore_selected", [changed, left])
        assert history(changed) == [(CHANGE, "Soft-deleted"), (CHANGE, "Restored")], model
        assert history(left) == [], model
        assert model._base_manager.get(pk=changed.pk).deleted_at is None


def test_a_memory_restored_after_it_was_listed_is_left_alone_and_not_in_the_history(
        admin_client, account, agent, rf, monkeypatch):
    memory = memory_create(account=account, agent_ref=agent.name, content="restored twice")
    memory_delete(memory=memory)
    listed = Memory.objects.get(pk=memory.pk)  # as the list read it: deleted
    Memory.objects.filter(pk=memory.pk).update(deleted_at=None)
    model_admin = admin.site._registry[Memory]
    restore = model_admin.get_actions(admin_client.get("/admin/").wsgi_request)[
        "restore_selected"][0]
    said = []
    monkeypatch.setattr(model_admin, "message_user",
                        lambda request, text, level: said.append(text))
    request = rf.post("/")
    request.user = get_user_model().objects.get(is_superuser=True)
    restore(model_admin, request, [listed])
    assert said == ["Left alone (not deleted): 1."] and history(memory) == []


def test_ending_writes_a_change_for_the_sessions_it_ended_only(admin_client, account, agent):
    active = session_create(account=account, agent_ref=agent.name, title="active")
    ended = session_end(session=session_create(account=account, agent_ref=agent.name,
                                               title="ended"))
    act(admin_client, name(Session), "end_selected_sessions", [active, ended])
    assert history(active) == [(CHANGE, "Ended")] and history(ended) == []


def test_summarizing_writes_a_change_unless_refused(admin_client, session, memory, account):
    empty = session_create(account=account, agent_ref="other", title="no memories")
    act(admin_client, name(Session), "summarize_selected_sessions", [session, empty])
    assert history(session) == [(CHANGE, "Summarized")] and history(empty) == []


def test_revoking_writes_a_change_for_the_keys_it_revoked(admin_client, account):
    live, _ = api_key_create(user=account, name="live")
    revoked = api_key_revoke(key=api_key_create(user=account, name="revoked")[0])
    act(admin_client, name(ApiKey), "revoke", [live, revoked])
    assert history(live) == [(CHANGE, "Revoked")] and history(revoked) == []


def test_deactivating_writes_a_change_for_the_keys_it_switched_off(admin_client, account):
    on = ExtractionKey.objects.create(account=account, provider="openai", model="m",
                                      encrypted_key="x", is_active=True)
    off = ExtractionKey.objects.create(account=account, provider="anthropic", model="m",
                                       encrypted_key="y", is_active=False)
    act(admin_client, name(ExtractionKey), "deactivate", [on, off])
    assert history(on) == [(CHANGE, "Deactivated")] and history(off) == []


def test_a_merge_writes_a_change_for_the_kept_entity_and_each_merged_away(admin_client,
                                                                         account):
    acme, globex = (entity_get_or_create(account=account, name=n, entity_type="concept")[0]
                    for n in ("Acme", "Globex"))
    act(admin_client, name(Entity), "merge_selected", [acme, globex])
    kept, gone = (acme, globex) if Entity.objects.get(pk=acme.pk).deleted_at is None \
        else (globex, acme)
    assert history(kept) == [(CHANGE, f"Merged into this entity: {gone}")]
    assert history(gone) == [(CHANGE, f"Merged into {kept} (deleted)")]


def test_retrying_writes_a_change_for_the_failed_writes_it_queued(admin_client, account,
                                                                  agent):
    failed, ready = (memory_create(account=account, agent_ref=agent.name, content=t)
                     for t in ("failed", "ready"))
    Memory.objects.filter(pk=failed.pk).update(status="failed")
    act(admin_client, name(Memory), "retry_failed_writes", [failed, ready])
    assert history(failed) == [(CHANGE, "Queued again")] and history(ready) == []


def test_retrying_with_redis_down_leaves_the_writes_pending_for_the_sweep(
        admin_client, account, agent, settings, caplog):
    """Queueing the retry raised Redis's connection error out of the action: a 500, the
    writes already marked pending."""
    from tests.taskqueue import use_backend

    failed = memory_create(account=account, agent_ref=agent.name, content="failed")
    Memory.objects.filter(pk=failed.pk).update(status="failed", status_attempts=5)
    use_backend(settings, "rq", url="redis://127.0.0.1:1/0")
    with caplog.at_level("WARNING"):
        response = act(admin_client, name(Memory), "retry_failed_writes", [failed])
    assert response.status_code == 200
    row = Memory.objects.get(pk=failed.pk)
    assert (row.status, row.status_attempts) == ("pending", 0)
    assert history(failed) == [(CHANGE, "Queued again")]
    assert any("the sweep queues it later" in r.getMessage() for r in caplog.records)


def test_a_retry_counts_and_queues_only_the_writes_it_took(account, agent, monkeypatch):
    """Another retry took the write between this one's reading and its update: both
    counted it (a second "Queued again" in its history) and both queued it."""
    from django.db import connection

    from memories_app import tasks

    failed = memory_create(account=account, agent_ref=agent.name, content="failed")
    Memory.objects.filter(pk=failed.pk).update(status="failed")
    queued = []
    monkeypatch.setattr(tasks, "task_enqueue", lambda task, *args, **kw: queued.append(args))
    taken = []

    def the_other_retry_first(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("UPDATE") and not taken:
            taken.append(None)  # once: this update passes through here too
            taken[0] = Memory.objects.filter(pk=failed.pk).update(status="pending")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(the_other_retry_first):
        assert tasks.memory_embed_retry(memory_ids=[failed.pk]) == 0
    assert taken == [1] and queued == []


@pytest.mark.django_db(transaction=True)
def test_a_change_whose_history_cannot_be_written_is_undone(admin_client, account, agent,
                                                             monkeypatch):
    memory = memory_create(account=account, agent_ref=agent.name, content="kept live")
    session = session_create(account=account, agent_ref=agent.name, title="kept active")
    key, _ = api_key_create(user=account, name="kept")

    def refuse(*args, **kwargs):
        raise RuntimeError("history refused")

    monkeypatch.setattr(LogEntry.objects, "log_actions", refuse)
    for model, action, row in ((Memory, "soft-delete_selected", memory),
                               (Session, "end_selected_sessions", session),
                               (ApiKey, "revoke", key)):
        with pytest.raises(RuntimeError):
            act(admin_client, name(model), action, [row])
    assert Memory.objects.get(pk=memory.pk).deleted_at is None
    assert Session.objects.get(pk=session.pk).status == "active"
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert Agent.objects.live().filter(pk=agent.pk).exists()
