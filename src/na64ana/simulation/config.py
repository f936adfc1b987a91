"""Simulator parameters: published numbers from ``published.toml``, tuning knobs from ``simulation.toml``.

Two sources on purpose: a published number is read by its key in ``published.toml`` (with its source); a
number invented to make the simulation NA64-like lives in ``simulation.toml`` with an APPROX note saying
how it was derived. Nothing numeric is hard-coded in the simulation modules.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache
from importlib import resources
from typing import Any

from .. import published


@cache
def _table() -> dict[str, Any]:
    with resources.files("na64ana").joinpath("data/simulation.toml").open("rb") as f:
        return tomllib.load(f)


def tune(key: str) -> Any:
    """Tuning value for dotted ``key`` in simulation.toml; KeyError names the missing part."""
    node: Any = _table()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"simulation.toml has no entry '{key}'")
        node = node[part]
    if not isinstance(node, dict) or "value" not in node:
        raise KeyError(f"simulation.toml: '{key}' is a section, not a value entry")
    return node["value"]


def pub(key: str) -> Any:
    """Published value (alias of :func:`na64ana.published.get`, kept short for the physics code)."""
    return published.get(key)


def rate_per_s(intensity_per_spill: Any) -> Any:
    """Beam particles per second within a spill."""
    return intensity_per_spill / pub("beam.spill_length_s")


@cache
def ecal_pileup_window_ns() -> float:
    """ECAL pile-up window such that the flag costs the published ~8% at the run-III midpoint intensity."""
    loss = pub("efficiency.prl2019_pileup_loss_high_intensity")
    rate = rate_per_s(tune("pileup.ecal_reference_intensity"))
    return -math.log(1.0 - loss) / rate * 1e9


def pileup_windows_ns() -> dict[str, float]:
    """The three pile-up windows (ECAL, tracker, halo in VETO/HCAL), ns."""
    return {"ecal": ecal_pileup_window_ns(), "tracker": tune("pileup.tracker_window_ns"),
            "halo": tune("pileup.halo_window_ns")}
