"""``manage.py task_worker`` on RQ through faults: a database connection a restart broke is
not used for every later job, and Redis going away does not end the worker."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command
from django.db import connection
from django_tasks import task

from memories_app.models import Memory
from memories_app.services import memory_create
from memories_app.tasks import memory_embed
from memoryrelay_site.management.commands import task_worker
from memoryrelay_site.tasks import task_enqueue
from tests.taskqueue import redis_or_skip, use_backend


@task()
def break_the_database_connection() -> None:
    """As a PostgreSQL restart does to a worker's connection: its next statement fails."""
    connection.ensure_connection()
    connection.connection.close()
    Memory.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_job_after_the_database_broke_the_connection_gets_a_new_one(account, settings):
    """The job the break hit fails (it is retried); the ones after it used to fail too, on
    the same dead connection, until the worker was restarted."""
    redis_or_skip()
    use_backend(settings, "rq")
    memory = memory_create(account=account, agent_ref="a", content="after the restart",
                           pending=True, queued=True)
    task_enqueue(break_the_database_connection)
    task_enqueue(memory_embed, str(memory.pk))
    call_command("task_worker", "--burst", stdout=io.StringIO())
    memory.refresh_from_db()
    assert memory.status == "ready" and memory.embedding is not None


def test_redis_going_away_does_not_end_the_worker(settings, monkeypatch, caplog):
    """RQ's bookkeeping raised out of ``work`` and the worker exited; nothing restarted it,
    and every write waited for an operator."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    use_backend(settings, "rq")
    rounds = []

    class Worker:  # RQ's, as far as the command uses it
        def __init__(self, name):
            self.name = name

        def work(self, **kwargs):
            rounds.append(self.name)
            if len(rounds) == 1:
                raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr("django_rq.get_worker", lambda *args, name, **kwargs: Worker(name))
    monkeypatch.setattr(task_worker.time, "sleep", lambda seconds: None)
    with caplog.at_level(logging.WARNING, logger="memoryrelay.tasks"):
        task_worker.Command()._run_rq(burst=False, worker_id="w-1")
    assert rounds == ["w-1", "w-1-2"]  # worked again, under a new name
    # one line for the outage, not a traceback of ~45 lines a round
    assert [r.getMessage() for r in caplog.records] == [
        "task worker: Redis failed (ConnectionError: Connection closed by server.); "
        "working again in 1 s"]
    assert caplog.records[0].exc_info is None


def test_a_stop_that_redis_going_away_made_fail_ends_the_worker(settings, monkeypatch):
    """RQ's SIGTERM handler notes the stop, then asks Redis whether a job is under way:
    with Redis gone that raised, the stop came out as one more Redis failure, and the
    worker worked on (40-50 s after the SIGTERM, until a second one)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    use_backend(settings, "rq")
    rounds = []

    class Worker:
        _shutdown_requested_date = None

        def __init__(self, name):
            self.name = name

        def work(self, **kwargs):
            rounds.append(self.name)
            if len(rounds) > 3:
                return  # worked on: the stop was lost
            self._shutdown_requested_date = "now"  # what RQ's handler sets first
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    monkeypatch.setattr("django_rq.get_worker", lambda *args, name, **kwargs: Worker(name))
    monkeypatch.setattr(task_worker.time, "sleep", lambda seconds: None)
    out = io.StringIO()
    task_worker.Command(stdout=out)._run_rq(burst=False, worker_id="w-1")
    assert rounds == ["w-1"]
    assert "task worker stopped" in out.getvalue()


def test_a_stop_during_the_wait_after_a_redis_failure_ends_the_worker_cleanly(settings,
                                                                              monkeypatch):
    import os
    import signal

    from redis.exceptions import ConnectionError as RedisConnectionError

    use_backend(settings, "rq")

    class Worker:
        def __init__(self, name):
            self.name = name

        def work(self, **kwargs):
            raise RedisConnectionError("Connection closed by server.")

    def stopped_while_waiting(seconds):
        os.kill(os.getpid(), signal.SIGTERM)  # as an operator's stop, during the wait

    class RaisedOutOfTheWait(Exception):
        pass

    def as_the_failed_workers_handler(signum, frame):  # RQ's own raise out of the sleep
        raise RaisedOutOfTheWait

    monkeypatch.setattr("django_rq.get_worker", lambda *args, name, **kwargs: Worker(name))
    monkeypatch.setattr(task_worker.time, "sleep", stopped_while_waiting)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    out = io.StringIO()
    signal.signal(signal.SIGTERM, as_the_failed_workers_handler)
    try:
        command = task_worker.Command(stdout=out)
        command._run_rq(burst=False, worker_id="w-1")
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert "task worker stopped" in out.getvalue()


# --- the worker's heartbeat, and health telling a stalled queue -------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_beats_and_removes_its_row_when_it_stops(settings, monkeypatch):
    """The command's heartbeat thread marks it alive; its stop removes it at once."""
    import threading

    from memoryrelay_site.models import TaskWorker

    beats = threading.Event()
    real = task_worker.tasks.worker_heartbeat

    def heartbeat(worker_id):
        real(worker_id)
        beats.set()

    def work(self, **kwargs):  # runs until the heartbeat was written, then stops
        assert beats.wait(5)
        assert TaskWorker.objects.count() == 1

    monkeypatch.setattr(task_worker.tasks, "worker_heartbeat", heartbeat)
    monkeypatch.setattr(task_worker.Command, "_work", work)
    call_command("task_worker", stdout=io.StringIO())
    assert not TaskWorker.objects.exists()


def test_dispatch_failing_is_logged_once_per_outage_and_backs_off(db, monkeypatch, caplog):
    """While the database is out of reach the dispatcher logged two tracebacks every poll
    (1,800 lines in 45 s); now one, then it waits 1 s doubling up to 30 s."""
    outcomes = iter([False] * 8 + [True, True])
    waits = []

    def dispatch():
        if not next(outcomes):
            raise OSError("connection refused")
        return 0

    class Done(Exception):
        pass

    def sleep(seconds):
        waits.append(seconds)
        if len(waits) > 10:
            raise Done

    monkeypatch.setattr(task_worker.tasks, "tasks_dispatch", dispatch)
    monkeypatch.setattr(task_worker.time, "sleep", sleep)
    with caplog.at_level(logging.INFO, logger="memoryrelay.tasks"), pytest.raises(Done):
        task_worker._dispatch_forever(0.5)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and "works again" in caplog.text
    assert waits[:10] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 0.5]


def test_a_failing_dispatcher_is_reported_to_the_worker_after_the_others_ran(monkeypatch):
    """Each dispatcher's failure was logged with its traceback inside ``tasks_dispatch``
    and swallowed: the worker never saw the outage, so it neither went quiet nor backed
    off (1,439 lines in 10 s with the database out of reach)."""
    from django.db import OperationalError

    from memoryrelay_site import tasks

    ran = []

    def failing():
        ran.append("failing")
        raise OperationalError("unable to open database file")

    def working():
        ran.append("working")
        return 2

    monkeypatch.setattr(tasks, "_dispatchers", [failing, working])
    with pytest.raises(OperationalError):
        tasks.tasks_dispatch()
    assert ran == ["failing", "working"]


def test_an_outage_under_the_real_dispatch_is_one_line_then_quiet(monkeypatch, caplog):
    import sqlite3

    from django.db import OperationalError

    from memoryrelay_site import tasks

    def unreachable():
        try:
            raise sqlite3.OperationalError("unable to open database file")
        except sqlite3.OperationalError as exc:
            raise OperationalError(str(exc)) from exc

    outcomes = iter([False] * 5 + [True])

    def dispatcher():
        if not next(outcomes):
            unreachable()
        return 0

    class Done(Exception):
        pass

    waits = []

    def sleep(seconds):
        waits.append(seconds)
        if len(waits) > 6:
            raise Done

    monkeypatch.setattr(tasks, "_dispatchers", [dispatcher])
    monkeypatch.setattr(task_worker.time, "sleep", sleep)
    monkeypatch.setattr(task_worker, "close_old_connections", lambda: None)
    with caplog.at_level(logging.INFO, logger="memoryrelay.tasks"), pytest.raises(Done):
        task_worker._dispatch_forever(0.5)
    lines = [r for r in caplog.records if r.name == "memoryrelay.tasks"]
    assert [r.getMessage() for r in lines] == [
        "task dispatch failed: database unreachable (unable to open database file); trying "
        "again, quietly, until it works", "task dispatch works again"]
    assert lines[0].exc_info is None
    assert waits[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def test_a_read_only_refusal_renews_the_dispatchers_and_the_heartbeats_connection(
        monkeypatch):
    """A PostgreSQL session opened while the database was read-only stays read-only after
    it takes writes again; ``close_old_connections`` kept it (it answers SELECT 1), so the
    dispatcher failed every round and the heartbeat never wrote, for minutes after."""
    import psycopg
    from django.db import InternalError

    from memoryrelay_site import tasks

    def read_only(*args):
        try:
            raise psycopg.errors.ReadOnlySqlTransaction(
                "cannot execute UPDATE in a read-only transaction")
        except psycopg.Error as exc:
            raise InternalError(str(exc)) from exc

    closed = []

    class Connections:
        def close_all(self):
            closed.append(True)

    monkeypatch.setattr(task_worker, "connections", Connections())
    monkeypatch.setattr(task_worker, "close_old_connections", lambda: None)
    monkeypatch.setattr(tasks, "_dispatchers", [read_only])
    assert task_worker._dispatch(quiet=True) is False
    assert closed == [True]
    task_worker._quietly(read_only, "w-1")
    assert closed == [True, True]
    monkeypatch.setattr(tasks, "_dispatchers", [lambda: 0])
    assert task_worker._dispatch(quiet=True) is True
    task_worker._quietly(lambda worker_id: None, "w-1")
    assert closed == [True, True]  # a connection that works is kept


def test_a_sweep_during_an_outage_logs_one_line_per_round(monkeypatch, caplog):
    """Each sweeper's failure was a traceback, every half lease, all through an outage."""
    import sqlite3

    from django.db import OperationalError

    from memoryrelay_site import tasks

    def unreachable(cutoff):
        try:
            raise sqlite3.OperationalError("unable to open database file")
        except sqlite3.OperationalError as exc:
            raise OperationalError(str(exc)) from exc

    monkeypatch.setattr(tasks, "_sweepers", [unreachable])
    with caplog.at_level(logging.INFO, logger="memoryrelay.tasks"):
        assert tasks.tasks_sweep(lease_seconds=60) == 0
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("task sweep failed: database unreachable (unable to open database file)", None)]
