"""Reading a file: each line parsed and checked on its own and against the lines before it."""

from __future__ import annotations

import json
import math
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from memories_app.embeddings import DIMENSION, get_provider

from .codec import ACCOUNT_FIELDS, ImportRefused, fields_of, holds_nul, key, load
from .export import ENCODING, FORMAT, READS
from .kinds import KINDS, TARGETS, api_fields, api_refusal, derive, kinds_of, rule_broken
from .links import FIELD, links_read


def _by_kind() -> dict[str, int]:
    return dict.fromkeys(["account", *KINDS], 0)


@dataclass
class ImportReport:
    lines: int = 0
    version: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # lines of each kind
    exported_with: str = ""
    created: dict[str, int] = field(default_factory=_by_kind)
    updated: dict[str, int] = field(default_factory=_by_kind)  # the file's copy was newer
    kept: dict[str, int] = field(default_factory=_by_kind)  # this server's was as new or newer
    vectors_kept: int = 0
    vectors_dropped: int = 0  # made by another model: stored without, then re-embedded
    vectors_missing: int = 0  # none in the file (the provider was down when written)
    reembedded: int = 0
    reembed_failed: int = 0
    dry_run: bool = False


@dataclass
class Line:
    number: int
    kind: str
    record: dict
    obj: Any = None
    account: str = ""
    links: list | None = None  # a memory's links to entities (links.py)


class Reader:
    def __init__(self, report: ImportReport):
        self.report = report
        self.accounts: set[str] = set()
        self.owners: dict[str, dict[uuid.UUID, str]] = {kind: {} for kind in TARGETS}
        self.repeats: dict[str, _Ids] = {}  # the ids of the other kinds (memories...)
        self.later: dict[uuid.UUID, tuple[int, str, str, str]] = {}  # (line, account, link)
        self.named: set[tuple] = set()  # ids named by a one-to-one forward link
        self.chains: dict[tuple, dict] = {}  # (kind, link): {id: (id it names, line)}
        self.live_values: set[tuple] = set()  # (kind, account, unique values)
        self.kinds: list[str] = []
        self.api = {kind: api_fields(kind) for kind in KINDS}  # the API's limits, by kind
        self.counts: dict[str, int] = {}
        self.provider = get_provider()

    def lines(self, file) -> Iterator[Line]:
        """The file's lines, each checked. A blank line (spaces, or a line break left after
        the end line by an editor) holds nothing and is passed over; lines keep their
        numbers as an editor shows them."""
        number, ended, started = 0, False, False
        for number, raw in enumerate(file, 1):
            if raw.isspace():
                continue
            record = self._parse(raw, number)
            kind = record.get("kind")
            if ended:
                raise ImportRefused("nothing may follow the end line", line=number)
            if not started:
                self._header(record, number)
                started = True
            elif kind == "end":
                self._links_to_later_lines()
                self._no_loops()
                self._listed_twice()
                self._end(record, number)
                ended = True
            elif kind == "account":
                yield Line(number, kind, self._account(record, number))
            elif kind in self.kinds:
                yield self._row(kind, record, number)
            else:
                raise ImportRefused(f"unknown kind {kind!r}", line=number)
        self.report.lines, self.report.counts = number, self.counts
        if not started:
            raise ImportRefused("the file is empty")
        if not ended:
            raise ImportRefused(
                f"the file ends at line {number} without its end line (cut short?)")

    def _parse(self, raw: bytes, number: int) -> dict:
        try:  # NaN and Infinity are not JSON, and no JSON column takes them (nor 1e400)
            record = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
        except RecursionError:
            raise ImportRefused("nested too deep", line=number) from None
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
        if "\\u0000" in text and holds_nul(record):
            raise ImportRefused("a NUL character cannot be stored", line=number)
        return record

    def _header(self, record: dict, number: int) -> None:
        if record.get("kind") != "header" or record.get("format") != FORMAT:
            raise ImportRefused(f"not a {FORMAT} file (no header line)", line=number)
        version = record.get("version")
        if version not in READS or isinstance(version, bool):
            raise ImportRefused(f"format version {version!r} is not supported (this server "
                                f"reads versions {', '.join(map(str, READS))})", line=number)
        if record.get("embedding_encoding") != ENCODING:
            raise ImportRefused("unknown embedding_encoding", line=number)
        self.kinds = kinds_of(version)
        self.counts = dict.fromkeys(["account", *self.kinds], 0)
        self.report.version = version
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
                    values[name] = load(users._meta.get_field(name), record[name])
                except ValueError as exc:
                    raise ImportRefused(f"{name} {exc}", line=number) from None
        most = users._meta.get_field("username").max_length
        if len(username) > most or not username.isprintable() or username != username.strip():
            raise ImportRefused(f"username must be printable, at most {most} characters, "
                                "without spaces around it", line=number)
        try:  # any name this server can hold, the ones Django's form would refuse included
            users(**values).clean_fields(exclude=["password", "username"])
        except ValidationError as exc:
            name, messages = next(iter(exc.message_dict.items()))
            raise ImportRefused(f"{name}: {messages[0]}", line=number) from None
        self.accounts.add(username)
        self.counts["account"] += 1
        return values

    def _row(self, kind: str, record: dict, number: int) -> Line:
        links = None
        if kind == "memory" and FIELD in record and self.report.version >= 3:
            record = dict(record)
            links = record.pop(FIELD)
        model = KINDS[kind].model
        fields = {key(f): f for f in fields_of(model)}
        unknown = set(record) - set(fields) - {"kind"}
        if unknown:
            raise ImportRefused(f"unknown field {sorted(unknown)[0]!r}", line=number)
        account = record.get("account")
        if not isinstance(account, str) or account not in self.accounts:
            raise ImportRefused(f"account {account!r} has no account line before it",
                                line=number)
        values = {}
        for name, f in fields.items():
            required = name in ("id", "created_at") or not (f.null or f.has_default())
            if name == "account" or (name not in record and not required):
                continue
            if name not in record:
                raise ImportRefused(f"{name} is missing", line=number)
            try:
                values[f.attname] = load(f, record[name])
            except ValueError as exc:
                raise ImportRefused(f"{name} {exc}", line=number) from None
        line = Line(number, kind, record, model(**values), account)
        derive(kind, line.obj)
        self._check_fields(line)
        self._check_links(line)
        self._check_unique(line)
        if KINDS[kind].embedded:
            self._vector(line.obj)
        if links is not None:
            line.links = links_read(links, number=number, account=account,
                                    entities=self.owners["entity"])
        self.counts[kind] += 1
        return line

    def _check_fields(self, line: Line) -> None:
        obj, number = line.obj, line.number
        links = [f.name for f in obj._meta.concrete_fields if f.is_relation]
        try:
            obj.clean_fields(exclude=[*links, "embedding", "id"])
        except ValidationError as exc:
            name, messages = next(iter(exc.message_dict.items()))
            raise ImportRefused(f"{name}: {messages[0]}", line=number) from None
        problem = rule_broken(line.kind, obj) or api_refusal(self.api[line.kind], line.record)
        if problem:
            raise ImportRefused(problem, line=number)

    def _check_links(self, line: Line) -> None:
        obj, kind, number, account = line.obj, line.kind, line.number, line.account
        spec = KINDS[kind]
        for name, target in spec.links:
            ref = getattr(obj, name)
            if ref is None or self.owners[target].get(ref) == account:
                pass
            elif name in spec.forward and ref not in self.owners[target]:
                self.later[ref] = (number, account, name, target)  # checked at the end
            else:
                raise ImportRefused(f"{name} {ref} is not a {target} of account {account!r} "
                                    "listed before this line", line=number)
            if ref is not None and name in spec.forward:  # a one-to-one link
                if (kind, name, ref) in self.named:
                    raise ImportRefused(f"{name} {ref} is named by another {kind} too",
                                        line=number)
                self.named.add((kind, name, ref))
                self.chains.setdefault((kind, name), {})[obj.id] = (ref, number)
        if kind in self.owners:
            if obj.id in self.owners[kind]:
                raise ImportRefused(f"{kind} {obj.id} appears twice", line=number)
            self.owners[kind][obj.id] = account
        else:
            self.repeats.setdefault(kind, _Ids()).add(obj.id, number)

    def _listed_twice(self) -> None:
        """An id of a kind no line links to, listed twice (judged once the file is read)."""
        for kind, ids in self.repeats.items():
            repeat = ids.first_repeat()
            if repeat is not None:
                raise ImportRefused(f"{kind} {repeat[0]} appears twice", line=repeat[1])

    def _links_to_later_lines(self) -> None:
        """Forward links (a decision superseded by a later one) name a row of the file."""
        for ref, (number, account, name, target) in self.later.items():
            if self.owners[target].get(ref) != account:
                raise ImportRefused(f"{name} {ref} is not a {target} of account {account!r} "
                                    "in this file", line=number)

    def _no_loops(self) -> None:
        """A chain of forward links (decisions each superseded by the next) ends: one that
        comes back to where it started would leave none of its decisions in force."""
        for (kind, name), chain in self.chains.items():
            loop = loop_in({pk: ref for pk, (ref, _) in chain.items()})
            if loop:
                ref, number = chain[loop[0]]
                raise ImportRefused(f"{name.removesuffix('_id')} {ref} closes a loop of "
                                    f"{len(loop)} {KINDS[kind].plural}, each superseded by "
                                    "the next: none of them would be in force", line=number)

    def _check_unique(self, line: Line) -> None:
        spec, obj = KINDS[line.kind], line.obj
        values = tuple(getattr(obj, name) for name in spec.unique)
        if not values or None in values or getattr(obj, "deleted_at", None) is not None:
            return
        if (line.kind, line.account, values) in self.live_values:
            raise ImportRefused(f"two live {spec.plural} of {line.account!r} have "
                                f"{describe(spec.unique, values)}", line=line.number)
        self.live_values.add((line.kind, line.account, values))

    def _vector(self, row) -> None:
        """Keeps a vector only when this server embeds with the model that made it."""
        if row.embedding is None:
            row.embedding_model, row.embedding_dimension = "", None
            self.report.vectors_missing += 1
        elif self.provider.available and row.embedding_model != self.provider.name:
            row.embedding, row.embedding_model, row.embedding_dimension = None, "", None
            self.report.vectors_dropped += 1
        else:
            row.embedding_dimension = DIMENSION
            self.report.vectors_kept += 1


class _Ids:
    """The ids of one kind in file order, packed (20 bytes a row: the id and its line
    number), so that checking memories for repeats keeps no Python object per memory."""

    def __init__(self):
        self.ids = bytearray()
        self.numbers = array("I")

    def add(self, pk: uuid.UUID, number: int) -> None:
        self.ids += pk.bytes
        self.numbers.append(number)

    def first_repeat(self) -> tuple[uuid.UUID, int] | None:
        """The first line whose id an earlier line has, with that id; or None."""
        keys = np.frombuffer(self.ids, dtype=[("high", ">u8"), ("low", ">u8")])
        ranked = np.sort(keys)
        if not (ranked[1:] == ranked[:-1]).any():  # the common case: one sort, no index
            return None
        order = np.argsort(keys, kind="stable")  # equal ids stay in file order
        ranked = keys[order]
        later = order[1:][ranked[1:] == ranked[:-1]]
        at = int(later.min())
        return uuid.UUID(bytes=bytes(self.ids[at * 16:at * 16 + 16])), self.numbers[at]


def loop_in(links: dict) -> list | None:
    """The first loop of ``links`` (each id mapped to the id it names, or None), as its ids
    from the one met first in the order of ``links``; None when every chain ends. Each id is
    named at most once (one-to-one links), so a chain entering a loop starts on it."""
    ended: set = set()
    for start in links:
        path, on_path, pk = [], set(), start
        while pk is not None and pk not in ended and pk not in on_path:
            path.append(pk)
            on_path.add(pk)
            pk = links.get(pk)
        if pk is not None and pk in on_path:
            return path[path.index(pk):]
        ended.update(path)
    return None


def describe(names: tuple[str, ...], values: tuple) -> str:
    if len(names) == 1:
        return f"the {names[0]} {values[0]!r}"
    return "the same " + ", ".join(f"{n} {v}" for n, v in zip(names, values, strict=True))


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    """A JSON number read as a float, refused when out of its range (Python reads 1e400 as
    infinity, which neither database's JSON takes)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value
