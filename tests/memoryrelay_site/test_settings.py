"""Settings read from the environment, checked in a fresh interpreter."""

from __future__ import annotations

import os
import shlex
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
    return out.strip().split(" ", 1)  # the path may hold spaces


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


def test_a_new_sqlite_database_in_a_folder_it_cannot_write_is_a_clear_error(tmp_path):
    """SQLite would fail only at the first query, with "unable to open database file"."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="memoryrelay_site.settings", DJANGO_SECRET_KEY="given",
               MEMORYRELAY_SQLITE_PATH=str(folder / "db.sqlite3"))
    command = [sys.executable, "-c", PRINT_DATABASE]
    if os.geteuid() == 0:  # root writes anywhere but on a read-only file system
        mount = f"mount -t tmpfs -o ro tmpfs {shlex.quote(str(folder))} && exec \"$@\""
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
            pytest.skip("running as root without mount namespaces: no folder it cannot write")
        command = ["unshare", "-m", "sh", "-c", mount, "sh", *command]
    else:
        folder.chmod(0o555)
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        folder.chmod(0o755)
    assert done.returncode != 0, done.stdout
    assert f"{folder / 'db.sqlite3'} does not exist and its folder is not writable" in done.stderr
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


def settings_in(env: dict, code: str = "import django; django.setup()"):
    full = {k: v for k, v in os.environ.items() if k not in env and k != "DATABASE_URL"}
    full.update(env, DJANGO_SETTINGS_MODULE="memoryrelay_site.settings")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full,
                          capture_output=True, text=True)


@pytest.mark.parametrize(("env", "said"), [
    ({"MEMORYRELAY_DB_CONNECT_TIMEOUT": "abc"},
     "MEMORYRELAY_DB_CONNECT_TIMEOUT must be a whole number, got 'abc'"),
    ({"MEMORYRELAY_MAX_CONNECTIONS": "0"}, "MEMORYRELAY_MAX_CONNECTIONS must be at least 1"),
    ({"MEMORYRELAY_MAX_BODY_BYTES": "-1"}, "MEMORYRELAY_MAX_BODY_BYTES must be at least"),
    ({"MEMORYRELAY_HEADER_TIMEOUT": "-1"}, "MEMORYRELAY_HEADER_TIMEOUT must be at least 0.1"),
    ({"MEMORYRELAY_EMBEDDINGS_TIMEOUT": "nan"}, "MEMORYRELAY_EMBEDDINGS_TIMEOUT must be a number"),
    ({"MEMORYRELAY_WORKER_THREADS": "abc"}, "MEMORYRELAY_WORKER_THREADS must be a whole number"),
    # A summary past what the API takes was written, and its backup refused on restore.
    ({"MEMORYRELAY_SUMMARY_BUDGET": "50001"},
     "MEMORYRELAY_SUMMARY_BUDGET must be at most 50000, got 50001"),
    ({"MEMORYRELAY_EMBEDDINGS": "Local"}, "MEMORYRELAY_EMBEDDINGS must be one of local, openai"),
    ({"MEMORYRELAY_ENTITY_EXTRACTOR": "spaCy"}, "MEMORYRELAY_ENTITY_EXTRACTOR must be one of"),
    ({"MEMORYRELAY_TASK_BACKEND": "foo"}, "MEMORYRELAY_TASK_BACKEND must be one of database, rq"),
    ({"DJANGO_LOG_LEVEL": "verbose"}, "DJANGO_LOG_LEVEL must be one of DEBUG"),
    ({"REDIS_URL": "notaurl"}, "REDIS_URL must be a redis://"),
    ({"DATABASE_URL": "postgres://u@db.example.com/m?sslmode=bogus"},
     "DATABASE_URL's sslmode must be one of disable"),
    ({"MEMORYRELAY_ENCRYPTION_KEY": "notafernetkey"},
     "MEMORYRELAY_ENCRYPTION_KEY must be a Fernet key"),
    ({"DJANGO_ENV": "production", "DJANGO_SECRET_KEY": "   "},
     "DJANGO_SECRET_KEY must be set when DJANGO_ENV=production"),
])
def test_a_bad_setting_stops_the_server_at_start_with_one_line_naming_it(env, said):
    """Each was a traceback naming no setting, or a server that started and then failed
    every request (a 500 on each call with a malformed REDIS_URL, every request refused
    with MAX_CONNECTIONS=0), or one that silently ran otherwise (a misspelt choice)."""
    done = settings_in(env)
    assert done.returncode != 0
    assert "ImproperlyConfigured: " + said in done.stderr.strip().splitlines()[-1]


def test_the_longest_summary_budget_is_the_longest_summary_the_api_takes():
    from sessions_app.serializers import SessionEndInput

    done = settings_in({"MEMORYRELAY_SUMMARY_BUDGET": "50000"})
    assert done.returncode == 0, done.stderr
    assert SessionEndInput().fields["summary"].max_length == 50_000


def test_the_install_key_file_unreadable_or_empty_is_said_at_start(tmp_path):
    empty = tmp_path / "key"
    empty.write_text("  \n")
    for path, said in ((tmp_path, "cannot be read"), (empty, "is empty")):
        done = settings_in({"DJANGO_SECRET_KEY": "", "MEMORYRELAY_SECRET_KEY_FILE": str(path)})
        assert done.returncode != 0 and said in done.stderr.strip().splitlines()[-1]


def test_empty_and_spaced_values_read_as_an_operator_means_them():
    done = settings_in(
        {"MEMORYRELAY_SQLITE_PATH": "", "DJANGO_ALLOWED_HOSTS": " example.com , 127.0.0.1 ",
         "DJANGO_LOG_LEVEL": "warning", "MEMORYRELAY_EMBEDDINGS": ""},
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['NAME']); print(s.ALLOWED_HOSTS); "
        "print(s.LOG_LEVEL, s.MEMORYRELAY_EMBEDDINGS)")
    assert done.returncode == 0, done.stderr
    name, hosts, rest = done.stdout.splitlines()
    assert Path(name) == ROOT / "db.sqlite3"  # not a database in memory
    assert hosts == "['example.com', '127.0.0.1']" and rest == "WARNING local"


def test_the_database_urls_own_options_are_kept_and_win():
    """sslmode (and every other query parameter) was dropped: a URL asking for TLS got a
    plain connection."""
    done = settings_in(
        {"DATABASE_URL": "postgres://u@db.example.com:5432/m?sslmode=verify-full"
                         "&sslrootcert=/ca.pem&options=-c%20statement_timeout%3D900",
         "MEMORYRELAY_DB_POOL_MAX_SIZE": "1"},
        "import django; django.setup(); from django.conf import settings as s; "
        "o = s.DATABASES['default']['OPTIONS']; print(o['sslmode'], o['sslrootcert']); "
        "print(o['options']); print(o['pool']['min_size'], o['pool']['max_size'])")
    assert done.returncode == 0, done.stderr
    ssl, options, pool = done.stdout.splitlines()
    assert ssl == "verify-full /ca.pem" and pool == "1 1"
    assert options.startswith("-c statement_timeout=5000")
    assert options.endswith(" -c statement_timeout=900")  # the URL's, last, wins


def test_the_entity_extractor_choices_are_the_extraction_packages():
    from django.conf import settings

    from entities_app.extraction import EXTRACTORS

    assert tuple(settings.ENTITY_EXTRACTORS) == tuple(EXTRACTORS)


def test_a_test_run_against_a_postgresql_out_of_reach_stops_at_once_saying_so():
    """Each of ~1,800 tests was an error after its own wait (9 min 43 s), saying nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORYRELAY_REQUIRE")}
    env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:9/memoryrelay"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "tests/memoryrelay_site/test_layering.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert "DATABASE_URL names a PostgreSQL this run cannot reach" in done.stdout
    assert "unset DATABASE_URL" in done.stdout
