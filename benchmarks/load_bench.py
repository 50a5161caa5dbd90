"""Throughput under concurrent load, through real servers, old setup against new.

    .venv/bin/python benchmarks/load_bench.py [--seconds 8] [--connections 8]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/memoryrelay_bench \\
        .venv/bin/python benchmarks/load_bench.py --database postgres

Starts each server on a free port (2 processes each, as `make run`), gives each its own
account with 200 memories, then drives it from N keep-alive connections for a fixed time
and prints req/s, p50 and p95 per case, side by side with ratios:

- gunicorn gthread + WSGI, 2 workers x 4 threads (the setup before issue 7) against
  gunicorn + uvicorn worker + ASGI, 2 workers, 4 requests at once each (`make run` now):
  memory create (local embedding, insert) and memory list;
- the new server with the numeric libraries on one thread per process (the default now)
  against as many threads as cores (OpenBLAS's own default): memory create and hybrid
  search, the concurrent load that shows the cost of BLAS threads fighting for the cores.

SQLite runs on a temporary file; PostgreSQL on DATABASE_URL (migrated; the bench adds its
own accounts). Every server is killed at the end; each case is bounded by --seconds. It
prints figures and asserts nothing. The client runs on the same machine and takes its
share of the cores, equally for every setup.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
WORDS = ("retry queue timeout deploy cache index email payment worker Maria Tom alert "
         "backup region Frankfurt Redis PostgreSQL dashboard release rollback invoice").split()

OLD = ["memoryrelay_site.wsgi:application", "--workers", "2", "--threads", "4"]
NEW = ["memoryrelay_site.asgi:application", "--worker-class", "memoryrelay_site.server.Worker",
       "--workers", "2", "--env", "MEMORYRELAY_WORKER_THREADS=4"]


def sentence(rng: random.Random) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
    return f"{words} #{rng.randint(1, 10**6)}"


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0


class Server:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.port = free_port()
        command = [str(BIN / "gunicorn"), *args, "--bind", f"127.0.0.1:{self.port}",
                   "--no-control-socket", "--graceful-timeout", "5"]
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
            try:
                if request(self.port, "GET", "/v1/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, key=None, conn=None, timeout=60):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def drive(port: int, key: str, make_call, connections: int, seconds: float) -> Result:
    """N threads, one keep-alive connection each, calling until the time is up."""
    result, lock = Result(), threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < stop_at:
            method, path, body = make_call(rng)
            started = time.perf_counter()
            try:
                status, _ = request(port, method, path, body, key, conn=conn)
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - started
            with lock:
                if 200 <= status < 300:
                    result.latencies.append(elapsed)
                else:
                    result.errors += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    result.seconds = time.monotonic() - started
    return result


def create(rng):
    return "POST", "/v1/memories", {"agent_id": "bench", "content": sentence(rng)}


def listing(rng):
    return "GET", f"/v1/memories?limit=20&offset={rng.randint(0, 100)}", None


def search(rng):
    body = {"query": " ".join(rng.sample(WORDS, 4)), "search_mode": "hybrid", "limit": 10}
    return "POST", "/v1/memories/search", body


CASES = {"memory create": create, "memory list": listing, "hybrid search": search}


def prepare(env: dict[str, str], user: str) -> str:
    def manage(*args):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    manage("migrate", "--noinput")
    return manage("create_api_key", "--user", user).strip().splitlines()[-1]


def seed(port: int, key: str) -> None:
    rng = random.Random(1)
    for _ in range(2):
        items = [{"agent_id": "bench", "content": sentence(rng)} for _ in range(100)]
        status, body = request(port, "POST", "/v1/memories/batch", {"memories": items}, key)
        assert status < 300, body


def pg_connections(env: dict[str, str]) -> int | None:
    if not env.get("DATABASE_URL", "").startswith("postgres"):
        return None
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database()").fetchone()[0] - 1


def run_setup(name, server_args, env, cases, args, tmp) -> dict[str, Result]:
    user = f"load-bench-{name.replace(' ', '-')}-{os.getpid()}-{int(time.time())}"
    key = prepare(env, user)
    server = Server(server_args, env, tmp / f"{user}.log")
    results = {}
    try:
        seed(server.port, key)
        for case in cases:  # warm up: load the model in every process, fill caches
            drive(server.port, key, CASES[case], args.connections, 1.5)
        for case in cases:
            peak = [0]
            watcher = _watch_connections(env, peak, args.seconds)
            results[case] = drive(server.port, key, CASES[case], args.connections, args.seconds)
            watcher.join(timeout=5)
            results[case].peak_pg = peak[0]  # type: ignore[attr-defined]
            print(f"  {name:<34} {case:<14} {line(results[case])}", flush=True)
    finally:
        server.stop()
    return results


def _watch_connections(env, peak, seconds):
    def watch():
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            try:
                peak[0] = max(peak[0], pg_connections(env) or 0)
            except Exception:  # noqa: BLE001 - a figure, not a check
                return
            time.sleep(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def line(r: Result) -> str:
    peak = getattr(r, "peak_pg", 0)
    extra = f"  db conns {peak:>3}" if peak else ""
    return (f"{r.rate:7.1f} req/s  p50 {r.quantile(0.5) * 1000:7.1f} ms  "
            f"p95 {r.quantile(0.95) * 1000:7.1f} ms  errors {r.errors}{extra}")


def compare(title: str, before: str, after: str, a: dict, b: dict) -> None:
    print(f"\n{title}\n{'case':<15}{before:>28}{after:>28}   ratio (req/s, p50)")
    for case in a:
        x, y = a[case], b[case]
        ratio = y.rate / x.rate if x.rate else float("inf")
        p50 = y.quantile(0.5) / x.quantile(0.5) if x.quantile(0.5) else float("inf")
        cell = "{:7.1f}/s p50 {:6.1f} ms".format
        errors = f"  errors {x.errors}/{y.errors}" if x.errors or y.errors else ""
        print(f"{case:<15}{cell(x.rate, x.quantile(0.5) * 1000):>28}"
              f"{cell(y.rate, y.quantile(0.5) * 1000):>28}   x{ratio:.2f}, x{p50:.2f}{errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="measured time per case")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--only", choices=["server", "blas"], help="run one comparison")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="load-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env.update(MEMORYRELAY_RATE_LIMIT_PER_MINUTE="0", DJANGO_LOG_LEVEL="WARNING")
    if args.database == "sqlite":
        env.update(DATABASE_URL="", MEMORYRELAY_SQLITE_PATH=str(tmp / "bench.sqlite3"))
    elif not env.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("--database postgres needs DATABASE_URL=postgres://…")
    cores = str(os.cpu_count() or 1)
    print(f"database: {args.database}; {args.connections} connections; {args.seconds:g} s per "
          f"case; {cores} cores; server logs in {tmp}\n")

    if args.only in (None, "server"):
        old = run_setup("gthread WSGI 2x4", OLD, env, ["memory create", "memory list"], args, tmp)
        new = run_setup("uvicorn ASGI 2x4", NEW, env, ["memory create", "memory list"], args, tmp)
        compare("Server (BLAS on 1 thread in both)", "gthread WSGI 2x4", "uvicorn ASGI 2x4",
                old, new)
    if args.only in (None, "blas"):
        cases = ["memory create", "hybrid search"]
        many_env = {**env, **{name: cores for name in BLAS_VARIABLES}}
        many = run_setup(f"ASGI, BLAS {cores} threads", NEW, many_env, cases, args, tmp)
        one = run_setup("ASGI, BLAS 1 thread", NEW, env, cases, args, tmp)
        compare("Numeric libraries (new server)", f"BLAS {cores} threads/process",
                "BLAS 1 thread/process", many, one)


if __name__ == "__main__":
    main()
