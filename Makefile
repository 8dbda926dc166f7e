# KSOS support assistant. `make run` sets everything up and serves; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.10
VENV := .venv
PY := $(VENV)/bin/python
MODEL := models/ksos.tar.gz
INSTALLED := $(VENV)/.installed
# The gateway, the one process that faces the internet, has its own environment with a current aiohttp
# (requirements-gateway.txt; Rasa 3.6 pins aiohttp 3.9, see `make audit`).
GATEWAY_VENV := .venv-gateway
GATEWAY_INSTALLED := $(GATEWAY_VENV)/.installed
# Everything the trained model depends on (data/, the lexicons, config, domain and the bot/ modules the custom
# components import, derived by bot/train_inputs.py): retrain only when one of these changed.
TRAIN_INPUTS := $(shell python3 bot/train_inputs.py)

.PHONY: help install browser train run cluster agent report shell lint test test-unit test-integration test-e2e test-browser \
        eval bench bench-cluster audit validate clean

help:
	@echo "make run    set up (venv, install, train if data changed) and serve the assistant"
	@echo "make test   lint, then every test (unit, data validation, conversations, held-out accuracy)"
	@echo "make lint   ruff and mypy"
	@echo "make test-unit / test-integration / test-e2e / test-browser   one tier of the tests"
	@echo "make cluster  two gateways, two Rasa, two action servers behind HAProxy (PostgreSQL, Redis)"
	@echo "make shell  talk to the assistant in this terminal"
	@echo "make train  train models/ksos.tar.gz if data or config changed"
	@echo "make eval   NLU accuracy per language (fallback counted as a miss): development set, frozen test set, Rasa's default pipeline, two questions in one message, 5-fold cross-validation"
	@echo "make bench  latency, throughput, memory: ours vs a stock rasa init bot; agent-assist accuracy"
	@echo "make bench-cluster  turns/s at 10/50/200 conversations: 1 vs 2 replicas of each vs stock Rasa"
	@echo "make agent NAME=aisyah   create an agent for the console at /agent"
	@echo "make report              containment, fallback, handoff, suggestion acceptance (text + var/report.html)"
	@echo "make audit               known advisories of the pinned dependencies and why each is unreachable"

$(INSTALLED): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(GATEWAY_INSTALLED): requirements-gateway.txt
	@test -x $(GATEWAY_VENV)/bin/python || $(PYTHON) -m venv $(GATEWAY_VENV)
	$(GATEWAY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(GATEWAY_VENV)/bin/python -m pip install --quiet -r requirements-gateway.txt
	@touch $@

install: $(INSTALLED) $(GATEWAY_INSTALLED)

# The widget's browser tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

browser: $(CHROMIUM)

# `make cluster` and its fault tests put Debian's HAProxy in front of the replicas.
HAPROXY := /usr/sbin/haproxy
$(HAPROXY):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq haproxy

# Two gateways, two Rasa servers and two action servers behind HAProxy, on the local PostgreSQL and Redis.
cluster: $(MODEL) $(GATEWAY_INSTALLED) $(HAPROXY)
	$(PY) -m bot cluster

$(MODEL): $(INSTALLED) $(TRAIN_INPUTS)
	$(PY) -m bot train
	@touch $@

train: $(MODEL)

run: $(MODEL) $(GATEWAY_INSTALLED)
	$(PY) -m bot db upgrade
	$(PY) -m bot accounts seed-demo --if-empty
	$(PY) -m bot serve

# A console agent for the human handoff (asks for a password): make agent NAME=aisyah DISPLAY="Aisyah"
# NAME is the login (never shown to customers); DISPLAY is what customers see (empty: "a Unifi agent").
agent: $(INSTALLED)
	@test -n "$(NAME)" || { echo "usage: make agent NAME=<login name> [DISPLAY=<name customers see>]"; exit 2; }
	$(PY) -m bot agents add $(NAME) --display-name "$(DISPLAY)"

report: $(INSTALLED)
	$(PY) -m bot report --html var/report.html

shell: $(MODEL)
	$(PY) -m bot shell

validate: $(INSTALLED)
	$(PY) -m pytest -q tests/test_data.py

# Tiers (pytest.ini, tests/conftest.py): unit = no process, no socket, no PostgreSQL; integration = real servers
# on loopback; e2e = the trained model behind Rasa and the action server; browser = Chromium. `make test` runs all.
test-unit: $(INSTALLED)
	$(PY) -m pytest -q -m unit tests

test-integration: $(INSTALLED) $(GATEWAY_INSTALLED) $(HAPROXY)
	$(PY) -m pytest -q -m "integration and not model and not browser" tests

test-e2e: $(MODEL) $(GATEWAY_INSTALLED) $(HAPROXY)
	$(PY) -m pytest -q -m "model and not browser" tests

test-browser: $(MODEL) $(GATEWAY_INSTALLED) $(CHROMIUM)
	$(PY) -m pytest -q -m browser tests

# ruff (ruff.toml) on every Python file of ours, mypy (mypy.ini) on bot/.
lint: $(INSTALLED)
	$(PY) -m ruff check bot tools actions tests
	$(PY) -m mypy

test: lint $(MODEL) $(GATEWAY_INSTALLED) $(CHROMIUM) $(HAPROXY)
	$(PY) -m pytest tests

eval: $(MODEL)
	$(PY) -m bot eval --baseline --folds 5

# The local PostgreSQL (trust auth) for the production-like row of the benchmark; BENCH_POSTGRES= skips it.
BENCH_POSTGRES ?= postgresql://postgres@127.0.0.1:5432/test

bench: $(MODEL) $(GATEWAY_INSTALLED)
	$(PY) -m bot bench $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))

# One and two replicas of each process behind HAProxy (make cluster) next to one stock Rasa server.
bench-cluster: $(MODEL) $(GATEWAY_INSTALLED) $(HAPROXY)
	$(PY) -m bot bench-cluster

# Known advisories of the dependencies Rasa 3.6 pins, and what keeps each unreachable (docs/security/).
audit: $(INSTALLED)
	$(PY) -m bot audit

clean:
	rm -rf models var results .pytest_cache
