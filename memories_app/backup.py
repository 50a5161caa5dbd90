"""Export and import: one account or all, as JSON Lines, streamed both ways.

Format version 1, one JSON object per line, each with a ``kind``::

    {"kind": "header", "format": "memoryrelay-export", "version": 1, "exported_at": "…",
     "embedding_model": "all-MiniLM-L6-v2", "embedding_dimension": 384,
     "embedding_encoding": "base64-float32-le", "account": "alice" or null for all}
    {"kind": "account", "username": "alice", "email": "…", …}
    {"kind": "agent", "id": "…", "account": "alice", "name": "…", …}       every agent field
    {"kind": "session", "id": "…", "account": "alice", "agent_id": "…", …}  every session field
    {"kind": "memory", "id": "…", "account": "alice", "agent_id": "…", "session_id": …,
     "embedding_model": "all-MiniLM-L6-v2", "embedding": "<base64 of 384 float32>", …}
    {"kind": "end", "counts": {"account": 1, "agent": 2, "session": 5, "memory": 120}}

Each account's lines come together, parents before children. Ids, timestamps (ISO 8601
with microseconds) and soft-deleted rows are kept. API keys and passwords are not: a
backup file must not authenticate anyone. Export reads one consistent snapshot page by
page (keyset pagination), so its memory use does not grow with the number of memories.

Import validates the whole file first (each error names its line), then writes it in one
transaction, upserting by id; the vectors of another model are dropped and re-embedded
after the commit, outside the write lock.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, models, transaction
from django.db.models import Q
from django.db.models.constants import OnConflict
from django.utils import timezone

from memoryrelay_site.errors import Invalid
from sessions_app.models import Agent, Session, SessionStatus

from .embeddings import DIMENSION, get_provider
from .models import Memory
from .services import memories_reembed
from .vectors import VectorField

FORMAT, VERSION, ENCODING = "memoryrelay-export", 1, "base64-float32-le"
KINDS: dict[str, type[models.Model]] = {"agent": Agent, "session": Session, "memory": Memory}
# Not exported: computed from the vector on import; read tracking (a restored memory counts
# as used when it was last written).
DERIVED = {"embedding_dimension", "last_accessed_at"}
ACCOUNT_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "date_joined")
CHUNK = 500
Progress = Callable[[str], None]


class ImportRefused(Invalid):
    """The file cannot be imported; nothing was written."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line else message, field="file")
        self.line = line


# --- shared: how each field is written and read ----------------------------------------------


def _fields(model) -> list[models.Field]:
    fields = [f for f in model._meta.concrete_fields if f.name not in DERIVED]
    return sorted(fields, key=lambda f: (not f.primary_key, f.name != "account"))


def _key(f: models.Field) -> str:
    """The field's name in the file: ``account`` holds a username, other links their id."""
    return f.name if f.name == "account" else f.attname


def _dump(f: models.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(f, VectorField):
        return base64.b64encode(np.asarray(value, "<f4").tobytes()).decode("ascii")
    if isinstance(f, models.DateTimeField):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _load(f: models.Field, value: Any) -> Any:
    """The Python value of ``value`` read from the file, or ValueError saying why not."""
    if value is None:
        if not f.null:
            raise ValueError("may not be null")
        return None
    if isinstance(f, VectorField):
        return _load_vector(value)
    if isinstance(f, models.DateTimeField):
        return _load_datetime(value)
    if isinstance(f, models.UUIDField) or (f.is_relation and f.name != "account"):
        return uuid.UUID(str(value))
    if isinstance(f, models.FloatField):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise ValueError("must be a finite number")
        return float(value)
    if isinstance(f, models.JSONField) and callable(f.default):
        expected = type(f.default())
        if not isinstance(value, expected):
            raise ValueError(f"must be a JSON {'object' if expected is dict else 'array'}")
        return value
    if isinstance(f, (models.CharField, models.TextField)) and not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _load_vector(value: Any) -> np.ndarray:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not base64") from None
        vector = np.frombuffer(raw, "<f4") if len(raw) % 4 == 0 else np.zeros(0)
    elif isinstance(value, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        vector = np.asarray(value, np.float32)
    else:
        raise ValueError("must be base64 float32 or a list of numbers")
    if vector.shape != (DIMENSION,) or not np.isfinite(vector).all():
        raise ValueError(f"must hold {DIMENSION} finite float32 numbers")
    return vector.astype(np.float32)


def _load_datetime(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("must be an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry its UTC offset")
    return parsed


# --- export ----------------------------------------------------------------------------------


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
    provider = get_provider()
    counts = dict.fromkeys(["account", *KINDS], 0)
    _write(out, {"kind": "header", "format": FORMAT, "version": VERSION,
                 "exported_at": timezone.now().isoformat(timespec="microseconds"),
                 "embedding_model": provider.name, "embedding_dimension": DIMENSION,
                 "embedding_encoding": ENCODING, "account": account})
    with _snapshot():
        for user in users.iterator(chunk_size=chunk_size):
            _write(out, {"kind": "account",
                         **{name: _dump_account(user, name) for name in ACCOUNT_FIELDS}})
            counts["account"] += 1
            for kind, model in KINDS.items():
                for record in _rows(model, user, chunk_size):
                    _write(out, {"kind": kind, **record})
                    counts[kind] += 1
                    if progress and counts[kind] % progress_every == 0:
                        progress(f"exported {counts[kind]:,} {kind} lines")
    _write(out, {"kind": "end", "counts": counts})
    return ExportReport(counts=counts)


def _write(out: IO[str], record: dict) -> None:
    out.write(json.dumps(record, separators=(",", ":")) + "\n")


def _dump_account(user, name: str) -> Any:
    value = getattr(user, name)
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


def _rows(model, user, chunk_size: int) -> Iterator[dict]:
    """The account's rows oldest first, one query per page, keyed on (created_at, id)."""
    fields = _fields(model)
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
        for row in batch:
            yield {_key(f): (user.username if f.name == "account" else _dump(f, value))
                   for f, value in zip(fields, row, strict=True)}
        if len(batch) < chunk_size:
            return
        last = batch[-1]


@contextmanager
def _snapshot():
    """One consistent read snapshot for the whole export, without a write lock: a memory
    never names a session written after the sessions were read."""
    if connection.in_atomic_block:
        yield
    elif connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
    else:  # SQLite: a deferred transaction reads one WAL snapshot and blocks no writer
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")


# --- import ----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    lines: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # lines of each kind
    exported_with: str = ""
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(["account", *KINDS], 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(["account", *KINDS], 0))
    vectors_kept: int = 0
    vectors_dropped: int = 0  # made by another model: stored without, then re-embedded
    vectors_missing: int = 0  # none in the file (the provider was down when written)
    reembedded: int = 0
    reembed_failed: int = 0
    dry_run: bool = False


@dataclass
class _Line:
    number: int
    kind: str
    record: dict
    obj: Any = None
    account: str = ""


def backup_import(*, file: IO[bytes], dry_run: bool = False, reembed: bool = True,
                  progress: Progress | None = None, progress_every: int = 10_000
                  ) -> ImportReport:
    """Imports a file written by :func:`account_export`: checks every line first, then
    writes everything in one transaction, or nothing. ``file`` must be seekable."""
    report = ImportReport(dry_run=dry_run)
    for chunk in _chunks(file, report, progress, progress_every, "checked"):
        _check_chunk(chunk)
    if dry_run:
        return report
    file.seek(0)
    writer, chunk = _Writer(report), []
    try:
        with transaction.atomic():
            for chunk in _chunks(file, ImportReport(), progress, progress_every, "imported"):
                writer.write(chunk)
    except DatabaseError as exc:
        where = f"lines {chunk[0].number}-{chunk[-1].number}: " if chunk else ""
        raise ImportRefused(f"{where}the database refused a row ({exc}); nothing was "
                            "imported") from None
    stale = report.vectors_dropped + report.vectors_missing
    if reembed and stale and get_provider().available:
        result = memories_reembed()
        report.reembedded, report.reembed_failed = result.stale - result.failed, result.failed
    return report


def _chunks(file, report: ImportReport, progress, every: int, verb: str
            ) -> Iterator[list[_Line]]:
    """Validated lines, grouped in runs of one kind of at most ``CHUNK``."""
    chunk: list[_Line] = []
    for line in _Reader(report).lines(file):
        if chunk and (line.kind != chunk[0].kind or len(chunk) >= CHUNK):
            yield chunk
            chunk = []
        chunk.append(line)
        if progress and line.number % every == 0:
            progress(f"{verb} {line.number:,} lines")
    if chunk:
        yield chunk


class _Reader:
    """Parses and checks each line on its own and against the lines before it."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.accounts: set[str] = set()
        self.owners: dict[str, dict[uuid.UUID, str]] = {"agent": {}, "session": {}}
        self.live_names: set[tuple] = set()  # (kind, account, name or external_id)
        self.counts = dict.fromkeys(["account", *KINDS], 0)
        self.provider = get_provider()

    def lines(self, file) -> Iterator[_Line]:
        number, ended = 0, False
        for number, raw in enumerate(file, 1):
            record = self._parse(raw, number)
            kind = record.get("kind")
            if ended:
                raise ImportRefused("nothing may follow the end line", line=number)
            if number == 1:
                self._header(record, number)
            elif kind == "end":
                self._end(record, number)
                ended = True
            elif kind == "account":
                yield _Line(number, kind, self._account(record, number))
            elif kind in KINDS:
                yield self._row(kind, record, number)
            else:
                raise ImportRefused(f"unknown kind {kind!r}", line=number)
        self.report.lines, self.report.counts = number, self.counts
        if not number:
            raise ImportRefused("the file is empty")
        if not ended:
            raise ImportRefused(
                f"the file ends at line {number} without its end line (cut short?)")

    def _parse(self, raw: bytes, number: int) -> dict:
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise ImportRefused(f"not valid JSON ({exc})", line=number) from None
        if not isinstance(record, dict):
            raise ImportRefused("each line must be a JSON object", line=number)
        text = json.dumps(record, ensure_ascii=False)
        try:  # what neither database can store: a lone surrogate, a NUL
            text.encode()
        except UnicodeEncodeError:
            raise ImportRefused("a string holds a lone surrogate (not Unicode text)",
                                line=number) from None
        if "\\u0000" in text and _holds_nul(record):
            raise ImportRefused("a NUL character cannot be stored", line=number)
        return record

    def _header(self, record: dict, number: int) -> None:
        if record.get("kind") != "header" or record.get("format") != FORMAT:
            raise ImportRefused(f"not a {FORMAT} file (no header line)", line=number)
        if record.get("version") != VERSION:
            raise ImportRefused(f"format version {record.get('version')!r} is not supported "
                                f"(this server reads version {VERSION})", line=number)
        if record.get("embedding_encoding") != ENCODING:
            raise ImportRefused("unknown embedding_encoding", line=number)
        self.report.exported_with = str(record.get("embedding_model", ""))

    def _end(self, record: dict, number: int) -> None:
        if record.get("counts") != self.counts:
            raise ImportRefused(f"the end line counts {record.get('counts')} but the file "
                                f"holds {self.counts} (cut short or edited?)", line=number)

    def _account(self, record: dict, number: int) -> dict:
        unknown = set(record) - {"kind", *ACCOUNT_FIELDS}
        username = record.get("username")
        if unknown or not isinstance(username, str) or not username:
            raise ImportRefused("an account line needs a username and only "
                                f"{', '.join(ACCOUNT_FIELDS)}", line=number)
        if username in self.accounts:
            raise ImportRefused(f"account {username!r} appears twice", line=number)
        users, values = get_user_model(), {}
        for name in ACCOUNT_FIELDS:
            if name in record:
                try:
                    values[name] = _load(users._meta.get_field(name), record[name])
                except ValueError as exc:
                    raise ImportRefused(f"{name} {exc}", line=number) from None
        try:
            users(**values).clean_fields(exclude=["password"])
        except ValidationError as exc:
            name, messages = next(iter(exc.message_dict.items()))
            raise ImportRefused(f"{name}: {messages[0]}", line=number) from None
        self.accounts.add(username)
        self.counts["account"] += 1
        return values

    def _row(self, kind: str, record: dict, number: int) -> _Line:
        model = KINDS[kind]
        fields = {_key(f): f for f in _fields(model)}
        unknown = set(record) - set(fields) - {"kind"}
        if unknown:
            raise ImportRefused(f"unknown field {sorted(unknown)[0]!r}", line=number)
        account = record.get("account")
        if account not in self.accounts:
            raise ImportRefused(f"account {account!r} has no account line before it",
                                line=number)
        values = {}
        for key, f in fields.items():
            required = key in ("id", "created_at") or not (f.null or f.has_default())
            if key == "account" or (key not in record and not required):
                continue
            if key not in record:
                raise ImportRefused(f"{key} is missing", line=number)
            try:
                values[f.attname] = _load(f, record[key])
            except ValueError as exc:
                raise ImportRefused(f"{key} {exc}", line=number) from None
        line = _Line(number, kind, record, model(**values), account)
        self._check_fields(line)
        self._check_links(line)
        self.counts[kind] += 1
        return line

    def _check_fields(self, line: _Line) -> None:
        obj, kind, number = line.obj, line.kind, line.number
        try:
            obj.clean_fields(exclude=["account", "agent", "session", "embedding", "id"])
        except ValidationError as exc:
            name, messages = next(iter(exc.message_dict.items()))
            raise ImportRefused(f"{name}: {messages[0]}", line=number) from None
        problem = _rule_broken(kind, obj)
        if problem:
            raise ImportRefused(problem, line=number)

    def _check_links(self, line: _Line) -> None:
        obj, kind, number, account = line.obj, line.kind, line.number, line.account
        for link in ("agent", "session"):
            ref = getattr(obj, f"{link}_id", None)
            if ref is not None and self.owners[link].get(ref) != account:
                raise ImportRefused(f"{link}_id {ref} is not a {link} of account {account!r} "
                                    "listed before this line", line=number)
        if kind in self.owners:
            if obj.id in self.owners[kind]:
                raise ImportRefused(f"{kind} {obj.id} appears twice", line=number)
            self.owners[kind][obj.id] = account
        unique = {"agent": "name", "session": "external_id"}.get(kind)
        value = getattr(obj, unique) if unique else None
        if value is not None and obj.deleted_at is None:
            if (kind, account, value) in self.live_names:
                raise ImportRefused(f"two live {kind}s of {account!r} have the {unique} "
                                    f"{value!r}", line=number)
            self.live_names.add((kind, account, value))
        if kind == "memory":
            self._vector(obj)

    def _vector(self, memory: Memory) -> None:
        """Keeps a vector only when this server embeds with the model that made it."""
        if memory.embedding is None:
            memory.embedding_model, memory.embedding_dimension = "", None
            self.report.vectors_missing += 1
        elif self.provider.available and memory.embedding_model != self.provider.name:
            memory.embedding, memory.embedding_model = None, ""
            memory.embedding_dimension = None
            self.report.vectors_dropped += 1
        else:
            memory.embedding_dimension = DIMENSION
            self.report.vectors_kept += 1


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_holds_nul(v) for v in value)


def _rule_broken(kind: str, obj) -> str | None:
    """The check constraints of the models, tested here so a bad line names its number."""
    if kind == "memory" and not 0.0 <= obj.importance <= 1.0:
        return "importance must be between 0 and 1"
    if kind == "session":
        if (obj.status == SessionStatus.ENDED) != (obj.ended_at is not None):
            return "an ended session needs ended_at, an active one must not have it"
        if obj.ended_at is not None and obj.ended_at < obj.started_at:
            return "ended_at is before started_at"
    return None


def _check_chunk(chunk: list[_Line]) -> None:
    """What only the database can tell: ids owned by another account, and live names or
    external ids taken by other rows of the account."""
    kind = chunk[0].kind
    if kind == "account":
        return
    model = KINDS[kind]
    by_id = {line.obj.id: line for line in chunk}
    for pk, owner in model._base_manager.filter(pk__in=by_id).values_list(
            "pk", "account__username"):
        line = by_id[pk]
        if owner != line.account:
            raise ImportRefused(f"{kind} {pk} belongs to another account on this server",
                                line=line.number)
    unique = {"agent": "name", "session": "external_id"}.get(kind)
    for line in chunk if unique else []:
        value = getattr(line.obj, unique)
        if value is None or line.obj.deleted_at is not None:
            continue
        taken = (model._base_manager.filter(deleted_at__isnull=True, **{unique: value},
                                            account__username=line.account)
                 .exclude(pk=line.obj.id).values_list("pk", flat=True).first())
        if taken:
            raise ImportRefused(f"the {unique} {value!r} is taken by the live {kind} "
                                f"{taken} of {line.account!r} on this server",
                                line=line.number)


class _Writer:
    """Upserts validated chunks by id, keeping every field as it was, ``updated_at``
    included (a raw insert, as ``loaddata`` does)."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.user_ids: dict[str, int] = {}

    def write(self, chunk: list[_Line]) -> None:
        if chunk[0].kind == "account":
            for line in chunk:
                self._account(line.record)
            return
        kind, model = chunk[0].kind, KINDS[chunk[0].kind]
        objs = {}
        for line in chunk:  # a memory listed twice: the later line wins
            line.obj.account_id = self.user_ids[line.account]
            objs[line.obj.id] = line.obj
        existing = set(model._base_manager.filter(pk__in=objs).values_list("pk", flat=True))
        _upsert(model, list(objs.values()))
        self.report.updated[kind] += len(existing)
        self.report.created[kind] += len(objs) - len(existing)

    def _account(self, record: dict) -> None:
        users = get_user_model()
        user = users.objects.filter(username=record["username"]).first()
        if user is None:
            user = users(**record)
            user.set_unusable_password()
            user.save()
            self.report.created["account"] += 1
        else:
            self.report.updated["account"] += 1  # matched by username, left as it is
        self.user_ids[user.username] = user.pk


def _upsert(model, objs: list) -> None:
    fields = [f for f in model._meta.concrete_fields]
    update = [f for f in fields if not f.primary_key]
    size = max(1, connection.ops.bulk_batch_size(fields, objs) or len(objs))
    for start in range(0, len(objs), size):
        model._base_manager._insert(
            objs[start:start + size], fields=fields, raw=True, on_conflict=OnConflict.UPDATE,
            update_fields=update, unique_fields=[model._meta.pk])
