"""Export: every kind of every account (or one), streamed page by page from one snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from memories_app.embeddings import DIMENSION, get_provider
from memories_app.models import Memory
from memoryrelay_site.db import consistent_read
from memoryrelay_site.errors import Invalid

from .codec import ACCOUNT_FIELDS, dump, dump_account, fields_of, key
from .kinds import KINDS
from .links import FIELD, links_by_memory

FORMAT, VERSION, ENCODING = "memoryrelay-export", 3, "base64-float32-le"
# The versions import reads (1: accounts, agents, sessions, memories; 2: projects,
# decisions, patterns; 3: entities, and each memory's links to them).
READS = (1, 2, 3)
Progress = Callable[[str], None]


@dataclass
class ExportReport:
    counts: dict[str, int] = field(default_factory=dict)


def account_export(*, out: IO[str], account: str | None = None, chunk_size: int = 1000,
                   progress: Progress | None = None, progress_every: int = 10_000
                   ) -> ExportReport:
    """Writes one account (a username) or all of them to ``out`` as JSON Lines."""
    users = get_user_model().objects.order_by("username")
    if account is not None:
        users = users.filter(username=account)
        if not users.exists():
            raise Invalid(f"No account named {account!r}", field="account")
    counts = dict.fromkeys(["account", *KINDS], 0)
    write(out, {"kind": "header", "format": FORMAT, "version": VERSION,
                "exported_at": timezone.now().isoformat(timespec="microseconds"),
                "embedding_model": get_provider().name, "embedding_dimension": DIMENSION,
                "embedding_encoding": ENCODING, "account": account})
    with consistent_read():  # a memory never names a session written after them
        for user in users.iterator(chunk_size=chunk_size):
            write(out, {"kind": "account",
                        **{name: dump_account(user, name) for name in ACCOUNT_FIELDS}})
            counts["account"] += 1
            for name, kind in KINDS.items():
                for record in _rows(kind.model, user, chunk_size):
                    write(out, {"kind": name, **record})
                    counts[name] += 1
                    if progress and counts[name] % progress_every == 0:
                        progress(f"exported {counts[name]:,} {name} lines")
    write(out, {"kind": "end", "counts": counts})
    return ExportReport(counts=counts)


def write(out: IO[str], record: dict) -> None:
    out.write(json.dumps(record, separators=(",", ":")) + "\n")


def _rows(model, user, chunk_size: int) -> Iterator[dict]:
    """The account's rows oldest first, one query per page, keyed on (created_at, id)."""
    fields = fields_of(model)
    names = [f.attname for f in fields]
    at, pk = names.index("created_at"), names.index("id")
    rows = model._base_manager.filter(account=user).order_by("created_at", "id")
    rows = rows.values_list(*names)
    last = None
    while True:
        page = rows if last is None else rows.filter(
            Q(created_at__gt=last[at]) | Q(created_at=last[at], id__gt=last[pk]),
            created_at__gte=last[at])
        batch = list(page[:chunk_size])
        links = links_by_memory([row[pk] for row in batch]) if model is Memory else None
        for row in batch:
            record = {key(f): (user.username if f.name == "account" else dump(f, value))
                      for f, value in zip(fields, row, strict=True)}
            if links is not None:
                record[FIELD] = links.get(record["id"], [])
            yield record
        if len(batch) < chunk_size:
            return
        last = batch[-1]
