# ghapt — every command a newcomer or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
DEMO ?= .ghapt/demo
STACK ?= ghapt
# Tools the tests drive for real; apt-ftparchive comes from apt-utils; chromium and its driver
# open the repository page in a real browser (Selenium).
SYSTEM_TOOLS := apt-get apt-ftparchive dpkg-deb dpkg-scanpackages gpg gpgv sqv git xz zstd chromium chromedriver
SYSTEM_PACKAGES := apt apt-utils dpkg-dev gnupg gpgv sqv git xz-utils zstd chromium chromium-driver

.DEFAULT_GOAL := help
# What `make bench` compares ghapt with: reprepro, aptly, nginx and ab (apache2-utils).
BENCH_TOOLS := apt-ftparchive reprepro aptly nginx ab htpasswd
BENCH_PACKAGES := apt-utils reprepro aptly nginx apache2-utils

.PHONY: help setup system-deps bench-deps run test lint typecheck pytest cfn-lint sam-build bench first-index clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

system-deps: ## Install the Debian tools the tests and benchmarks use (apt-utils, dpkg-dev, gnupg, chromium, ...)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages (missing:$$missing)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

bench-deps: ## Install the peers the benchmarks compare with (reprepro, aptly, nginx, apache2-utils)
	@missing=""; for t in $(BENCH_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing benchmark peers (missing:$$missing)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_PACKAGES) >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,serve]'
	touch $(STAMP)

setup: system-deps $(STAMP) ## Create .venv and install ghapt with its dev tools

run: setup ## Build a demo repository and serve it on http://$(HOST):$(PORT) (offline, no AWS)
	$(BIN)/ghapt demo --dir $(DEMO) --host $(HOST) --port $(PORT)

LINT_DIRS := $(wildcard layers functions tests benchmarks)

lint: setup ## ruff check and ruff format --check
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: setup ## mypy --strict over the ghapt package, the tests and the benchmarks
	$(BIN)/mypy

cfn-lint: setup ## cfn-lint over template.yaml
	$(BIN)/cfn-lint template.yaml

pytest: setup ## The test suite only
	$(BIN)/pytest -n 2 --dist loadgroup -q

test: lint typecheck cfn-lint pytest ## Set everything up, then lint, type check and run the whole test suite

sam-build: ## sam build (needs the AWS SAM CLI and python3.12 on PATH, or add --use-container)
	sam build

bench: setup bench-deps ## Benchmarks: ghapt beside apt-ftparchive, reprepro, aptly and nginx; GitHub call counts
	$(BIN)/python -m benchmarks.run

first-index: ## After `sam deploy` and setting the GitHub secret: queue the first rebuild (STACK=ghapt)
	url=$$(aws cloudformation describe-stacks --stack-name "$(STACK)" --output text \
	  --query "Stacks[0].Outputs[?OutputKey=='RebuildQueueUrl'].OutputValue") && \
	aws sqs send-message --queue-url "$$url" --message-group-id rebuild \
	  --message-deduplication-id "first-index-$$(date +%s)" --message-body '{"reason": "first index"}'

clean: ## Remove the venv and local state
	rm -rf $(VENV) .ghapt .pytest_cache .mypy_cache .ruff_cache
