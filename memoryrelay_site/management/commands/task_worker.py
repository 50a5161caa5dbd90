"""``manage.py task_worker``: runs the queued tasks of the configured backend
(MEMORYRELAY_TASK_BACKEND) until stopped (Ctrl-C or SIGTERM: the task under way finishes
first), or until none is left with ``--burst``. Start as many as you like, on any machines
that reach the database (``database``) or Redis (``rq``).

Each worker also sweeps, at start and then every half lease: work claimed by a worker that
died is handed out again (memoryrelay_site.tasks). On the database queue it also
dispatches, every poll interval, the work requests only recorded (an asynchronous write
makes one insert: its pending memory), queueing their tasks."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone
from django.utils.crypto import get_random_string

from memoryrelay_site import db, tasks
from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.models import TaskWorker

logger = logging.getLogger("memoryrelay.tasks")


class Command(DatabaseCommand):
    help = "Run queued tasks (the embedded database queue, or RQ workers with Redis)."

    def add_arguments(self, parser):
        parser.add_argument("--burst", action="store_true",
                            help="Run what is queued, then exit.")
        parser.add_argument("--interval", type=float, default=0.5,
                            help="Seconds between polls of an empty database queue.")
        parser.add_argument("--stop-with", type=int, default=None, metavar="PID",
                            help="Stop when process PID exits (`make run` passes its own).")

    def handle(self, *, burst, interval, stop_with, verbosity, **options):
        logging.getLogger("memoryrelay.tasks").setLevel(logging.INFO)
        lease = settings.MEMORYRELAY_TASK_LEASE_SECONDS
        worker_id = f"{os.uname().nodename[:20]}-{os.getpid()}-{get_random_string(8)}"
        self.stdout.write(f"task worker {worker_id}: backend {tasks.backend_name()}, "
                          f"queue {settings.MEMORYRELAY_TASK_QUEUE}")
        self.stdout.flush()
        # Health tells work waiting for a worker from work none will take by the heartbeat.
        stop = threading.Event()
        beating = threading.Thread(target=_heartbeat_until, args=(stop, worker_id), daemon=True)
        if not burst:
            beating.start()
        try:
            self._work(burst=burst, interval=interval, stop_with=stop_with, lease=lease,
                       worker_id=worker_id)
        except KeyboardInterrupt:  # Ctrl-C before the backend's own handlers were in place
            self.stdout.write("task worker stopped")
        finally:
            stop.set()
            if beating.is_alive():
                beating.join(5)
            _quietly(tasks.worker_gone, worker_id)

    def _work(self, *, burst, interval, stop_with, lease, worker_id):
        _sweep(lease)
        _dispatch()
        if not burst:
            threading.Thread(target=_sweep_forever, args=(lease,), daemon=True).start()
            if tasks.backend_name() == "database":
                threading.Thread(target=_dispatch_forever, args=(interval,),
                                 daemon=True).start()
        if stop_with:
            threading.Thread(target=_exit_with, args=(stop_with,), daemon=True).start()
        if tasks.backend_name() == "rq":
            self._run_rq(burst=burst, worker_id=worker_id)
        else:
            self._run_database(burst=burst, interval=interval, worker_id=worker_id)

    def _run_database(self, *, burst, interval, worker_id):
        from django_tasks_db.management.commands.db_worker import Worker

        worker = Worker(
            queue_names=[settings.MEMORYRELAY_TASK_QUEUE], interval=interval, batch=burst,
            backend_name="default", startup_delay=False, max_tasks=None,
            worker_id=worker_id[:64], excluded_queue_names=[],
        )
        worker.configure_signals()

        def wait(seconds: float) -> bool:  # the worker's own signal handlers stay in place
            time.sleep(seconds)
            return True

        # Locked (SQLite, a long import), restarting, read-only or out of reach for a while.
        _keep_working(lambda rounds: worker.run(), failure=DatabaseError, what="the database",
                      keep_going=lambda: not burst and worker.running, wait=wait)

    def _run_rq(self, *, burst, worker_id):
        from django_tasks.signals import task_finished, task_started

        # Jobs run one after another on this thread's connections: one the database broke
        # (a restart) is closed between jobs, as Django does between requests; otherwise
        # every later job fails on it.
        for sent in (task_started, task_finished):
            sent.connect(_fresh_connections, dispatch_uid="task_worker_fresh_connections")
        try:
            self._work_rq(burst=burst, worker_id=worker_id)
        finally:  # the signals are this worker's: a process that goes on (tests) keeps none
            for sent in (task_started, task_finished):
                sent.disconnect(dispatch_uid="task_worker_fresh_connections")

    def _work_rq(self, *, burst, worker_id):
        global _orphans_stop
        _orphans_stop = True
        try:
            self._work_rq_rounds(burst=burst, worker_id=worker_id)
        finally:
            _orphans_stop = False

    def _work_rq_rounds(self, *, burst, worker_id):
        import django_rq
        from django_tasks_rq import Job
        from redis.exceptions import RedisError
        from rq import SimpleWorker

        current = {}

        def work(rounds: int) -> None:
            # SimpleWorker runs each job in this process (RQ's default Worker forks one
            # child per job, which would load the embedding model again for every memory).
            # A new name each round: the last one may still be registered.
            worker = current["worker"] = django_rq.get_worker(
                settings.MEMORYRELAY_TASK_QUEUE, job_class=Job, worker_class=SimpleWorker,
                name=worker_id if rounds == 1 else f"{worker_id}-{rounds}")
            worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")

        def stopping() -> bool:
            # RQ's SIGTERM handler notes the request, then asks Redis whether a job is under
            # way: with Redis gone that raises, and the stop came out as a Redis failure.
            return getattr(current.get("worker"), "_shutdown_requested_date", None) is not None

        # Redis went away (mid-job, RQ's own bookkeeping raised); the sweep hands out what
        # the lost round left.
        if not _keep_working(work, failure=RedisError, what="Redis",
                             keep_going=lambda: not burst, wait=_wait_unless_stopped,
                             stopping=stopping):
            self.stdout.write("task worker stopped")


# RQ forks its scheduler into a process of its own that never looks at its parent: with the
# worker killed (SIGKILL, the OOM killer, `--stop-with`'s exit) it ran on for ever, holding
# the Redis scheduler lock, so no later worker scheduled (delayed retries). What this
# process forks while it runs RQ stops once this process is gone.
_orphans_stop = False


def _after_fork_in_child() -> None:
    if _orphans_stop:
        threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),),
                         name="stop-when-orphaned", daemon=True).start()


def _stop_when_orphaned(parent: int, every: float = 1.0, grace: float = 30.0) -> None:
    """SIGTERM to this process once ``parent`` is gone (RQ's scheduler stops at its next
    round and lets go of its lock); it is ended if still running ``grace`` seconds later."""
    while os.getppid() == parent:
        time.sleep(every)
    logger.warning("task worker %s is gone: its child %s stops", parent, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(1)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _keep_working(work, *, failure, what: str, keep_going, wait,
                  stopping=lambda: False) -> bool:
    """Runs ``work(round)`` until it returns. On ``failure`` nothing restarts a worker that
    exits, so unless ``keep_going()`` says otherwise (then it raises) it logs (one line for
    an outage, the traceback otherwise), waits (1 s, doubling up to 30 s, back to 1 s after
    a round that worked a minute) and works again. False when a stop came: ``stopping()``
    after the failure (the stop itself may have failed on the outage), or during a wait."""
    delay, rounds = 1.0, 0
    while True:
        rounds += 1
        started = time.monotonic()
        try:
            work(rounds)
            return True
        except failure as exc:
            if stopping():
                return False
            if not keep_going():
                raise
            if time.monotonic() - started > 60:
                delay = 1.0
            reason = db.unavailable_reason(exc)
            if reason is not None or not isinstance(exc, DatabaseError):
                logger.warning("task worker: %s failed (%s: %s); working again in %.0f s",
                               what, type(exc).__name__, db.summary(exc), delay)
            else:
                logger.exception("task worker: %s failed; working again in %.0f s", what,
                                 delay)
            connections.close_all()
            if not wait(delay):
                return False
            delay = min(delay * 2, 30.0)


class _Stop(Exception):
    pass


def _wait_unless_stopped(seconds: float) -> bool:
    """Sleeps ``seconds``; False when SIGTERM or SIGINT came meanwhile. The failed RQ worker's
    own signal handlers are still installed, and would raise out of the sleep."""
    def stop(signum, frame):
        raise _Stop

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    try:
        time.sleep(seconds)
    except (_Stop, KeyboardInterrupt):
        return False
    return True


def _fresh_connections(sender, **kwargs) -> None:
    close_old_connections()


def _sweep(lease: float) -> None:
    """Hands out again what dead workers left: the apps' unfinished work and, on the
    database backend, task rows still marked running past the lease."""
    try:
        if tasks.backend_name() == "database":
            from django_tasks_db.compat import TaskResultStatus
            from django_tasks_db.models import DBTaskResult

            cutoff = timezone.now() - timedelta(seconds=lease)
            DBTaskResult.objects.filter(
                status=TaskResultStatus.RUNNING, started_at__lt=cutoff
            ).update(status=TaskResultStatus.READY)
            tasks.task_results_prune()
        tasks.tasks_sweep(lease_seconds=lease)
    except Exception as exc:  # noqa: BLE001 - the next round tries again
        tasks.log_failed("task sweep", exc)
    finally:
        close_old_connections()


def _dispatch(*, quiet: bool = False) -> bool:
    """Hands the work requests only recorded (an asynchronous write's pending memory) to
    tasks of the database queue; False when it failed (logged unless ``quiet``: one line
    when the database is unavailable, with the traceback when it is a bug)."""
    try:
        tasks.tasks_dispatch()
        return True
    except Exception as exc:  # noqa: BLE001 - the next round tries again
        _renew_after(db.unavailable_reason(exc))
        if not quiet:
            tasks.log_failed("task dispatch", exc, "; trying again, quietly, until it works")
        return False
    finally:
        close_old_connections()


def _renew_after(reason: str | None) -> None:
    """After a read-only refusal, this thread's connection is closed: a PostgreSQL session
    opened while the database was read-only stays read-only once it takes writes again, and
    would refuse every round (``close_old_connections`` keeps it: it answers SELECT 1)."""
    if reason == "read_only":
        connections.close_all()


def _dispatch_forever(interval: float) -> None:
    """Every poll interval; while it fails (the database out of reach), every 1 s doubling
    up to 30 s, logged once per outage rather than once per round."""
    interval = max(interval, 0.05)
    delay, failing = interval, False
    while True:
        time.sleep(delay)
        if _dispatch(quiet=failing):
            if failing:
                logger.info("task dispatch works again")
            delay, failing = interval, False
        else:
            delay, failing = min(max(delay * 2, 1.0), 30.0), True


def _heartbeat_until(stop: threading.Event, worker_id: str) -> None:
    _quietly(tasks.worker_heartbeat, worker_id)
    while not stop.wait(TaskWorker.HEARTBEAT_SECONDS):
        _quietly(tasks.worker_heartbeat, worker_id)


def _quietly(step, worker_id: str) -> None:
    """A heartbeat that fails (the database out of reach) is skipped: the worker's own loop
    reports the database; health counts the worker again once it is back."""
    try:
        step(worker_id)
    except Exception as exc:  # noqa: BLE001
        _renew_after(db.unavailable_reason(exc))
    try:
        close_old_connections()
    except Exception:  # noqa: BLE001
        pass


def _sweep_forever(lease: float) -> None:
    period = max(min(lease / 2, 60.0), 0.5)
    while True:
        time.sleep(period)
        _sweep(lease)
        connections.close_all()


def _exit_with(pid: int) -> None:
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(1)
