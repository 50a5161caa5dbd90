"""Logging filters named by ``settings.LOGGING`` (no Django imports: logging is configured
before the apps are loaded)."""

from __future__ import annotations

import logging


class WithoutTraceback(logging.Filter):
    """Keeps the message of a record of Django's ``django.security.*`` loggers and drops its
    traceback: what a client caused and the server answered in full (a Host header it does
    not serve, too many fields: a 400), where a stack of framework frames says nothing the
    message does not. Other records pass as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security."):
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
