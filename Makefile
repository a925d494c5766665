VENV := .venv
BIN := $(VENV)/bin
CODE := flask_flows tests example_app bench

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench

help: ## Show this help.
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

install: ## Create .venv, install htmx with npm and flask-flows in editable mode with test tools.
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	npm ci --no-audit --no-fund --ignore-scripts
	$(BIN)/pip install -e '.[test]'

run: ## Run the example app with the debugger and reloader.
	$(BIN)/flask --app example_app run --debug

test: ## Run the test suite.
	$(BIN)/pytest

lint: ## Check lint, formatting and types.
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

bench: ## Install the peers and run the benchmarks; writes docs/performance.md and .png.
	$(BIN)/pip install -r bench/requirements.txt
	cd bench && ../$(BIN)/python run.py
