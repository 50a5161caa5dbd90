"""The task queue in tests: ``task_queue`` runs a test on each backend (the database queue,
and RQ on Redis at 127.0.0.1:6379 on a queue of its own), and ``run_tasks()`` runs what is
queued to the end, in this process, as a worker would."""

from __future__ import annotations

import os
import uuid

import pytest

REDIS = "redis://127.0.0.1:6379/0"


def redis_or_skip():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("MEMORYRELAY_REQUIRE_REDIS") == "1":
            pytest.fail("Redis on 127.0.0.1:6379 is required here (MEMORYRELAY_REQUIRE_REDIS=1)")
        pytest.skip("needs Redis on 127.0.0.1:6379 (CI starts it and requires it)")
    return client


def use_backend(settings, backend: str, queue: str | None = None, url: str = REDIS) -> str:
    queue = queue or f"test-{uuid.uuid4().hex[:12]}"
    settings.MEMORYRELAY_TASK_BACKEND = backend
    settings.MEMORYRELAY_TASK_QUEUE = queue
    settings.RQ_QUEUES = {name: {"URL": url, "DEFAULT_TIMEOUT": 60, "SOCKET_TIMEOUT": 2,
                                 "SOCKET_CONNECT_TIMEOUT": 2} for name in ("default", queue)}
    settings.TASKS = {"default": {
        "BACKEND": ("django_tasks_rq.RQBackend" if backend == "rq"
                    else "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default", queue],
    }}
    return queue


class Queue:
    def __init__(self, backend: str, name: str):
        self.backend, self.name = backend, name

    def run(self, max_rounds: int = 50) -> int:
        """Runs queued tasks until none is due; returns how many ran."""
        ran = 0
        for _ in range(max_rounds):
            done = self._run_due()
            if not done:
                return ran
            ran += done
        raise AssertionError("tasks kept coming")

    def _run_due(self) -> int:
        from django_tasks.signals import task_finished

        finished = []

        def count(sender, task_result, **kwargs):
            finished.append(task_result.id)

        task_finished.connect(count, weak=False)
        try:
            self._work()
        finally:
            task_finished.disconnect(count)
        return len(finished)

    def _work(self) -> None:
        if self.backend == "rq":
            import django_rq
            from django_tasks_rq import Job
            from rq import SimpleWorker

            queue = django_rq.get_queue(self.name, job_class=Job)
            worker = SimpleWorker([queue], connection=queue.connection, job_class=Job)
            worker.work(burst=True, logging_level="WARNING")
            return
        from unittest import mock

        from django_tasks_db.management.commands import db_worker

        from memoryrelay_site.tasks import tasks_dispatch

        tasks_dispatch()  # as every worker does each poll interval

        # Inside a test's transaction the connection must stay open (a worker process
        # closes its stale connections between tasks).
        with mock.patch.object(db_worker, "close_old_connections", lambda: None):
            self._work_database(db_worker.Worker)

    def _work_database(self, Worker) -> None:  # noqa: N803
        worker = Worker(queue_names=[self.name], interval=0, batch=True, backend_name="default",
                        startup_delay=False, max_tasks=None, worker_id="test-worker",
                        excluded_queue_names=[])
        worker.run()

    def pending(self) -> int:
        from memoryrelay_site.tasks import task_queue_state

        return task_queue_state()["pending"]


@pytest.fixture(params=["database", "rq"])
def task_queue(request, settings):
    if request.param == "rq":
        client = redis_or_skip()
    name = use_backend(settings, request.param)
    yield Queue(request.param, name)
    if request.param == "rq":
        leftover = list(client.scan_iter(match=f"*{name}*"))
        if leftover:
            client.delete(*leftover)
