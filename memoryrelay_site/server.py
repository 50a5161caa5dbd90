"""How `make run` serves the API: gunicorn processes, each one uvicorn event loop in front of
the ASGI application (memoryrelay_site/asgi.py).

    gunicorn memoryrelay_site.asgi:application --worker-class memoryrelay_site.server.Worker

Reading a request ties up no thread, so slow or idle clients cost a socket each, not a
worker: the event loop reads headers and bodies, and only a complete request reaches
Django (see ``asgi.RequestGate``). On top of uvicorn, the protocol here gives each request
a deadline for its headers and one for its body (``MEMORYRELAY_HEADER_TIMEOUT``,
``MEMORYRELAY_BODY_TIMEOUT``; 408, then the connection closes); idle keep-alive connections
close after ``MEMORYRELAY_KEEPALIVE_TIMEOUT`` (uvicorn's ``timeout_keep_alive``); beyond
``MEMORYRELAY_MAX_CONNECTIONS`` connections or requests in a process, a request is a 503
with ``Retry-After``. The access log never shows an API key sent in a URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import uuid
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from .logfilters import RedactSecrets

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
logger = logging.getLogger("uvicorn.error")


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with read deadlines.

    uvicorn times out only the wait between two requests of a keep-alive connection: once a
    byte arrives, or on a fresh connection, nothing limits how long a client takes to send
    the rest. Here a request's headers must be complete ``header_timeout`` seconds after its
    first byte (or after the connection opened), and its body ``body_timeout`` seconds after
    the headers. Headers are bounded in size too (``MEMORYRELAY_MAX_HEADER_BYTES`` and
    ``_FIELDS``): uvicorn keeps every header line it is sent, and one client streaming
    header lines for its deadline grew a process by gigabytes.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from django.conf import settings

        self.header_timeout = settings.MEMORYRELAY_HEADER_TIMEOUT
        self.max_connections = settings.MEMORYRELAY_MAX_CONNECTIONS
        self.body_timeout = settings.MEMORYRELAY_BODY_TIMEOUT
        self.max_header_bytes = settings.MEMORYRELAY_MAX_HEADER_BYTES
        self.max_header_fields = settings.MEMORYRELAY_MAX_HEADER_FIELDS
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False  # part of a request's headers has arrived
        self._header_bytes = 0  # read since the request began (a read's slack aside)
        self._too_many_fields = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # answered already (431, 408): read nothing more
            return
        if self._in_headers:  # the read that begins a request counts from its start
            self._header_bytes += len(data)
        super().data_received(data)  # this stops uvicorn's keep-alive timer
        if self.transport.is_closing():
            return
        if self._too_many_fields:
            self._headers_too_large(f"over {self.max_header_fields} fields")
        elif self._in_headers and self._header_bytes > self.max_header_bytes:
            self._headers_too_large(f"over {self.max_header_bytes} bytes")
        elif self._deadline is None and self.timeout_keep_alive_task is None and (
                self._between_requests()):
            self._arm(self.header_timeout, "headers")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._too_many_fields:
            return  # not kept: the request is refused once this read ends
        super().on_header(name, value)
        self._too_many_fields = len(self.headers) > self.max_header_fields

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._header_bytes = True, 0
        if self._deadline is None and self._between_requests():
            self._arm(self.header_timeout, "headers")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        if self._too_many_fields:
            self._headers_too_large(f"over {self.max_header_fields} fields")
        if self.transport.is_closing():  # refused while its headers were read
            return
        self._disarm()
        limit = self.max_connections
        if len(self.connections) > limit or len(self.tasks) >= limit:
            # Over capacity: this request gets a 503 in the error body (uvicorn's own
            # limit_concurrency answers in plain text).
            self.app, app = over_capacity, self.app
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        self._arm(self.body_timeout, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """What is not HTTP (a request line too long or with a NUL, a negative or doubled
        Content-Length, both Content-Length and Transfer-Encoding) is a 400 in the error
        body, as every other error (uvicorn's own answers in plain text)."""
        if self.transport.is_closing():  # answered already
            return
        logger.info("%s - 400: %s", self.client, msg)
        self._answer_and_close(400, NOT_HTTP)

    def _headers_too_large(self, why: str) -> None:
        self._in_headers = False
        logger.info("%s - 431: the request's headers are %s", self.client, why)
        self._answer_and_close(
            431, f"Request header fields too large: {why} (headers and request line)")
        if self.headers:
            self.headers.clear()  # what was kept of them goes now

    def _answer_and_close(self, status: int, message: str) -> None:
        """Writes the whole error answer straight to the socket, then closes it."""
        self._disarm()
        self.transport.write(raw_error(status, message))
        self.transport.close()

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, part)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, part: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        started = self.cycle is not None and self.cycle.response_started
        if (part == "body" and not started) or (part == "headers" and self._in_headers):
            logger.info("%s - 408: the request's %s did not arrive in time", self.client, part)
            self.transport.write(
                raw_error(408, f"Request timeout: the request's {part} did not arrive in time"))
        self.transport.close()


NOT_HTTP = ("Bad request: not a valid HTTP request (its request line, its headers or the "
            "length of its body)")


def error_response(status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of an error answered by the server itself, in the API's error body;
    the connection closes after it."""
    from .errors import error_body

    request_id = f"req_{uuid.uuid4().hex}"
    body = json.dumps(error_body(status, message, request_id)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
               (b"x-request-id", request_id.encode()), (b"connection", b"close")]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    return headers, body


def raw_error(status: int, message: str) -> bytes:
    """A complete error answer (status line, headers, body), written straight to the socket
    by the protocol itself (a 400, 408 or 431 that reaches no application)."""
    headers, body = error_response(status, message)
    lines = b"".join(b"%s: %s\r\n" % header for header in headers)
    return b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()) + lines + (
        b"\r\n" + body)


async def over_capacity(scope, receive, send) -> None:
    headers, body = error_response(503, "Server at capacity: retry shortly")
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


PARENT_CHECK_SECONDS = 1.0


class Worker(UvicornWorker):
    """The gunicorn worker class of `make run`: uvicorn with the settings above."""

    def __init__(self, *args, **kwargs) -> None:
        from django.conf import settings

        self.CONFIG_KWARGS = {
            "loop": "auto",
            "http": HttpProtocol,
            "ws": "none",
            "lifespan": "off",  # Django's ASGI handler serves HTTP only
            "timeout_keep_alive": settings.MEMORYRELAY_KEEPALIVE_TIMEOUT,
            # callback_notify, which also checks that the master lives, every second.
            "timeout_notify": PARENT_CHECK_SECONDS,
        }
        super().__init__(*args, **kwargs)
        # Finish in-flight requests within gunicorn's --graceful-timeout, before its SIGKILL.
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, RedactSecrets) for f in access.filters):
            access.addFilter(RedactSecrets())

    async def callback_notify(self) -> None:
        """gunicorn's own workers stop once their master is gone; uvicorn's never did: a
        master killed (SIGKILL, the OOM killer) left its workers serving with nobody to
        replace one that dies, and holding the port, so the server could not be started
        again. An orphaned worker now stops as its master would have stopped it (SIGTERM:
        the requests under way finish, within the graceful timeout)."""
        if os.getppid() != self.ppid and self.alive:
            self.alive = False
            logger.warning("the gunicorn master (pid %s) is gone: this worker stops", self.ppid)
            os.kill(os.getpid(), signal.SIGTERM)
        self.notify()
