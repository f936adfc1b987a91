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
    >>> s = na.load_search("invisible_2016_2018")
    >>> s.campaigns, s.selection, s.statistics.cl
    (['prl2019'], 'invisible', 0.9)
    >>> [n for n in na.__all__ if n.startswith("run_")][:3]
    ['run_background', 'run_efficiency', 'run_hepdata']
    >>> na.InputError("must be > 0", file="summary.json", field="runs.0.eot").__str__()
    'summary.json:runs.0.eot: must be > 0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> (module, attribute): the public API, loaded on first access (PEP 562).
_LAZY: dict[str, tuple[str, str]] = {
    # definitions: what to analyse, as data
    "load_datasets": ("na64ana.datasets", "load"),
    "Datasets": ("na64ana.datasets", "Datasets"),
    "load_selection": ("na64ana.selection", "load"),
    "resolve_selection": ("na64ana.selection", "resolve"),
    "load_search": ("na64ana.searches", "load"),
    "available_searches": ("na64ana.searches", "available"),
    "SearchDefinition": ("na64ana.searches", "SearchDefinition"),
    "repo_root": ("na64ana.bookkeeping.locations", "repo_root"),
    # stages, in the order data flows: run_* writes a folder + provenance, compute_* only computes
    "plan": ("na64ana.processing.execute", "plan"),
    "process": ("na64ana.processing.execute", "run"),
    "run_processing": ("na64ana.processing.stage", "run_stage"),
    "compute_background": ("na64ana.background", "compute"),
    "run_background": ("na64ana.background", "run_stage"),
    "run_efficiency": ("na64ana.efficiency", "run_stage"),
    "compute_summary": ("na64ana.summary", "compute"),
    "run_summary": ("na64ana.summary", "run_stage"),
    "load_summary": ("na64ana.summary", "load"),
    "compute_limits": ("na64ana.stats.limits", "compute"),
    "run_limits": ("na64ana.stats.limits", "run_stage"),
    "run_optimisation": ("na64ana.studies.optimise", "run_stage"),
    "run_report": ("na64ana.presentation.report", "run_stage"),
    "run_hepdata": ("na64ana.presentation.hepdata", "run_stage"),
    "demo": ("na64ana.pipeline", "demo"),
    "signal_yield": ("na64ana.physics.yields", "signal_yield"),
    # typed records the stages exchange (schemas in docs/interfaces.md)
    "Summary": ("na64ana.summary", "Summary"),
    "RunOutput": ("na64ana.records", "RunOutput"),
    "Cutflow": ("na64ana.records", "Cutflow"),
    "Regions": ("na64ana.records", "Regions"),
    "BackgroundTable": ("na64ana.records", "BackgroundTable"),
    "EfficiencyTable": ("na64ana.records", "EfficiencyTable"),
    "LimitsRecord": ("na64ana.records", "LimitsRecord"),
    "SignalBox": ("na64ana.blinding", "SignalBox"),
    "Results": ("na64ana.presentation.results", "Results"),
    # trust
    "verify": ("na64ana.bookkeeping.provenance", "check"),
    "scan_blinding": ("na64ana.bookkeeping.audit", "scan_blinding"),
    # errors
    "Na64Error": ("na64ana.errors", "Na64Error"),
    "InputError": ("na64ana.errors", "InputError"),
    "DataError": ("na64ana.errors", "DataError"),
    "OutputError": ("na64ana.errors", "OutputError"),
}
# A lazy name never equals a submodule's name: `from na64ana import background` must stay the module.
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
