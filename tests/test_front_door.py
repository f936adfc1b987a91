"""The front door: ``import na64ana as na`` is cheap, every public name resolves, none shadows a submodule."""

from __future__ import annotations

import pkgutil
import pydoc
import subprocess
import sys

import pytest

import na64ana as na

HEAVY = ("coffea", "pyhf", "matplotlib", "uproot", "awkward", "scipy", "dask", "numpy", "pydantic")


def test_import_is_cheap():
    code = f"import sys, na64ana; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import na64ana pulled in {out.stdout.strip()}"


@pytest.mark.parametrize("name", sorted(na._LAZY))
def test_every_public_name_resolves(name):
    assert getattr(na, name) is not None


def test_no_public_name_shadows_a_submodule():
    # `from na64ana import background` must stay the module: a lazy attribute of the same name would win
    modules = {m.name for m in pkgutil.iter_modules(na.__path__)}
    assert not set(na._LAZY) & modules
    from na64ana import background, summary

    assert background.__name__ == "na64ana.background" and summary.__name__ == "na64ana.summary"


def test_dir_and_help_show_the_stages_and_types():
    listed = dir(na)
    for name in ("run_processing", "run_background", "run_summary", "run_limits", "run_report", "demo",
                 "Summary", "BackgroundTable", "LimitsRecord", "load_search", "verify"):
        assert name in listed and name in na.__all__
    text = pydoc.render_doc(na, renderer=pydoc.plaintext)
    assert "Data flows one way" in text and "run_limits" in text


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        na.nonsense  # noqa: B018


# every analysis module: the package minus the simulator, the CLI and the demo pipeline (which drive it)
NOT_ANALYSIS = ("na64ana.simulation", "na64ana.cli", "na64ana.pipeline")
IMPORT_ALL_ANALYSIS = f"""
import importlib, pkgutil, sys
import na64ana

def walk(path, prefix):
    for m in pkgutil.iter_modules(path, prefix):
        if m.name.startswith({NOT_ANALYSIS!r}):
            continue
        mod = importlib.import_module(m.name)
        yield m.name
        if m.ispkg:
            yield from walk(mod.__path__, m.name + ".")

names = [*walk(na64ana.__path__, "na64ana."), "na64ana.processors", "na64ana.selections"]
for n in names[-2:]:
    importlib.import_module(n)
print(len(names))
print(" ".join(sorted(m for m in sys.modules if m.startswith("na64ana.simulation"))))
"""


def test_the_analysis_never_imports_the_simulator():
    """Importing every analysis module (stages, studies, stats, processing, presentation, bookkeeping,
    processors) loads no na64ana.simulation module: a collaborator's real ntuples need no simulator."""
    res = subprocess.run([sys.executable, "-c", IMPORT_ALL_ANALYSIS], capture_output=True, text=True,
                         check=True)
    count, bad = (res.stdout.splitlines() + [""])[:2]
    assert int(count) > 40, res.stdout  # the walk reached the subpackages
    assert bad == "", f"the analysis imported {bad}"
