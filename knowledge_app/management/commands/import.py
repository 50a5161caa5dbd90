import shutil
import sys
import tempfile

from django.core.management.base import CommandError

from knowledge_app.backup import backup_import
from knowledge_app.backup.kinds import KINDS
from memories_app.embeddings import get_provider
from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.errors import ServiceError


class Command(DatabaseCommand):
    help = (
        "Restore a file written by `manage.py export` (- reads standard input). Every line "
        "is checked first; then all of it is written in one transaction, or nothing. Rows "
        "are matched by id (importing twice changes nothing) and accounts by username; a row "
        "this server holds is only replaced by a newer copy from the file, so edits and "
        "deletions made since the file was written stay (--overwrite rolls them back). "
        "Memories, decisions and patterns embedded by another model than this server's are "
        "re-embedded. Reads format versions 1 and 2."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="the export (- for standard input)")
        parser.add_argument("--dry-run", action="store_true",
                            help="check the whole file, write nothing")
        parser.add_argument("--no-reembed", action="store_true",
                            help="leave vectors of another model for `manage.py reembed`")
        parser.add_argument("--overwrite", action="store_true",
                            help="write the file's copy of every row, even where this "
                                 "server's is newer (roll back to the file)")
        parser.add_argument("--progress-every", type=int, default=10_000, metavar="LINES")

    def handle(self, *args, file, dry_run, no_reembed, overwrite, progress_every, **options):
        if progress_every < 1:
            raise CommandError("--progress-every must be at least 1")
        try:
            with self._open(file) as source:
                report = backup_import(file=source, dry_run=dry_run, reembed=not no_reembed,
                                       overwrite=overwrite,
                                       progress=self.stderr.write,
                                       progress_every=progress_every)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc}") from None
        except ServiceError as exc:
            said = exc.message.rstrip(". ")
            if "nothing was imported" not in said.lower():
                said += ". Nothing was imported"
            raise CommandError(f"{said}.") from None
        self.stdout.write(self._summary(report))

    def _open(self, path):
        if path != "-":
            return open(path, "rb")
        spool = tempfile.TemporaryFile()  # read twice: checked, then written
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        return spool

    def _summary(self, report) -> str:
        kinds = ["account", *KINDS]
        if report.dry_run:
            found = ", ".join(f"{report.counts.get(k, 0)} {_plural(k)}" for k in kinds)
            return f"Checked {report.lines} lines: {found}. Nothing was written (dry run)."
        done = ", ".join(
            f"{_plural(k)} {report.created[k]} created / " + (
                f"{report.updated[k]} matched by username" if k == "account" else
                f"{report.updated[k]} updated / {report.kept[k]} kept") for k in kinds)
        lines = [f"Imported {report.lines} lines: {done}.",
                 f"Vectors: {report.vectors_kept} kept, {report.vectors_dropped} dropped (made "
                 f"by another model than this server's {get_provider().name}), "
                 f"{report.vectors_missing} missing in the file."]
        if any(report.kept.values()):
            lines.append("Kept: rows this server holds as new as the file's copy or newer "
                         "were left as they are (--overwrite writes the file's copy).")
        if report.reembedded or report.reembed_failed:
            lines.append(f"Re-embedded {report.reembedded} memories, decisions and patterns; "
                         f"{report.reembed_failed} failed (run `manage.py reembed`).")
        elif report.vectors_dropped or report.vectors_missing:
            lines.append("Run `manage.py reembed` to embed them for semantic search.")
        return "\n".join(lines)


def _plural(kind: str) -> str:
    return "accounts" if kind == "account" else KINDS[kind].plural
