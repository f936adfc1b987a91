# The two commands of the README. Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint bench regen-refs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)  ## simulate runs I-III -> cut flows -> background -> limits -> report in results/
	$(BIN)/na64ana demo --out results

test: $(STAMP)  ## the whole test suite (unit, integration, regression, notebooks) and the docstring examples
	$(BIN)/python -m pytest -q --doctest-modules src/na64ana tests

test-fast: $(STAMP)  ## unit tests and docstring examples only (the edit loop, < 60 s)
	$(BIN)/python -m pytest -q --doctest-modules src/na64ana tests -m "not slow and not dask" \
		--ignore=tests/integration

lint: $(STAMP)  ## ruff on everything, mypy on the package
	$(BIN)/ruff check .
	$(BIN)/mypy src/na64ana

regen-refs: $(STAMP)  ## regenerate the CI cut-flow references after an intended change
	$(BIN)/python tests/regression.py --write

clean:
	rm -rf $(VENV) results
