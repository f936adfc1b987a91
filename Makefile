# The two commands of the README. Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench regen-refs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)  ## simulate runs I-III -> cut flows -> background -> limits -> report in results/
	$(BIN)/na64ana demo --out results

test: $(STAMP)  ## the whole test suite (unit, regression, notebooks)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .

regen-refs: $(STAMP)  ## regenerate the CI cut-flow references after an intended change
	$(BIN)/python -m na64ana.regression --write

clean:
	rm -rf $(VENV) results
