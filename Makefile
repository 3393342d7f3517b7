# `make demo` and `make test` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.advx-installed
SETUP_INPUTS := pyproject.toml scripts/setup.sh $(wildcard scripts/setup.d/*.sh)

.PHONY: setup demo test test-slow lint typecheck bench clean

$(STAMP): $(SETUP_INPUTS)
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/advx demo

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

# pytest exits 5 when it collects no tests: treat that as the failure it is.
test: setup lint typecheck
	@$(BIN)/python -m pytest -m "not slow" -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-slow: setup
	$(BIN)/python -m pytest -m slow -q

bench: setup
	bash bench/setup.sh && bench/.venv/bin/python bench/whitebox.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs
