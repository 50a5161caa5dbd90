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
