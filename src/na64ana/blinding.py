"""Blinding of the signal box: a security property, enforced before anything is filled.

The blinded region is the box in the (E_ECAL, E_HCAL) plane, B = {E_ECAL < box edge AND E_HCAL < HCAL
threshold}, at *every* stage of the cut flow. Removing only the final box row is not enough: the box
content would leak as N(HCAL row) - N(side band C). So for data, unless ``--unblind`` is given, events in
B are dropped right after the event count is taken: every later cut-flow row, histogram and region count
is computed from events outside B; the box row and the signal-box count are reported as null. Simulated
samples (kind "mc") are never blinded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .selection import Resolved

NOTE = ("blinded: row 0 counts all events read; every later row counts only events outside the blinded "
        "region B = {E_ECAL < %(ecal).6g GeV and E_HCAL < %(hcal).6g GeV}; the signal-box row is hidden")


def is_blinded(kind: str, unblind: bool) -> bool:
    """Data are blinded unless explicitly unblinded; MC never is."""
    return kind == "data" and not unblind


def region_mask(sel: Resolved, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Events inside B. NaN/inf are outside B (they fail every cut anyway, and are counted)."""
    return (values["ecal_e"] < sel.box_ecal_max) & (values["hcal_e"] < sel.box_hcal_max)


def note(sel: Resolved) -> str:
    return NOTE % {"ecal": sel.box_ecal_max, "hcal": sel.box_hcal_max}


def hidden_cuts(sel: Resolved) -> set[str]:
    """Cut-flow rows that are null when blinded: the rows at and after the first cut whose pass region
    lies entirely inside B (requires ecal_e < box edge with E_HCAL already below threshold)."""
    hidden: set[str] = set()
    hcal_ok = False
    for c in sel.cuts:
        for r in c.requires:
            if r.variable == "hcal_e" and r.max is not None and r.max <= sel.box_hcal_max:
                hcal_ok = True
        ecal_in = any(r.variable == "ecal_e" and r.max is not None and r.max <= sel.box_ecal_max
                      for r in c.requires)
        if hidden or (hcal_ok and ecal_in):
            hidden.add(c.name)
    return hidden


def hist_metadata(blinded_runs: Mapping[str, Resolved]) -> dict[str, Any]:
    """Flag attached to every histogram: which runs were blinded, and the box removed for each."""
    return {
        "blinded": bool(blinded_runs),
        "blinded_region": {k: {"ecal_max": s.box_ecal_max, "hcal_max": s.box_hcal_max}
                           for k, s in sorted(blinded_runs.items())},
    }
