"""What the memories app tells the apps above it (they connect in their AppConfig.ready;
this app imports none of them).

``memories_written`` is sent once the memories are committed and searchable by meaning:
at once for ``POST /v1/memories`` and each batch, when an asynchronous write is ``ready``,
and when an update changes a memory's content. Keyword arguments: ``account_id``,
``memory_ids`` (strings), ``extract`` (the write's ``auto_extract_entities``: True, False or
None for the server default) and ``reason`` (``"create"``, ``"ready"`` or ``"update"``).
A receiver must be quick (enqueue a task, never do the work): it runs in the request.

``content_changed`` is sent inside the transaction of an update that changes a memory's
content, before it commits (keyword ``memory_id``): a receiver marks what it derived from
the old content as stale in the same commit, so that a failure once the update is answered
(``memories_written`` then lost) leaves it stale and redone, never current."""

from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger("memoryrelay.signals")

memories_written = Signal()
content_changed = Signal()


def announce_written(*, account_id, memory_ids, extract: bool | None, reason: str) -> None:
    """Sends ``memories_written`` when the current transaction commits (at once outside
    one). A receiver's failure is logged and never fails the write that already committed."""
    ids = [str(pk) for pk in memory_ids]
    if not ids:
        return

    def send() -> None:
        for receiver, result in memories_written.send_robust(
                sender=None, account_id=account_id, memory_ids=ids, extract=extract, reason=reason):
            if isinstance(result, Exception):
                logger.error("memories_written receiver %s failed: %r", receiver, result)

    transaction.on_commit(send)
