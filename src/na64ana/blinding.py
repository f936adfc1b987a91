"""Blinding of the signal box: a security property, enforced before anything is filled.

The blinded region is the box in the (E_ECAL, E_HCAL) plane, B = {E_ECAL < box edge AND E_HCAL < HCAL
threshold}, at *every* stage of the cut flow. Each search has its blinded region, and this module is its
one rule (:data:`RULES`, :func:`blinded_mask`, :func:`hidden_cuts`, :func:`hidden_regions`): the invisible
mode (and the dimuon benchmark) hide B; the ALP search hides B and its two signal regions ``hcal_decay``
and ``beyond`` (:data:`ALP_SIGNAL_REGIONS`); the visible mode hides its box E_WCAL + E_ECAL in the window of
the cut ``energy_sum`` (:func:`visible_window`) with E_ECAL above the edge of the cut ``ecal_min``
(:func:`visible_ecal_min`: the e+ e- pair in the ECAL; a beam electron absorbed in the WCAL stays visible).
Every processor applies it through
``SelectionProcessor.blinded_region``; the run outputs and the audit read the same rule.

Removing only the final box row is not enough: the box
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
from .errors import InputError
from .selection import Resolved, region_masks

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


# ------------------------------------------------------------------------------------------------------
# The blinded region of each search (one rule for every processor)

Rule = Literal["invisible", "alp", "visible"]
RULES: tuple[Rule, ...] = ("invisible", "alp", "visible")
#: the rule each processor applies (a processor not listed applies the invisible box, the safe default)
PROCESSOR_RULES: dict[str, Rule] = {"invisible": "invisible", "dimuon": "invisible", "alp": "alp",
                                    "visible": "visible"}
#: the ALP signal regions (selections/alp.toml): an OR, both hidden, besides the A' box B
ALP_SIGNAL_REGIONS = ("hcal_decay", "beyond")
#: the visible-mode box is the E_WCAL + E_ECAL window of this cut (selections/visible.toml) ...
VISIBLE_BOX_CUT = "energy_sum"
#: ... among the events with the e+ e- pair's energy in the ECAL: E_ECAL at least the lower edge of this cut
#: (an ordinary beam electron, absorbed in the WCAL with E_ECAL ~ 0, has E_WCAL + E_ECAL = E0 too: it is no
#: signal candidate and stays visible, so the cut flow and the planes show the beam)
VISIBLE_ECAL_CUT = "ecal_min"
#: the region counts a visible-mode run derives from that window; ``signal_box`` is the box itself
VISIBLE_SIDEBAND_WIDTHS = 2.0
#: the variables each rule needs to decide (the processor computes them)
RULE_VARIABLES: dict[Rule, tuple[str, ...]] = {"invisible": ("ecal_e", "hcal_e"),
                                               "alp": ("ecal_e", "hcal_e"), "visible": ("e_sum", "ecal_e")}


def rule_of(processor: str | None) -> Rule:
    """The blinding rule of a processor (by name, as provenance records it)."""
    return PROCESSOR_RULES.get(str(processor or ""), "invisible")


def _requirements(rec: Mapping[str, Any], cut: str, variable: str) -> list[Mapping[str, Any]]:
    """The requirements on ``variable`` of the cut named ``cut`` in a recorded selection (in order)."""
    return [r for c in rec.get("cuts", []) if c.get("name") == cut
            for r in c.get("requires", []) if r.get("variable") == variable]


def visible_window(sel: Resolved | Mapping[str, Any]) -> tuple[float, float]:
    """[lo, hi) of E_WCAL + E_ECAL: the window of the ``energy_sum`` cut (resolved or recorded form).
    ValueError when the selection has none: a visible run without a box is refused, never unblinded."""
    rec = _recorded(sel)
    for r in _requirements(rec, VISIBLE_BOX_CUT, "e_sum"):
        if r.get("min") is not None and r.get("max") is not None:
            lo, hi = float(r["min"]), float(r["max"])
            if math.isfinite(lo) and math.isfinite(hi) and lo < hi:
                return lo, hi
    raise ValueError(f"selection '{rec.get('name')}' has no '{VISIBLE_BOX_CUT}' cut with a finite e_sum "
                     "window: no visible box to blind")


def visible_ecal_min(sel: Resolved | Mapping[str, Any]) -> float | None:
    """The lower E_ECAL edge of the visible box: the ``min`` on ``ecal_e`` of the cut ``ecal_min`` (resolved
    or recorded form); None without such a cut (then the box is the whole E_WCAL + E_ECAL window: more is
    hidden, never less)."""
    for r in _requirements(_recorded(sel), VISIBLE_ECAL_CUT, "ecal_e"):
        if r.get("min") is not None and math.isfinite(float(r["min"])):
            return float(r["min"])
    return None


def visible_windows(sel: Resolved | Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The visible-mode regions in E_WCAL + E_ECAL: ``signal_box`` = [lo, hi) and two side bands of
    :data:`VISIBLE_SIDEBAND_WIDTHS` box widths each."""
    lo, hi = visible_window(sel)
    w = VISIBLE_SIDEBAND_WIDTHS * (hi - lo)
    return {"signal_box": (lo, hi), "sideband_low": (lo - w, lo), "sideband_high": (hi, hi + w)}


def blinded_mask(sel: Resolved, values: Mapping[str, np.ndarray], rule: Rule = "invisible",
                 regions: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Events inside the blinded region of ``rule`` (NaN/inf are outside: they fail every cut anyway).

    ``regions``: the selection's region masks if already evaluated (:func:`na64ana.selection.region_masks`).
    A selection that lacks what its rule needs is a ValueError: nothing is ever left unblinded silently."""
    if rule == "visible":
        lo, hi = visible_window(sel)
        e = values["e_sum"]
        inside = (e >= lo) & (e < hi)
        ecal_min = visible_ecal_min(sel)
        return inside if ecal_min is None else inside & (values["ecal_e"] >= ecal_min)
    out = region_mask(sel, values)
    if rule == "alp":
        regions = region_masks(sel, values) if regions is None else regions
        missing = [r for r in ALP_SIGNAL_REGIONS if r not in regions]
        if missing:
            raise ValueError(f"selection '{sel.name}' has no region '{missing[0]}': nothing to blind")
        out = out.copy()
        for r in ALP_SIGNAL_REGIONS:
            out |= regions[r]
    elif rule != "invisible":
        raise ValueError(f"unknown blinding rule '{rule}' (one of {', '.join(RULES)})")
    return out


def describe(sel: Resolved | Mapping[str, Any], rule: Rule = "invisible") -> dict[str, Any]:
    """The blinded region of one run as recorded with its outputs (histogram metadata): the box edges
    (invisible, ALP: plus the hidden regions) or the visible E_WCAL + E_ECAL window."""
    if rule == "visible":
        lo, hi = visible_window(sel)
        return {"rule": rule, "e_sum_min": lo, "e_sum_max": hi, "ecal_min": visible_ecal_min(sel)}
    box = SignalBox.of(sel if isinstance(sel, Resolved) else _recorded(sel))
    out: dict[str, Any] = box.as_dict() if box is not None else {}
    if rule == "alp":
        out.update(rule=rule, regions=list(ALP_SIGNAL_REGIONS))
    return out


def note(sel: Resolved, rule: Rule = "invisible") -> str:
    if rule == "visible":
        lo, hi = visible_window(sel)
        ecal_min = visible_ecal_min(sel)
        ecal = "" if ecal_min is None else f" AND E_ECAL >= {ecal_min:.6g} GeV"
        return ("blinded: row 0 counts all events read; every later row counts only events outside the "
                f"blinded region B = {{{lo:.6g} <= E_WCAL + E_ECAL < {hi:.6g} GeV{ecal}}}; "
                "the box row is hidden")
    text = NOTE % {"ecal": sel.box_ecal_max, "hcal": sel.box_hcal_max}
    if rule == "alp":
        text += "; the signal regions " + " and ".join(ALP_SIGNAL_REGIONS) + " are removed and hidden too"
    return text


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


def hidden_cuts(sel: Resolved | Mapping[str, Any], rule: Rule = "invisible") -> set[str]:
    """Cut-flow rows that are null when blinded: the rows at and after the first cut whose pass region
    lies entirely inside B (requires ecal_e < box edge with E_HCAL already below threshold); for the
    visible rule the rows at and after the box cut ``energy_sum``."""
    rec = _recorded(sel)
    if rule == "visible":
        names = [str(c["name"]) for c in rec.get("cuts", [])]
        return set(names[names.index(VISIBLE_BOX_CUT):]) if VISIBLE_BOX_CUT in names else set()
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


def hidden_regions(sel: Resolved | Mapping[str, Any], rule: Rule = "invisible") -> set[str]:
    """Regions lying inside the blinded region, null when blinded: those inside B (E_ECAL and E_HCAL both
    bounded by the box edges), the ALP signal regions, the visible ``signal_box``."""
    if rule == "visible":
        return {"signal_box"}
    rec = _recorded(sel)
    box = SignalBox.of(rec)
    out = set(ALP_SIGNAL_REGIONS) if rule == "alp" else set()
    if box is None:
        return out
    return out | {name for name, reqs in (rec.get("regions") or {}).items()
                  if bounded(reqs, "ecal_e", box.ecal_max) and bounded(reqs, "hcal_e", box.hcal_max)}


def hist_metadata(blinded_runs: Mapping[str, Resolved], rule: Rule = "invisible") -> dict[str, Any]:
    """Flag attached to every histogram: which runs were blinded, and the region removed for each."""
    return {
        "blinded": bool(blinded_runs),
        "blinded_region": {k: describe(s, rule) for k, s in sorted(blinded_runs.items())},
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
    _check_box_edges(sel, box, file=file, key=key)
    where = f" (dataset {key})" if key else ""
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


def _check_box_edges(sel: Resolved, box: SignalBox, *, file: str | None, key: str) -> None:
    """The selection's [box] edges are the campaign's (InputError naming the field otherwise)."""
    overridden = {t for t, _ in sel.sources}
    where = f" (dataset {key})" if key else ""
    for name, got, want in (("ecal_max", sel.box_ecal_max, box.ecal_max),
                            ("hcal_max", sel.box_hcal_max, box.hcal_max)):
        if not _same(float(got), want):
            fld = f"override[box.{name}]" if f"box.{name}" in overridden else f"box.{name}"
            raise InputError(f"the signal box belongs to the campaign: box.{name} = {got} differs from the "
                             f"campaign's {want:g} GeV{where}; refused for blinded data (only --unblind "
                             "opens the box)", file=file, field=fld)


def check_campaign_region(rule: Rule, sel: Resolved, box: SignalBox | None, reference: Resolved | None, *,
                          file: str | None = None, key: str = "", search_cuts: bool = True) -> None:
    """Refuse (InputError, exit 2) a selection that moves the blinded region of ``rule`` for blinded data.

    invisible: :func:`check_campaign_box` (``search_cuts=False``: only the box edges, for a selection that
    is not the search's, e.g. the dimuon benchmark whose E_ECAL cut is not a box cut). ALP: the box edges
    are the campaign's and the signal regions (:data:`ALP_SIGNAL_REGIONS`) are those of the packaged
    selection ``reference`` resolved for the same campaign and run. Visible: the ``energy_sum`` window is
    the packaged one. Only ``--unblind`` lifts it."""
    where = f" (dataset {key})" if key else ""
    if rule == "invisible":
        if box is not None and search_cuts:
            check_campaign_box(sel, box, file=file, key=key)
        elif box is not None:
            _check_box_edges(sel, box, file=file, key=key)
        return
    if rule == "alp":
        if box is not None:
            _check_box_edges(sel, box, file=file, key=key)
        mine, ref = dict(sel.regions), dict(reference.regions) if reference is not None else {}
        for name in ALP_SIGNAL_REGIONS:
            if name not in mine:
                raise InputError(f"the ALP signal region '{name}' is missing{where}: nothing to blind; "
                                 "refused for blinded data", file=file, field=f"regions.{name}")
            if reference is not None and set(mine[name]) != set(ref.get(name, ())):
                raise InputError(f"the ALP signal region '{name}' differs from the packaged selection's"
                                 f"{where}: the blinded region belongs to the search, refused for blinded "
                                 "data (only --unblind)", file=file, field=f"regions.{name}")
        return
    if rule == "visible":
        try:
            got = visible_window(sel)
        except ValueError as exc:
            raise InputError(f"{exc}{where}", file=file, field=f"cuts.{VISIBLE_BOX_CUT}") from None
        if reference is not None:
            want = visible_window(reference)
            if not (_same(got[0], want[0]) and _same(got[1], want[1])):
                raise InputError(f"the visible box E_WCAL + E_ECAL in [{got[0]:g}, {got[1]:g}) differs from "
                                 f"the campaign's [{want[0]:g}, {want[1]:g}) GeV{where}: refused for blinded "
                                 "data (only --unblind)", file=file, field=f"cuts.{VISIBLE_BOX_CUT}.e_sum")
        return
    raise ValueError(f"unknown blinding rule '{rule}'")
