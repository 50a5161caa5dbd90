"""Concurrent agents never corrupt a session: races are settled by database constraints."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from memories_app.models import Memory
from sessions_app import services
from sessions_app.models import Agent, Session
from tests.conftest import make_client

THREADS = 8


def run_together(count: int, call):
    """Runs ``call(i)`` in ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def worker(i):
        try:
            barrier.wait()
            return call(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(worker, range(count)))


def test_the_database_refuses_two_live_sessions_with_one_external_id(account):
    Session.objects.create(account=account, external_id="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.create(account=account, external_id="k")


def test_the_database_refuses_two_live_agents_with_one_name(account):
    Agent.objects.create(account=account, name="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.create(account=account, name="a")


def test_get_or_create_that_loses_the_insert_race_returns_the_winner(account, monkeypatch):
    """The check-then-insert window, forced: the lookup misses a session that exists."""
    winner = Session.objects.create(account=account, external_id="auto:abc:2026-03-17")
    real = services._live_by_external_id
    calls = []

    def stale_first_read(acct, external_id):
        calls.append(external_id)
        return None if len(calls) == 1 else real(acct, external_id)

    monkeypatch.setattr(services, "_live_by_external_id", stale_first_read)
    session, created = services.session_get_or_create(
        account=account, external_id="auto:abc:2026-03-17"
    )
    assert created is False and session.pk == winner.pk
    assert Session.objects.count() == 1


def test_get_or_create_whose_winner_was_deleted_before_it_was_read_creates_anew(
        client, account, monkeypatch):
    """The insert loses to another request's session, which is deleted before the loser
    reads it: the external_id is free again, so the loser creates (not a 500 on None)."""
    real = services.parents_for_write
    raced = []

    def lost_once(**kwargs):
        if not raced:
            raced.append(True)
            raise IntegrityError("duplicate key value (the winner, deleted since)")
        return real(**kwargs)

    monkeypatch.setattr(services, "parents_for_write", lost_once)
    response = client.post("/v1/sessions/get-or-create", {"external_id": "task-9"},
                           format="json")
    assert response.status_code == 201, response.content
    assert raced and str(Session.objects.live().get().pk) == response.json()["id"]


def test_get_or_create_whose_session_is_deleted_at_once_answers_it_as_created(
        client, account, monkeypatch):
    """Created, then deleted by another request before it was read back: the answer is the
    session as created (the delete came after), not a 500."""
    real = services._live_by_external_id
    calls = []

    def deleted_after_create(acct, external_id):
        calls.append(external_id)
        found = real(acct, external_id)
        if len(calls) == 2 and found is not None:
            services.session_delete(session=found)
            return None
        return found

    monkeypatch.setattr(services, "_live_by_external_id", deleted_after_create)
    response = client.post("/v1/sessions/get-or-create", {"external_id": "task-10"},
                           format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["external_id"] == "task-10" and body["memory_count"] == 0
    assert client.get(f"/v1/sessions/{body['id']}").status_code == 404


def test_get_or_create_that_keeps_losing_is_a_409(client, account, monkeypatch):
    def always_lost(**kwargs):
        raise IntegrityError("duplicate key value")

    monkeypatch.setattr(services, "parents_for_write", always_lost)
    response = client.post("/v1/sessions/get-or-create", {"external_id": "task-11"},
                           format="json")
    assert response.status_code == 409 and response.json()["type"] == "conflict"
    assert not Session.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_get_or_create_calls_end_with_one_session(account, api_key):
    def call(i):
        response = make_client(api_key).post(
            "/v1/sessions/get-or-create",
            {"external_id": "auto:race:2026-03-17", "agent_id": f"agent-{i % 2}"},
            format="json",
        )
        return response.status_code, response.json()["id"]

    results = run_together(THREADS, call)
    assert len({session_id for _, session_id in results}) == 1
    assert sorted(code for code, _ in results) == [200] * (THREADS - 1) + [201]
    assert Session.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_writes_with_a_new_agent_name_create_one_agent(account, api_key):
    def call(i):
        response = make_client(api_key).post(
            "/v1/memories", {"content": f"memory {i}", "agent_id": "alice-laptop"},
            format="json",
        )
        return response.status_code, response.json()["agent_id"]

    results = run_together(THREADS, call)
    assert {code for code, _ in results} == {201}
    assert len({agent_id for _, agent_id in results}) == 1
    assert Agent.objects.filter(name="alice-laptop").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_enders_leave_an_exact_count_and_one_ended_at(account, api_key):
    session = services.session_create(account=account, agent_ref="owner")

    def call(i):
        client = make_client(api_key)
        if i % 2:
            url = f"/v1/sessions/{session.id}/end"
            return client.put(url, {"metadata": {f"k{i}": i}}, format="json").status_code
        body = {"content": f"note {i}", "agent_id": f"writer-{i}", "session_id": str(session.id)}
        return client.post("/v1/memories", body, format="json").status_code

    codes = run_together(THREADS, call)
    assert set(codes) <= {200, 201}
    stored = Session.objects.get(pk=session.pk)
    assert stored.status == "ended" and stored.ended_at is not None
    assert set(stored.metadata) == {f"k{i}" for i in range(1, THREADS, 2)}
    body = make_client(api_key).get(f"/v1/sessions/{session.id}").json()
    assert body["memory_count"] == Memory.objects.filter(session=session).count() == THREADS // 2


@pytest.fixture
def lost_first_insert(monkeypatch):
    """The first Agent insert loses to another request's agent, which is deleted before
    the loser reads it (the name is free again)."""
    real = Agent.objects.create
    lost = []

    def create(**fields):
        if not lost:
            lost.append(fields["name"])
            raise IntegrityError("duplicate key value (the winner, deleted since)")
        return real(**fields)

    monkeypatch.setattr(Agent.objects, "create", create)
    return lost


def test_creating_an_agent_whose_racing_twin_was_deleted_creates_it(client, lost_first_insert):
    response = client.post("/v1/agents", {"name": "racer"}, format="json")
    assert response.status_code == 201, response.content
    assert lost_first_insert == ["racer"] and Agent.objects.live().get().name == "racer"


def test_a_write_naming_a_new_agent_whose_racing_twin_was_deleted_is_stored(
        client, lost_first_insert):
    response = client.post("/v1/memories", {"agent_id": "racer", "content": "kept"},
                           format="json")
    assert response.status_code == 201, response.content
    assert lost_first_insert == ["racer"] and Memory.objects.get().agent.name == "racer"


def test_an_agent_deleted_as_soon_as_it_was_created_is_answered_as_created(client,
                                                                          monkeypatch):
    real = services.agent_get_or_create

    def created_then_deleted(**kwargs):
        agent, created = real(**kwargs)
        services.agent_delete(agent=agent)
        return agent, created

    monkeypatch.setattr(services, "agent_get_or_create", created_then_deleted)
    response = client.post("/v1/agents", {"name": "brief"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "brief"


def test_new_agents_are_created_in_sorted_order(account, monkeypatch):
    """Two writes naming the same new agents in other orders insert them in one order, so
    neither waits on an insert the other holds while holding one it waits for."""
    real = services._agent_create_held
    order = []
    monkeypatch.setattr(services, "_agent_create_held",
                        lambda acct, name: order.append(name) or real(acct, name))
    with transaction.atomic():
        agents = services.agents_for_write(account=account, refs=["zeta", "alpha", "mid"],
                                           at=timezone.now())
    assert order == ["alpha", "mid", "zeta"] and set(agents) == {"zeta", "alpha", "mid"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_memory_written_between_the_count_and_the_page_is_in_neither(account, api_key,
                                                                       monkeypatch):
    """A session's memory_count and its embedded page are read from one snapshot: a memory
    another client commits between the two reads is in neither (it used to be in the page
    and not the count: two memories listed under a count of one)."""
    from sessions_app.views import SessionViewSet

    session = services.session_create(account=account, agent_ref="owner")
    client = make_client(api_key)

    def write(content):
        response = make_client(api_key).post("/v1/memories", {
            "content": content, "agent_id": "owner", "session_id": str(session.id)},
            format="json")
        assert response.status_code == 201

    write("the first memory")
    real = SessionViewSet._memories_of

    def with_a_write_between(self, session, params):
        writer = threading.Thread(target=lambda: (write("written in between"),
                                                  connection.close()))
        writer.start()
        writer.join()
        return real(self, session, params)

    monkeypatch.setattr(SessionViewSet, "_memories_of", with_a_write_between)
    body = client.get(f"/v1/sessions/{session.id}?include_memories=true").json()
    assert body["memory_count"] == len(body["memories"]) == 1
    assert body["memories_has_more"] is False
    monkeypatch.setattr(SessionViewSet, "_memories_of", real)
    body = client.get(f"/v1/sessions/{session.id}?include_memories=true").json()
    assert body["memory_count"] == len(body["memories"]) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_written_between_a_lists_count_and_its_page_is_in_neither(account, api_key,
                                                                        monkeypatch):
    """Every list (one envelope: ``total_count`` and a page) reads both from one snapshot:
    a memory committed by another client after the count is not on the page either."""
    from memories_app.views import MemoryViewSet

    client = make_client(api_key)

    def write(content):
        response = make_client(api_key).post("/v1/memories", {
            "content": content, "agent_id": "owner"}, format="json")
        assert response.status_code == 201

    write("the first memory")
    real_filter = MemoryViewSet.filter_queryset

    def racing_filter(self, queryset):
        rows = real_filter(self, queryset)

        def count(qs):
            counted = type(qs).__mro__[1].count(qs)
            writer = threading.Thread(target=lambda: (write("written in between"),
                                                      connection.close()))
            writer.start()
            writer.join()
            return counted

        rows.__class__ = type("Racing", (type(rows),), {"count": count})
        return rows

    monkeypatch.setattr(MemoryViewSet, "filter_queryset", racing_filter)
    body = client.get("/v1/memories").json()
    assert body["total_count"] == len(body["data"]) == 1
    monkeypatch.setattr(MemoryViewSet, "filter_queryset", real_filter)
    assert client.get("/v1/memories").json()["total_count"] == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_items_fail_never_deletes_an_agent_another_write_created(account,
                                                                               api_key):
    """A batch that loses the race to create a new agent, and whose items for it all fail,
    used to delete the winner's agent as its own leftover, and with it (a cascade) the
    memories other batches had been answered for."""
    gone = services.session_create(account=account)
    services.session_delete(session=gone, cascade_memories=False)
    stored = []
    for round_ in range(6):
        name = f"new-agent-{round_}"

        def call(i, name=name):
            item = {"agent_id": name, "content": f"memory {i} of {name}"}
            if i % 2:
                item["session_id"] = str(gone.pk)  # fails: the session is deleted
            response = make_client(api_key).post("/v1/memories/batch", {"memories": [item]},
                                                 format="json")
            assert response.status_code == 200, response.content
            return response.json()["results"]

        for results in run_together(THREADS, call):
            stored += [r["memory_id"] for r in results if r["status"] == "success"]
    assert len(stored) == 6 * THREADS // 2
    assert Memory.objects.filter(pk__in=stored, deleted_at__isnull=True).count() == len(stored)
    assert Agent.objects.filter(name__startswith="new-agent-").count() == 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_batches_naming_the_same_new_agents_never_deadlock(account, api_key):
    """Known agents were held in the order of their ids and new ones in the order of their
    names: two batches could hold one each and wait for the other (a 503)."""
    codes = []
    for round_ in range(6):
        names = [f"pair-{round_}-{side}" for side in "ab"]

        def call(i, names=names):
            body = {"memories": [{"agent_id": n, "content": f"note {i} for {n}"}
                                 for n in (names if i % 2 else names[::-1])]}
            return make_client(api_key).post("/v1/memories/batch", body,
                                             format="json").status_code

        codes += run_together(THREADS, call)
    assert codes == [200] * len(codes)
    assert Agent.objects.filter(name__startswith="pair-").count() == 12


@pytest.mark.postgres
def test_known_agents_are_held_in_the_order_new_ones_are_created_whatever_the_collation(
        account):
    """New agents are created in Python's order (by code point); known ones were held in
    the database collation's, and under en_US ("a" before "B") two batches naming both
    kinds held them in opposite orders: a deadlock."""
    from django.test.utils import CaptureQueriesContext

    for name in ("a", "B"):
        Agent.objects.create(account=account, name=name)
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        held = services.agents_for_write(account=account, refs=["a", "B"], at=timezone.now())
    assert set(held) == {"a", "B"}
    locking = [q["sql"] for q in captured.captured_queries if "FOR NO KEY UPDATE" in q["sql"]]
    assert locking and all('COLLATE "C"' in sql for sql in locking), locking
