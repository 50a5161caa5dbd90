"""Settings for the MemoryRelay server.

Every value reads the environment with a safe local default: with no variable set the
server runs on SQLite in the project folder with a secret key made at random for this
install on its first start. Setting ``DJANGO_ENV=production`` refuses to start without a
``DJANGO_SECRET_KEY``.
"""

import math
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole number of at least ``minimum`` and at most ``maximum`` (unset or empty:
    ``default``); anything else stops the server at start with an error that names the
    setting."""
    number = _env_number(name, default, minimum, int, "a whole number")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    """A finite number (of seconds, mostly) of at least ``minimum``, as :func:`env_int`."""
    return _env_number(name, default, minimum, float, "a number")


def _env_number(name: str, default, minimum, parse, kind: str):
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = parse(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}")
    if number < minimum:
        shown = "{:g}" if parse is float else "{}"
        raise ImproperlyConfigured(f"{name} must be at least {shown.format(minimum)}, got "
                                   f"{shown.format(number)}")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (unset or empty: ``default``): a misspelt one stops the server
    at start rather than silently running otherwise."""
    value = os.environ.get(name, "").strip() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    """A comma-separated list, each item stripped (unset or empty: ``default``)."""
    raw = os.environ.get(name, "").strip() or default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_endpoint(name: str, default: str = "") -> str:
    """The URL of an outside service (an LLM, an embedding provider). One holding
    credentials (``user:password@``) is refused: the URL is shown (health) and logged in
    the clear; each has its own ``_API_KEY`` setting. The error names the setting only."""
    value = os.environ.get(name, default)
    if "@" in urlsplit(value).netloc:
        raise ImproperlyConfigured(
            f"{name} must not hold credentials (user:password@): it is shown and logged in "
            f"the clear; give the key in {name.removesuffix('_URL')}_API_KEY")
    return value


ENVIRONMENT = os.environ.get("DJANGO_ENV", "development")
DEBUG = env_bool("DJANGO_DEBUG", False)


def install_secret(path: Path) -> str:
    """The install's own secret key, kept in ``path`` (readable by its owner alone); made at
    random the first time. Processes starting together agree: the file appears whole, by a
    link of a finished one, and the first link wins."""
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(
            f"no DJANGO_SECRET_KEY is set and this install's key file {path} cannot be read "
            f"({getattr(exc, 'strerror', None) or exc}): set DJANGO_SECRET_KEY, or "
            "MEMORYRELAY_SECRET_KEY_FILE to a readable file") from None
    else:
        if not kept:
            raise ImproperlyConfigured(
                f"this install's key file {path} is empty: restore it from a backup, or "
                "delete it for a new key (accounts' webhook secrets then change, and "
                "stored provider keys must be given again), or set DJANGO_SECRET_KEY")
        return kept
    import secrets
    import tempfile

    secret = secrets.token_urlsafe(50)
    try:
        fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            os.write(fd, secret.encode())
            os.close(fd)
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process's came first
            except OSError:  # a file system without hard links: created whole or not at all
                try:
                    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                              "w") as kept:
                        kept.write(secret)
                except FileExistsError:
                    pass  # another process's came first
        finally:
            os.unlink(draft)
        return path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"no DJANGO_SECRET_KEY is set and this install's own key cannot be kept in {path} "
            f"({exc.strerror or exc}): set DJANGO_SECRET_KEY, or MEMORYRELAY_SECRET_KEY_FILE to "
            "a writable place") from None


# Django signs with it, and the server's secrets derive from it (accounts' webhook secrets;
# the encryption of their provider keys unless MEMORYRELAY_ENCRYPTION_KEY is set). Several
# machines serving one database must share it: set DJANGO_SECRET_KEY on each.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip()
if not SECRET_KEY and ENVIRONMENT == "production":
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_ENV=production")
SECRET_KEY_FILE = Path(os.environ.get("MEMORYRELAY_SECRET_KEY_FILE") or BASE_DIR / ".secret_key")
SECRET_KEY = SECRET_KEY or install_secret(SECRET_KEY_FILE)
# The fixed key used when DJANGO_SECRET_KEY was not set, before each install made its own:
# public, so nothing is signed with it any more; a migration re-encrypts what was
# encrypted with it (entities_app 0008).
LEGACY_SECRET_KEY = "dev-insecure-memoryrelay-secret-key-change-me"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "*")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# Served to browsers over https through a proxy that ends TLS and sets X-Forwarded-Proto:
# the admin's cookies then travel over https only, and its CSRF check sees the scheme the
# browser used. Only where the server is reachable through that proxy alone (the header
# is believed).
MEMORYRELAY_HTTPS = env_bool("MEMORYRELAY_HTTPS", False)
if MEMORYRELAY_HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "django_rq",
    "memoryrelay_site",
    "sessions_app",
    "memories_app",
    "entities_app",
    "knowledge_app",
]

MIDDLEWARE = [
    "memoryrelay_site.middleware.RequestIdMiddleware",
    "memoryrelay_site.ratelimit.RateLimitHeadersMiddleware",
    "memoryrelay_site.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "memoryrelay_site.urls"
WSGI_APPLICATION = "memoryrelay_site.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite file in the project folder unless DATABASE_URL says otherwise.
# (An empty value counts as unset: "sqlite:///" would be a database in memory, gone at exit.)
SQLITE_PATH = os.environ.get("MEMORYRELAY_SQLITE_PATH", "").strip() or str(BASE_DIR / "db.sqlite3")
# A database this process creates is made readable by its owner only (db.keep_private).
SQLITE_EXISTED_AT_START = os.path.exists(SQLITE_PATH)
DATABASES = {  # an empty DATABASE_URL counts as unset
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{SQLITE_PATH}", conn_max_age=0
    )
}
_SQLITE_FOLDER = Path(SQLITE_PATH).resolve().parent
if not os.environ.get("DATABASE_URL") and not _SQLITE_FOLDER.is_dir():
    # Said here, with the path: SQLite's own "unable to open database file" names neither.
    raise ImproperlyConfigured(
        f"the SQLite database's folder {_SQLITE_FOLDER} does not exist: "
        "create it, or set MEMORYRELAY_SQLITE_PATH (or DATABASE_URL for PostgreSQL)")
if (not os.environ.get("DATABASE_URL") and not os.path.exists(SQLITE_PATH)
        and not os.access(_SQLITE_FOLDER, os.W_OK | os.X_OK)):
    raise ImproperlyConfigured(
        f"the SQLite database {SQLITE_PATH} does not exist and its folder is not writable: "
        "set MEMORYRELAY_SQLITE_PATH to a writable place (or DATABASE_URL for PostgreSQL)")
# Database trouble is a quick 503 (memoryrelay_site/db.py), never a hang: every wait on the
# database is bounded. Management commands (migrate, export, import) may run long
# statements and get no statement or client-side timeout.
_COMMAND = Path(sys.argv[0]).name == "manage.py" and sys.argv[1:2] != ["runserver"]
MEMORYRELAY_DB_CONNECT_TIMEOUT = env_int("MEMORYRELAY_DB_CONNECT_TIMEOUT", 3)  # s
MEMORYRELAY_DB_STATEMENT_TIMEOUT_MS = 0 if _COMMAND else env_int(
    "MEMORYRELAY_DB_STATEMENT_TIMEOUT_MS", 5000)
MEMORYRELAY_DB_IDLE_TX_TIMEOUT_MS = 0 if _COMMAND else env_int(
    "MEMORYRELAY_DB_IDLE_TX_TIMEOUT_MS", 30000)
MEMORYRELAY_DB_LOCK_TIMEOUT = env_int("MEMORYRELAY_DB_LOCK_TIMEOUT", 5)  # s, SQLite
MEMORYRELAY_DB_POOL = env_bool("MEMORYRELAY_DB_POOL", True)  # PostgreSQL
MEMORYRELAY_DB_POOL_MAX_SIZE = env_int("MEMORYRELAY_DB_POOL_MAX_SIZE", 10, minimum=1)
MEMORYRELAY_DB_POOL_TIMEOUT = env_int("MEMORYRELAY_DB_POOL_TIMEOUT", 2, minimum=1)  # s
MEMORYRELAY_DB_RETRY_AFTER = env_int("MEMORYRELAY_DB_RETRY_AFTER", 2)  # s, on every 503
MEMORYRELAY_HEALTH_TIMEOUT = env_int("MEMORYRELAY_HEALTH_TIMEOUT", 2, minimum=1)  # s
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue for the lock up front instead of failing mid-transaction; a writer
        # that waits longer than the lock timeout gets "database is locked": a 503.
        "transaction_mode": "IMMEDIATE",
        "timeout": MEMORYRELAY_DB_LOCK_TIMEOUT,
        # A reader held for long (an export's snapshot) lets the WAL grow; once it has been
        # checkpointed the file is cut back to 64 MB rather than kept at its largest. WAL
        # mode itself is set on connection (db.set_up_sqlite_connection), where it is retried.
        "init_command": "PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=67108864;",
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("MEMORYRELAY_TEST_SQLITE")}
else:
    from memoryrelay_site.pg import deadline_connection

    # The client gives up this long after the server's own statement timeout would have.
    _DEADLINE = MEMORYRELAY_DB_STATEMENT_TIMEOUT_MS / 1000 + MEMORYRELAY_DB_CONNECT_TIMEOUT
    # What DATABASE_URL's query gives (sslmode, sslrootcert, application_name, options...)
    # wins over these defaults; its own `options` come after ours, so they win too.
    _GIVEN = DATABASES["default"].get("OPTIONS", {})
    _SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
    if _GIVEN.get("sslmode", "prefer") not in _SSLMODES:
        raise ImproperlyConfigured(f"DATABASE_URL's sslmode must be one of {', '.join(_SSLMODES)}"
                                   f"; got {_GIVEN['sslmode']!r}")
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": MEMORYRELAY_DB_CONNECT_TIMEOUT,
        # A silent network (no RST, no answer) is noticed on idle and on busy connections.
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
        "keepalives_count": 3, "tcp_user_timeout": int(_DEADLINE * 1000) if not _COMMAND else 0,
        **_GIVEN,
        "options": f"-c statement_timeout={MEMORYRELAY_DB_STATEMENT_TIMEOUT_MS}"
        f" -c idle_in_transaction_session_timeout={MEMORYRELAY_DB_IDLE_TX_TIMEOUT_MS}"
        f" {_GIVEN.get('options', '')}".rstrip(),
    }
    if MEMORYRELAY_DB_POOL and not _COMMAND:
        # One pool per process, shared by its request threads (a thread per request under
        # ASGI would otherwise open a connection per request: ~5 ms each, measured). Not for
        # manage.py commands: a pool that cannot connect says only that it waited, and a
        # command's first connection should say why (refused, no such database or role).
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": min(2, MEMORYRELAY_DB_POOL_MAX_SIZE),
            "max_size": MEMORYRELAY_DB_POOL_MAX_SIZE,
            "timeout": MEMORYRELAY_DB_POOL_TIMEOUT,
            # Give up a failed reconnection soon, so the next request tries afresh and a
            # restarted database is used at once, not after an exponential back-off.
            "reconnect_timeout": MEMORYRELAY_DB_POOL_TIMEOUT,
            "connection_class": deadline_connection(_DEADLINE),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = 60
# A connection is checked before each reuse (by the pool, or by Django when persistent).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # short transactions live in the services
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve assets even before collectstatic has run

# --- Request limits (API.md §1): bodies over this are 413.
MEMORYRELAY_MAX_BODY_BYTES = env_int("MEMORYRELAY_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MEMORYRELAY_MAX_BODY_BYTES

# --- Serving (memoryrelay_site/server.py, `make run`). Reading a request costs no thread: a
# client has HEADER_TIMEOUT seconds to send its headers and BODY_TIMEOUT more for its body
# (else 408 and the connection closes); an idle keep-alive connection closes after
# KEEPALIVE_TIMEOUT; a process holds at most MAX_CONNECTIONS connections (beyond: 503) and
# runs at most WORKER_THREADS requests at once (`make run THREADS=…`), each in a thread.
MEMORYRELAY_HEADER_TIMEOUT = env_float("MEMORYRELAY_HEADER_TIMEOUT", 10, minimum=0.1)
MEMORYRELAY_BODY_TIMEOUT = env_float("MEMORYRELAY_BODY_TIMEOUT", 30, minimum=0.1)
MEMORYRELAY_KEEPALIVE_TIMEOUT = env_float("MEMORYRELAY_KEEPALIVE_TIMEOUT", 5, minimum=0.1)
MEMORYRELAY_MAX_CONNECTIONS = env_int("MEMORYRELAY_MAX_CONNECTIONS", 1000, minimum=1)
# A request's headers may take at most this many bytes (request line included) and fields;
# beyond, 431 and the connection closes (nothing else bounds what a client may send there).
MEMORYRELAY_MAX_HEADER_BYTES = env_int("MEMORYRELAY_MAX_HEADER_BYTES", 64 * 1024, minimum=1024)
MEMORYRELAY_MAX_HEADER_FIELDS = env_int("MEMORYRELAY_MAX_HEADER_FIELDS", 100, minimum=10)
MEMORYRELAY_WORKER_THREADS = env_int("MEMORYRELAY_WORKER_THREADS", 4, minimum=1)

# --- Product settings.
# Characters; at most what a summary given through the API may hold (SessionEndInput), so
# the server never writes a summary its own API, and a restore of its backup, refuses.
MEMORYRELAY_SUMMARY_BUDGET = env_int("MEMORYRELAY_SUMMARY_BUDGET", 1000, minimum=1,
                                     maximum=50_000)
# A session's summary reads at most this many of its newest live memories (bounded time
# and memory whatever the session's size; see benchmarks/summarize_scale_bench.py).
MEMORYRELAY_SUMMARY_MAX_MEMORIES = env_int("MEMORYRELAY_SUMMARY_MAX_MEMORIES", 10000, minimum=1)
# Optional LLM summaries (sessions_app/summarizer_llm.py): an OpenAI-compatible chat
# endpoint, used when the URL and the model are set; the extractive summary is the fallback
# on any error. `end` with auto_summarize stores the extractive one at once and a task
# replaces it with the LLM's.
# Secrets accounts give the server (their own LLM provider keys) are encrypted with this
# Fernet key; empty: one derived from SECRET_KEY (memoryrelay_site/secrets.py).
MEMORYRELAY_ENCRYPTION_KEY = os.environ.get("MEMORYRELAY_ENCRYPTION_KEY", "").strip()
if MEMORYRELAY_ENCRYPTION_KEY:
    from cryptography.fernet import Fernet

    try:
        Fernet(MEMORYRELAY_ENCRYPTION_KEY.encode())
    except ValueError:
        raise ImproperlyConfigured(
            "MEMORYRELAY_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded "
            "bytes): python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'") from None
# Accounts' own extraction keys (entities_app/byok.py): allowed at all; allowed to name
# local addresses (an Ollama on this machine) and http; seconds per LLM call.
MEMORYRELAY_BYOK_ENABLED = os.environ.get("MEMORYRELAY_BYOK_ENABLED", "1") in ("1", "true")
MEMORYRELAY_BYOK_ALLOW_LOCAL = os.environ.get("MEMORYRELAY_BYOK_ALLOW_LOCAL", "") in (
    "1", "true")
MEMORYRELAY_BYOK_TIMEOUT = env_float("MEMORYRELAY_BYOK_TIMEOUT", 20, minimum=0.1)
MEMORYRELAY_SUMMARY_LLM_URL = env_endpoint("MEMORYRELAY_SUMMARY_LLM_URL")
MEMORYRELAY_SUMMARY_LLM_MODEL = os.environ.get("MEMORYRELAY_SUMMARY_LLM_MODEL", "")
MEMORYRELAY_SUMMARY_LLM_API_KEY = os.environ.get("MEMORYRELAY_SUMMARY_LLM_API_KEY", "")
MEMORYRELAY_SUMMARY_LLM_TIMEOUT = env_float("MEMORYRELAY_SUMMARY_LLM_TIMEOUT", 30, minimum=0.1)
# Optional LLM judging of a hybrid search's first hits (memories_app/rerank.py): an
# OpenAI-compatible chat endpoint, used when the URL and the model are set; on any failure
# the offline ranking is answered as it is. DEPTH: hits shown to it (at least the limit).
MEMORYRELAY_RERANK_LLM_URL = env_endpoint("MEMORYRELAY_RERANK_LLM_URL")
MEMORYRELAY_RERANK_LLM_MODEL = os.environ.get("MEMORYRELAY_RERANK_LLM_MODEL", "")
MEMORYRELAY_RERANK_LLM_API_KEY = os.environ.get("MEMORYRELAY_RERANK_LLM_API_KEY", "")
MEMORYRELAY_RERANK_LLM_TIMEOUT = env_float("MEMORYRELAY_RERANK_LLM_TIMEOUT", 10, minimum=0.1)
MEMORYRELAY_RERANK_DEPTH = env_int("MEMORYRELAY_RERANK_DEPTH", 20, minimum=1)
MEMORYRELAY_INCLUDE_MEMORIES_DEFAULT = 100
MEMORYRELAY_INCLUDE_MEMORIES_MAX = 1000
# A session detail stops embedding memories once their content and metadata pass this many
# bytes (always at least one; memories_has_more then says to page on).
MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES = env_int("MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES",
                                                 1024 * 1024)
# A batch's memories may need at most this many tokens of the local embedding model (each
# memory counts at most the model's 256-token window): bounds one request's CPU (413 over it).
MEMORYRELAY_BATCH_MAX_TOKENS = env_int("MEMORYRELAY_BATCH_MAX_TOKENS", 8192, minimum=256)
MEMORYRELAY_RETENTION_DAYS = env_int("MEMORYRELAY_RETENTION_DAYS", 30)
# POST /v1/memories/maintenance demote_cold: days a memory may go neither written nor read
# (fetched by id, found by a search or a context build) before it drops a tier.
MEMORYRELAY_COLD_AFTER_DAYS = env_int("MEMORYRELAY_COLD_AFTER_DAYS", 30)

# --- Per-key rate limits (memoryrelay_site/ratelimit.py): requests per minute per API key,
# a batch counting its items; 0 = unlimited; a key's own limit (admin) overrides this.
# Counted in Redis when REDIS_URL is set (needed when servers run on several machines),
# else in a SQLite file of its own next to the database.
MEMORYRELAY_RATE_LIMIT_PER_MINUTE = env_int("MEMORYRELAY_RATE_LIMIT_PER_MINUTE", 600)
# Unrevoked keys an account may hold when it makes one through POST /v1/keys (the
# command and the admin are the operator's, and are not held to it).
MEMORYRELAY_MAX_KEYS_PER_ACCOUNT = env_int("MEMORYRELAY_MAX_KEYS_PER_ACCOUNT", 100)
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL and urlsplit(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(
        "REDIS_URL must be a redis://, rediss:// or unix:// URL (redis://127.0.0.1:6379/0)")
MEMORYRELAY_RATE_LIMIT_PATH = os.environ.get(
    "MEMORYRELAY_RATE_LIMIT_PATH", f"{SQLITE_PATH}-ratelimit")
MEMORYRELAY_RATE_LIMIT_REDIS_PREFIX = os.environ.get(
    "MEMORYRELAY_RATE_LIMIT_REDIS_PREFIX", "memoryrelay:ratelimit:")
# Sign-in attempts to the admin per client address per minute (0: unlimited): each costs a
# password hash, so unbounded they are a brute force and a CPU flood at once.
MEMORYRELAY_ADMIN_LOGINS_PER_MINUTE = env_int("MEMORYRELAY_ADMIN_LOGINS_PER_MINUTE", 10)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["memoryrelay_site.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["memoryrelay_site.auth.ScopePermission"],
    "DEFAULT_PAGINATION_CLASS": "memoryrelay_site.pagination.ListPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["memoryrelay_site.parsers.JSONParser"],
    # JSON alone: `?format=csv` was a 404 on every route; it is a query parameter like any
    # other the API does not know (ignored).
    "URL_FORMAT_OVERRIDE": None,
    "EXCEPTION_HANDLER": "memoryrelay_site.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["memoryrelay_site.ratelimit.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 20,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "MemoryRelay API (self-hosted)",
    "DESCRIPTION": "Memories and sessions for AI agents. Compatible with the MemoryRelay API.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"SessionStatusEnum": "sessions_app.models.SessionStatus",
                            "DecisionStatusEnum": "knowledge_app.models.DecisionStatus",
                            "RecordableStatusEnum": "knowledge_app.models.RECORDABLE_STATUSES"},
    "SCHEMA_PATH_PREFIX": r"/v1",
    "PREPROCESSING_HOOKS": ["memoryrelay_site.openapi.slashless_paths"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "memoryrelay_site.openapi.error_responses",
    ],
}

LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "").strip().upper() or "INFO"
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured("DJANGO_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, "
                               f"CRITICAL; got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # A request the client got wrong in a way Django calls suspicious (a Host header not in
    # DJANGO_ALLOWED_HOSTS, too many fields) is answered 400 in the error body and logged in
    # one line, not with a traceback of framework frames.
    "filters": {"without_traceback": {"()": "memoryrelay_site.logfilters.WithoutTraceback"},
                "redact_secrets": {"()": "memoryrelay_site.logfilters.RedactSecrets"},
                "pool_connect_errors": {"()": "memoryrelay_site.logfilters.PoolConnectErrors"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "filters": ["without_traceback", "redact_secrets"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Every 5xx is logged once, by "memoryrelay.errors": one line for an unavailable
        # database, one traceback for a bug. django.request would log each a second time
        # (it logs 4xx as warnings and 5xx as errors, nothing as critical).
        "django.request": {"level": "CRITICAL"},
        # The pool's own "error connecting" lines, once per attempt during an outage: kept,
        # not printed; a request's 503 line names the last (memoryrelay_site.db.summary).
        "psycopg.pool": {"level": "WARNING", "filters": ["pool_connect_errors"]},
    },
}

# --- Embeddings (memories_app/embeddings.py): "local" (all-MiniLM-L6-v2, offline),
# "openai" (any OpenAI-compatible /v1/embeddings endpoint) or "none" (keyword search only).
MEMORYRELAY_EMBEDDINGS = env_choice("MEMORYRELAY_EMBEDDINGS", "local",
                                    ("local", "openai", "none"))
MEMORYRELAY_EMBEDDINGS_URL = env_endpoint("MEMORYRELAY_EMBEDDINGS_URL", "http://127.0.0.1:11434")
MEMORYRELAY_EMBEDDINGS_MODEL = os.environ.get("MEMORYRELAY_EMBEDDINGS_MODEL", "all-minilm")
MEMORYRELAY_EMBEDDINGS_API_KEY = os.environ.get("MEMORYRELAY_EMBEDDINGS_API_KEY", "")
MEMORYRELAY_EMBEDDINGS_TIMEOUT = env_float("MEMORYRELAY_EMBEDDINGS_TIMEOUT", 10, minimum=0.1)
# The local model's query adapter (memories_app/query_adapter.py): empty for the one
# shipped, a path to another, or "off".
MEMORYRELAY_QUERY_ADAPTER = os.environ.get("MEMORYRELAY_QUERY_ADAPTER", "")
MEMORYRELAY_EMBEDDINGS_DIMENSIONS = env_int("MEMORYRELAY_EMBEDDINGS_DIMENSIONS", 0) or None

# --- Task queue (memoryrelay_site/tasks.py; issue 9): Django's Tasks API (the django-tasks
# backport). "database" (default): tasks are rows of the project's own database and
# `manage.py task_worker` runs them, no other service. "rq": tasks go to Redis (REDIS_URL)
# and any number of `manage.py task_worker` processes, on any machines, run them.
MEMORYRELAY_TASK_BACKEND = env_choice("MEMORYRELAY_TASK_BACKEND", "database",
                                      ("database", "rq"))
MEMORYRELAY_TASK_QUEUE = os.environ.get("MEMORYRELAY_TASK_QUEUE", "default")
# Attempts of a task before it ends failed; the delay before attempt n+1 is
# MEMORYRELAY_TASK_BACKOFF * 2**(n-1) seconds (capped at 5 minutes).
MEMORYRELAY_TASK_MAX_ATTEMPTS = env_int("MEMORYRELAY_TASK_MAX_ATTEMPTS", 5, minimum=1)
MEMORYRELAY_TASK_BACKOFF = env_float("MEMORYRELAY_TASK_BACKOFF", 2)
# Work claimed by a worker and unfinished after this many seconds (the worker was killed)
# is handed out again.
MEMORYRELAY_TASK_LEASE_SECONDS = env_float("MEMORYRELAY_TASK_LEASE_SECONDS", 300, minimum=1)
# Health says the queue is "stalled" (and the server "degraded") when work has waited this
# many seconds and no task worker has been seen for three heartbeats.
MEMORYRELAY_TASK_STALL_SECONDS = env_float("MEMORYRELAY_TASK_STALL_SECONDS", 60)
# The database queue's finished task rows are deleted this many hours after they finished
# (failed ones after a week at least) by the workers' sweep.
MEMORYRELAY_TASK_RESULTS_KEEP_HOURS = env_float("MEMORYRELAY_TASK_RESULTS_KEEP_HOURS", 24)
# Entity extraction (entities_app/pipeline.py): run after a write commits, by a task, for
# writes whose auto_extract_entities is true, or null while this is on.
MEMORYRELAY_AUTO_EXTRACT_ENTITIES = env_bool("MEMORYRELAY_AUTO_EXTRACT_ENTITIES", True)
# The extractor (entities_app/extraction): "rules" (default), "rules+zeroshot" or "llm"
# (an OpenAI-compatible chat endpoint at MEMORYRELAY_EXTRACTION_LLM_URL; the rules answer
# whenever it fails).
# (entities_app.extraction.EXTRACTORS; a test keeps the two lists one.)
ENTITY_EXTRACTORS = ("rules", "rules+zeroshot", "spacy", "llm")
MEMORYRELAY_ENTITY_EXTRACTOR = env_choice("MEMORYRELAY_ENTITY_EXTRACTOR", "rules",
                                          ENTITY_EXTRACTORS)
MEMORYRELAY_EXTRACTION_LLM_URL = env_endpoint("MEMORYRELAY_EXTRACTION_LLM_URL")
MEMORYRELAY_EXTRACTION_LLM_MODEL = os.environ.get("MEMORYRELAY_EXTRACTION_LLM_MODEL", "")
MEMORYRELAY_EXTRACTION_LLM_API_KEY = os.environ.get("MEMORYRELAY_EXTRACTION_LLM_API_KEY", "")
MEMORYRELAY_EXTRACTION_LLM_TIMEOUT = env_float("MEMORYRELAY_EXTRACTION_LLM_TIMEOUT", 20,
                                               minimum=0.1)
# Tasks are declared on "default" and enqueued on MEMORYRELAY_TASK_QUEUE.
_TASK_QUEUES = sorted({"default", MEMORYRELAY_TASK_QUEUE})
TASKS = {
    "default": {
        "BACKEND": ("django_tasks_rq.RQBackend" if MEMORYRELAY_TASK_BACKEND == "rq"
                    else "django_tasks_db.DatabaseBackend"),
        "QUEUES": _TASK_QUEUES,
    },
}
# Webhooks of asynchronous writes (memories_app/webhooks.py): seconds a receiver has to
# answer; MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL=1 also allows http and loopback, private and
# link-local addresses (local setups, tests).
MEMORYRELAY_WEBHOOK_TIMEOUT = env_float("MEMORYRELAY_WEBHOOK_TIMEOUT", 5, minimum=0.1)
MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL = os.environ.get("MEMORYRELAY_WEBHOOKS_ALLOW_LOCAL", "") in (
    "1", "true", "yes")
RQ_QUEUES = {name: {"URL": REDIS_URL or "redis://127.0.0.1:6379/0", "DEFAULT_TIMEOUT": 600,
                    "SOCKET_TIMEOUT": 5, "SOCKET_CONNECT_TIMEOUT": 2} for name in _TASK_QUEUES}
