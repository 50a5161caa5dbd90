"""The production server, started exactly as `make run` starts it, against a temporary SQLite
file: slow and idle clients starve nobody, reads have deadlines, chunked bodies are read
and capped, keys stay out of the access log; every process runs BLAS on one thread."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER_TIMEOUT = 4  # seconds, small so that the deadline tests stay short
BODY_TIMEOUT = 4
MAX_BODY = 64 * 1024
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_command(port: int) -> list[str]:
    """The gunicorn command of `make run`, read from the Makefile (make -n runs nothing)."""
    dry = subprocess.run(
        ["make", "-n", "-s", "run", "HOST=127.0.0.1", f"PORT={port}", "WORKERS=2"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    recipe = re.sub(r"\\\n\s*", " ", dry)
    line = next(line for line in recipe.splitlines() if "/gunicorn " in line)
    return shlex.split(line)


def test_make_run_keeps_off_gunicorns_shared_control_socket_and_refuses_no_workers():
    """Every `make run` shared ~/.gunicorn/gunicorn.ctl: stopping one removed the others'.
    With WORKERS=0 gunicorn listened and answered nobody, logging nothing."""
    assert "--no-control-socket" in run_command(free_port())
    done = subprocess.run(["make", "-s", "run", "WORKERS=0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0
    assert "WORKERS must be a whole number of at least 1, got '0'" in done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env.update(
        DATABASE_URL="", MEMORYRELAY_SQLITE_PATH=str(tmp / "db.sqlite3"),
        MEMORYRELAY_EMBEDDINGS="none", MEMORYRELAY_RATE_LIMIT_PER_MINUTE="0",
        MEMORYRELAY_HEADER_TIMEOUT=str(HEADER_TIMEOUT), MEMORYRELAY_BODY_TIMEOUT=str(BODY_TIMEOUT),
        MEMORYRELAY_KEEPALIVE_TIMEOUT="60", MEMORYRELAY_MAX_BODY_BYTES=str(MAX_BODY),
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )
    if done.returncode:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


class Server:
    def __init__(self, port: int, key: str, log: Path):
        self.port, self.key, self.log = port, key, log

    def connect(self, timeout: float = 5) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str, *, key: str | None = None, timeout: float = 5):
        conn = self.connect(timeout)
        try:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    env = server_env(tmp)
    manage(env, "migrate", "--noinput")
    key = manage(env, "create_api_key", "--user", "server-test").strip().splitlines()[-1]
    port, log = free_port(), tmp / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            run_command(port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Server(port, key, log)
    try:
        wait_until_up(served, process)
        yield served
    finally:
        stop(process)


def wait_until_up(server: Server, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited:\n{server.log_text()}")
        try:
            if server.get("/v1/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server did not answer within 60 s:\n{server.log_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def is_open(sock: socket.socket) -> bool:
    """True while the server has neither closed the connection nor answered on it."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # data or b"": the server answered or hung up
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def read_until_closed(sock: socket.socket, limit: float) -> bytes:
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_health_and_an_authenticated_read_answer_within_a_second_while_200_slow_clients_wait(
    server,
):
    idle, trickling = [], []
    try:
        for _ in range(100):  # keep-alive connections that made a request and went quiet
            conn = server.connect()
            conn.request("GET", "/v1/health")
            response = conn.getresponse()
            assert response.status == 200 and response.read()
            idle.append(conn.sock)
        for _ in range(100):  # clients sending their headers a byte at a time
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /v1/memories HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            trickling.append(sock)
        for sock in trickling:
            sock.sendall(b"a")

        (status, _), seconds = timed(lambda: server.get("/v1/health", timeout=5))
        assert status == 200 and seconds < 1, seconds
        (status, body), seconds = timed(
            lambda: server.get("/v1/memories?limit=1", key=server.key, timeout=5))
        assert status == 200 and seconds < 1, seconds
        assert json.loads(body)["object"] == "list"

        for sock in trickling:
            sock.sendall(b"b")
        assert all(is_open(sock) for sock in idle + trickling), "slow clients were dropped"
    finally:
        for sock in idle + trickling:
            sock.close()


def test_a_client_that_does_not_send_its_request_in_time_is_closed_after_the_timeout(server):
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    headers = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    headers.sendall(b"GET /v1/health HTTP/1.1\r\nHost: test\r\n")
    body = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    body.sendall(
        b"POST /v1/memories HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + server.key.encode() + b"\r\n"
        b"Content-Length: 100\r\n\r\n{\"content\": "
    )
    started = time.monotonic()
    try:
        answers = {}
        for name, sock in (("silent", silent), ("headers", headers), ("body", body)):
            answers[name] = read_until_closed(sock, HEADER_TIMEOUT + 10)
            elapsed = time.monotonic() - started
            assert HEADER_TIMEOUT - 0.5 < elapsed < HEADER_TIMEOUT + 5, (name, elapsed)
        assert answers["silent"] == b""  # nothing asked, nothing answered
        for part in ("headers", "body"):
            assert answers[part].startswith(b"HTTP/1.1 408"), answers[part]
            error = json.loads(answers[part].split(b"\r\n\r\n", 1)[1])
            assert error["code"] == 408 and part in error["message"]
    finally:
        for sock in (silent, headers, body):
            sock.close()


def post_chunked(server: Server, chunks: list[bytes]):
    conn = server.connect(timeout=30)
    try:
        conn.request(
            "POST", "/v1/memories", body=iter(chunks), encode_chunked=True,
            headers={"Authorization": f"Bearer {server.key}",
                     "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        )
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def test_a_chunked_body_is_read(server):
    response, body = post_chunked(
        server, [b'{"agent_id": "chunked-agent", ', b'"content": "sent in ', b'chunks"}'])
    assert response.status == 201, body
    assert json.loads(body)["content"] == "sent in chunks"


def test_a_chunked_body_over_the_size_limit_is_a_413_in_the_error_body(server):
    filler = b'"' + b"x" * 8192 + b'", '
    chunks = [b'{"agent_id": "chunked-agent", "metadata": {"a": [', *[filler] * 10, b'""]}}']
    assert sum(map(len, chunks)) > MAX_BODY
    response, body = post_chunked(server, chunks)
    assert response.status == 413, body
    error = json.loads(body)
    assert error["type"] == "payload_too_large" and error["code"] == 413
    assert error["request_id"] == response.getheader("X-Request-ID")


def test_a_key_in_a_query_string_never_reaches_the_access_log(server):
    status, _ = server.get(f"/v1/memories?limit=1&api_key={server.key}")
    assert status == 401
    status, _ = server.get(f"/v1/agents?token={server.key[:20]}&key=hunter2hunter2")
    assert status == 401
    deadline = time.monotonic() + 5
    while "/v1/agents?" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log_text()
    assert "/v1/memories?limit=1&api_key=[redacted]" in log
    assert "/v1/agents?token=[redacted]&key=[redacted]" in log
    assert server.key not in log and server.key[:20] not in log and "hunter2" not in log


def test_a_process_runs_at_most_its_threads_requests_at_once_and_none_waits_on_a_slow_body():
    from memoryrelay_site.asgi import RequestGate

    running, peak, bodies = 0, 0, []

    async def app(scope, receive, send):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        bodies.append((await receive())["body"])
        await asyncio.sleep(0.01)
        running -= 1

    async def scenario():
        gate = RequestGate(app, threads=2, max_body_bytes=100)
        never = asyncio.Event()

        async def slow_receive():
            await never.wait()

        def fast_receive(n):
            async def receive():
                return {"type": "http.request", "body": b"%d" % n, "more_body": False}
            return receive

        scope = {"type": "http", "headers": []}
        slow = asyncio.create_task(gate(scope, slow_receive, None))
        await asyncio.wait_for(
            asyncio.gather(*(gate(scope, fast_receive(n), None) for n in range(10))), 5)
        slow.cancel()

    asyncio.run(scenario())
    assert peak == 2 and sorted(bodies) == sorted(b"%d" % n for n in range(10))


class FakeTransport:
    """What uvicorn's protocol uses of an asyncio transport."""

    def __init__(self):
        self.written, self.closed = b"", False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def write(self, data):
        self.written += data

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def test_a_request_beyond_the_process_capacity_is_a_503_in_the_error_body(settings):
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from memoryrelay_site.errors import status_type
    from memoryrelay_site.server import HttpProtocol

    settings.MEMORYRELAY_MAX_CONNECTIONS = 2

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario():
        config = Config(app=app, http=HttpProtocol, ws="none", lifespan="off", log_config=None)
        config.load()
        state, transports = ServerState(), []
        for _ in range(3):
            transports.append(FakeTransport())
            protocol = HttpProtocol(config=config, server_state=state, app_state={})
            protocol.connection_made(transports[-1])
            protocol.data_received(b"GET /v1/health HTTP/1.1\r\nHost: test\r\n\r\n")
            await asyncio.sleep(0.05)
        return transports

    first, second, third = asyncio.run(scenario())
    assert first.written.startswith(b"HTTP/1.1 200") and second.written.startswith(b"HTTP/1.1 200")
    head, body = third.written.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
    error = json.loads(body)
    assert error["type"] == status_type(503) and error["code"] == 503 and third.closed


BLAS_PROBE = (
    "import json, threadpoolctl; from memories_app.minilm import MiniLMEncoder; "
    "print(json.dumps([p['num_threads'] for p in threadpoolctl.threadpool_info() "
    "if p['user_api'] == 'blas']))"
)


def blas_threads(command: list[str], env: dict[str, str]) -> list[int]:
    """The thread count of each BLAS library loaded in a fresh process running ``command``."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if done.returncode:
        pytest.fail(f"{command} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [
    [sys.executable, "-c", "import memoryrelay_site.server, memoryrelay_site.asgi; " + BLAS_PROBE],
    [sys.executable, "manage.py", "shell", "-c", BLAS_PROBE],
], ids=["server-worker", "manage.py"])
def test_every_process_that_loads_django_runs_blas_on_one_thread(command, tmp_path):
    threads = blas_threads(command, server_env(tmp_path))
    assert threads and set(threads) == {1}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS uses one thread per core at most")
def test_an_operator_can_still_give_blas_more_threads(tmp_path):
    env = {**server_env(tmp_path), "OPENBLAS_NUM_THREADS": "2"}
    command = [sys.executable, "-c", "import memoryrelay_site.asgi; " + BLAS_PROBE]
    assert blas_threads(command, env) == [2]


def test_chunks_still_arriving_after_an_over_large_body_never_reach_django():
    """Django takes any message but a disconnect after the body for a protocol error (a
    500): the rest of an over-large body, still arriving while the view runs, is dropped."""
    from memoryrelay_site.asgi import RequestGate

    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())  # the body Django is given
        seen.append(await receive())  # what Django's disconnect listener gets next
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    incoming = [{"type": "http.request", "body": b"x" * 600, "more_body": True},
                {"type": "http.request", "body": b"x" * 600, "more_body": True},
                {"type": "http.request", "body": b"x" * 600, "more_body": False},
                {"type": "http.disconnect"}]

    async def receive():
        return incoming.pop(0)

    async def send(message):
        pass

    gate = RequestGate(app, threads=1, max_body_bytes=1000)
    scope = {"type": "http", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(gate(scope, receive, send))
    assert seen[0] == {"type": "http.request", "body": b"", "more_body": False}
    assert seen[1] == {"type": "http.disconnect"}


@pytest.mark.parametrize("request_bytes", [
    b"GET /v1/health?q=" + b"a" * 70000 + b" HTTP/1.1\r\nHost: test\r\n\r\n",
    b"GET /v1/he\x00alth HTTP/1.1\r\nHost: test\r\n\r\n",
    b"POST /v1/memories HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/memories HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
])
def test_a_request_that_is_not_http_is_a_400_in_the_error_body(server, request_bytes):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(request_bytes)
        answer = read_until_closed(sock, 10)
    finally:
        sock.close()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)
    assert error["code"] == 400 and "not a valid HTTP request" in error["message"]
    assert error["request_id"].encode() in head


def _send_slowly(sock: socket.socket, chunks) -> None:
    """Sends each chunk apart (each its own read on the server), until the server closes."""
    for chunk in chunks:
        try:
            sock.sendall(chunk)
        except OSError:  # closed on us: answered
            return
        time.sleep(0.01)


@pytest.mark.parametrize("lines", [
    [b"X-Pad-%d: %s\r\n" % (i, b"a" * 4000) for i in range(40)],  # 160 KB in 40 reads
    [b"X-F%d: 1\r\n" % i for i in range(150)],  # 150 fields, a few bytes each
])
def test_headers_past_their_bounds_are_a_431_and_the_connection_closes(server, lines):
    """uvicorn kept every header line sent while its deadline ran: a client streaming 65 KB
    lines for 8 s grew a process from 269 MB to 3.6 GB, never given back."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        _send_slowly(sock, [b"GET /v1/health HTTP/1.1\r\nHost: test\r\n", *lines, b"\r\n"])
        answer = read_until_closed(sock, 10)
    finally:
        sock.close()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431"), answer[:200]
    error = json.loads(body)
    assert error["code"] == 431 and "too large" in error["message"]
    assert answer.count(b"HTTP/1.1") == 1  # the request was not served as well


def test_a_request_with_many_ordinary_headers_is_served(server):
    conn = server.connect()
    try:
        headers = {f"X-Trace-{i}": "v" * 100 for i in range(60)}
        conn.request("GET", "/v1/health", headers=headers)
        assert conn.getresponse().status == 200
    finally:
        conn.close()



def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an exited child of ours not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_workers_whose_master_was_killed_stop_and_free_the_port(tmp_path):
    """A master killed with SIGKILL (the OOM killer) left its uvicorn workers serving for
    ever, with nobody to replace one that dies, and holding the port: the server could not
    be started again ("Connection in use"). Orphaned workers now stop within seconds."""
    env = server_env(tmp_path)
    manage(env, "migrate", "--noinput")
    port, log = free_port(), tmp_path / "server.log"
    with open(log, "wb") as out:
        master = subprocess.Popen(run_command(port), cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    served = Server(port, "", log)
    try:
        wait_until_up(served, master)
        workers = children(master.pid)
        assert len(workers) == 2
        os.kill(master.pid, signal.SIGKILL)
        master.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(map(is_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(is_running, workers)), served.log_text()[-2000:]
        with socket.socket() as sock:  # a new server can listen on the port again, as
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # gunicorn binds
            sock.bind(("127.0.0.1", port))
        assert "the gunicorn master (pid" in served.log_text()
    finally:
        try:
            os.killpg(master.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
