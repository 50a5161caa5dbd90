"""Settings read from the environment, checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT_DATABASE = (
    "import django; django.setup(); from django.conf import settings; "
    "db = settings.DATABASES['default']; print(db['ENGINE'], db['NAME'])"
)


def database_for(url: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "MEMORYRELAY_SQLITE_PATH")}
    env["DJANGO_SETTINGS_MODULE"] = "memoryrelay_site.settings"
    if url is not None:
        env["DATABASE_URL"] = url
    out = subprocess.run([sys.executable, "-c", PRINT_DATABASE], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.parametrize("url", [None, ""])
def test_without_a_database_url_the_server_uses_sqlite_in_the_project_folder(url):
    engine, name = database_for(url)
    assert engine == "django.db.backends.sqlite3"
    assert Path(name).parent == ROOT


def test_a_database_url_selects_postgresql_through_psycopg():
    engine, name = database_for("postgres://postgres@127.0.0.1:5432/memoryrelay")
    assert (engine, name) == ("django.db.backends.postgresql", "memoryrelay")
