# Wanderer Console. On a fresh clone `make demo` and `make test` are all it takes: both create the
# virtual environment first when it is missing (or older than pyproject.toml), with the README's
# install command, then run the README's demo or test command.
#
#   make demo     the demo against the built-in simulator (no credentials), JSON summary at the end
#   make test     every test, with line coverage (what .ci/run runs after its linters)
#   make bench    the benchmark suite (BENCH_ARGS=--quick by default; BENCH_ARGS= for the full one)
#   make up       build the image and start the console and PostgreSQL (compose.yaml, .env)
#   make down     stop and remove the containers (the named volumes, and so the data, stay)
#   make health   ask the running console's /ready (HEALTH_URL)
#   make logs     follow the console's JSON log lines
#   make attach   open the operator console on the running engine (quitting it stops nothing)

PYTHON ?= python3
VENV := .venv
COMPOSE ?= docker compose
HEALTH_URL ?= http://127.0.0.1:8787/ready
BENCH_ARGS ?= --quick

.DEFAULT_GOAL := help
.PHONY: help demo test bench up down health logs attach

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

# The console script exists once the package is installed; pyproject.toml newer than it means new
# dependencies, so the same install runs again (it is idempotent on an existing environment).
$(VENV)/bin/wanderer-console: pyproject.toml
	$(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install -e '.[dev]'
	touch $@

demo: $(VENV)/bin/wanderer-console
	$(VENV)/bin/wanderer-console demo --no-ui --duration 20

test: $(VENV)/bin/wanderer-console
	$(VENV)/bin/python -m pytest -q -n 3 --cov

bench: $(VENV)/bin/wanderer-console
	$(VENV)/bin/wanderer-console bench $(BENCH_ARGS)

.env:
	@echo "no .env here: copy your Wanderer Notifier .env (cp /path/to/.env .env), or" \
		"cp .env.example .env and fill it in; then set POSTGRES_PASSWORD in it" >&2
	@exit 1

up: .env
	$(COMPOSE) up --detach --build

down:
	$(COMPOSE) down

health:
	curl --silent --show-error --fail-with-body $(HEALTH_URL)
	@echo

logs:
	$(COMPOSE) logs --follow console

attach:
	$(COMPOSE) exec console wanderer-console attach
