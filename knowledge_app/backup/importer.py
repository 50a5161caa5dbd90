"""Import: the whole file checked first, then written in one transaction, or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import IO

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.db.models.constants import OnConflict
from django.utils import timezone

from knowledge_app.services import knowledge_reembed
from memories_app.embeddings import get_provider
from memories_app.services import memories_reembed

from .codec import ImportRefused
from .export import Progress
from .kinds import KINDS
from .links import links_write
from .reader import ImportReport, Line, Reader, describe, loop_in

CHUNK = 500


def backup_import(*, file: IO[bytes], dry_run: bool = False, reembed: bool = True,
                  overwrite: bool = False, progress: Progress | None = None,
                  progress_every: int = 10_000) -> ImportReport:
    """Imports a file written by :func:`account_export`: checks every line first, then
    writes everything in one transaction, or nothing. ``file`` must be seekable.

    A row this server already holds is only replaced by the file's copy when the file's is
    newer (a later ``updated_at``; a kind without one is never replaced): an import never
    takes back an edit or a deletion made after the file was written. ``overwrite`` writes
    the file's copy of every row, newer or not (a roll-back to the file)."""
    report = ImportReport(dry_run=dry_run)
    forward = _ForwardLinks()
    for chunk in _chunks(file, report, progress, progress_every, "checked"):
        _check_chunk(chunk, forward, overwrite=overwrite)
    forward.check()
    if dry_run:
        return report
    file.seek(0)
    writer = _Writer(report, overwrite=overwrite, parked=forward.parked)
    try:
        with transaction.atomic():
            for chunk in _chunks(file, ImportReport(), progress, progress_every, "imported"):
                writer.write(chunk)
            writer.link_forward()
    except DatabaseError as exc:
        where = f"lines {writer.where[0]}-{writer.where[1]}: " if writer.where else ""
        said = "; ".join(" ".join(part.split()) for part in str(exc).splitlines() if part.strip())
        raise ImportRefused(f"{where}the database refused a row ({said}); nothing was "
                            "imported") from None
    if reembed and report.vectors_dropped + report.vectors_missing and get_provider().available:
        _reembed(report)
    return report


def _reembed(report: ImportReport) -> None:
    """Embeds, after the commit and outside any lock, what the import stored without a
    vector (made by another model, or missing in the file)."""
    memories, knowledge = memories_reembed(), knowledge_reembed()
    failed = memories.failed + knowledge.failed
    report.reembedded = memories.stale + knowledge.decisions + knowledge.patterns - failed
    report.reembed_failed = failed


def _chunks(file, report: ImportReport, progress, every: int, verb: str
            ) -> Iterator[list[Line]]:
    """Validated lines, grouped in runs of one kind of at most ``CHUNK``."""
    chunk: list[Line] = []
    for line in Reader(report).lines(file):
        if chunk and (line.kind != chunk[0].kind or len(chunk) >= CHUNK):
            yield chunk
            chunk = []
        chunk.append(line)
        if progress and line.number % every == 0:
            progress(f"{verb} {line.number:,} lines")
    if chunk:
        yield chunk


def _check_chunk(chunk: list[Line], forward: _ForwardLinks, *, overwrite: bool = False
                 ) -> None:
    """What only the database can tell: ids owned by another account, and unique values
    (a live name, external id, slug, edge or adoption, a decision superseded) taken by other
    rows of the account. Rows the import will keep as they are here are not written, so
    their values take nothing."""
    if chunk[0].kind == "account":
        return
    spec = KINDS[chunk[0].kind]
    rows = spec.model._base_manager
    by_id = {line.obj.id: line for line in chunk}
    _refuse_others(spec, by_id)
    kept = _kept(_held(spec.model, by_id), {pk: line.obj for pk, line in by_id.items()},
                 overwrite)
    written = [line for line in chunk if line.obj.id not in kept]
    for line in written if spec.unique else []:
        values = _unique_values(spec, line.obj)
        forward.moved(spec, line.obj, values)
        if values is None:
            continue
        live = {"deleted_at__isnull": True} if spec.soft_deleted else {}
        taken = (rows.filter(account__username=line.account, **live,
                             **dict(zip(spec.unique, values, strict=True)))
                 .exclude(pk=line.obj.id).values_list("pk", flat=True).first())
        if taken:
            forward.taken(spec, taken, values, line)
    for line in written if spec.forward else []:
        forward.add(spec, line)


def _refuse_others(spec, by_id: dict) -> None:
    """Refuses an id of the file that a row of another account holds on this server."""
    for pk, owner in (spec.model._base_manager.filter(pk__in=by_id)
                      .values_list("pk", "account__username")):
        line = by_id[pk]
        if owner != line.account:
            raise ImportRefused(f"{spec.name} {pk} belongs to another account on this server",
                                line=line.number)


def _unique_values(spec, obj) -> tuple | None:
    """The values ``obj`` holds unique among live rows, or None when it holds none (deleted,
    or a value left empty)."""
    values = tuple(getattr(obj, name) for name in spec.unique)
    if None in values or getattr(obj, "deleted_at", None) is not None:
        return None
    return values


class _ForwardLinks:
    """One-to-one links that may point forward (a decision's ``superseded_by``): a link
    the import writes may not name a row another row of this server already names, unless
    that row is written too (the writer clears and sets again the links of every row it
    writes). Judged once the whole file is read, so a link moved between two rows far apart
    in the file is not refused.

    Unique values are judged over the whole file as well: a value taken by another row
    here is not refused when the file writes that row too, with another value (two agents
    that swapped names). The writer parks such holders (``parked``) before it writes their
    kind, so the value is free when the row taking it is written.

    Nor may the links written close a loop with those of the rows left as they are here
    (a decision the file supersedes by one this server holds as superseded by it)."""

    def __init__(self):
        self.links: list[tuple] = []  # (kind, name, id, ref, line number)
        self.written: set = set()  # ids of the rows written, of kinds with such links
        self.values: dict[str, dict] = {}  # kind: {id written: its unique values or None}
        self.versions: dict[str, dict] = {}  # kind: {id written: the file's updated_at}
        self.conflicts: list[tuple] = []  # (kind spec, holder id, values, line)
        self.parked: dict[str, dict] = {}  # kind: {holder to park first: file's updated_at}

    def moved(self, spec, obj, values) -> None:
        self.values.setdefault(spec.name, {})[obj.id] = values
        self.versions.setdefault(spec.name, {})[obj.id] = getattr(obj, "updated_at", None)

    def taken(self, spec, holder, values, line: Line) -> None:
        self.conflicts.append((spec, holder, values, line))

    def add(self, spec, line: Line) -> None:
        self.written.add(line.obj.id)
        for name in spec.forward:
            ref = getattr(line.obj, name)
            if ref is not None:
                self.links.append((spec, name, line.obj.id, ref, line.number))

    def check(self) -> None:
        for spec, holder, values, line in self.conflicts:
            written = self.values.get(spec.name, {})
            if not spec.soft_deleted or holder not in written or written[holder] == values:
                raise ImportRefused(f"{describe(spec.unique, values)} is taken by the live "
                                    f"{spec.name} {holder} of {line.account!r} on this "
                                    "server", line=line.number)
            self.parked.setdefault(spec.name, {})[holder] = self.versions[spec.name][holder]
        for start in range(0, len(self.links), CHUNK):
            batch = self.links[start:start + CHUNK]
            for spec, name in {(spec, name) for spec, name, _, _, _ in batch}:
                refs = [ref for s, n, _, ref, _ in batch if (s, n) == (spec, name)]
                holders = dict(spec.model._base_manager.filter(**{f"{name}__in": refs})
                               .values_list(name, "pk"))
                for s, n, _, ref, number in batch:
                    other = holders.get(ref) if (s, n) == (spec, name) else None
                    if other is not None and other not in self.written:
                        raise ImportRefused(f"{name.removesuffix('_id')} {ref} already names "
                                            f"the {spec.name} {other} on this server",
                                            line=number)
        self._no_loops()

    def _no_loops(self) -> None:
        """The links as they will be once written: the file's of the rows it writes, this
        server's of the others (kept as they are, or not in the file), read chain by chain
        as far as they go."""
        for spec, name in {(spec, name) for spec, name, _, _, _ in self.links}:
            lines = {pk: (ref, number) for s, n, pk, ref, number in self.links
                     if (s, n) == (spec, name)}
            links = {pk: ref for pk, (ref, _) in lines.items()}
            ahead = set(links.values())
            while ahead:
                here = [pk for pk in ahead if pk not in links and pk not in self.written]
                links.update(dict.fromkeys(here))
                for start in range(0, len(here), CHUNK):
                    links.update(spec.model._base_manager.filter(
                        pk__in=here[start:start + CHUNK]).values_list("pk", name))
                ahead = {links[pk] for pk in here} - set(links) - {None}
            loop = loop_in(links)
            if loop:
                ref, number = lines[loop[0]]
                raise ImportRefused(f"{name.removesuffix('_id')} {ref} would close a loop of "
                                    f"{len(loop)} {spec.plural} with those on this server, "
                                    "each superseded by the next: none of them would be in "
                                    "force", line=number)


def _held(model, ids, *, lock: bool = False) -> dict:
    """The ``ids`` this server holds, each with its row's ``updated_at`` (None for a kind
    without one). ``lock``: locked in id order, so an edit made while the import runs waits
    for it and is then judged against the file's copy, never lost to an older one."""
    versioned = any(f.name == "updated_at" for f in model._meta.concrete_fields)
    rows = model._base_manager.filter(pk__in=list(ids)).order_by("pk")
    if lock:
        rows = rows.select_for_update()
    if versioned:
        return dict(rows.values_list("pk", "updated_at"))
    return dict.fromkeys(rows.values_list("pk", flat=True))


def _kept(here: dict, objs: dict, overwrite: bool) -> set:
    """Of the rows this server holds, those left as they are: as new as the file's copy or
    newer (a kind without ``updated_at``: always), unless ``overwrite``."""
    if overwrite:
        return set()
    return {pk for pk, at in here.items() if at is None or at >= objs[pk].updated_at}


class _Writer:
    """Upserts validated chunks by id, keeping every field as it was, ``updated_at``
    included (a raw insert, as ``loaddata`` does), except rows this server holds as new or
    newer (unless ``overwrite``): those, and their links, are left as they are. Links that
    may point forward are written once every row is in."""

    def __init__(self, report: ImportReport, *, overwrite: bool = False,
                 parked: dict[str, dict] | None = None):
        self.report = report
        self.overwrite = overwrite
        self.parked = dict(parked or {})  # kind: holders of values the file moves
        self.user_ids: dict[str, int] = {}
        self.forward: list[tuple[str, uuid.UUID, str, uuid.UUID, int]] = []
        self.where: tuple[int, int] | None = None

    def write(self, chunk: list[Line]) -> None:
        self.where = (chunk[0].number, chunk[-1].number)
        if chunk[0].kind == "account":
            for line in chunk:
                self._account(line.record)
            return
        spec = KINDS[chunk[0].kind]
        self._park(spec)
        objs = {line.obj.id: line.obj for line in chunk}  # no id twice (the reader)
        _refuse_others(spec, {line.obj.id: line for line in chunk})  # taken since the check
        here = _held(spec.model, objs)
        kept = _kept(here, objs, self.overwrite)
        # Only the rows to be written are locked, and judged again under their locks: a row
        # kept as it is stays free for the API while the import runs (an edit committed
        # meanwhile only makes it newer, and kept it stays).
        kept |= _kept(_held(spec.model, [pk for pk in here if pk not in kept], lock=True),
                      objs, self.overwrite)
        for line in chunk:
            line.obj.account_id = self.user_ids[line.account]
            for name in spec.forward:
                ref = getattr(line.obj, name)
                if ref is not None and line.obj.id not in kept:
                    self.forward.append((spec.name, line.obj.id, name, ref, line.number))
                setattr(line.obj, name, None)
        _upsert(spec.model, [obj for pk, obj in objs.items() if pk not in kept])
        links_write([(line.obj.id, line.account, line.links) for line in chunk
                     if line.links is not None and line.obj.id not in kept], self.user_ids,
                    replace=self.overwrite)
        self.report.kept[spec.name] += len(kept)
        self.report.updated[spec.name] += len(here) - len(kept)
        self.report.created[spec.name] += len(objs) - len(here)

    def _park(self, spec) -> None:
        """Before the first row of its kind is written: the rows whose unique values the
        file gives to others, and which the file writes too, are set aside (deleted for
        the moment, which frees a value unique among live rows). Each is written again, as
        the file has it, in this same transaction: only those the file will write are set
        aside, judged under their row locks as the writes judge them (one edited since the
        check, and so kept, keeps its value, and the row taking it is refused)."""
        holders = self.parked.pop(spec.name, None)
        if not holders:
            return
        here = _held(spec.model, holders, lock=True)
        kept = _kept(here, {pk: _Version(at) for pk, at in holders.items() if pk in here},
                     self.overwrite)
        aside = {"live_slug": None} if spec.name == "project" else {}
        spec.model._base_manager.filter(
            pk__in=[pk for pk in here if pk not in kept], deleted_at__isnull=True,
        ).update(deleted_at=timezone.now(), **aside)

    def link_forward(self) -> None:
        """Sets the links held back (``superseded_by``), ``CHUNK`` rows per query."""
        for start in range(0, len(self.forward), CHUNK):
            batch = self.forward[start:start + CHUNK]
            self.where = (batch[0][4], batch[-1][4])
            for kind, name in {(kind, name) for kind, _, name, _, _ in batch}:
                model = KINDS[kind].model
                rows = [model(id=pk, **{name: ref})
                        for k, pk, n, ref, _ in batch if (k, n) == (kind, name)]
                model._base_manager.bulk_update(rows, [name.removesuffix("_id")])

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


class _Version:
    """The file's ``updated_at`` of a row, as :func:`_kept` reads it off a row."""

    def __init__(self, updated_at):
        self.updated_at = updated_at


def _upsert(model, objs: list) -> None:
    fields = [f for f in model._meta.concrete_fields]
    update = [f for f in fields if not f.primary_key]
    size = max(1, connection.ops.bulk_batch_size(fields, objs) or len(objs))
    for start in range(0, len(objs), size):
        model._base_manager._insert(
            objs[start:start + size], fields=fields, raw=True, on_conflict=OnConflict.UPDATE,
            update_fields=update, unique_fields=[model._meta.pk])
