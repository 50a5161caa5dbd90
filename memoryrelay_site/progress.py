"""Progress of a long command run in the foreground: ``Progress(write, "re-embedding
memories", total)`` then ``step(n)`` after each batch prints, at most every ``every``
seconds and once at the end, ``re-embedding memories: 640/10,000 (320/s, about 29 s left)``.
Services take it as an optional ``progress`` callable (``progress(n)``), so they never
print by themselves."""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(self, write: Callable[[str], None], label: str, total: int, *,
                 every: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.write, self.label, self.total, self.every = write, label, total, every
        self.clock = clock
        self.done = 0
        self.started = self.last = clock()

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.done >= self.total or now - self.last >= self.every:
            self.last = now
            self.write(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now if now is not None else self.clock()) - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label}: {self.done:,}/{self.total:,} ({rate:,.0f}/s"
        if self.done < self.total and rate > 0:
            text += f", about {(self.total - self.done) / rate:,.0f} s left"
        return text + ")"
