"""Blinding of the signal box: a security property, enforced before anything is filled.

The blinded region is the box in the (E_ECAL, E_HCAL) plane, B = {E_ECAL < box edge AND E_HCAL < HCAL
threshold}, at *every* stage of the cut flow. Removing only the final box row is not enough: the box
content would leak as N(HCAL row) - N(side band C). So for data, unless ``--unblind`` is given, events in
B are dropped right after the event count is taken: every later cut-flow row, histogram and region count
is computed from events outside B; the box row and the signal-box count are reported as null. Simulated
samples (kind "mc") are never blinded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import published
from .selection import Resolved

NOTE = ("blinded: row 0 counts all events read; every later row counts only events outside the blinded "
        "region B = {E_ECAL < %(ecal).6g GeV and E_HCAL < %(hcal).6g GeV}; the signal-box row is hidden")

# The one blinding field of every stage record (provenance and typed records):
# "blinded" = data were read and no signal-box content is in the outputs, "unblinded" = the box was
# opened (--unblind), "no-data" = only simulation was read, so blinding does not apply.
Blinding = Literal["blinded", "unblinded", "no-data"]
BLINDING_STATES: tuple[Blinding, ...] = ("blinded", "unblinded", "no-data")


def state(blinded: bool | None) -> Blinding:
    """The blinding field from a data flag: True -> "blinded", False -> "unblinded", None -> "no-data"."""
    return "no-data" if blinded is None else "blinded" if blinded else "unblinded"


def combine(states: Iterable[Blinding]) -> Blinding:
    """The state of a product made from several inputs: blinded as soon as one data input is blinded,
    unblinded when every data input is opened, no-data when none is data."""
    got = set(states)
    if "blinded" in got:
        return "blinded"
    return "unblinded" if "unblinded" in got else "no-data"


@dataclass(frozen=True)
class SignalBox:
    """The signal box B = {E_ECAL < ecal_max and E_HCAL < hcal_max} (GeV): the one box type.

    The selection files declare it (``[box]``, :class:`na64ana.selection.Box` is that file's schema), the
    resolved selection and every run output record it (cut flows: ``blinded_region``, provenance:
    ``selections.<key>.box``), and everything downstream (outputs, audit, plots) reads it as this.
    The defaults are the published box (PRL 123 121801)."""

    ecal_max: float = float(published.get("selection.signal_box_ecal_max_GeV"))
    hcal_max: float = float(published.get("detector.hcal_zero_threshold_GeV"))

    @classmethod
    def of(cls, sel: Resolved | Mapping[str, Any]) -> SignalBox | None:
        """The box of a resolved selection or of its recorded form (``Resolved.as_dict()``)."""
        if isinstance(sel, Resolved):
            return cls(sel.box_ecal_max, sel.box_hcal_max)
        box = sel.get("box") or {}
        if box.get("ecal_max") is None or box.get("hcal_max") is None:
            return None
        return cls(float(box["ecal_max"]), float(box["hcal_max"]))

    def as_dict(self) -> dict[str, float]:
        return {"ecal_max": self.ecal_max, "hcal_max": self.hcal_max}


def is_blinded(kind: str, unblind: bool) -> bool:
    """Data are blinded unless explicitly unblinded; MC never is."""
    return kind == "data" and not unblind


def region_mask(sel: Resolved, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Events inside B. NaN/inf are outside B (they fail every cut anyway, and are counted)."""
    return (values["ecal_e"] < sel.box_ecal_max) & (values["hcal_e"] < sel.box_hcal_max)


def note(sel: Resolved) -> str:
    return NOTE % {"ecal": sel.box_ecal_max, "hcal": sel.box_hcal_max}


# ------------------------------------------------------------------------------------------------------
# Which cut-flow rows and regions lie in the box: the one rule, on the recorded (JSON) form of a selection,
# so the run outputs (from the resolved selection) and the audit (from provenance.json) apply the same code.

Bounds = Sequence[Mapping[str, Any]]  # requirements as recorded: {"variable", "min"?, "max"?, "equals"?}


def _recorded(sel: Resolved | Mapping[str, Any]) -> Mapping[str, Any]:
    return sel.as_dict() if isinstance(sel, Resolved) else sel


def bounded(reqs: Bounds, variable: str, edge: float | None) -> bool:
    """Some requirement keeps ``variable`` below ``edge`` (an upper cut at or under it)."""
    return edge is not None and any(r.get("variable") == variable and r.get("max") is not None
                                    and float(r["max"]) <= edge for r in reqs)


def hidden_cuts(sel: Resolved | Mapping[str, Any]) -> set[str]:
    """Cut-flow rows that are null when blinded: the rows at and after the first cut whose pass region
    lies entirely inside B (requires ecal_e < box edge with E_HCAL already below threshold)."""
    rec = _recorded(sel)
    box = SignalBox.of(rec)
    if box is None:
        return set()
    hidden: set[str] = set()
    hcal_ok = False
    for c in rec.get("cuts", []):
        reqs = c.get("requires", [])
        hcal_ok |= bounded(reqs, "hcal_e", box.hcal_max)
        if hidden or (hcal_ok and bounded(reqs, "ecal_e", box.ecal_max)):
            hidden.add(str(c["name"]))
    return hidden


def hidden_regions(sel: Resolved | Mapping[str, Any]) -> set[str]:
    """Regions lying inside B (E_ECAL and E_HCAL both bounded by the box edges): null when blinded."""
    rec = _recorded(sel)
    box = SignalBox.of(rec)
    if box is None:
        return set()
    return {name for name, reqs in (rec.get("regions") or {}).items()
            if bounded(reqs, "ecal_e", box.ecal_max) and bounded(reqs, "hcal_e", box.hcal_max)}


def hist_metadata(blinded_runs: Mapping[str, Resolved]) -> dict[str, Any]:
    """Flag attached to every histogram: which runs were blinded, and the box removed for each."""
    return {
        "blinded": bool(blinded_runs),
        "blinded_region": {k: SignalBox(s.box_ecal_max, s.box_hcal_max).as_dict()
                           for k, s in sorted(blinded_runs.items())},
    }


# ------------------------------------------------------------------------------------------------------
# The box belongs to the campaign (issue #13 item 2): a blinded run hides exactly the campaign's box.


def _same(a: float, b: float) -> bool:
    return math.isfinite(a) and abs(a - b) <= 1e-9 * max(1.0, abs(b))


def check_campaign_box(sel: Resolved, box: SignalBox, *, file: str | None = None, key: str = "") -> None:
    """Refuse (InputError, exit 2) a selection that moves, widens, NaNs or bypasses the campaign's box
    ``box`` (datasets.json, with its source) for blinded data: its box edges must be the campaign's, every
    cut requirement on E_ECAL/E_HCAL from above must be at the box edge, and a region bounded from above
    in both E_ECAL and E_HCAL (a box-like region) must use exactly the box edges. Only ``--unblind`` lifts
    this (then nothing is hidden anyway)."""
    from .errors import InputError

    overridden = {t for t, _ in sel.sources}
    where = f" (dataset {key})" if key else ""
    for name, got, want in (("ecal_max", sel.box_ecal_max, box.ecal_max),
                            ("hcal_max", sel.box_hcal_max, box.hcal_max)):
        if not _same(float(got), want):
            fld = f"override[box.{name}]" if f"box.{name}" in overridden else f"box.{name}"
            raise InputError(f"the signal box belongs to the campaign: box.{name} = {got} differs from the "
                             f"campaign's {want:g} GeV{where}; refused for blinded data (only --unblind "
                             "opens the box)", file=file, field=fld)
    edge = {"ecal_e": box.ecal_max, "hcal_e": box.hcal_max}
    for c in sel.cuts:
        for r in c.requires:
            if r.variable in edge and r.max is not None and not _same(float(r.max), edge[r.variable]):
                raise InputError(f"cut '{c.name}' requires {r.variable} < {r.max}, not the campaign's box "
                                 f"edge {edge[r.variable]:g} GeV{where}: a box cut of its own is refused for "
                                 "blinded data (only --unblind)", file=file,
                                 field=f"cuts.{c.name}.{r.variable}")
    for name, reqs in sel.regions:
        ups = {r.variable: r.max for r in reqs if r.variable in edge and r.max is not None}
        lows = {r.variable for r in reqs if r.variable in edge and r.min is not None
                and float(r.min) >= edge[r.variable]}
        if len(ups) == 2 and not lows and not all(_same(float(v), edge[k]) for k, v in ups.items()):
            raise InputError(f"region '{name}' is a box with edges {ups} other than the campaign's "
                             f"{edge}{where}: refused for blinded data (only --unblind)", file=file,
                             field=f"regions.{name}")
