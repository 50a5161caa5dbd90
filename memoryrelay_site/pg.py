"""The PostgreSQL connection class of the pool: no call waits on the server forever, and a
server restart costs no request.

``statement_timeout`` (server side) ends a slow statement cleanly; this is the client-side
bound for a server or network that stops answering altogether (a frozen process, a dropped
route), where no server-side timer can fire. A wait that outlasts ``deadline`` closes the
connection, so the server rolls back whatever transaction it held when it notices, and
raises ``OperationalError``, which the API answers with a 503.
"""

from __future__ import annotations

import inspect
import threading

import psycopg
from django.db.backends.signals import connection_created
from psycopg import errors as pg_errors
from psycopg import pq

# psycopg 3.3 bounds a wait (Connection.wait's ``timeout``); older versions wait unbounded.
_WaitTimeout = getattr(pg_errors, "_WaitTimeout", None)
_BOUNDED = "timeout" in inspect.signature(psycopg.Connection.wait).parameters
_checking = threading.local()


class DeadlineConnection(psycopg.Connection):
    deadline: float | None = 10.0  # seconds (None: no bound); set from the settings
    _timed_out = False

    def wait(self, gen, interval=0.1, timeout=None):
        if not _BOUNDED:
            return super().wait(gen, interval=interval)
        try:
            return super().wait(gen, interval=interval, timeout=timeout or self.deadline)
        except psycopg.OperationalError as exc:
            if _WaitTimeout is not None and isinstance(exc, _WaitTimeout):
                self._timed_out = True
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"the database did not answer within {self.deadline:g} s: connection closed"
                ) from None
            if self.pgconn.status == pq.ConnStatus.BAD and not self._timed_out:
                _check_idle_connections(self)  # lost, not closed by us after a timeout
            raise


def _check_idle_connections(conn: psycopg.Connection) -> None:
    """One lost connection (the server restarted, or an operator ended our backends) means the
    others idle in the pool are likely lost too: check them all now and replace the dead ones,
    so the pool's check before reuse finds a fresh one at its next try instead of one dead
    connection per back-off second."""
    pool = getattr(conn, "_pool", None)
    if pool is None or getattr(_checking, "active", False):
        return
    _checking.active = True
    try:
        pool.check()
    except Exception:  # noqa: BLE001 - best effort: the pool's own check still applies
        pass
    finally:
        _checking.active = False


def _no_timeouts_for_database_maintenance(sender, connection, **kwargs) -> None:
    """The connection Django opens without a database (to create or drop one: the test
    database, ``manage.py test``) may take longer than a request's statement timeout."""
    if connection.alias == NO_DB_ALIAS and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")


NO_DB_ALIAS = "__no_db__"  # django.db.backends.base.base's, not importable from settings
connection_created.connect(_no_timeouts_for_database_maintenance)


def deadline_connection(seconds: float) -> type[DeadlineConnection]:
    """A DeadlineConnection class bounded at ``seconds`` (0: unbounded)."""
    return type("DeadlineConnection", (DeadlineConnection,), {"deadline": seconds or None})
