import os
import sys
import tempfile

from django.core.management.base import CommandError

from knowledge_app.backup import account_export
from knowledge_app.backup.kinds import KINDS
from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.errors import ServiceError


class Command(DatabaseCommand):
    help = (
        "Write one account (--account USERNAME) or all of them, with their agents, sessions, "
        "projects and their relationships, memories, decisions, patterns and adoptions, and "
        "embeddings, as JSON Lines to FILE (-o; default: standard output). "
        "Restore with `manage.py import FILE`. API keys and passwords are not included."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", metavar="USERNAME", help="only this account")
        parser.add_argument("-o", "--output", default="-", metavar="FILE",
                            help="where to write (- for standard output)")
        parser.add_argument("--chunk-size", type=int, default=1000, help="rows per query")

    def handle(self, *args, account, output, chunk_size, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")

        def progress(message):
            self.stderr.write(message)

        try:
            if output == "-":
                try:
                    report = account_export(out=sys.stdout, account=account,
                                            chunk_size=chunk_size, progress=progress)
                except BrokenPipeError:  # `export | head`: the reader stopped reading
                    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the exit's flush
                    raise CommandError("standard output was closed before the end: this "
                                       "export is incomplete") from None
            else:
                report = self._to_file(output, account=account, chunk_size=chunk_size,
                                       progress=progress)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        counts = report.counts
        rows = ", ".join(f"{counts[name]} {kind.plural}" for name, kind in KINDS.items())
        self.stderr.write(f"Exported {counts['account']} accounts, {rows}"
                          + ("" if output == "-" else f" to {output}") + ".")

    def _to_file(self, path, **kwargs):
        """Written beside the target and renamed at the end: a cut-off export never takes
        the place of a good one."""
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise CommandError(f"{path} is a directory: name the file to write")
        try:  # checked before anything is read: a path that cannot be written fails at once
            fd, partial = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".jsonl")
        except OSError as exc:
            raise CommandError(f"cannot write beside {path}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                report = account_export(out=out, **kwargs)
            os.replace(partial, path)
        except BaseException:
            os.unlink(partial)
            raise
        return report
