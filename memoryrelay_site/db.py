"""Database trouble, recognised: what counts as "the database is unavailable" (a 503 with
Retry-After, not a 500), and the PostgreSQL connection that never waits forever.

Imports nothing from psycopg at module level, so a SQLite-only install loads it too; the
PostgreSQL connection class lives in :mod:`memoryrelay_site.pg`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import stat
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db import InternalError as DjangoInternalError

logger = logging.getLogger("memoryrelay.db")

# SQLSTATE classes of PostgreSQL errors that say "not now" rather than "wrong": connection
# exceptions (08), insufficient resources (53), operator intervention (57: query canceled by
# statement_timeout, admin shutdown, cannot connect now), system errors (58), and
# transaction rollback (40: serialization failure, deadlock; retrying succeeds).
_UNAVAILABLE_CLASSES = {"08": "unreachable", "53": "overloaded", "57": "unreachable",
                        "58": "unreachable", "40": "busy"}
_UNAVAILABLE_STATES = {
    "57014": "timeout",  # query_canceled: statement_timeout
    "25006": "read_only",  # read_only_sql_transaction
    "55P03": "busy",  # lock_not_available: lock_timeout
    "25P03": "timeout",  # idle_in_transaction_session_timeout
}
# SQLite reports every failure as OperationalError, bugs (a syntax error, a missing table)
# included: only these messages mean the file is busy or cannot be written right now.
_SQLITE_MESSAGES = {
    "database is locked": "busy",
    "database table is locked": "busy",
    "attempt to write a readonly database": "read_only",
    "unable to open database file": "unreachable",
    "disk i/o error": "unreachable",
    "database or disk is full": "overloaded",
}
MESSAGES = {
    "unreachable": "The database cannot be reached",
    "timeout": "The database did not answer in time",
    "read_only": "The database is read-only: writes are refused for now",
    "busy": "The database is busy",
    "overloaded": "The database is out of resources",
}


def unavailable_reason(exc: BaseException) -> str | None:
    """``"unreachable"``, ``"timeout"``, ``"read_only"``, ``"busy"`` or ``"overloaded"``
    when ``exc`` means the database cannot serve right now (retrying later may work);
    ``None`` for everything else, which stays a bug."""
    if not isinstance(exc, (OperationalError, InterfaceError, DjangoInternalError)):
        return None
    cause = exc.__cause__ or exc
    if isinstance(cause, sqlite3.Error):
        text = str(cause).lower()
        return next((r for m, r in _SQLITE_MESSAGES.items() if text.startswith(m)), None)
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate:
        return _UNAVAILABLE_STATES.get(sqlstate) or _UNAVAILABLE_CLASSES.get(sqlstate[:2])
    # No SQLSTATE: the client library failed (refused, timed out, connection lost, pool
    # exhausted) or Django's "connection already closed".
    if isinstance(exc, (InterfaceError, OperationalError)):
        if type(cause).__name__ == "PoolTimeout":
            return _pool_wait_reason()
        return "timeout" if "timeout" in str(cause).lower() else "unreachable"
    return None


def _pool_wait_reason() -> str:
    """Why no pooled connection came in time: the pool, below its size, could not open
    one (the server refuses or is gone: ``unreachable``), or every connection it may open
    is in use (``busy``)."""
    from django.db import connections

    pool = getattr(connections["default"], "pool", None)
    try:
        stats = pool.get_stats()
    except Exception:  # noqa: BLE001 - no pool to ask: say what the client saw
        return "timeout"
    return "busy" if stats.get("pool_size", 0) >= pool.max_size else "unreachable"


_last_drain = [0.0]
DRAIN_EVERY = 1.0  # s: at most one drain of the pool a second, whatever the refusals


def discard_connection(reason: str) -> None:
    """After a PostgreSQL read-only refusal, the request's connection is closed for good,
    and the pool's other connections are replaced (at most once every ``DRAIN_EVERY``): a
    session opened while the database was read-only stays read-only after the database is
    writable again, and would refuse every write it serves while health, which probes a
    fresh connection, says healthy. Once the database takes writes again, the first write
    refused by such a session renews them, and the next ones are served."""
    from django.db import connections

    conn = connections["default"]
    if reason != "read_only" or conn.vendor != "postgresql" or conn.in_atomic_block:
        return
    pool = getattr(conn, "pool", None)
    raw = conn.connection
    try:
        if raw is not None:
            raw.close()  # the pool discards a closed connection it is given back
        conn.close()
    except Exception:  # noqa: BLE001 - the connection was being given up anyway
        conn.connection = None
    now = time.monotonic()
    if pool is not None and now - _last_drain[0] >= DRAIN_EVERY:
        _last_drain[0] = now
        pool.drain()


def summary(exc: BaseException, limit: int = 160) -> str:
    """The first line of the driver's message, for a one-line log; for a pool that gave no
    connection, with the last error it met connecting in the minute before (its cause:
    refused, no such database, authentication failed ...)."""
    from .logfilters import PoolConnectErrors

    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    line = line if len(line) <= limit else line[: limit - 1] + "…"
    at, error = PoolConnectErrors.last
    if type(cause).__name__ == "PoolTimeout" and error and time.time() - at < 60:
        line += f"; connecting: {error if len(error) <= limit else error[: limit - 1] + '…'}"
    return line


@contextmanager
def consistent_read() -> Iterator[None]:
    """The reads inside see one snapshot of the database (what several statements answer
    agrees: a count and the page it counts, sessions and the memories naming them), and
    take no write lock. PostgreSQL: a REPEATABLE READ, READ ONLY transaction. SQLite: a
    deferred transaction, which reads one WAL snapshot and blocks no writer. Inside a
    transaction already, that one's snapshot rules (no isolation can be set there)."""
    if connection.in_atomic_block:
        yield
    elif connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
    else:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")


@contextmanager
def without_waiting() -> Iterator[None]:
    """The statements inside give up at once ("busy") rather than wait for another
    writer's lock: on SQLite the connection's busy handler is off meanwhile (set and put
    back on the driver's connection, no statement of Django's). For bookkeeping a read
    does on the side, which must never make the read wait for a writer. PostgreSQL:
    unchanged (a row lock there is held for the length of a short transaction)."""
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    waited = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(waited)}")


@contextmanager
def alone(job: str) -> Iterator[bool]:
    """Whether no other process is inside ``alone(job)`` now, for a job that two runs at
    once would do twice (both read the same rows as still to do). Tried, never waited for,
    and let go on exit. PostgreSQL: a session advisory lock on the job's name (let go with
    the connection too). SQLite: a lock on a file beside the database (:func:`file_alone`);
    an in-memory database is one process's, so there its threads are counted."""
    if connection.vendor == "sqlite":
        if connection.is_in_memory_db():
            with _thread_alone(job) as held:
                yield held
        else:
            with file_alone(f"{connection.settings_dict['NAME']}.{job}.lock") as held:
                yield held
        return
    key = zlib.crc32(f"memoryrelay:{job}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:  # the connection is gone, and the lock with it
                pass


@contextmanager
def file_alone(path: str) -> Iterator[bool]:
    """Whether this is the only holder of an exclusive ``flock`` on ``path`` (made when
    missing, and kept: removing it would let a third run lock a new file beside a holder of
    the old). A lock file that cannot be made (a read-only folder) locks nothing: True."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True  # closing the file lets the lock go
    finally:
        os.close(fd)


_running: set[str] = set()
_running_lock = threading.Lock()


@contextmanager
def _thread_alone(job: str) -> Iterator[bool]:
    with _running_lock:
        held = job not in _running
        _running.add(job)
    try:
        yield held
    finally:
        if held:
            with _running_lock:
                _running.discard(job)


def locked(queryset, pk, missing: Exception, *, no_key: bool = False):
    """Inside a transaction: the row ``pk`` of ``queryset``, live or soft-deleted, locked
    until commit (``FOR UPDATE``, or ``FOR NO KEY UPDATE`` with ``no_key``); ``missing``
    when it is gone: a purge removed it, maybe while this waited for its lock (a restore
    of a row the admin listed before)."""
    row = queryset.select_for_update(no_key=no_key).filter(pk=pk).first()
    if row is None:
        raise missing
    return row


def locked_live(model, pk, missing: Exception, *, no_key: bool = False):
    """Inside a transaction: the live row ``pk`` of ``model``, locked until commit.

    Raises ``missing`` when the row is gone or soft-deleted; on PostgreSQL a delete that
    held the lock is seen once it commits (the row is re-checked after the wait). ``no_key``
    takes ``FOR NO KEY UPDATE``, which writers into the row's children take, and which a
    delete's ``FOR UPDATE`` waits for. SQLite serializes every write transaction anyway.
    """
    return locked(model.objects.filter(deleted_at__isnull=True), pk, missing, no_key=no_key)


def hold_named_live(values: dict) -> None:
    """Inside a transaction, before the row being written: each soft-deletable row among
    ``values`` (an agent, a session a row is given) held live until commit, as writers into
    its children hold it (``FOR NO KEY UPDATE``), in the order writers lock (the named rows
    before the row naming them). One deleted meanwhile is refused (Invalid on its field),
    never named by a live row."""
    from django.db.models import Model

    from .errors import Invalid

    for field, value in values.items():
        if isinstance(value, Model) and hasattr(value, "deleted_at"):
            locked_live(type(value), value.pk, Invalid(
                f"the {field} was deleted meanwhile", field=field), no_key=True)


_kept_private: set[str] = set()


def set_up_sqlite_connection(sender=None, *, connection, **kwargs) -> None:
    """On each new connection (``connection_created``): WAL mode (:func:`use_wal`) and
    :func:`keep_private` on the SQLite file; new when it is the server's database and was
    missing at start."""
    from django.conf import settings

    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return
    use_wal(connection.connection, wait=settings.MEMORYRELAY_DB_LOCK_TIMEOUT)
    path = str(connection.settings_dict["NAME"])
    keep_private(path, new=path == settings.SQLITE_PATH
                 and not settings.SQLITE_EXISTED_AT_START)


def use_wal(raw: sqlite3.Connection, *, wait: float) -> None:
    """Puts the SQLite file of ``raw`` in WAL mode. A file not yet in it (a new database)
    switches under an exclusive lock, which SQLite refuses at once, without its busy wait,
    while another connection holds the write lock or is switching too: processes opening a
    new file together failed their first connection ("database is locked"), and a command
    then took the missing tables for a bug. Retried for up to ``wait`` seconds; a file
    already in WAL mode answers at once."""
    deadline = time.monotonic() + wait
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if (not str(exc).lower().startswith("database is locked")
                    or time.monotonic() >= deadline):
                raise
            time.sleep(0.05)


def keep_private(path: str, *, new: bool) -> None:
    """Takes others' access from the SQLite file ``path`` and its ``-wal`` and ``-shm``
    (they hold every memory, the admin's sessions and password hashes), and the group's
    too when ``new`` (the database did not exist when this process started: umask 022
    made it 0644). Once per path and process. A file this process may not change is left
    as it is, and said in the log."""
    if path in _kept_private:
        return
    _kept_private.add(path)
    strip = 0o077 if new else 0o007
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
            if mode & strip:
                os.chmod(name, mode & ~strip)
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("could not take others' access from %s: %s", name, exc)
