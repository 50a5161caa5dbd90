"""Per-key rate limits (memoryrelay_site/ratelimit.py), on both stores: the SQLite file of
their own and Redis (127.0.0.1:6379, keys under a prefix unique to the test, removed after)."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from memoryrelay_site import ratelimit
from memoryrelay_site.services import api_key_create
from tests.conftest import assert_error, make_client, real_queries

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/0"
WINDOW = ratelimit.WINDOW_SECONDS
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@dataclass
class Store:
    kind: str
    target: str  # the SQLite path or the Redis URL
    prefix: str = ""


@pytest.fixture(params=["sqlite", "redis"])
def store(request, settings, tmp_path):
    if request.param == "redis":
        yield request.getfixturevalue("redis_store")
        return
    settings.REDIS_URL = ""
    settings.MEMORYRELAY_RATE_LIMIT_PATH = str(tmp_path / "ratelimit.sqlite3")
    yield Store("sqlite", settings.MEMORYRELAY_RATE_LIMIT_PATH)


@pytest.fixture
def redis_store(settings, monkeypatch):
    # A store that does not answer within its timeout lets requests through (fail open):
    # on a loaded machine Redis's answer can take longer than the server's 0.5 s, and a
    # limit test then saw an attempt pass that the limit refuses.
    monkeypatch.setattr(ratelimit, "REDIS_TIMEOUT", 5.0)
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("MEMORYRELAY_REQUIRE_REDIS") == "1":
            pytest.fail("Redis on 127.0.0.1:6379 is required here (MEMORYRELAY_REQUIRE_REDIS=1)")
        pytest.skip("needs Redis on 127.0.0.1:6379 (CI starts it and requires it)")
    prefix = f"memoryrelay-test-{uuid.uuid4().hex}:"
    settings.REDIS_URL, settings.MEMORYRELAY_RATE_LIMIT_REDIS_PREFIX = REDIS, prefix
    yield Store("redis", REDIS, prefix)
    leftover = list(client.scan_iter(match=prefix + "*"))
    if leftover:
        client.delete(*leftover)


@pytest.fixture
def clock(monkeypatch):
    """Freezes the rate limiter's clock (so a test never straddles two windows). Redis
    drops a window's count when the window ends in real time (EXPIREAT): a test frozen in
    a window that ended while it ran (a loaded machine) saw its counts vanish and a limit
    let through. The frozen time is one with 20 seconds or more of its window left, in
    the next window if this one has less."""

    real = time.time()
    left = WINDOW - real % WINDOW

    class Clock:
        now = real if left >= 20 else real + left + 1

    monkeypatch.setattr(ratelimit, "_now", lambda: Clock.now)
    return Clock


def limited_client(account, per_minute: int | None, header: str = "bearer"):
    return make_client(api_key_create(user=account, rate_limit_per_minute=per_minute)[1], header)


def usage(response) -> tuple[int, int, int]:
    return tuple(int(response[name]) for name in HEADERS)


def post_batch(client, n: int):
    items = [{"content": f"batch item {i}", "agent_id": "bulk"} for i in range(n)]
    return client.post("/v1/memories/batch", {"memories": items}, format="json")


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_key_over_its_limit_gets_a_429_rate_limit_exceeded_with_an_integer_retry_after(
        store, clock, account, header):
    client = limited_client(account, 3, header)
    for _ in range(3):
        assert client.get("/v1/sessions").status_code == 200
    response = client.get("/v1/sessions")
    body = assert_error(response, 429, "rate_limit_exceeded")
    assert "3 requests per minute" in body["message"]
    retry_after = int(response["Retry-After"])  # SDK 0.3.0 parses it with int()
    assert response["Retry-After"] == str(retry_after) and 1 <= retry_after <= 60
    assert usage(response) == (3, 0, (int(clock.now) // 60 + 1) * 60)
    assert retry_after == math.ceil(usage(response)[2] - clock.now)


def test_the_next_window_lets_the_key_through_again(store, clock, account):
    client = limited_client(account, 1)
    assert client.get("/v1/sessions").status_code == 200
    assert client.get("/v1/sessions").status_code == 429
    clock.now += 60
    assert client.get("/v1/sessions").status_code == 200


def test_every_authenticated_response_carries_the_rate_limit_headers(store, clock, client,
                                                                     settings):
    settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE = 50
    responses = [
        client.get("/v1/sessions"),  # 200
        client.post("/v1/sessions", {"title": "t"}, format="json"),  # 201
        client.get(f"/v1/memories/{uuid.uuid4()}"),  # 404
        client.post("/v1/memories", {"content": ""}, format="json"),  # 422
        client.delete("/v1/memories/search"),  # 405
    ]
    assert [r.status_code for r in responses] == [200, 201, 404, 422, 405]
    seen = [usage(r) for r in responses]
    assert [remaining for _, remaining, _ in seen] == [49, 48, 47, 46, 45]
    window_end = (int(clock.now) // 60 + 1) * 60  # X-RateLimit-Reset: Unix seconds
    assert {(limit, reset) for limit, _, reset in seen} == {(50, window_end)}


def test_health_and_refused_keys_get_no_rate_limit_headers(store, anon):
    for response in (anon.get("/v1/health"), anon.get("/v1/sessions"),
                     make_client("mem_prod_" + "x" * 40).get("/v1/sessions")):
        assert not any(name in response for name in HEADERS)


def test_a_batch_counts_its_items_and_a_refused_batch_counts_nothing(store, clock, account):
    client = limited_client(account, 10)
    assert usage(post_batch(client, 4))[1] == 6
    refused = post_batch(client, 7)
    assert_error(refused, 429, "rate_limit_exceeded")
    assert usage(refused)[1] == 6
    assert post_batch(client, 6).status_code == 200
    assert client.get("/v1/sessions").status_code == 429


def test_a_batch_larger_than_the_whole_limit_passes_in_a_fresh_window(store, clock, account):
    client = limited_client(account, 5)
    response = post_batch(client, 8)
    assert response.status_code == 200 and usage(response)[:2] == (5, 0)


def test_a_keys_own_limit_overrides_the_default_and_zero_is_unlimited(store, clock, account,
                                                                      settings):
    settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE = 2
    default, own, unlimited = (limited_client(account, n) for n in (None, 5, 0))
    assert [default.get("/v1/sessions").status_code for _ in range(3)] == [200, 200, 429]
    assert [own.get("/v1/sessions").status_code for _ in range(6)] == [200] * 5 + [429]
    responses = [unlimited.get("/v1/sessions") for _ in range(10)]
    assert {r.status_code for r in responses} == {200}
    assert not any(name in responses[-1] for name in HEADERS)


def test_keys_are_counted_apart(store, clock, account, other_account):
    first, second = limited_client(account, 1), limited_client(other_account, 1)
    assert first.get("/v1/sessions").status_code == 200
    assert first.get("/v1/sessions").status_code == 429
    assert second.get("/v1/sessions").status_code == 200


CHILD = """
import sys
from memoryrelay_site.ratelimit import FailOpen, RedisCounter, SqliteCounter
kind, target, prefix, hits = sys.argv[1:]
store = FailOpen(RedisCounter(target, prefix) if kind == "redis" else SqliteCounter(target))
print("ready", flush=True)
now = float(sys.stdin.readline())
print(sum(store.hit("shared", 30, 1, now).allowed for _ in range(int(hits))))
"""


def test_the_limit_holds_across_processes(store):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "memoryrelay_site.settings"}
    command = [sys.executable, "-c", CHILD, store.kind, store.target, store.prefix, "25"]
    children = [subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE) for _ in range(3)]
    try:
        for child in children:  # every child is up before any of them counts
            assert child.stdout.readline().strip() == "ready"
        # One window, told once all are up, with time left in it: Redis drops a window's
        # count when it ends (EXPIREAT), and a slow start (a loaded machine) once counted
        # past its end, each hit in a new count.
        if (left := 60 - time.time() % 60) < 15:
            time.sleep(left + 0.1)
        now = f"{time.time()}\n"
        allowed = [int(child.communicate(now, timeout=60)[0]) for child in children]
    finally:
        for child in children:
            child.kill()
    assert sum(allowed) == 30, allowed  # 75 attempts from 3 processes, 30 allowed in all


def test_counting_sends_no_statement_to_the_main_database(store, client, settings):
    def statements() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/v1/sessions").status_code == 200
        return real_queries(captured)

    settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE = 0
    unlimited = statements()
    settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE = 100
    limited = statements()
    assert "X-RateLimit-Limit" in client.get("/v1/sessions")
    assert limited == unlimited


def test_redis_windows_expire_by_themselves(redis_store, clock, client):
    import redis

    client.get("/v1/sessions")
    db = redis.Redis.from_url(REDIS)
    keys = list(db.scan_iter(match=redis_store.prefix + "*"))
    window_end = (int(clock.now) // WINDOW + 1) * WINDOW
    assert keys and all(0 < db.ttl(k) <= window_end + 1 - time.time() + 1 for k in keys)


@pytest.mark.parametrize("redis_url, path", [
    ("redis://127.0.0.1:9/0", ""),  # nothing listens on the discard port
    ("", "/nonexistent-directory/ratelimit.sqlite3"),
], ids=["redis-down", "sqlite-unwritable"])
def test_a_failing_store_fails_open_and_is_logged_once(settings, client, caplog, redis_url,
                                                       path):
    settings.REDIS_URL, settings.MEMORYRELAY_RATE_LIMIT_PATH = redis_url, path
    settings.MEMORYRELAY_RATE_LIMIT_PER_MINUTE = 1
    with caplog.at_level(logging.WARNING, logger="memoryrelay.ratelimit"):
        began = time.perf_counter()
        responses = [client.get("/v1/sessions") for _ in range(4)]
        elapsed = time.perf_counter() - began
    assert [r.status_code for r in responses] == [200] * 4
    assert not any(name in responses[0] for name in HEADERS)
    failures = [r for r in caplog.records if "Rate limiting is off" in r.getMessage()]
    assert len(failures) == 1
    assert elapsed < 3  # the dead store is left alone for a while, not retried per request


def test_the_429_is_documented_in_the_openapi_schema(client):
    schema = client.get("/v1/openapi.json").json()
    assert "429" in schema["paths"]["/v1/memories/batch"]["post"]["responses"]


def test_admin_sign_in_attempts_are_limited_per_address(db, store, clock, settings):
    """Each attempt costs a password hash: unbounded, they were a brute force and a CPU
    flood (16 wrong passwords at once took API requests from 10 ms to 4 s)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.MEMORYRELAY_ADMIN_LOGINS_PER_MINUTE = 3
    get_user_model().objects.create_superuser("boss", "b@example.org", "right-password")
    browser = Client()
    tries = [browser.post("/admin/login/", {"username": "boss", "password": "wrong"},
                          REMOTE_ADDR="203.0.113.7").status_code for _ in range(3)]
    assert tries == [200, 200, 200]  # the form again, with its error
    refused = browser.post("/admin/login/", {"username": "boss", "password": "right-password"},
                           REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "_auth_user_id" not in browser.session
    other = Client().post("/admin/login/", {"username": "boss", "password": "right-password"},
                          REMOTE_ADDR="198.51.100.2")
    assert other.status_code == 302  # another address signs in
    assert Client().get("/admin/login/", REMOTE_ADDR="203.0.113.7").status_code == 200


def test_keys_made_through_the_api_count_in_their_makers_window(store, clock, account):
    """A key at 5 a minute made a key (no higher), that one another: each had 5 of its own,
    so minting keys multiplied the limit an operator set."""
    raw = api_key_create(user=account, rate_limit_per_minute=5, scopes=["admin"])[1]
    parent = make_client(raw)
    child_raw = parent.post("/v1/keys", {"scopes": ["admin"]}, format="json").json()["key"]
    child = make_client(child_raw)
    grandchild = make_client(child.post("/v1/keys", {}, format="json").json()["key"])
    codes = [c.get("/v1/agents").status_code for c in (parent, child, grandchild)]
    assert codes == [200, 200, 200]  # 2 key creations + 3 reads: the family's 5 are spent
    assert [c.get("/v1/agents").status_code for c in (parent, grandchild)] == [429, 429]
    other = limited_client(account, 5)  # an operator's key keeps its own window
    assert other.get("/v1/agents").status_code == 200
    quota = grandchild.get("/v1/quota").json()
    assert quota["used"] == 5 and quota["limit"] == 5


def test_keys_an_unlimited_key_hands_out_keep_windows_of_their_own(store, clock, account):
    """An operator's unlimited key has no window to multiply: two client keys of 5 it made
    shared one budget, and the second was refused on its first request."""
    admin = make_client(api_key_create(user=account, scopes=["admin"],
                                       rate_limit_per_minute=0)[1])
    first, second = (make_client(admin.post("/v1/keys", {"rate_limit_per_minute": 5},
                                            format="json").json()["key"]) for _ in range(2))
    assert [first.get("/v1/agents").status_code for _ in range(5)] == [200] * 5
    assert second.get("/v1/agents").status_code == 200


def test_the_sqlite_counter_keeps_a_few_connections_however_many_threads_count(tmp_path,
                                                                             monkeypatch):
    """ASGI runs each request on a thread of its own: one connection per thread opened (and
    set up) a connection on nearly every request, and dead threads' stayed open until the
    garbage collector came by."""
    import sqlite3
    import threading

    from memoryrelay_site import ratelimit

    opened = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(ratelimit.sqlite3, "connect",
                        lambda *a, **k: opened.append(1) or real_connect(*a, **k))
    counter = ratelimit.SqliteCounter(str(tmp_path / "counts"))
    for _ in range(50):  # one request after another, each on a new thread
        thread = threading.Thread(target=counter.add, args=("k", 1, 2**40))
        thread.start()
        thread.join()
    assert len(opened) == 1
    at_once = [threading.Thread(target=counter.add, args=("k", 1, 2**40)) for _ in range(20)]
    for thread in at_once:
        thread.start()
    for thread in at_once:
        thread.join()
    assert len(counter._idle) <= counter.KEPT
    assert counter.add("k", 1, 2**40) == 71  # every count counted
