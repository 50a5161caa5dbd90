"""Per-key rate limits: a fixed one-minute window per API key, counted across every worker
thread and process of the server.

Where the counts live: in Redis when ``REDIS_URL`` is set (``INCRBY`` + ``EXPIREAT`` in one
round trip); otherwise in a small SQLite file of its own next to the database
(``MEMORYRELAY_RATE_LIMIT_PATH``, WAL mode, one atomic ``UPSERT ... RETURNING`` per request).
Never in the main database: counting is a write, and a read of the main database must not
queue behind (or take) its write lock.

The limit of a key is its ``rate_limit_per_minute``, or ``MEMORYRELAY_RATE_LIMIT_PER_MINUTE``
when that is empty; 0 means unlimited. A request costs 1; a batch costs its items (at most the
whole limit, so a batch larger than a small limit still passes in a fresh window). A request
that would pass the limit is not counted and answers 429 ``rate_limit_exceeded`` with an
integer ``Retry-After``. Every response to an authenticated API request carries
``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix seconds when
the window ends).

If the store fails (Redis down, a disk error), requests are served unlimited rather than
failed, the first failure is logged once, and the store is retried after a few seconds.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from .db import use_wal

logger = logging.getLogger("memoryrelay.ratelimit")

WINDOW_SECONDS = 60
RETRY_STORE_AFTER = 5.0  # seconds a failed store is left alone before it is tried again
REDIS_TIMEOUT = 0.5  # seconds; a hung Redis costs a request at most this much
BATCH_ITEMS_FIELD = "memories"  # an action named "batch" costs the length of this list


@dataclass(frozen=True)
class Usage:
    """One key's window after a request was counted (or refused)."""

    limit: int
    used: int
    reset: int  # Unix seconds when the window ends
    allowed: bool

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.reset - now))

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


class RedisCounter:
    """Counts in Redis: shared by every process that reaches the same server."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.errors = (redis.RedisError,)
        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)

    def add(self, bucket: str, cost: int, expires: int) -> int:
        pipe = self.client.pipeline(transaction=True)
        pipe.incrby(self.prefix + bucket, cost)
        pipe.expireat(self.prefix + bucket, expires + 1)
        used, _ = pipe.execute()
        return int(used)

    def subtract(self, bucket: str, cost: int) -> None:
        self.client.decrby(self.prefix + bucket, cost)


class SqliteCounter:
    """Counts in a SQLite file of its own, shared by the processes of one machine.

    Each statement is its own short transaction (autocommit); WAL lets readers run beside the
    one writer, and ``synchronous=OFF`` skips fsync: counts lost to a power cut only reopen
    the current window. Expired windows are pruned once a minute per process.
    """

    SCHEMA = ("CREATE TABLE IF NOT EXISTS rate_hits (bucket TEXT PRIMARY KEY, "
              "used INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID")
    ADD = ("INSERT INTO rate_hits (bucket, used, expires) VALUES (?, ?, ?) "
           "ON CONFLICT (bucket) DO UPDATE SET used = used + excluded.used RETURNING used")

    # Connections a process keeps open for the next requests (more are opened while more
    # requests count at once, and closed after).
    KEPT = 8

    def __init__(self, path: str):
        self.path = path
        self.errors = (sqlite3.Error,)
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._pruned_at = 0.0

    def add(self, bucket: str, cost: int, expires: int) -> int:
        with self._connection() as db:
            self._prune(db)
            return db.execute(self.ADD, (bucket, cost, expires)).fetchone()[0]

    def subtract(self, bucket: str, cost: int) -> None:
        with self._connection() as db:
            db.execute("UPDATE rate_hits SET used = used - ? WHERE bucket = ?", (cost, bucket))

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection of this process's few, taken for one statement or two. One per
        thread opened a connection (and set it up) on nearly every request, since ASGI runs
        each request on a thread of its own, and dead threads' connections stayed open
        until the garbage collector came by (5-45 handles per process)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's are not its own
                self._idle, self._pid = [], os.getpid()
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = sqlite3.connect(self.path, timeout=2.0, isolation_level=None,
                                 check_same_thread=False)
            try:
                self._initialise(db)
            except BaseException:
                db.close()
                raise
        try:
            yield db
        except BaseException:
            db.close()
            raise
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < self.KEPT:
                self._idle.append(db)
                db = None
        if db is not None:
            db.close()

    def _initialise(self, db: sqlite3.Connection) -> None:
        """WAL mode (retried briefly while another process switches the new file too, so
        processes starting together do not fail open) and the table."""
        use_wal(db, wait=1.0)
        db.execute("PRAGMA synchronous=OFF")
        db.execute(self.SCHEMA)

    def _prune(self, db: sqlite3.Connection) -> None:
        now = time.time()
        if now - self._pruned_at > WINDOW_SECONDS:
            self._pruned_at = now
            db.execute("DELETE FROM rate_hits WHERE expires < ?", (int(now),))


class FailOpen:
    """Wraps a counter: a failing store lets requests through, is logged once, and is tried
    again after ``RETRY_STORE_AFTER`` seconds."""

    def __init__(self, counter):
        self.counter = counter
        self.down_until = 0.0
        self.down = False

    def hit(self, bucket: str, limit: int, cost: int, now: float) -> Usage | None:
        if now < self.down_until:
            return None
        window = int(now // WINDOW_SECONDS)
        bucket, reset = f"{bucket}:{window}", (window + 1) * WINDOW_SECONDS
        try:
            used = self.counter.add(bucket, cost, reset)
            allowed = used <= limit
            if not allowed:  # a refused request is not counted
                self.counter.subtract(bucket, cost)
                used -= cost
        except self.counter.errors as error:
            self._failed(error, now)
            return None
        self._recovered()
        return Usage(limit=limit, used=used, reset=reset, allowed=allowed)

    def _failed(self, error: Exception, now: float) -> None:
        self.down_until = now + RETRY_STORE_AFTER
        if not self.down:
            self.down = True
            logger.error("Rate limiting is off: its store failed (%s: %s); requests are served "
                         "unlimited until it answers again", type(error).__name__, error)

    def _recovered(self) -> None:
        if self.down:
            self.down = False
            logger.warning("Rate limiting is back on: its store answers again")


def _now() -> float:
    return time.time()


@lru_cache(maxsize=4)
def _store(redis_url: str, path: str, prefix: str) -> FailOpen:
    return FailOpen(RedisCounter(redis_url, prefix) if redis_url else SqliteCounter(path))


def rate_limit_store() -> FailOpen:
    """The store the settings name (one per configuration and process)."""
    return _store(settings.REDIS_URL, settings.MEMORYRELAY_RATE_LIMIT_PATH,
                  settings.MEMORYRELAY_RATE_LIMIT_REDIS_PREFIX)


def key_limit(key) -> int:
    """Requests per minute for an ``ApiKey``: its own limit, else the server default;
    0 = unlimited."""
    return per_minute(key.rate_limit_per_minute)


def per_minute(own: int | None) -> int:
    """Requests per minute of a key whose own limit is ``own`` (None: the server default);
    0 = unlimited."""
    return settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE if own is None else own


def request_cost(request, view) -> int:
    """1 per request; a batch costs its items; a view may say it costs nothing
    (``rate_limit_cost = 0``: asking for the quota is never counted nor refused)."""
    own = getattr(view, "rate_limit_cost", None)
    if own is not None:
        return own
    if getattr(view, "action", None) != "batch" or not isinstance(request.data, dict):
        return 1
    items = request.data.get(BATCH_ITEMS_FIELD)
    return max(1, len(items)) if isinstance(items, list) else 1


class ApiKeyRateThrottle(BaseThrottle):
    """The DRF throttle: counts each authenticated request against its key's window and
    leaves the outcome on the request for :class:`RateLimitHeadersMiddleware`."""

    usage: Usage | None = None

    def allow_request(self, request, view) -> bool:
        key = request.auth  # the ApiKey (permissions have already refused anonymous requests)
        limit = key_limit(key) if key is not None else 0
        if limit <= 0:
            return True
        now = _now()
        cost = min(request_cost(request, view), limit)
        # A key made through /v1/keys counts in its maker's window (ApiKey.rate_bucket).
        self.usage = rate_limit_store().hit(str(key.rate_bucket or key.pk), limit, cost, now)
        if self.usage is None:  # the store is down: fail open
            return True
        request._request.rate_limit = self.usage
        if not self.usage.allowed:
            raise exceptions.Throttled(
                wait=self.usage.retry_after(now),
                detail=f"Rate limit exceeded: this API key may make {limit} requests per "
                       "minute (a batch counts its items; a key made through /v1/keys "
                       "counts in the window of the key that made it).")
        return True

    def wait(self) -> int | None:
        return self.usage.retry_after(_now()) if self.usage else None


class RateLimitHeadersMiddleware:
    """Adds the ``X-RateLimit-*`` headers the throttle recorded, on every response to the
    request, errors included."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        usage = getattr(request, "rate_limit", None)
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        return response


def admin_login_limited(login_view):
    """``login_view`` with its sign-in attempts (POSTs) limited per client address to
    MEMORYRELAY_ADMIN_LOGINS_PER_MINUTE, in the store API keys are counted in; beyond, a 429
    page with Retry-After (16 concurrent wrong passwords took authenticated API requests
    from 10 ms to 4 s; nothing bounded guessing)."""

    def view(request, *args, **kwargs):
        limit = settings.MEMORYRELAY_ADMIN_LOGINS_PER_MINUTE
        if request.method == "POST" and limit:
            now = _now()
            usage = rate_limit_store().hit(
                f"admin-login:{request.META.get('REMOTE_ADDR', '')}", limit, 1, now)
            if usage is not None and not usage.allowed:
                response = HttpResponse(
                    "Too many sign-in attempts from this address: try again in a minute.",
                    status=429, content_type="text/plain; charset=utf-8")
                response["Retry-After"] = str(usage.retry_after(now))
                return response
        return login_view(request, *args, **kwargs)

    return view
