# Two commands: `make demo` and `make test`. Each builds its own virtual environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs bench lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mls-sync demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

# The documentation site (docs/, mkdocs.yml) into site/; --strict fails on any warning, a
# broken link or anchor included. The reference pages are generated from the code.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The docs' Performance page (several minutes: the budget is 2 requests/s per credential).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sync.py --sizes 100x1,1000x1,1000x10,10000x100

lint: $(STAMP)
	$(BIN)/ruff check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache data
