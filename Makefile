# `make run` - the whole service on this machine (SQLite, local Redis, web + worker + scheduler).
# `make test` - the whole suite on real PostgreSQL and real Redis (started or installed if needed).
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Optional local overrides, simple KEY=value lines (see .env.example).
-include .env
export

WEB_PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/pipeline
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
BENCHES := auth jobs_create jobs_list upload_rss engine pdf engine_real worker_memory webhooks audit ocr

.PHONY: run test fuzz venv schema lint clean $(addprefix bench-,$(subst _,-,$(BENCHES)))

venv:
	@scripts/ensure-venv.sh

run: export DEBUG ?= 1
run: export PROMETHEUS_MULTIPROC_DIR ?= $(abspath $(or $(VAR_DIR),var)/metrics)
run: venv
	@scripts/ensure-redis.sh "$${REDIS_URL:-redis://127.0.0.1:6379/0}"
	@scripts/ensure-ocr.sh
	@python manage.py migrate --noinput -v 0
	@python manage.py bootstrap_demo --base-url http://127.0.0.1:$(WEB_PORT)
	@# /metrics counts from zero: the files of the last run's processes go (web, worker and scheduler share the directory).
	@mkdir -p "$$PROMETHEUS_MULTIPROC_DIR" && rm -f "$$PROMETHEUS_MULTIPROC_DIR"/*.db
	@WEB_PORT=$(WEB_PORT) exec honcho -f Procfile.dev start

RUN_PYTEST = DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" DEBUG=0 \
	SECRET_KEY=test-only-secret-key-with-at-least-32-bytes python -m pytest

test: venv
	@scripts/ensure-postgres.sh "$(TEST_DATABASE_URL)"
	@scripts/ensure-redis.sh "$(TEST_REDIS_URL)"
	@scripts/ensure-test-tools.sh
	@scripts/ensure-ocr.sh eng fra deu rus
	ruff check .
	$(RUN_PYTEST) $(PYTEST_ARGS)

# A long randomized Schemathesis run over the whole API (`make test` runs a short deterministic one).
fuzz: export SCHEMATHESIS_MAX_EXAMPLES ?= 1000
fuzz: export SCHEMATHESIS_DERANDOMIZE ?= 0
fuzz: export SCHEMATHESIS_SEED ?= $(shell date +%s)
fuzz: venv
	@scripts/ensure-postgres.sh "$(TEST_DATABASE_URL)"
	@scripts/ensure-redis.sh "$(TEST_REDIS_URL)"
	@echo "Schemathesis seed $$SCHEMATHESIS_SEED (make fuzz SCHEMATHESIS_SEED=$$SCHEMATHESIS_SEED replays this run)"
	$(RUN_PYTEST) tests/project/test_schemathesis.py $(PYTEST_ARGS)

schema: venv
	DEBUG=1 python manage.py spectacular --validate --fail-on-warn --file var/openapi.yaml

$(addprefix bench-,$(subst _,-,$(BENCHES))): bench-%: venv
	@scripts/ensure-postgres.sh "$(TEST_DATABASE_URL)"
	@scripts/ensure-redis.sh "$(TEST_REDIS_URL)"
	@scripts/ensure-ocr.sh
	cd bench && python bench_$(subst -,_,$*).py

clean:
	rm -rf var/static var/media var/db.sqlite3* var/demo-credentials.json

lint: venv
	ruff check . && ruff format --check .
