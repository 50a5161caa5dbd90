"""Logging filters named by ``settings.LOGGING`` (no Django imports: logging is configured
before the apps are loaded)."""

from __future__ import annotations

import logging
import re


class WithoutTraceback(logging.Filter):
    """Keeps the message of a record of Django's ``django.security.*`` loggers and drops its
    traceback: what a client caused and the server answered in full (a Host header it does
    not serve, too many fields: a 400), where a stack of framework frames says nothing the
    message does not. Other records pass as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security."):
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


# A key in a query string (refused by the API) must not reach the log either: any mem_…
# token, raw or percent-encoded, and the value of any key-like parameter.
_KEY_TOKEN = re.compile(r"mem(?:_|%5f)[A-Za-z0-9_\-%]{12,}", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"([?&;](?:api(?:[-_]|%5f)?key|key|token|access(?:[-_]|%5f)?token|auth|authorization"
    r"|x-api-key|secret|password)=)[^&;\s\"]*",
    re.IGNORECASE,
)


def redact_secrets(text: str) -> str:
    return _KEY_TOKEN.sub("mem_[redacted]", _SECRET_PARAM.sub(r"\1[redacted]", text))


class RedactSecrets(logging.Filter):
    """Rewrites a log record whose message carries a key-like value: on every handler of
    the server's logging (a path holding a raw key was logged as is with its 500 or 503),
    and on uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_secrets(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


class PoolConnectErrors(logging.Filter):
    """On psycopg's pool logger: keeps the last "error connecting" (with its time) and drops
    the pool's warnings, which it logs once per attempt during an outage, while a request
    that got no connection only sees "couldn't get a connection after 2.00 sec". The 503
    line of that request names this cause (``memoryrelay_site.db.summary``)."""

    last: tuple[float, str] = (0.0, "")

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("error connecting"):
            error = record.args[-1] if isinstance(record.args, tuple) and record.args else ""
            lines = str(error).strip().splitlines()
            PoolConnectErrors.last = (record.created, lines[0] if lines else "")
        return record.levelno >= logging.ERROR
