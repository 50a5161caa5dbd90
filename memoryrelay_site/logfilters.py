"""Logging filters named by ``settings.LOGGING`` (no Django imports: logging is configured
before the apps are loaded)."""

from __future__ import annotations

import logging


class WithoutTraceback(logging.Filter):
    """Keeps a record's message and drops its traceback: for what a client caused and the
    server answered in full (a Host header it does not serve: a 400), where a stack of
    framework frames says nothing the message does not."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
