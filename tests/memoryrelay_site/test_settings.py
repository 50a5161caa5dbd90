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


# --- the secret key ----------------------------------------------------------------------

PRINT_SECRET = ("import django; django.setup(); from django.conf import settings; "
                "print(settings.SECRET_KEY)")


def secret_with(**env_vars) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SECRET_KEY", "MEMORYRELAY_SECRET_KEY_FILE", "DJANGO_ENV")}
    env.update(DJANGO_SETTINGS_MODULE="memoryrelay_site.settings", **env_vars)
    return subprocess.run([sys.executable, "-c", PRINT_SECRET], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_without_a_secret_key_each_install_makes_its_own_and_keeps_it(tmp_path):
    """The fixed key earlier releases used is public: anyone could sign a webhook for any
    account of a default install, or decrypt its stored provider keys from a database copy."""
    from django.conf import settings

    kept = tmp_path / "secret"
    first = secret_with(MEMORYRELAY_SECRET_KEY_FILE=str(kept)).stdout.strip()
    assert len(first) >= 50 and first != settings.LEGACY_SECRET_KEY
    assert kept.read_text().strip() == first and kept.stat().st_mode & 0o777 == 0o600
    assert secret_with(MEMORYRELAY_SECRET_KEY_FILE=str(kept)).stdout.strip() == first
    other = secret_with(MEMORYRELAY_SECRET_KEY_FILE=str(tmp_path / "other")).stdout.strip()
    assert other != first  # another install, another key
    assert secret_with(DJANGO_SECRET_KEY="given",
                       MEMORYRELAY_SECRET_KEY_FILE=str(kept)).stdout.strip() == "given"
    assert settings.SECRET_KEY != settings.LEGACY_SECRET_KEY  # this test run's too


def test_processes_starting_together_agree_on_the_new_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from memoryrelay_site.settings import install_secret

    path = tmp_path / "secret"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: install_secret(path), range(32)))
    assert keys == {path.read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no drafts left


def test_a_key_that_cannot_be_kept_is_a_clear_error_and_production_needs_one(tmp_path):
    done = secret_with(MEMORYRELAY_SECRET_KEY_FILE=str(tmp_path / "missing" / "secret"))
    assert done.returncode != 0
    assert "cannot be kept in" in done.stderr and "DJANGO_SECRET_KEY" in done.stderr
    production = secret_with(DJANGO_ENV="production",
                             MEMORYRELAY_SECRET_KEY_FILE=str(tmp_path / "secret"))
    assert production.returncode != 0 and "DJANGO_SECRET_KEY must be set" in production.stderr
    assert not (tmp_path / "secret").exists()


def test_a_sqlite_path_in_a_missing_folder_is_a_clear_error_naming_it(tmp_path):
    """SQLite said only "unable to open database file", after 31 frames of traceback."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="memoryrelay_site.settings",
               MEMORYRELAY_SQLITE_PATH=str(tmp_path / "missing" / "db.sqlite3"))
    done = subprocess.run([sys.executable, "-c", PRINT_DATABASE], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert f"folder {tmp_path / 'missing'} does not exist" in done.stderr
    assert "MEMORYRELAY_SQLITE_PATH" in done.stderr


@pytest.mark.parametrize("name", ["MEMORYRELAY_EMBEDDINGS_URL", "MEMORYRELAY_SUMMARY_LLM_URL",
                                  "MEMORYRELAY_RERANK_LLM_URL",
                                  "MEMORYRELAY_EXTRACTION_LLM_URL"])
def test_an_outside_services_url_holding_credentials_is_refused_without_echoing_them(name):
    """A password in such a URL was shown by the unauthenticated health check, in 503
    bodies and in the log (and the request failed anyway)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(DJANGO_SETTINGS_MODULE="memoryrelay_site.settings",
               **{name: "http://embuser:EMBPASSWORD123@10.0.0.5:8080/v1"})
    done = subprocess.run([sys.executable, "-c", PRINT_DATABASE], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert f"{name} must not hold credentials" in done.stderr
    assert "EMBPASSWORD123" not in done.stderr and "embuser" not in done.stderr


ADMIN_COOKIES = (
    "import django; django.setup(); from django.test import Client; "
    "r = Client().get('/admin/login/', HTTP_X_FORWARDED_PROTO='https'); "
    "print(r.wsgi_request.is_secure(), bool(r.cookies['csrftoken']['secure']))"
)


@pytest.mark.parametrize(("https", "expected"), [(None, ["False", "False"]),
                                                 ("1", ["True", "True"])])
def test_behind_an_https_proxy_the_admins_cookies_travel_over_https_only(https, expected):
    env = {k: v for k, v in os.environ.items() if k != "MEMORYRELAY_HTTPS"}
    env["DJANGO_SETTINGS_MODULE"] = "memoryrelay_site.settings"
    if https is not None:
        env["MEMORYRELAY_HTTPS"] = https
    out = subprocess.run([sys.executable, "-c", ADMIN_COOKIES], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == expected
