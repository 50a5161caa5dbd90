"""The task queue itself (memoryrelay_site.tasks, manage.py task_worker): a worker killed
mid-task loses nothing, stale claims are handed out again, health reports the queue, failed
writes are listed and retried in the admin; on both backends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from memories_app.models import Memory
from memoryrelay_site.tasks import task_queue_state, tasks_sweep
from tests.memories_app.test_openai_provider import bag_of_words
from tests.taskqueue import REDIS, redis_or_skip

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def post(client, content: str) -> str:
    response = client.post("/v2/memories", {"agent_id": "a", "content": content}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


# --- a worker killed mid-task -------------------------------------------------------------


class HangingEmbeddings(BaseHTTPRequestHandler):
    """An OpenAI-compatible embedding endpoint that holds its first request until released
    (the worker is killed meanwhile), then answers."""

    arrived = threading.Event()
    release = threading.Event()
    calls = 0

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        if type(self).calls == 1:
            type(self).arrived.set()
            type(self).release.wait(30)
        raw = json.dumps({"data": [{"index": i, "embedding": bag_of_words(t)}
                                   for i, t in enumerate(body["input"])],
                          "model": body["model"]}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def _manage(env, *args, timeout=60) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _enqueue_pending(env, content: str) -> str:
    """In the database ``env`` names: an asynchronous write of ``content`` and its task
    queued (a user and agent made for it); its memory's id."""
    return _manage(env, "shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from memoryrelay_site.tasks import task_enqueue\n"
        "from memories_app.services import memory_create\n"
        "from memories_app.tasks import memory_embed\n"
        "user = get_user_model().objects.create(username='u')\n"
        f"m = memory_create(account=user, agent_ref='a', content={content!r}, pending=True)\n"
        "task_enqueue(memory_embed, str(m.pk))\n"
        "print(m.pk)\n")).strip().splitlines()[-1]


def _worker(env, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "manage.py", "task_worker", "--interval", "0.1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _children_by_parent() -> dict[int, list[int]]:
    """The running processes' ids by their parent's, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _kill_tree(pid: int) -> None:
    """SIGKILL to a worker and its children (an RQ worker runs each job in a forked child
    of a session of its own), as when its machine dies."""
    children = _children_by_parent()
    todo, found = [pid], []
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    for each in found:
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _row(db: Path, memory_id: str):
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(
            "SELECT status, status_attempts, embedding IS NOT NULL FROM memories_app_memory "
            "WHERE id = ?", (memory_id.replace("-", ""),)).fetchone()


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def hanging_embeddings():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HangingEmbeddings)
    HangingEmbeddings.calls = 0
    HangingEmbeddings.arrived.clear()
    HangingEmbeddings.release.clear()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    HangingEmbeddings.release.set()
    server.shutdown()
    server.server_close()


def _worker_env(backend: str, url: str, **extra) -> dict:
    return {**os.environ, "MEMORYRELAY_EMBEDDINGS": "openai", "MEMORYRELAY_EMBEDDINGS_URL": url,
            "MEMORYRELAY_TASK_BACKEND": backend,
            "MEMORYRELAY_TASK_QUEUE": f"kill-test-{os.getpid()}-{backend}",
            "MEMORYRELAY_TASK_LEASE_SECONDS": "1", "REDIS_URL": REDIS, **extra}


def _kill_mid_task_then_restart(env: dict, memory_id: str, read, log: Path) -> None:
    """Starts a worker, SIGKILLs it while it embeds, starts another: the memory ends
    ready, on its second attempt. ``read(memory_id)``: (status, attempts, has vector)."""
    workers = []
    client = redis_or_skip() if env["MEMORYRELAY_TASK_BACKEND"] == "rq" else None
    try:
        workers.append(_worker(env, log))
        assert HangingEmbeddings.arrived.wait(60), log.read_text()
        assert tuple(read(memory_id))[:2] == ("processing", 1)
        _kill_tree(workers[0].pid)  # mid-task: no chance to clean up
        workers[0].wait(10)
        HangingEmbeddings.release.set()
        time.sleep(1.2)  # past the lease
        assert read(memory_id)[0] == "processing"  # left behind by the dead worker
        workers.append(_worker(env, log))
        _wait(lambda: read(memory_id)[0] == "ready", 60, "the memory to be ready")
        assert tuple(read(memory_id)) == ("ready", 2, True)
    finally:
        HangingEmbeddings.release.set()
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
        if client is not None:
            leftover = list(client.scan_iter(match=f"*{env['MEMORYRELAY_TASK_QUEUE']}*"))
            if leftover:
                client.delete(*leftover)


@pytest.mark.parametrize("backend", ["database", "rq"])
def test_a_worker_killed_mid_task_loses_nothing_the_task_runs_again(backend, tmp_path,
                                                                    hanging_embeddings):
    """On SQLite (a file of its own, so worker processes share it)."""
    if backend == "rq":
        redis_or_skip()
    db = tmp_path / "db.sqlite3"
    env = _worker_env(backend, hanging_embeddings, DATABASE_URL="",
                      MEMORYRELAY_SQLITE_PATH=str(db))
    _manage(env, "migrate", "--noinput", timeout=120)
    memory_id = _enqueue_pending(env, "killed mid task")

    def read(memory_id):
        status, attempts, vector = _row(db, memory_id)
        return status, attempts, bool(vector)

    _kill_mid_task_then_restart(env, memory_id, read, tmp_path / "worker.log")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["database", "rq"])
def test_on_postgresql_a_worker_killed_mid_task_loses_nothing(backend, tmp_path, settings,
                                                             hanging_embeddings, account):
    """The workers run on this test's PostgreSQL database."""
    from django.db import connection

    from memories_app.services import memory_create
    from memories_app.tasks import memory_embed
    from memoryrelay_site.tasks import task_enqueue
    from tests.taskqueue import use_backend

    if backend == "rq":
        redis_or_skip()
    env = _worker_env(backend, hanging_embeddings)
    db = connection.settings_dict
    env["DATABASE_URL"] = (f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:"
                           f"{db['PORT'] or 5432}/{db['NAME']}")
    use_backend(settings, backend, queue=env["MEMORYRELAY_TASK_QUEUE"])
    memory = memory_create(account=account, agent_ref="a", content="killed mid task",
                           pending=True)
    task_enqueue(memory_embed, str(memory.pk))

    def read(memory_id):
        status, attempts, vector = Memory.objects.filter(pk=memory_id).values_list(
            "status", "status_attempts", "embedding_model").get()
        return status, attempts, bool(vector)

    _kill_mid_task_then_restart(env, str(memory.pk), read, tmp_path / "worker.log")


def test_a_worker_outlives_a_database_locked_for_a_while(tmp_path):
    """SQLite locked longer than the lock timeout (a long import holds the write lock):
    the worker waits and polls again instead of exiting, and runs what comes next."""
    db = tmp_path / "db.sqlite3"
    env = {**os.environ, "DATABASE_URL": "", "MEMORYRELAY_SQLITE_PATH": str(db),
           "MEMORYRELAY_EMBEDDINGS": "none", "MEMORYRELAY_DB_LOCK_TIMEOUT": "1"}
    _manage(env, "migrate", "--noinput", timeout=120)
    log = tmp_path / "worker.log"
    worker = _worker(env, log)
    try:
        _wait(lambda: "task worker" in log.read_text(), 30, "the worker to start")
        holder = sqlite3.connect(db, isolation_level=None, timeout=10)
        holder.execute("BEGIN IMMEDIATE")
        time.sleep(4)
        holder.execute("ROLLBACK")
        holder.close()
        assert worker.poll() is None, log.read_text()[-3000:]
        assert "the database failed" in log.read_text()
        memory_id = _enqueue_pending(env, "after the lock")
        _wait(lambda: _row(db, memory_id)[0] == "ready", 60, "the task after the lock")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)


def test_ctrl_c_stops_a_worker_cleanly(tmp_path):
    env = {**os.environ, "DATABASE_URL": "", "MEMORYRELAY_SQLITE_PATH": str(tmp_path / "db"),
           "MEMORYRELAY_EMBEDDINGS": "none"}
    _manage(env, "migrate", "--noinput", timeout=120)
    log = tmp_path / "worker.log"
    worker = _worker(env, log)
    try:
        _wait(lambda: "task worker" in log.read_text(), 30, "the worker to start")
        os.killpg(worker.pid, signal.SIGINT)
        assert worker.wait(15) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_rqs_scheduler_stops_when_its_worker_is_killed(tmp_path):
    """RQ runs its scheduler in a process of its own, forked by the worker. With the worker
    killed (SIGKILL, the OOM killer), the scheduler stops too and lets go of its Redis lock,
    so the next worker schedules; before, it ran on for ever, holding the lock."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads processes from /proc")
    client = redis_or_skip()
    env = _worker_env("rq", "http://127.0.0.1:9", DATABASE_URL="",
                      MEMORYRELAY_EMBEDDINGS="none", MEMORYRELAY_SQLITE_PATH=str(tmp_path / "db"))
    lock = f"rq:scheduler-lock:{env['MEMORYRELAY_TASK_QUEUE']}"
    _manage(env, "migrate", "--noinput", timeout=120)
    log = tmp_path / "worker.log"
    worker = _worker(env, log)
    scheduler = None
    try:
        scheduler = _wait(lambda: client.exists(lock) and _children_by_parent().get(worker.pid), 60,
                          "the worker's scheduler")[0]
        os.kill(worker.pid, signal.SIGKILL)  # the worker only: its scheduler is left
        worker.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (_alive(scheduler) or client.exists(lock)):
            time.sleep(0.2)
        assert not _alive(scheduler), "the scheduler outlived its worker"
        assert not client.exists(lock), "the scheduler's lock outlived its worker"
    finally:
        for pid in (worker.pid, scheduler):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        leftover = list(client.scan_iter(match=f"*{env['MEMORYRELAY_TASK_QUEUE']}*"))
        if leftover:
            client.delete(*leftover)


# --- stale claims, health, admin ----------------------------------------------------------


def test_a_stale_claim_is_handed_out_again_and_then_completes(client, task_queue):
    memory_id = post(client, "claimed by a worker that died")
    task_queue.run()
    stale = timezone.now() - timedelta(minutes=10)
    Memory.objects.filter(pk=memory_id).update(status="processing", status_changed_at=stale)
    assert tasks_sweep(lease_seconds=60) == 1
    assert tasks_sweep(lease_seconds=60) == 0  # taken once
    task_queue.run()
    assert Memory.objects.get(pk=memory_id).status == "ready"


def test_a_fresh_claim_is_left_to_its_worker(client, task_queue):
    memory_id = post(client, "being embedded right now")
    Memory.objects.filter(pk=memory_id).update(status="processing",
                                               status_changed_at=timezone.now())
    assert tasks_sweep(lease_seconds=60) == 0


def test_health_reports_the_queue_its_backlog_and_the_age_of_the_oldest_task(
        client, anon, task_queue):
    empty = anon.get("/v1/health").json()
    assert empty["services"]["task_queue"] == "up"
    assert empty["task_queue"]["pending"] == 0
    assert empty["task_queue"]["oldest_pending_age_seconds"] is None
    post(client, "one")
    post(client, "two")
    time.sleep(1.1)
    body = anon.get("/v1/health").json()
    assert body["task_queue"]["status"] == "up"
    assert body["task_queue"]["backend"] == task_queue.backend
    assert body["task_queue"]["pending"] == 2
    assert body["task_queue"]["oldest_pending_age_seconds"] >= 1
    task_queue.run()
    assert anon.get("/v1/health").json()["task_queue"]["pending"] == 0


def test_health_says_stalled_and_degraded_when_work_waits_and_no_worker_runs(
        client, anon, settings, task_queue):
    from datetime import timedelta

    from django.utils import timezone

    from memoryrelay_site.models import TaskWorker
    from memoryrelay_site.tasks import worker_gone, worker_heartbeat

    settings.MEMORYRELAY_TASK_STALL_SECONDS = 60
    client.post("/v2/memories", {"content": "waits for a worker", "agent_id": "a"},
                format="json")
    fresh = anon.get("/v1/health").json()
    assert fresh["status"] == "healthy" and fresh["task_queue"]["status"] == "up"
    assert fresh["task_queue"]["workers"] == 0 and fresh["task_queue"]["pending"] == 1
    with _clock_ahead(timedelta(seconds=61)):
        stalled = anon.get("/v1/health")
        worker_heartbeat("w-1")  # a worker is alive: the work waits its turn
        alive = anon.get("/v1/health").json()
    assert stalled.status_code == 200  # writes are still taken
    assert stalled.json()["status"] == "degraded"
    assert stalled.json()["services"]["task_queue"] == "stalled"
    assert alive["status"] == "healthy" and alive["task_queue"]["workers"] == 1
    worker_gone("w-1")
    assert not TaskWorker.objects.exists()
    # a worker killed (no goodbye) stops counting after three heartbeats
    TaskWorker.objects.create(id="w-2", backend="database",
                              last_seen_at=timezone.now() - timedelta(seconds=31))
    assert anon.get("/v1/health").json()["task_queue"]["workers"] == 0


def test_health_reports_the_queue_down_when_redis_does_not_answer(anon, settings):
    from tests.taskqueue import use_backend

    use_backend(settings, "rq", url="redis://127.0.0.1:1/0")
    response = anon.get("/v1/health")
    assert response.status_code == 200  # the API itself still answers
    assert response.json()["services"]["task_queue"] == "down"
    assert response.json()["status"] == "degraded"  # it said healthy
    assert task_queue_state()["status"] == "down"


def test_health_answers_within_its_timeout_when_redis_accepts_and_never_answers(
        anon, settings):
    """Health waited the queue's Redis socket timeout (5 s) on every call."""
    import socket

    from tests.taskqueue import use_backend

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts connections; nothing ever answers
    try:
        use_backend(settings, "rq", url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        settings.RQ_QUEUES = {name: {**queue, "SOCKET_TIMEOUT": 5}
                              for name, queue in settings.RQ_QUEUES.items()}
        settings.MEMORYRELAY_HEALTH_TIMEOUT = 1
        start = time.monotonic()
        response = anon.get("/v1/health")
        took = time.monotonic() - start
    finally:
        silent.close()
    assert took < 3, took
    assert response.status_code == 200
    assert response.json()["services"]["task_queue"] == "down"


def test_after_redis_failed_to_take_a_task_writes_do_not_wait_on_it_for_a_while(
        client, settings, monkeypatch):
    """A Redis that accepts and never answers held every /v2 write for its socket timeout
    (5 s): each still answered 202, the sweep queueing its work later. Now the first
    waits, and the writes in the next few seconds are not held at all."""
    import socket

    from memoryrelay_site import tasks
    from tests.taskqueue import use_backend

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        use_backend(settings, "rq", url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        took = []
        for n in range(3):
            start = time.monotonic()
            response = client.post("/v2/memories", {"content": f"write {n}", "agent_id": "a"},
                                   format="json")
            took.append(time.monotonic() - start)
            assert response.status_code == 202 and response.json()["job_id"] is None
        assert took[0] >= 0.9 and max(took[1:]) < 0.5, took
        # once the pause is over, Redis is offered a task again
        tasks._queue_failed_at[0] -= tasks.QUEUE_PAUSE_SECONDS
        start = time.monotonic()
        client.post("/v2/memories", {"content": "later", "agent_id": "a"}, format="json")
        assert time.monotonic() - start >= 0.9
    finally:
        silent.close()
    assert Memory.objects.filter(status="pending").count() == 4  # the sweep queues them


def test_failed_writes_are_listed_and_retried_in_the_admin(client, task_queue, settings,
                                                          monkeypatch):
    from memories_app import embeddings

    settings.MEMORYRELAY_TASK_BACKOFF, settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 0, 1
    provider = embeddings.get_provider()
    real = type(provider).embed

    def down(self, texts):
        raise embeddings.EmbeddingError("provider down (test)")

    monkeypatch.setattr(type(provider), "embed", down)
    memory_id = post(client, "fails, then retried by hand")
    task_queue.run()
    assert Memory.objects.get(pk=memory_id).status == "failed"
    staff = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    from django.test import Client

    browser = Client()
    browser.force_login(staff)
    listed = browser.get("/admin/memories_app/memory/?status__exact=failed")
    assert listed.status_code == 200 and "fails, then retried by hand" in listed.text
    detail = browser.get(f"/admin/memories_app/memory/{memory_id}/change/")
    assert "provider down (test)" in detail.text
    monkeypatch.setattr(type(provider), "embed", real)
    done = browser.post("/admin/memories_app/memory/", {
        "action": "retry_failed_writes", "_selected_action": [memory_id]})
    assert done.status_code == 302
    assert Memory.objects.get(pk=memory_id).status == "pending"
    task_queue.run()
    assert Memory.objects.get(pk=memory_id).status == "ready"


def test_make_run_starts_a_worker_beside_the_web_server_that_stops_with_it():
    dry = subprocess.run(["make", "-n", "-s", "run"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True).stdout
    lines = dry.splitlines()
    worker = next(i for i, line in enumerate(lines) if "manage.py task_worker" in line)
    web = next(i for i, line in enumerate(lines) if "/gunicorn " in line)
    assert worker < web and lines[worker].rstrip().endswith("&")
    assert "--stop-with $PPID" in lines[worker]


class _clock_ahead:
    """timezone.now() as it will be ``by`` from now (the queue's rows keep their times)."""

    def __init__(self, by):
        self.by = by

    def __enter__(self):
        from unittest import mock

        from django.utils import timezone

        real = timezone.now
        self.patch = mock.patch("django.utils.timezone.now", lambda: real() + self.by)
        self.patch.start()

    def __exit__(self, *exc):
        self.patch.stop()


def test_the_sweep_prunes_finished_task_rows_and_keeps_failures_a_week(settings, db):
    """Finished rows of the database queue piled up for ever (~14,000 an hour under load);
    nothing reads one once finished."""
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from memoryrelay_site.tasks import task_results_prune

    now = timezone.now()

    def row(status, finished_hours_ago):
        at = None if finished_hours_ago is None else now - timedelta(hours=finished_hours_ago)
        return DBTaskResult.objects.create(
            task_path="memories_app.tasks.memory_embed", args_kwargs={"args": [], "kwargs": {}},
            queue_name="default", backend_name="default", status=status, finished_at=at,
            run_after=None).pk

    done_old, done_new = row(TaskResultStatus.SUCCESSFUL, 25), row(TaskResultStatus.SUCCESSFUL, 2)
    failed_day, failed_old = row(TaskResultStatus.FAILED, 25), row(TaskResultStatus.FAILED, 200)
    waiting = row(TaskResultStatus.READY, None)
    assert task_results_prune(now=now) == 2
    assert set(DBTaskResult.objects.values_list("pk", flat=True)) == {
        done_new, failed_day, waiting}
    settings.MEMORYRELAY_TASK_RESULTS_KEEP_HOURS = 1
    assert task_results_prune(now=now) == 1 and not DBTaskResult.objects.filter(
        pk=done_new).exists()
    assert DBTaskResult.objects.filter(pk__in=[failed_day, waiting]).count() == 2
    assert done_old and failed_old
