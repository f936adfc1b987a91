"""The visible-mode (A' -> e+ e-) processor: cut flow, N-1, (E_WCAL, E_ECAL) planes, E_WCAL + E_ECAL regions.

Why its own chunk loop: :class:`SelectionProcessor` hard-wires the invisible blinded region (E_ECAL < a and
E_HCAL < b), but the visible blind box is E_WCAL + E_ECAL in [0.9, 1.1] E0 -- the window of the cut
``energy_sum`` of ``selections/visible.toml`` (resolved per campaign). Everything else follows the base
class: read only the needed branches, evaluate the declarative masks, drop the box from blinded data
*before* counting or filling anything, then cut flow (running AND), N-1 histograms and region counts.

Histograms: ``plane_loose``, ``plane_i_iv``, ``plane_final`` in (E_WCAL, E_ECAL); ``esum_final``
(E_WCAL + E_ECAL after every cut before the box); for MC ``signal_esum`` (the same, the efficiency input).
Regions (after every cut before the box): ``signal_box`` = [lo, hi), ``sideband_low`` = [lo - 2w, lo),
``sideband_high`` = [hi, hi + 2w), w = hi - lo; inside the box the count is NaN (null) when blinded.

The visible-mode variables (contract.VISIBLE_BRANCHES and the derived ``e_sum``, ``wcal_ecal_dt``) are
registered in :data:`na64ana.selection.VARIABLES` when this module is imported: the shared registry is
built from the invisible contract only (integration point: let ``selection`` build it from both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hist
import numpy as np

from na64ana import blinding, contract
from na64ana.selection import VARIABLES, Resolved, Variable, branches_for, compute, cut_masks

from .base import CutMasks, SelectionProcessor, new_hist, read_columns, variable_axis

__all__ = ["BOX_CUT", "VISIBLE_VARIABLES", "VisibleProcessor", "box_mask", "box_window", "register_variables"]

BOX_CUT = "energy_sum"
_SIDEBAND_WIDTHS = 2.0  # side bands: two box widths on each side

# N-1 binning of the visible-only branches (GeV, MeV, ns as in the contract)
_BINS: dict[str, tuple[int, float, float]] = {
    "wcal_e": (200, 0.0, 200.0), "wcal_ps_e": (100, 0.0, 20.0), "wcal_t": (100, -10.0, 10.0),
    "v2_e": (100, 0.0, 10.0), "s1_e": (100, 0.0, 10.0), "s2_e": (100, 0.0, 10.0), "s3_e": (100, 0.0, 10.0),
    "s4_e": (100, 0.0, 10.0), "ecal_ncl": (6, -0.5, 5.5), "v3_e": (100, 0.0, 10.0),
    "truth_decay_z": (100, 0.0, 6000.0),
}


def _e_sum(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(c["wcal_e"], dtype=np.float64) + np.asarray(c["ecal_e"], dtype=np.float64)


def _wcal_ecal_dt(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.abs(np.asarray(c["ecal_t"], dtype=np.float64) - np.asarray(c["wcal_t"], dtype=np.float64))


VISIBLE_VARIABLES: tuple[Variable, ...] = (
    *(Variable(b.name, (b.name,), b.unit, _BINS.get(b.name, (100, 0.0, 100.0)))
      for b in contract.VISIBLE_BRANCHES if b.name not in contract.BY_NAME),
    Variable("e_sum", ("wcal_e", "ecal_e"), "GeV", (300, 0.0, 300.0), _e_sum),
    Variable("wcal_ecal_dt", ("wcal_t", "ecal_t"), "ns", (100, 0.0, 20.0), _wcal_ecal_dt),
)


def register_variables() -> None:
    """Add the visible-mode variables to the shared registry (idempotent; never replaces an entry)."""
    for v in VISIBLE_VARIABLES:
        VARIABLES.setdefault(v.name, v)


register_variables()


def box_window(sel: Resolved) -> tuple[float, float]:
    """[lo, hi) of E_WCAL + E_ECAL: the resolved window of the ``energy_sum`` cut."""
    for c in sel.cuts:
        if c.name == BOX_CUT:
            for r in c.requires:
                if r.variable == "e_sum" and r.min is not None and r.max is not None:
                    return r.min, r.max
    raise ValueError(f"selection '{sel.name}' has no '{BOX_CUT}' cut with an e_sum window: no visible box")


def box_mask(sel: Resolved, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Events inside the visible blind box (NaN/inf are outside: they fail every cut anyway)."""
    lo, hi = box_window(sel)
    e = values["e_sum"]
    return (e >= lo) & (e < hi)


def _axes(name: str, label: str, bins: tuple[int, float, float]) -> hist.axis.Regular:
    return hist.axis.Regular(*bins, name=name, label=label)


def _wcal_axis() -> hist.axis.Regular:
    return _axes("wcal", "E_WCAL [GeV]", (200, 0.0, 200.0))


def _ecal_axis() -> hist.axis.Regular:
    return _axes("ecal", "E_ECAL [GeV]", (200, 0.0, 200.0))


def _esum_axis() -> hist.axis.Regular:
    return _axes("esum", "E_WCAL + E_ECAL [GeV]", (300, 0.0, 300.0))


class VisibleProcessor(SelectionProcessor):
    """The NA64 A' -> e+ e- selection (selections/visible.toml), blinded in E_WCAL + E_ECAL."""

    extra_variables = ("wcal_e", "ecal_e", "e_sum")

    def process(self, events: Any) -> dict[str, Any]:
        md = events.metadata
        key, kind = md["key"], md["kind"]
        sel = self.selections[key]
        if md.get("selection_hash") and md["selection_hash"] != sel.hash:
            raise RuntimeError(f"{key}: selection hash mismatch between fileset and processor")
        mc = kind == "mc"
        variables = tuple(dict.fromkeys((*sel.variables, *self.extra_variables)))
        branches = branches_for(variables) + (["weight"] if mc else [])
        cols = read_columns(events, branches, md.get("branch_map"))
        n = len(cols[branches[0]])
        values = compute(cols, variables)
        w = np.asarray(cols["weight"], dtype=np.float64) if mc else None

        # the box leaves blinded data here, before any count or fill
        blinded = blinding.is_blinded(kind, self.unblind)
        keep = ~box_mask(sel, values) if blinded else np.ones(n, dtype=bool)

        names = [c.name for c in sel.cuts]
        ps = CutMasks(cut_masks(sel, values))

        def total(mask: np.ndarray) -> float:
            return float(np.count_nonzero(mask)) if w is None else float(w[mask].sum())

        events_row, weighted_row = [n], [float(n) if w is None else float(w.sum())]
        m = keep.copy()
        for name in names:
            np.logical_and(m, ps.all(name), out=m)
            events_row.append(int(np.count_nonzero(m)))
            weighted_row.append(total(m))

        hists: dict[str, hist.Hist] = {}

        def fill(h: hist.Hist, mask: np.ndarray, **axes: np.ndarray) -> hist.Hist:
            h.fill(run=key, **{a: v[mask] for a, v in axes.items()}, weight=None if w is None else w[mask])
            return h

        wcal, ecal, esum = values["wcal_e"], values["ecal_e"], values["e_sum"]
        final = ps.all(*sel.plane_final) & keep
        for hname, mask in (("plane_loose", keep), ("plane_i_iv", ps.all(*sel.plane_i_iv) & keep),
                            ("plane_final", final)):
            hists[hname] = fill(new_hist(key, _wcal_axis(), _ecal_axis()), mask, wcal=wcal, ecal=ecal)
        hists["esum_final"] = fill(new_hist(key, _esum_axis()), final, esum=esum)
        if mc:
            hists["signal_esum"] = fill(new_hist(key, _esum_axis()), ps.all(*sel.plane_final), esum=esum)

        for cut in sel.cuts:
            mask = ps.all(*[c for c in names if c != cut.name]) & keep
            for var in cut.variables:
                hists[f"nminus1_{cut.name}_{var}"] = fill(new_hist(key, variable_axis(var)), mask,
                                                         **{var: values[var]})

        lo, hi = box_window(sel)
        width = hi - lo
        windows = {"signal_box": (lo, hi), "sideband_low": (lo - _SIDEBAND_WIDTHS * width, lo),
                   "sideband_high": (hi, hi + _SIDEBAND_WIDTHS * width)}
        regions = {}
        for rname, (a, b) in windows.items():
            if blinded and rname == "signal_box":
                regions[rname] = np.array([np.nan, np.nan])
                continue
            mm = final & (esum >= a) & (esum < b)
            regions[rname] = np.array([np.count_nonzero(mm), total(mm)], dtype=np.float64)

        return {
            "nevents": {key: n},
            "chunks": {key: 1},
            "cutflow": {key: {"events": np.array(events_row, dtype=np.int64),
                              "weighted": np.array(weighted_row, dtype=np.float64)}},
            "regions": {key: regions},
            "blinded": {key} if blinded else set(),
            "hists": hists,
        }
