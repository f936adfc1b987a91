"""na64ana: NA64's dark-sector searches end to end, from event ntuples to published-quality limits.

The front door for notebooks and scripts: ``import na64ana as na`` gives the stages in the order data
flows and the types they exchange. Everything is loaded on first use, so ``import na64ana`` stays cheap
(it imports neither coffea, pyhf nor matplotlib).

Data flows one way::

    datasets.json + selections/*.toml + searches/*.toml       (definitions: what to analyse, as data)
      -> processing (coffea processors over the ntuples)     -> run outputs: cut flows, regions, hists
      -> background (side bands), efficiency (signal MC)     -> yields summary (or one written by hand)
      -> statistical model + exact CLs limits                -> plots, report, HEPData

Examples:
    >>> import na64ana as na
    >>> na.__version__
    '0.1.0'
    >>> ds = na.load_datasets(na.repo_root() / "datasets.json")
    >>> ds.default_campaign
    'prl2019'
    >>> sorted(ds.campaign("prl2019").runs)
    ['I', 'II', 'III']
    >>> "demo" in dir(na) and "Summary" in na.__all__
    True
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> (module, attribute): the public API, loaded on first access (PEP 562).
_LAZY: dict[str, tuple[str, str]] = {
    # definitions
    "load_datasets": ("na64ana.datasets", "load"),
    "Datasets": ("na64ana.datasets", "Datasets"),
    "load_selection": ("na64ana.selection", "load"),
    "resolve_selection": ("na64ana.selection", "resolve"),
    "repo_root": ("na64ana.bookkeeping.locations", "repo_root"),
    # stages, in flow order
    "plan": ("na64ana.processing.execute", "plan"),
    "process": ("na64ana.processing.execute", "run"),
    "background_table": ("na64ana.background", "table_from_run"),
    "measure_efficiency": ("na64ana.efficiency", "measure"),
    "load_summary": ("na64ana.summary", "load"),
    "Summary": ("na64ana.summary", "Summary"),
    "scan_limits": ("na64ana.stats.limits", "scan"),
    "make_plots": ("na64ana.presentation.report", "make_plots"),
    "build_report": ("na64ana.presentation.report", "build_report"),
    "export_hepdata": ("na64ana.presentation.hepdata", "export_hepdata"),
    "Results": ("na64ana.presentation.results", "Results"),
    "demo": ("na64ana.pipeline", "demo"),
    # trust
    "verify": ("na64ana.bookkeeping.provenance", "check"),
    "scan_blinding": ("na64ana.bookkeeping.audit", "scan_blinding"),
    # errors
    "Na64Error": ("na64ana.errors", "Na64Error"),
    "InputError": ("na64ana.errors", "InputError"),
    "DataError": ("na64ana.errors", "DataError"),
    "OutputError": ("na64ana.errors", "OutputError"),
}
# Subpackages reachable as attributes (na.physics.yields, na.stats.cls, ...).
_SUBMODULES = ("physics", "stats", "processing", "presentation", "studies", "bookkeeping", "simulation",
               "cli")

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # cache: later lookups do not come back here
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'na64ana' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
