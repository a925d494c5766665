VENV := .venv
BIN := $(VENV)/bin
CODE := flask_flows tests example_app bench
# Written after a successful set-up; older than pyproject.toml or package-lock.json means
# the dependencies changed and the set-up runs again.
stamp := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-lowest lint bench messages

help: ## Show this help.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(stamp): pyproject.toml package-lock.json
	@echo 'Setting up $(VENV) and node_modules (once, and again when the dependencies change)'
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	npm ci --no-audit --no-fund --ignore-scripts
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: ## Set up (again): .venv, htmx with npm, flask-flows in editable mode with test tools.
	rm -f $(stamp)
	$(MAKE) $(stamp)

run: $(stamp) ## Run the example app with the debugger and reloader (sets up first if needed).
	$(BIN)/flask --app example_app run --debug

test: $(stamp) ## Run the test suite (sets up first if needed).
	$(BIN)/pytest -n auto

LOWEST := .venv-lowest

test-lowest: $(stamp) ## Run the suite (SQLite) on the oldest dependency versions pyproject.toml allows.
	rm -rf $(LOWEST)
	python3 -m venv $(LOWEST)
	python3 .ci/lowest_constraints.py > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/pip install --quiet -c $(LOWEST)/constraints.txt -e '.[test]'
	$(LOWEST)/bin/pip check
	$(LOWEST)/bin/pytest -n auto -m 'not postgres and not browser'

lint: $(stamp) ## Check lint, formatting and types.
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

CATALOGUES := flask_flows/translations
LOCALES := de es fr

messages: $(stamp) ## Extract the messages to translate, update each language's catalogue, compile them.
	$(BIN)/pybabel extract -F babel.cfg -k _flows -k _nflows:1,2 --no-location --sort-output \
		--project flask-flows --copyright-holder "The flask-flows developers" \
		-o $(CATALOGUES)/flask_flows.pot .
	for locale in $(LOCALES); do \
		test -f $(CATALOGUES)/$$locale/LC_MESSAGES/flask_flows.po \
		|| $(BIN)/pybabel init -D flask_flows -i $(CATALOGUES)/flask_flows.pot -d $(CATALOGUES) -l $$locale; \
	done
	$(BIN)/pybabel update -D flask_flows -i $(CATALOGUES)/flask_flows.pot -d $(CATALOGUES) \
		--no-fuzzy-matching
	$(BIN)/pybabel compile -D flask_flows -d $(CATALOGUES) --statistics

bench: $(stamp) ## Install the peers and run the benchmarks; writes docs/performance.md and .png.
	$(BIN)/pip install -r bench/requirements.txt
	cd bench && ../$(BIN)/python run.py
