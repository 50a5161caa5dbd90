"""The SQLite database holds every memory, the admin's sessions and password hashes: a
database the server creates is its owner's alone, and others' access to one made before is
taken away."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from memoryrelay_site import db


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def migrate(path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MEMORYRELAY_SQLITE_PATH"] = str(path)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR,
                   env=env, check=True, timeout=300)


def test_a_database_the_server_creates_is_its_owners_alone_and_stays_so(tmp_path):
    path = tmp_path / "db.sqlite3"
    old = os.umask(0o022)
    try:
        migrate(path)
        assert mode_of(path) == 0o600
        path.chmod(0o664)  # a group the operator chose, and the world by mistake
        migrate(path)
        assert mode_of(path) == 0o660
    finally:
        os.umask(old)


def test_keep_private_covers_the_wal_and_shm_files_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "_kept_private", set())
    files = [tmp_path / name for name in ("m.db", "m.db-wal", "m.db-shm")]
    for file in files:
        file.write_bytes(b"")
        file.chmod(0o644)
    db.keep_private(str(files[0]), new=True)
    assert [mode_of(f) for f in files] == [0o600] * 3
    files[0].chmod(0o644)
    db.keep_private(str(files[0]), new=True)  # once per path and process
    assert mode_of(files[0]) == 0o644


def test_the_server_connection_keeps_wal_mode_and_cuts_the_wal_back_after_a_long_reader(
        tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(MEMORYRELAY_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
               DJANGO_SETTINGS_MODULE="memoryrelay_site.settings")
    code = ("import django; django.setup(); from django.db import connection; "
            "c = connection.cursor(); "
            "print(*(c.execute(f'PRAGMA {p}').fetchone()[0] for p in "
            "('journal_mode', 'synchronous', 'journal_size_limit')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["wal", "1", str(64 * 1024 * 1024)], done.stderr
