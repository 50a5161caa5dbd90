"""The ASGI application that `make run` serves (gunicorn with memoryrelay_site.server.Worker).

Django runs behind :class:`RequestGate`, which reads every request body on the event loop
before Django sees it, so that neither a slow client nor a chunked body ties up a thread.
"""

from __future__ import annotations

import asyncio
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")


class RequestGate:
    """ASGI middleware: the whole body first, then a thread.

    - The body is read in full on the event loop, at most ``max_body_bytes`` of it. A body
      sent with ``Transfer-Encoding: chunked`` reaches Django with the ``Content-Length`` it
      turned out to have. A body declared or found larger than the limit is not read (or
      not further): Django gets an empty body and a ``Content-Length`` over the limit, so the
      middleware that answers every oversized request answers this one too (413).
    - Then at most ``threads`` requests of this process run in Django at once (each in a
      thread of its own, as Django runs synchronous code under ASGI); the others wait on
      the event loop, holding no thread and no database connection.
    """

    def __init__(self, app, *, threads: int, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._slots = asyncio.Semaphore(max(1, threads))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(scope["headers"], receive, self.max_body_bytes)
        if body is None:  # the client went away
            return
        if body is _TOO_LARGE:
            length, body = max(_declared_length(scope["headers"]), self.max_body_bytes + 1), b""
            scope = {**scope, "headers": _with_length(scope["headers"], length)}
        elif _header(scope["headers"], b"transfer-encoding") is not None:
            scope = {**scope, "headers": _with_length(scope["headers"], len(body))}
        async with self._slots:
            await self.app(scope, _replay(body, receive), send)


_TOO_LARGE = object()  # what _read_body returns for a body over the limit


async def _read_body(headers, receive, limit: int) -> bytes | object | None:
    if _declared_length(headers) > limit:
        return _TOO_LARGE
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that gives the body read already, then the client's own events.

    Past an over-large body the client may still be sending: those chunks are dropped, so
    Django, which listens for a disconnect while the view runs and takes any other message
    for a protocol error (a 500), only ever sees the disconnect."""
    pending = True

    async def replay():
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return replay


def _header(headers, name: bytes) -> bytes | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _declared_length(headers) -> int:
    try:
        return int(_header(headers, b"content-length") or 0)
    except ValueError:
        return 0


def _with_length(headers, length: int) -> list[tuple[bytes, bytes]]:
    dropped = (b"content-length", b"transfer-encoding")
    kept = [(k, v) for k, v in headers if k.lower() not in dropped]
    return [*kept, (b"content-length", str(length).encode())]


application = RequestGate(
    get_asgi_application(),
    threads=settings.MEMORYRELAY_WORKER_THREADS,
    max_body_bytes=settings.MEMORYRELAY_MAX_BODY_BYTES,
)
