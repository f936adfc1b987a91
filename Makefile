# The two commands of the README. Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint lock notebook regen-refs clean

# The environment is installed from requirements.lock (every package pinned, with hashes), then the package
# itself without dependencies: the same versions on every machine and a year from now.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)  ## simulate runs I-III -> cut flows -> background -> limits -> report in results/
	$(BIN)/na64ana demo --out results

test: $(STAMP)  ## the whole test suite (unit, integration, regression, notebooks) and the docstring examples
	$(BIN)/python -m pytest -q --doctest-modules src/na64ana processors tests

# test-fast: --dist loadscope keeps each test module on one process, so a module fixture is built once.
test-fast: $(STAMP)  ## unit tests and docstring examples only (the edit loop), on 2 processes (pytest-xdist)
	$(BIN)/python -m pytest -q --doctest-modules src/na64ana processors tests -m "not slow and not dask" \
		--ignore=tests/integration -n 2 --dist loadscope

lint: $(STAMP)  ## ruff on everything, mypy on the package
	$(BIN)/ruff check .
	$(BIN)/mypy src/na64ana

lock: $(STAMP)  ## re-resolve requirements.lock from pyproject.toml (newest allowed versions), with hashes
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 --no-annotate \
		--quiet -o requirements.lock

notebook: $(STAMP)  ## JupyterLab on the notebooks (installs the [notebook] extra)
	$(BIN)/python -m pip install --quiet -e ".[notebook]"
	$(BIN)/jupyter lab notebooks/

regen-refs: $(STAMP)  ## regenerate the CI cut-flow references after an intended change
	$(BIN)/python tests/regression.py --write

clean:
	rm -rf $(VENV) results
