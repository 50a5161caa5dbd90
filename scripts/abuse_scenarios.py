"""Slow clients, a flood from one key, and database outages against a real server.

    .venv/bin/python scripts/abuse_scenarios.py [slow] [flood] [outage] [--seconds 10]

Each scenario starts the production server exactly as ``make run`` does (its own port, its
own fresh database), attacks it from this machine only (127.0.0.1), prints what clients
saw, and stops everything it started. Bounded in time: every phase has a deadline.

- ``slow``: 200 connections trickle their headers a byte at a time and 50 more sit idle,
  while a probe times ``GET /v1/health`` and an authenticated ``GET /v1/sessions``.
- ``flood``: 8 threads push requests with one key for ``--seconds``; counts 200s and 429s,
  checks ``Retry-After`` and the ``X-RateLimit-*`` headers.
- ``outage`` (PostgreSQL): the server reaches PostgreSQL through a TCP proxy run by this
  script, which then refuses connections (database down), forwards nothing (database hung),
  and recovers; then the database is made read-only. For each phase: status codes, latency,
  health, and how many log lines the server wrote per failed request.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``make run`` on a free port, in its own process group, with its output captured."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            ["make", "-s", "run", f"PORT={self.port}", "HOST=127.0.0.1"], cwd=ROOT,
            env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.key = self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited:\n{self.output()[-3000:]}")
            match = re.search(r"MEMORYRELAY_API_KEY=(mem_\S+)", self.output())
            if match and request(self.url + "/v1/health")[0] in (200, 503):
                return match.group(1)
            time.sleep(0.5)
        self.stop()
        raise SystemExit("server did not start in time")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        Path(self.log.name).unlink(missing_ok=True)


def request(url: str, *, key: str | None = None, method: str = "GET", body=None,
            timeout: float = 10) -> tuple[int, float, dict, bytes]:
    """(status, seconds, headers, body); status 0 when the connection failed or timed out."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    started = time.monotonic()
    try:
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, time.monotonic() - started, _lower(response.headers), \
                response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, time.monotonic() - started, _lower(exc.headers), exc.read()
    except (OSError, TimeoutError):
        return 0, time.monotonic() - started, {}, b""


def _lower(headers) -> dict:
    return {name.lower(): value for name, value in headers.items()}


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "no answers"
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms")


# --- slow clients -------------------------------------------------------------------------


def scenario_slow(seconds: float) -> None:
    print("\n== slow clients: 200 trickling headers + 50 idle connections")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server({"MEMORYRELAY_SQLITE_PATH": f"{tmp}/db.sqlite3", "DATABASE_URL": ""})
        try:
            stop = threading.Event()
            sockets: list[socket.socket] = []
            for i in range(250):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                if i < 200:
                    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
                sockets.append(s)
            closed = Counter()

            def trickle():
                while not stop.is_set():
                    for s in sockets[:200]:
                        try:
                            s.sendall(b"X")
                        except OSError:
                            closed["trickling"] += 1
                    stop.wait(1.0)

            threading.Thread(target=trickle, daemon=True).start()
            health, listing, failures = [], [], 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for target, key, bucket in ((server.url + "/v1/health", None, health),
                                            (server.url + "/v1/sessions", server.key, listing)):
                    status, took, _, _ = request(target, key=key, timeout=5)
                    bucket.append(took)
                    failures += status != 200
                time.sleep(0.2)
            stop.set()
            alive = 0
            for s in sockets:
                s.setblocking(False)
                try:
                    alive += s.recv(1, socket.MSG_PEEK) != b""
                except BlockingIOError:
                    alive += 1
                except OSError:
                    pass
                s.close()
            print(f"  /v1/health:              {summary(health)}")
            print(f"  GET /v1/sessions (key):  {summary(listing)}")
            print(f"  failed probes: {failures}; attacker sockets still open after "
                  f"{seconds:.0f} s: {alive} of 250 (the server closes those past its timeouts)")
        finally:
            server.stop()


# --- flood --------------------------------------------------------------------------------


FLOOD_LIMIT = 120  # requests per minute for the flooding key, so a short run crosses it


def scenario_flood(seconds: float) -> None:
    print(f"\n== flood: 8 threads, one key limited to {FLOOD_LIMIT}/min, {seconds:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server({"MEMORYRELAY_SQLITE_PATH": f"{tmp}/db.sqlite3", "DATABASE_URL": "",
                         "MEMORYRELAY_RATE_LIMIT_PER_MINUTE": str(FLOOD_LIMIT)})
        try:
            codes: Counter = Counter()
            retry_after, missing_headers = set(), 0
            lock = threading.Lock()
            deadline = time.monotonic() + seconds

            def hammer():
                nonlocal missing_headers
                while time.monotonic() < deadline:
                    status, _, headers, _ = request(
                        server.url + "/v1/memories?limit=1", key=server.key, timeout=5)
                    with lock:
                        codes[status] += 1
                        if status == 429:
                            retry_after.add(headers.get("retry-after"))
                        if status and "x-ratelimit-remaining" not in headers:
                            missing_headers += 1

            threads = [threading.Thread(target=hammer) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total = sum(codes.values())
            print(f"  {total} requests, {total / seconds:.0f} req/s: {dict(codes)}")
            print(f"  Retry-After values on 429: {sorted(v for v in retry_after if v)}; "
                  f"answers without X-RateLimit-* headers: {missing_headers}")
            status, _, _, _ = request(server.url + "/v1/health")
            print(f"  /v1/health during the flood's aftermath: {status}")
        finally:
            server.stop()


# --- database outages ---------------------------------------------------------------------


class Proxy:
    """A TCP proxy to PostgreSQL that can refuse connections or stop forwarding bytes."""

    def __init__(self, upstream=("127.0.0.1", 5432)):
        self.upstream, self.mode = upstream, "up"
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "down":
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.mode == "hung":
                    time.sleep(0.05)
                if self.mode == "down":
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def set(self, mode: str):
        self.mode = mode
        if mode == "down":
            with self.lock:
                for s in self.conns:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self.conns.clear()

    def close(self):
        self.mode = "down"
        self.listener.close()


def psql(sql: str, url: str = PG_ADMIN) -> None:
    subprocess.run(["psql", url, "-qc", sql], check=True, capture_output=True, timeout=30)


def phase(server: Server, name: str, seconds: float) -> None:
    """Writes and reads for ``seconds``: codes, latency, health, log lines per failure."""
    log_before = len(server.output().splitlines())
    codes: Counter = Counter()
    latencies, retry_after, health = [], set(), []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        i += 1
        body = {"content": f"outage probe {name} {i}", "agent_id": "scenario"}
        status, took, headers, _ = request(server.url + "/v1/memories", key=server.key,
                                           method="POST", body=body, timeout=30)
        codes[status] += 1
        latencies.append(took)
        if status == 503:
            retry_after.add(headers.get("retry-after"))
        h_status, h_took, _, h_body = request(server.url + "/v1/health", timeout=30)
        state = json.loads(h_body).get("status") if h_body.startswith(b"{") else "-"
        health.append((h_status, state, h_took))
    failed = sum(n for code, n in codes.items() if code >= 500 or code == 0)
    lines = len(server.output().splitlines()) - log_before
    health_codes = Counter(f"{s} {state}" for s, state, _ in health)
    print(f"  {name:<10} writes {dict(codes)}; {summary(latencies)}")
    print(f"  {'':<10} Retry-After {sorted(v for v in retry_after if v)}; health "
          f"{dict(health_codes)} ({summary([t for _, _, t in health])}); "
          f"log lines {lines} for {failed} failed requests "
          f"(access log lines included: {sum(codes.values()) + len(health)})")


def scenario_outage(seconds: float) -> None:
    print("\n== database outages (PostgreSQL through a controllable proxy)")
    proxy = Proxy()
    name = f"memoryrelay_scenario_{os.getpid()}"
    psql(f"CREATE DATABASE {name}")
    server = None
    try:
        server = Server({"DATABASE_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/{name}"})
        phase(server, "normal", seconds)
        proxy.set("down")
        phase(server, "down", seconds)
        proxy.set("up")
        phase(server, "recovered", seconds)
        proxy.set("hung")
        phase(server, "hung", seconds)
        proxy.set("down")
        proxy.set("up")
        phase(server, "recovered", seconds)
        psql(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        phase(server, "read-only", seconds)
    finally:
        if server is not None:
            server.stop()
        proxy.close()
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", default=["slow", "flood", "outage"],
                        choices=["slow", "flood", "outage"])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    args = parser.parse_args()
    for name in args.scenarios:
        {"slow": scenario_slow, "flood": scenario_flood, "outage": scenario_outage}[name](
            args.seconds)


if __name__ == "__main__":
    sys.exit(main())
