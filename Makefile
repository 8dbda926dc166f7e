# KSOS support assistant. `make run` sets everything up and serves; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.10
VENV := .venv
PY := $(VENV)/bin/python
MODEL := models/ksos.tar.gz
INSTALLED := $(VENV)/.installed
# Everything the trained model depends on: retrain only when one of these changed.
TRAIN_INPUTS := config.yml domain.yml $(shell find data -name '*.yml' -not -path 'data/accounts/*' -not -path 'data/gateway/*' 2>/dev/null) \
                bot/nlu.py bot/text.py bot/language.py bot/input_check.py

.PHONY: help install browser train run agent report shell test test-unit eval bench validate clean

help:
	@echo "make run    set up (venv, install, train if data changed) and serve the assistant"
	@echo "make test   run every test (unit, data validation, conversations, held-out accuracy)"
	@echo "make shell  talk to the assistant in this terminal"
	@echo "make train  train models/ksos.tar.gz if data or config changed"
	@echo "make eval   held-out accuracy per language: our pipeline vs Rasa's default pipeline"
	@echo "make bench  latency, throughput, memory: ours vs a stock rasa init bot; agent-assist accuracy"
	@echo "make agent NAME=aisyah   create an agent for the console at /agent"
	@echo "make report              containment, fallback, handoff, suggestion acceptance (text + var/report.html)"

$(INSTALLED): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

install: $(INSTALLED)

# The widget's browser tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

browser: $(CHROMIUM)

$(MODEL): $(INSTALLED) $(TRAIN_INPUTS)
	$(PY) -m bot train
	@touch $@

train: $(MODEL)

run: $(MODEL)
	$(PY) -m bot accounts seed-demo --if-empty
	$(PY) -m bot serve

# A console agent for the human handoff (asks for a password): make agent NAME=aisyah
agent: $(INSTALLED)
	@test -n "$(NAME)" || { echo "usage: make agent NAME=<agent name>"; exit 2; }
	$(PY) -m bot agents add $(NAME)

report: $(INSTALLED)
	$(PY) -m bot report --html var/report.html

shell: $(MODEL)
	$(PY) -m bot shell

validate: $(INSTALLED)
	$(PY) -m pytest -q tests/test_data.py

test-unit: $(INSTALLED)
	$(PY) -m pytest -q -m "not model" tests

test: $(MODEL) $(CHROMIUM)
	$(PY) -m pytest tests

eval: $(MODEL)
	$(PY) -m bot eval --baseline

# The local PostgreSQL (trust auth) for the production-like row of the benchmark; BENCH_POSTGRES= skips it.
BENCH_POSTGRES ?= postgresql://postgres@127.0.0.1:5432/test

bench: $(MODEL)
	$(PY) -m bot bench $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))

clean:
	rm -rf models var results .pytest_cache
