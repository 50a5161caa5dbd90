"""The lean write path: how many statements a memory, a batch and a session write run, and
what each is for. Counts leave out SAVEPOINT statements (only the test's own transaction
adds them) and the transaction's BEGIN/COMMIT.

A memory create runs 3: the API key, the agent (found and held in one locked SELECT), the
INSERT; an asynchronous one the same 3. A batch runs the same whatever its size (the agents
and sessions are read once, the rows go in one INSERT); only a deduplicating item costs its
own lookup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from memories_app.models import Memory
from memories_app.signals import memories_written
from sessions_app.models import Agent, Session
from sessions_app.services import ACTIVITY_RESOLUTION
from tests.conftest import real_queries

pytestmark = pytest.mark.django_db


def statements(captured) -> list[str]:
    return [sql for sql in real_queries(captured)
            if sql.split()[0].upper() not in ("BEGIN", "COMMIT")]


def kinds(sqls: list[str]) -> list[str]:
    """Each statement as 'VERB table'."""
    out = []
    for sql in sqls:
        verb = sql.split()[0].upper()
        after = ' FROM "' if verb == "SELECT" else '"'
        parts = sql.split(after, 1)
        out.append(f"{verb} {parts[1].split(chr(34))[0]}" if len(parts) == 2
                   else " ".join(sql.split()[:2]))
    return out


@pytest.fixture
def active_agent(agent):
    Agent.objects.filter(pk=agent.pk).update(last_active_at=timezone.now())
    return agent


def test_a_memory_create_runs_three_statements(client, active_agent):
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/v1/memories", {"agent_id": active_agent.name,
                                                "content": "Deploys happen on Tuesdays"},
                               format="json")
    assert response.status_code == 201, response.content
    assert kinds(statements(captured)) == [
        "SELECT memoryrelay_site_apikey", "SELECT sessions_app_agent",
        "INSERT memories_app_memory"]


def test_a_memory_into_a_session_adds_one_locked_read_of_it(client, active_agent, session):
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/v1/memories", {"agent_id": active_agent.name,
                                                "session_id": str(session.pk),
                                                "content": "Retry counter fixed"},
                               format="json")
    assert response.status_code == 201, response.content
    # The session's project labels the memory; the answer's project_id reads that label's
    # registered project.
    assert kinds(statements(captured)) == [
        "SELECT memoryrelay_site_apikey", "SELECT sessions_app_agent",
        "SELECT sessions_app_session", "INSERT memories_app_memory",
        "SELECT sessions_app_project"]


def test_an_async_write_is_one_insert(client, active_agent, task_queue):
    """On the database queue the pending memory is its own queue entry (a worker's
    dispatcher queues its task); on RQ the task goes to Redis, not to a statement."""
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/v2/memories", {"agent_id": active_agent.name,
                                                "content": "Deploys happen on Tuesdays"},
                               format="json")
    assert response.status_code == 202, response.content
    assert kinds(statements(captured)) == [
        "SELECT memoryrelay_site_apikey", "SELECT sessions_app_agent",
        "INSERT memories_app_memory"]


def test_the_agent_row_is_written_only_when_its_activity_is_stale(client, agent):
    long_ago = timezone.now() - ACTIVITY_RESOLUTION - timedelta(seconds=5)
    Agent.objects.filter(pk=agent.pk).update(last_active_at=long_ago)
    with CaptureQueriesContext(connection) as captured:
        client.post("/v1/memories", {"agent_id": agent.name, "content": "first"},
                    format="json")
    assert "UPDATE sessions_app_agent" in kinds(statements(captured))
    moved = Agent.objects.get(pk=agent.pk).last_active_at
    assert moved > long_ago
    with CaptureQueriesContext(connection) as captured:
        client.post("/v1/memories", {"agent_id": agent.name, "content": "second"},
                    format="json")
    assert "UPDATE sessions_app_agent" not in kinds(statements(captured))
    assert Agent.objects.get(pk=agent.pk).last_active_at == moved


def _batch(client, items: list[dict]):
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/v1/memories/batch", {"memories": items}, format="json")
    assert response.status_code == 200, response.content
    return response.json(), kinds(statements(captured))


@pytest.mark.parametrize("size", [2, 40])
def test_a_batch_runs_the_same_statements_whatever_its_size(client, active_agent, session,
                                                            size):
    items = [{"agent_id": active_agent.name, "content": f"batch fact number {n}",
              **({"session_id": str(session.pk)} if n % 2 else {})} for n in range(size)]
    body, ran = _batch(client, items)
    assert body["succeeded"] == size
    inserts = ran.count("INSERT memories_app_memory")
    assert [k for k in ran if k != "INSERT memories_app_memory"] == [
        "SELECT memoryrelay_site_apikey", "SELECT sessions_app_agent",
        "SELECT sessions_app_session"]
    # One INSERT on PostgreSQL; SQLite's bound on variables per statement splits it.
    fields = [f for f in Memory._meta.concrete_fields]
    per_insert = connection.ops.bulk_batch_size(fields, items) or size
    assert inserts == -(-size // per_insert)
    assert inserts == 1 or connection.vendor == "sqlite"
    assert Memory.objects.filter(session=session).count() == size // 2


def test_a_batch_of_many_agents_reads_and_creates_them_once_each(client, active_agent):
    items = [{"agent_id": name, "content": f"fact {n} of {name}"}
             for n in range(6) for name in (active_agent.name, "new-bot")]
    body, ran = _batch(client, items)
    assert body["succeeded"] == 12
    assert ran.count("SELECT sessions_app_agent") <= 2  # the locked read, a name's check
    assert ran.count("INSERT sessions_app_agent") == 1
    assert ran.count("INSERT memories_app_memory") == 1
    assert Agent.objects.filter(name="new-bot").count() == 1


def test_a_batch_keeps_the_order_of_its_items(client, active_agent):
    items = [{"agent_id": active_agent.name, "content": f"step {n} of the deploy"}
             for n in range(30)]
    body, _ = _batch(client, items)
    ids = [r["id"] for r in body["results"]]
    listed = client.get(f"/v1/memories?agent_id={active_agent.name}&limit=100").json()["data"]
    assert [m["id"] for m in listed] == ids[::-1]  # newest first, as 30 writes would list
    assert [m["created_at"] for m in listed] == sorted(m["created_at"] for m in listed)[::-1]


def test_a_bad_batch_item_fails_alone_without_a_savepoint(client, active_agent, other_account):
    from sessions_app.services import session_create

    theirs = session_create(account=other_account, agent_ref="their-bot")
    items = [{"agent_id": active_agent.name, "content": "kept one"},
             {"agent_id": active_agent.name, "content": "refused",
              "session_id": str(theirs.pk)},
             {"agent_id": active_agent.name, "content": "kept two"}]
    body, ran = _batch(client, items)
    assert [r["status"] for r in body["results"]] == ["success", "failed", "success"]
    assert body["results"][1]["error_code"] == "validation_error"
    assert ran.count("INSERT memories_app_memory") == 1
    assert not Memory.objects.filter(session=theirs).exists()


def test_an_item_naming_a_deleted_agents_id_fails_alone(client, active_agent):
    from sessions_app.services import agent_delete, agent_get_or_create

    gone, _ = agent_get_or_create(account=active_agent.account, name="retired-bot")
    agent_delete(agent=gone)
    items = [{"agent_id": active_agent.name, "content": "kept one"},
             {"agent_id": str(gone.pk), "content": "meant for the deleted agent"},
             {"agent_id": active_agent.name, "content": "kept two"}]
    body, _ = _batch(client, items)
    assert [r["status"] for r in body["results"]] == ["success", "failed", "success"]
    assert body["results"][1]["error_code"] == "not_found"
    assert not Memory.objects.filter(agent=gone).exists()
    single = client.post("/v1/memories", items[1], format="json")  # alone: as before
    assert single.status_code == 404 and not Memory.objects.filter(agent=gone).exists()


def test_a_new_agent_named_only_by_failed_items_is_not_created(client, active_agent,
                                                                 other_account):
    """As a single write's rollback would: the items naming it all failed."""
    from sessions_app.services import session_create

    theirs = session_create(account=other_account, agent_ref="their-bot")
    items = [{"agent_id": "never-stored", "content": "refused",
              "session_id": str(theirs.pk)},
             {"agent_id": "stored-bot", "content": "kept"}]
    body, _ = _batch(client, items)
    assert [r["status"] for r in body["results"]] == ["failed", "success"]
    names = set(Agent.objects.filter(account=active_agent.account).values_list("name",
                                                                               flat=True))
    assert "never-stored" not in names and "stored-bot" in names


def test_a_deduplicating_item_sees_the_items_before_it(client, active_agent):
    items = [{"agent_id": active_agent.name, "content": "The staging database is Postgres"},
             {"agent_id": active_agent.name, "content": "The staging database is Postgres",
              "deduplicate": True}]
    body, _ = _batch(client, items)
    assert [r["status"] for r in body["results"]] == ["success", "skipped"]
    assert body["results"][1]["id"] == body["results"][0]["id"]
    assert Memory.objects.filter(agent=active_agent).count() == 1


def test_a_session_create_runs_three_statements(client, active_agent):
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/v1/sessions", {"agent_id": active_agent.name,
                                                "title": "Fix the queue"}, format="json")
    assert response.status_code == 201, response.content
    assert kinds(statements(captured)) == [
        "SELECT memoryrelay_site_apikey", "SELECT sessions_app_agent",
        "INSERT sessions_app_session"]
    assert Session.objects.filter(agent=active_agent).count() == 1


# --- memories_written -----------------------------------------------------------------


@pytest.fixture
def heard():
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    memories_written.connect(receiver, dispatch_uid="test-heard")
    yield calls
    memories_written.disconnect(dispatch_uid="test-heard")


def test_writes_are_announced_once_committed(client, active_agent, heard,
                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/v1/memories", {"agent_id": active_agent.name,
                                               "content": "Acme Corp renewed",
                                               "auto_extract_entities": False},
                              format="json").json()
    assert heard == [{"signal": memories_written, "account_id": active_agent.account_id,
                      "memory_ids": [created["id"]], "extract": False, "reason": "create"}]
    heard.clear()
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post("/v1/memories/batch", {"memories": [
            {"agent_id": active_agent.name, "content": "one", "auto_extract_entities": True},
            {"agent_id": active_agent.name, "content": "two"},
            {"agent_id": active_agent.name, "content": "three", "auto_extract_entities": True},
        ]}, format="json").json()
    ids = [r["id"] for r in body["results"]]
    assert [(h["memory_ids"], h["extract"]) for h in heard] == [
        ([ids[0], ids[2]], True), ([ids[1]], None)]
    heard.clear()
    with django_capture_on_commit_callbacks(execute=True):
        client.patch(f"/v1/memories/{created['id']}", {"content": "Acme Corp churned"},
                     format="json")
        client.patch(f"/v1/memories/{created['id']}", {"importance": 0.9}, format="json")
    assert [(h["memory_ids"], h["reason"]) for h in heard] == [([created["id"]], "update")]


def test_nothing_is_announced_when_the_write_is_refused(client, active_agent, heard,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/v1/memories", {
            "agent_id": active_agent.name, "content": "x",
            "session_id": "00000000-0000-4000-8000-000000000000"}, format="json")
    assert response.status_code == 422
    assert heard == []


def test_an_async_write_is_announced_when_ready(client, active_agent, heard, task_queue,
                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/v2/memories", {"agent_id": active_agent.name,
                                               "content": "Globex signed",
                                               "auto_extract_entities": True},
                              format="json").json()
    assert heard == []  # not yet embedded
    assert Memory.objects.get(pk=created["id"]).extract_entities is True
    with django_capture_on_commit_callbacks(execute=True):
        assert task_queue.run() == 1
    assert [(h["memory_ids"], h["extract"], h["reason"]) for h in heard] == [
        ([created["id"]], True, "ready")]
