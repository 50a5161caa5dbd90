"""Export and import: one account or all, as JSON Lines, streamed both ways.

Format version 3, one JSON object per line, each with a ``kind``::

    {"kind": "header", "format": "memoryrelay-export", "version": 3, "exported_at": "…",
     "embedding_model": "all-MiniLM-L6-v2", "embedding_dimension": 384,
     "embedding_encoding": "base64-float32-le", "account": "alice" or null for all}
    {"kind": "account", "username": "alice", "email": "…", …}
    then, for that account, one line per row, every field, links as ids, in this order:
    agent, session, project, project_relationship, entity, memory, decision, pattern,
    pattern_adoption (see ``kinds.KINDS``); memories, decisions and patterns carry
    "embedding_model" and "embedding" (base64 of 384 float32); a memory carries its links
    to entities in "entity_links" (see ``links``)
    {"kind": "end", "counts": {"account": 1, "agent": 2, "session": 5, "memory": 120, …}}

Versions 1 (accounts, agents, sessions and memories only) and 2 (no entities) are still
read. Each account's lines come together, parents before children; only a decision's
``superseded_by`` may name a decision listed after it. Ids, timestamps (ISO 8601 with
microseconds) and soft-deleted rows are kept. API keys and passwords are not: a backup file
must not authenticate anyone. Export reads one consistent snapshot page by page (keyset
pagination), so its memory use does not grow with the number of rows.

Import validates the whole file first (each error names its line), then writes it in one
transaction, upserting by id where the file's copy is newer than this server's (or with
``overwrite``); the vectors of another model are dropped and re-embedded
after the commit, outside the write lock.

It lives in the highest app because a backup spans every app and only the highest may
import them all; what each kind needs is declared once, in ``kinds``.
"""

from .codec import ImportRefused
from .export import FORMAT, VERSION, ExportReport, account_export
from .importer import backup_import
from .reader import ImportReport

__all__ = ["FORMAT", "VERSION", "ExportReport", "ImportRefused", "ImportReport",
           "account_export", "backup_import"]
