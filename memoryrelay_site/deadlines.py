"""A call that must answer within a deadline though it cannot be interrupted (a name lookup,
a probe of a database or of Redis that may hang): it runs in a daemon thread of its own,
and the caller stops waiting at the deadline."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def within(seconds: float, call: Callable[[], T], *, late: BaseException,
           name: str | None = None) -> T:
    """``call()``'s answer, or ``late`` raised when it has none within ``seconds``; what
    ``call`` raises is raised here. A late call goes on in its thread until its own
    timeouts end it."""
    answer: list = []

    def run() -> None:
        try:
            answer.append((True, call()))
        except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
            answer.append((False, exc))

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    thread.join(seconds)
    if not answer:
        raise late
    done, value = answer[0]
    if not done:
        raise value
    return value
