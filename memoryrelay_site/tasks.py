"""The task queue: Django's Tasks API (the ``django-tasks`` backport on Django 5.2) on one of
two backends, chosen by settings alone (MEMORYRELAY_TASK_BACKEND):

- ``database`` (default): tasks are rows of the project's own database (``django-tasks-db``),
  run by ``manage.py task_worker``; `make run` starts one beside the web server.
- ``rq``: tasks are RQ jobs in Redis (REDIS_URL, ``django-tasks-rq``), run by any number of
  ``manage.py task_worker`` processes on any machines.

Neither backend retries or survives a killed worker by itself, so the rules live here and in
the state each task keeps on its own rows: a task is idempotent (it re-reads that state and
does nothing twice), a failed attempt is enqueued again after ``retry_delay`` until
MEMORYRELAY_TASK_MAX_ATTEMPTS, and work left claimed longer than
MEMORYRELAY_TASK_LEASE_SECONDS (its worker died) is handed out again by the sweepers that
apps register with ``register_sweeper`` and every worker runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .deadlines import within

logger = logging.getLogger("memoryrelay.tasks")

_sweepers: list[Callable[[datetime], int]] = []


def register_sweeper(sweeper: Callable[[datetime], int]) -> None:
    """``sweeper(cutoff)`` re-enqueues the app's work claimed or queued before ``cutoff`` and
    not finished, and returns how many it handed out again."""
    if sweeper not in _sweepers:
        _sweepers.append(sweeper)


_dispatchers: list[Callable[[], int]] = []
_backlogs: list[Callable[[], tuple[int, datetime | None]]] = []


def register_dispatcher(dispatcher: Callable[[], int], backlog=None) -> None:
    """On the database queue, work a request only records (a row in a waiting state, no
    task row: one insert) is handed to tasks by ``dispatcher()``, which every worker calls
    every poll interval and which returns how many it handed; ``backlog()`` tells health
    how much waits for it, as ``(count, oldest)``."""
    if dispatcher not in _dispatchers:
        _dispatchers.append(dispatcher)
    if backlog is not None and backlog not in _backlogs:
        _backlogs.append(backlog)


def tasks_dispatch() -> int:
    """Runs every app's dispatcher; how many tasks they handed out. One that fails keeps
    no other from running; the first failure is raised once all have run, for the worker
    to log once per outage and to back off (each had logged a traceback every poll)."""
    handed, failure = 0, None
    for dispatcher in list(_dispatchers):
        try:
            handed += dispatcher()
        except Exception as exc:  # noqa: BLE001 - raised below, after the others ran
            failure = failure or exc
    if failure is not None:
        raise failure
    return handed


def tasks_sweep(*, lease_seconds: float | None = None) -> int:
    lease = settings.MEMORYRELAY_TASK_LEASE_SECONDS if lease_seconds is None else lease_seconds
    cutoff = timezone.now() - timedelta(seconds=lease)
    total = 0
    for sweeper in list(_sweepers):
        try:
            total += sweeper(cutoff)
        except Exception as exc:  # noqa: BLE001 - a sweep retries on the next round
            log_failed("task sweep", exc)
    if total:
        logger.warning("handed out %d unfinished task(s) again", total)
    return total


# Finished task rows pruned per sweep at most (a sweep runs every minute or less).
PRUNE_BATCH = 5000
FAILED_KEPT = timedelta(days=7)  # a failure's row (its traceback) is kept longer


def task_results_prune(*, now: datetime | None = None) -> int:
    """Deletes the database queue's finished task rows: succeeded ones finished over
    MEMORYRELAY_TASK_RESULTS_KEEP_HOURS ago, failed ones over a week ago (at most
    PRUNE_BATCH a call). Nothing reads a finished task (a write's state is on its memory);
    they piled up for ever, about 14,000 an hour under a steady load."""
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    now = now or timezone.now()
    kept = timedelta(hours=settings.MEMORYRELAY_TASK_RESULTS_KEEP_HOURS)
    old = (DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL,
                                       finished_at__lt=now - kept)
           | DBTaskResult.objects.filter(status=TaskResultStatus.FAILED,
                                         finished_at__lt=now - max(kept, FAILED_KEPT)))
    ids = list(old.values_list("pk", flat=True)[:PRUNE_BATCH])
    if ids:
        DBTaskResult.objects.filter(pk__in=ids).delete()
    return len(ids)


def log_failed(what: str, exc: BaseException, then: str = "") -> None:
    """One line when the database cannot serve right now (an outage: it repeats every
    round), the traceback otherwise (a bug); ``then`` (``"; ..."``) says what comes next."""
    from .db import summary, unavailable_reason

    reason = unavailable_reason(exc)
    if reason is None:
        logger.exception("%s failed%s", what, then)
    else:
        logger.warning("%s failed: database %s (%s)%s", what, reason, summary(exc), then)


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped."""
    return min(settings.MEMORYRELAY_TASK_BACKOFF * 2 ** max(attempt - 1, 0), 300.0)


def log_not_queued(what: str, exc: BaseException, then: str) -> None:
    """A task that could not be queued: the queue out of reach (Redis down, the database
    unavailable) is an outage, one line per write; anything else is a bug, with its
    traceback. ``then`` says what becomes of the work."""
    from .db import unavailable_reason

    if isinstance(exc, (RedisError, OSError)) or unavailable_reason(exc) is not None:
        logger.warning("%s not queued (%s: %s); %s", what, type(exc).__name__,
                       str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "",
                       then)
    else:
        logger.error("%s not queued; %s", what, then, exc_info=exc)


def task_enqueue(task, *args, delay: float = 0, **kwargs) -> str:
    """Enqueues ``task`` (a django_tasks task) after ``delay`` seconds; returns its job id.
    On RQ, once Redis failed to take a task, none is offered for QUEUE_PAUSE_SECONDS (this
    process): a Redis that accepts and never answers held each request for its socket
    timeout (5 s). Such a task is not queued (:class:`QueuePaused`, a Redis error), as when
    Redis is down: what it was for is handed out again by the sweep."""
    on_rq = backend_name() == "rq"
    if on_rq and time.monotonic() - _queue_failed_at[0] < QUEUE_PAUSE_SECONDS:
        raise QueuePaused(f"Redis failed to take a task in the last {QUEUE_PAUSE_SECONDS:g} s; "
                          "not offered another yet")
    options = {"queue_name": settings.MEMORYRELAY_TASK_QUEUE}
    if delay > 0:
        options["run_after"] = timezone.now() + timedelta(seconds=delay)
    task = task.using(**options)
    try:
        return str(task.enqueue(*args, **kwargs).id)
    except (RedisError, OSError):
        if on_rq:
            _queue_failed_at[0] = time.monotonic()
        raise


QUEUE_PAUSE_SECONDS = 5.0
_queue_failed_at = [float("-inf")]  # time.monotonic() of Redis's last failure to take a task


class QueuePaused(RedisConnectionError):
    """Redis failed a moment ago: the task is not offered (see :func:`task_enqueue`)."""


def backend_name() -> str:
    return "rq" if settings.MEMORYRELAY_TASK_BACKEND == "rq" else "database"


def task_queue_state(*, database_down: bool = False) -> dict:
    """``{"status", "backend", "pending", "oldest_pending_age_seconds", "workers"}``: tasks
    waiting to run (deferred retries not yet due excluded), how long the oldest has waited,
    and the task workers seen in the last three heartbeats. ``down`` when the queue's store
    cannot be read; ``stalled`` when work has waited MEMORYRELAY_TASK_STALL_SECONDS and no
    worker is seen (none runs, or all died); ``up`` otherwise."""
    state = {"status": "down", "backend": backend_name(), "pending": None,
             "oldest_pending_age_seconds": None, "workers": None}
    if database_down:
        return state if state["backend"] == "database" else {**state, **_queue_of(state)}
    state.update(_queue_of(state))
    try:
        state["workers"] = workers_seen()
    except Exception:  # noqa: BLE001 - unknown, not none
        return state
    age = state["oldest_pending_age_seconds"]
    if (state["status"] == "up" and state["workers"] == 0 and age is not None
            and age >= settings.MEMORYRELAY_TASK_STALL_SECONDS):
        state["status"] = "stalled"
    return state


def _queue_of(state: dict) -> dict:
    try:
        # A Redis that accepts and never answers held health for its socket timeout (5 s).
        timeout = settings.MEMORYRELAY_HEALTH_TIMEOUT
        pending, oldest = (
            within(timeout, _rq_pending, late=TimeoutError(f"no answer within {timeout:g} s"))
            if state["backend"] == "rq" else _db_pending())
    except Exception:  # noqa: BLE001 - any failure to answer is "down"
        return {}
    age = None if oldest is None else max(int((timezone.now() - oldest).total_seconds()), 0)
    return {"status": "up", "pending": pending, "oldest_pending_age_seconds": age}


def workers_seen() -> int:
    from .models import TaskWorker

    since = timezone.now() - timedelta(seconds=3 * TaskWorker.HEARTBEAT_SECONDS)
    return TaskWorker.objects.filter(last_seen_at__gte=since).count()


def worker_heartbeat(worker_id: str) -> None:
    """Marks ``worker_id`` alive now (and forgets workers unseen for a day: killed ones)."""
    from .models import TaskWorker

    now = timezone.now()
    TaskWorker.objects.update_or_create(
        id=worker_id[:64], defaults={"last_seen_at": now, "backend": backend_name()})
    TaskWorker.objects.filter(last_seen_at__lt=now - timedelta(days=1)).delete()


def worker_gone(worker_id: str) -> None:
    from .models import TaskWorker

    TaskWorker.objects.filter(id=worker_id[:64]).delete()


def _db_pending() -> tuple[int, datetime | None]:
    from django.db.models import Count, Min
    from django_tasks_db.models import DBTaskResult

    ready = DBTaskResult.objects.ready()
    found = ready.aggregate(n=Count("id"), oldest=Min("enqueued_at"))
    count, oldest = found["n"], found["oldest"]
    for backlog in list(_backlogs):  # waiting for a dispatcher: pending too
        waiting, since = backlog()
        count += waiting
        if since is not None and (oldest is None or since < oldest):
            oldest = since
    return count, oldest


def _rq_pending() -> tuple[int, datetime | None]:
    import django_rq
    from rq.job import Job

    queue = django_rq.get_queue(settings.MEMORYRELAY_TASK_QUEUE)
    queue.connection.ping()
    count = queue.count
    oldest = None
    first = queue.get_job_ids(0, 1)
    if first:
        job = Job.fetch(first[0], connection=queue.connection)
        oldest = job.enqueued_at
        if oldest is not None and timezone.is_naive(oldest):
            oldest = oldest.replace(tzinfo=UTC)
    return count, oldest
