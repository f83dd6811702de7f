# pks4_lit: every command a user needs, from a fresh clone.
#   make demo   set up, write the embedded dataset, train + test PKS4 and TSN on CPU, print a table
#   make test   set up, run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PKS4 := $(VENV)/bin/pks4
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
SYNTH ?= data/synthetic
PYTEST_ARGS ?=

.PHONY: setup test test-all demo tensorboard clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

tensorboard: setup
	$(VENV)/bin/tensorboard --logdir runs

clean:
	rm -rf runs lightning_logs .pytest_cache
