"""The base of the project's ``manage.py`` commands that use its tables."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from . import db

_migrated = False  # this process found every migration applied: not asked again


def refuse_an_unmigrated_database() -> None:
    """A CommandError when migrations have not reached the database (a new install, an
    upgrade not yet migrated): a command met a missing table or column with a traceback
    that named no cause. A database out of reach now is left to the command's own error."""
    global _migrated
    if _migrated:
        return
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return
    if unapplied:
        raise CommandError(f"the database lacks {len(unapplied)} migration(s): run "
                           "`manage.py migrate` first (`make run` does)")
    _migrated = True


class DatabaseCommand(BaseCommand):
    """A command on the project's tables: refused at once on a database migrations have not
    reached, and ended by Ctrl-C (exit 130) or a database that cannot serve now (another
    writer holds SQLite, read-only, unreachable) in one line, not a traceback. Each command
    writes in transactions: one cut short is not written."""

    def execute(self, *args, **options):
        refuse_an_unmigrated_database()
        try:
            return super().execute(*args, **options)
        except KeyboardInterrupt:
            self.stderr.write("interrupted")
            raise SystemExit(130) from None
        except DatabaseError as exc:  # locked by another command, read-only, gone: one line
            reason = db.unavailable_reason(exc)
            if reason is None:
                raise  # a bug: its traceback
            raise CommandError(f"{db.MESSAGES[reason]} ({db.summary(exc)}); what was not "
                               "committed is not written: run it again") from None
