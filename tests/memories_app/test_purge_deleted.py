"""manage.py purge_deleted: retention-based removal of soft-deleted rows."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from memories_app.models import Memory
from memories_app.services import memory_create
from sessions_app.models import Agent, Session
from sessions_app.services import agent_delete, session_delete


def purge(*args) -> str:
    out = StringIO()
    call_command("purge_deleted", *args, stdout=out)
    return out.getvalue()


def days_ago(n: int):
    return timezone.now() - timedelta(days=n)


def test_rows_deleted_past_retention_are_removed_and_recent_ones_stay(account, agent, session):
    old = memory_create(account=account, agent_ref=agent.name, content="old")
    recent = memory_create(account=account, agent_ref=agent.name, content="recent")
    live = memory_create(account=account, agent_ref=agent.name, content="live")
    Memory.objects.filter(pk=old.pk).update(deleted_at=days_ago(40))
    Memory.objects.filter(pk=recent.pk).update(deleted_at=days_ago(5))
    output = purge("--older-than-days", "30")
    assert "Purged 1 memories, 0 sessions, 0 agents" in output
    assert set(Memory.objects.values_list("content", flat=True)) == {"recent", "live"}
    assert live.pk and Session.objects.filter(pk=session.pk).exists()


def test_dry_run_reports_the_same_counts_and_removes_nothing(account, agent):
    gone = memory_create(account=account, agent_ref=agent.name, content="x")
    Memory.objects.filter(pk=gone.pk).update(deleted_at=days_ago(40))
    assert "Would purge 1 memories" in purge("--older-than-days", "30", "--dry-run")
    assert Memory.objects.filter(pk=gone.pk).exists()


def test_a_deleted_session_a_live_memory_still_names_is_kept_until_it_goes(account, agent,
                                                                          session):
    """The memory would have lost its session (a purge changed a row it did not remove)."""
    kept = memory_create(account=account, agent_ref=agent.name, content="keep me",
                         session_id=session.id)
    session_delete(session=session, at=days_ago(40))
    assert "0 sessions" in purge("--older-than-days", "30")
    kept.refresh_from_db()
    assert kept.session_id == session.id and kept.deleted_at is None
    Memory.objects.filter(pk=kept.pk).update(deleted_at=days_ago(40))
    assert "Purged 1 memories, 1 sessions" in purge("--older-than-days", "30")
    assert not Session.objects.exists()


def test_live_decisions_of_a_deleted_agent_and_session_are_left_as_they_are(client, account):
    """Decisions stay when their agent is deleted; purging the agent or the session set
    their links to null, on live rows, behind their updated_at."""
    from knowledge_app.models import Decision

    session = client.post("/v1/sessions", {"agent_id": "w", "title": "s"},
                          format="json").json()
    decision = client.post("/v1/decisions", {"title": "d", "rationale": "r", "agent_id": "w",
                                             "session_id": session["id"]},
                           format="json").json()
    agent_delete(agent=Agent.objects.get(name="w"), at=days_ago(40))
    fields = ["agent_id", "session_id", "updated_at", "status", "deleted_at"]
    before = Decision.objects.values(*fields).get(pk=decision["id"])
    out = purge("--older-than-days", "30")
    assert "0 sessions, 0 agents" in out
    assert Decision.objects.values(*fields).get(pk=decision["id"]) == before
    assert before["agent_id"] is not None and before["session_id"] is not None
    Decision.objects.filter(pk=decision["id"]).update(deleted_at=days_ago(40))
    assert "1 sessions, 1 agents, 1 decisions" in purge("--older-than-days", "30")


def test_the_rows_that_go_along_are_counted_and_a_dry_run_counts_the_same(client, account,
                                                                          agent):
    memory = memory_create(account=account, agent_ref=agent.name, content="Acme deal")
    entity = client.post("/v1/entities", {"name": "Acme", "entity_type": "organization"},
                         format="json").json()
    client.post("/v1/entities/links", {"entity_id": entity["id"], "memory_id": str(memory.pk)},
                format="json")
    Memory.objects.filter(pk=memory.pk).update(deleted_at=days_ago(40))
    dry = purge("--older-than-days", "30", "--dry-run")
    assert "Would purge 1 memories" in dry and "1 entity links" in dry
    assert Memory.objects.filter(pk=memory.pk).exists()
    real = purge("--older-than-days", "30")
    assert real.replace("Purged", "Would purge") == dry
    assert not Memory.objects.filter(pk=memory.pk).exists()


def test_a_deleted_agent_goes_with_its_sessions_and_memories_and_live_agents_stay(
    account, agent, session, memory
):
    other = Agent.objects.create(account=account, name="still-here")
    agent_delete(agent=agent, at=days_ago(40))
    assert "Purged 1 memories, 1 sessions, 1 agents" in purge("--older-than-days", "30")
    assert list(Agent.objects.all()) == [other]
    assert Memory.objects.count() == 0 and Session.objects.count() == 0


def test_running_twice_purges_nothing_the_second_time(account, agent):
    gone = memory_create(account=account, agent_ref=agent.name, content="x")
    Memory.objects.filter(pk=gone.pk).update(deleted_at=days_ago(40))
    purge("--older-than-days", "30")
    assert "Purged 0 memories, 0 sessions, 0 agents" in purge("--older-than-days", "30")


@pytest.mark.parametrize("value", ["-1", "soon", "1.5", "1000000", "99999999999"])
def test_a_bad_retention_is_a_command_error(db, value):
    with pytest.raises(CommandError):
        purge("--older-than-days", value)


def test_settled_webhook_deliveries_past_retention_go_and_unsettled_ones_stay(account, agent):
    from memories_app.models import WebhookDelivery

    memory = memory_create(account=account, agent_ref=agent.name, content="hooked")
    rows = {name: WebhookDelivery.objects.create(memory=memory, event="memory.ready",
                                                 status=status, updated_at=at).pk
            for name, status, at in [("old sent", "delivered", days_ago(40)),
                                     ("old refused", "refused", days_ago(40)),
                                     ("recent sent", "delivered", days_ago(5)),
                                     ("old unsent", "pending", days_ago(40))]}
    assert "and 2 webhook deliveries settled" in purge("--older-than-days", "30", "--dry-run")
    assert WebhookDelivery.objects.count() == 4
    assert "and 2 webhook deliveries settled" in purge("--older-than-days", "30")
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {
        rows["recent sent"], rows["old unsent"]}
    assert Memory.objects.filter(pk=memory.pk).exists()  # live rows never touched


def test_a_deleted_project_a_live_pattern_names_as_its_source_is_kept(account):
    """Purging it set the pattern's source_project to null, behind its updated_at."""
    from knowledge_app.models import Pattern
    from knowledge_app.services import pattern_create
    from sessions_app.projects import project_create, project_delete

    web = project_create(account=account, slug="web", name="Web")
    pattern = pattern_create(account=account, title="Errors follow RFC 7807",
                             description="problem+json", source_project="web")
    project_delete(project=web, at=days_ago(40))
    before = Pattern.objects.values("source_project_id", "updated_at").get(pk=pattern.pk)
    assert "0 projects" in purge("--older-than-days", "30")
    assert Pattern.objects.values("source_project_id", "updated_at").get(
        pk=pattern.pk) == before


# --- a restore racing a purge ----------------------------------------------------------------


def _restored_or_purged(kind: str, account, agent):
    """A row of ``kind`` deleted 40 days ago; the purge that removes it; its restore."""
    from entities_app.models import Entity
    from entities_app.services import entities_purge_deleted, entity_restore
    from knowledge_app.models import Decision
    from knowledge_app.services import decision_restore, knowledge_purge_deleted
    from memories_app.services import memory_restore, purge_deleted

    if kind == "memory":
        row = memory_create(account=account, agent_ref=agent.name, content="bring me back")
        return (row, lambda: purge_deleted(older_than_days=30).memories,
                lambda fresh: memory_restore(memory=fresh))
    if kind == "entity":
        row = Entity.objects.create(account=account, name="Kafka", entity_type="technology")
        return (row, lambda: entities_purge_deleted(older_than_days=30).entities,
                lambda fresh: entity_restore(entity=fresh))
    row = Decision.objects.create(account=account, title="Use Kafka", rationale="queues")
    return (row, lambda: knowledge_purge_deleted(older_than_days=30).decisions,
            lambda fresh: decision_restore(decision=fresh))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["memory", "entity", "decision"])
def test_a_row_restored_while_a_purge_runs_is_either_restored_or_purged_never_both(
        kind, account, agent, monkeypatch):
    """The purge read the rows to remove, a restore (the admin's) committed, and the purge
    then deleted by id: the restore answered success and the row was gone for good."""
    import threading

    from django.db import connections
    from django.db.models.deletion import Collector

    from memoryrelay_site.errors import NotFound

    row, purge_run, restore = _restored_or_purged(kind, account, agent)
    model = type(row)
    model._base_manager.filter(pk=row.pk).update(deleted_at=days_ago(40))
    paused, go = threading.Event(), threading.Event()
    delete = Collector.delete

    def paused_delete(self):
        if not paused.is_set():
            paused.set()
            go.wait(10)
        return delete(self)

    monkeypatch.setattr(Collector, "delete", paused_delete)
    outcome = {}

    def purging():
        try:
            outcome["purged"] = purge_run()
        finally:
            connections.close_all()

    def restoring():
        try:
            restore(model._base_manager.get(pk=row.pk))
            outcome["restore"] = "restored"
        except NotFound:
            outcome["restore"] = "not found"
        finally:
            connections.close_all()

    purge_thread = threading.Thread(target=purging)
    purge_thread.start()
    assert paused.wait(10)
    restore_thread = threading.Thread(target=restoring)
    restore_thread.start()
    restore_thread.join(1)  # it ends here unless the purge holds the row
    go.set()
    purge_thread.join(20)
    restore_thread.join(20)
    stored = model._base_manager.filter(pk=row.pk).first()
    if outcome["restore"] == "restored":
        assert stored is not None and stored.deleted_at is None, "restored, then purged"
        assert outcome["purged"] == 0
    else:
        assert stored is None and outcome["purged"] == 1


def test_restoring_rows_purged_meanwhile_is_a_not_found(account, agent, session):
    """The admin's "Restore selected" read the rows, a purge removed one: its restore was a
    server error (DoesNotExist, or an UPDATE that found no row)."""
    from entities_app.models import Entity
    from entities_app.services import entity_restore
    from knowledge_app.models import Decision, Pattern
    from knowledge_app.services import decision_restore, pattern_restore
    from memories_app.services import memory_restore
    from memoryrelay_site.errors import NotFound
    from sessions_app.models import Project, ProjectRelationship
    from sessions_app.projects import project_restore, relationship_restore
    from sessions_app.services import agent_restore, session_restore

    memory = memory_create(account=account, agent_ref=agent.name, content="gone")
    other = Agent.objects.create(account=account, name="other-agent")
    source = Project.objects.create(account=account, slug="src", name="src")
    target = Project.objects.create(account=account, slug="dst", name="dst")
    relationship = ProjectRelationship.objects.create(
        account=account, source=source, target=target, relationship_type="depends_on")
    decision = Decision.objects.create(account=account, title="t", rationale="r")
    pattern = Pattern.objects.create(account=account, title="t", description="d")
    entity = Entity.objects.create(account=account, name="Kafka", entity_type="technology")
    cases = [(memory, memory_restore, "memory"), (session, session_restore, "session"),
             (other, agent_restore, "agent"), (relationship, relationship_restore,
                                                "relationship"),
             (source, project_restore, "project"), (decision, decision_restore, "decision"),
             (pattern, pattern_restore, "pattern"), (entity, entity_restore, "entity")]
    for row, _, _ in cases:
        type(row)._base_manager.filter(pk=row.pk).update(deleted_at=days_ago(40))
        row.refresh_from_db()
    for row, restore, name in cases:  # children first: the purge's order
        type(row)._base_manager.filter(pk=row.pk).delete()
        with pytest.raises(NotFound):
            restore(**{name: row})
