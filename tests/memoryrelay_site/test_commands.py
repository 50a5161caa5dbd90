"""What every project command does on a database migrations have not reached, and on
Ctrl-C: one line that says so, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from memoryrelay_site.commands import DatabaseCommand

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["task_worker", "--burst"], ["backfill_entities"], ["entity_graph_rebuild"],
    ["export", "-o", "out.jsonl"], ["import", "in.jsonl"], ["purge_deleted"], ["reembed"],
    ["webhook_secret", "--user", "ops"], ["create_api_key", "--user", "ops"],
    ["ensure_local_key"], ["revoke_api_key", "mem_prod_Ab3"],
    ["end_stale_sessions", "--idle-hours", "1"],
]


def test_every_command_on_an_unmigrated_database_says_to_migrate_and_stops(tmp_path):
    """Each met the first missing table with a traceback naming no cause (the task worker
    treated it as an outage: a traceback every round, for ever)."""
    env = {k: v for k, v in os.environ.items()
           if k != "DATABASE_URL" and not k.startswith("MEMORYRELAY_DB_")}
    env.update(DJANGO_SETTINGS_MODULE="memoryrelay_site.settings", PYTHONWARNINGS="ignore",
               MEMORYRELAY_SQLITE_PATH=str(tmp_path / "new.sqlite3"))
    (tmp_path / "in.jsonl").write_text("")
    running = [(args, subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for args in COMMANDS]
    for args, process in running:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 1, (args, err)
        assert "run `manage.py migrate` first" in err, (args, err)
        assert "Traceback" not in err, (args, err)


class Interrupted(DatabaseCommand):
    def handle(self, *args, **options):
        raise KeyboardInterrupt


def test_ctrl_c_ends_a_command_in_one_line(db):
    err = StringIO()
    with pytest.raises(SystemExit) as ended:
        call_command(Interrupted(), stderr=err)
    assert ended.value.code == 130 and err.getvalue().strip() == "interrupted"


class Locked(DatabaseCommand):
    def handle(self, *args, **options):
        from django.db import OperationalError

        try:
            raise __import__("sqlite3").OperationalError("database is locked")
        except Exception as cause:
            raise OperationalError("database is locked") from cause


def test_a_database_that_cannot_serve_now_ends_a_command_in_one_line(db):
    """Two purge_deleted at once on SQLite: the second ended in a traceback."""
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="The database is busy .*run it again"):
        call_command(Locked())


def test_a_command_on_a_new_file_another_process_holds_still_says_to_migrate(tmp_path):
    """Switching a new SQLite file to WAL mode was refused at once ("database is locked",
    without SQLite's busy wait) while another connection held its write lock, as when
    commands start together on a new database; the migration check took that for a
    database out of reach and let the command run into the missing tables (a traceback)."""
    path = tmp_path / "new.sqlite3"
    env = {k: v for k, v in os.environ.items()
           if k != "DATABASE_URL" and not k.startswith("MEMORYRELAY_DB_")}
    env.update(DJANGO_SETTINGS_MODULE="memoryrelay_site.settings", PYTHONWARNINGS="ignore",
               MEMORYRELAY_SQLITE_PATH=str(path))
    code = (
        "import sqlite3, sys, threading, django; django.setup()\n"
        "from django.core.management import call_command\n"
        f"held = sqlite3.connect({str(path)!r}, isolation_level=None, "
        "check_same_thread=False)\n"
        "held.execute('BEGIN IMMEDIATE')\n"
        "threading.Timer(0.5, held.execute, ('ROLLBACK',)).start()\n"
        "call_command('purge_deleted')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "run `manage.py migrate` first" in done.stderr, done.stderr
