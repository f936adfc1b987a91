"""The ALP (Primakoff, a -> gamma gamma) processor: cut flow, N-1, (E_ECAL, E_HCAL2-4) planes, two regions.

Why its own chunk loop: the ALP search has two signal regions that are an OR (selections/alp.toml):
``hcal_decay`` (E_ECAL < 85 GeV, HCAL1 empty, E_HCAL2-4 >= 15 GeV: the ALP decays in HCAL2-4 behind the
HCAL1 shield) and ``beyond`` (the A' box E_ECAL < 50, E_HCAL < 1 GeV: it decays behind the HCAL).
:class:`SelectionProcessor` hides only the invisible box; here the events inside EITHER signal region are
removed from blinded data before anything is counted or filled, as the visible processor does for its box.

Histograms: ``plane_loose``, ``plane_i_iv``, ``plane_final`` in (E_ECAL, E_HCAL2-4); ``hcal1_final``
(E_HCAL1 after every cut before ``ecal_max``); N-1 per cut variable; for MC ``signal_ecal_<region>``
(E_ECAL of the events in each signal region after every cut before the last: the efficiency input).
Regions (after every cut before planes.final): ``hcal_decay``, ``beyond`` (NaN = null when blinded) and
the control region ``hcal1_active``.

The derived variable ``hcal234_e`` = E_HCAL2 + E_HCAL3 + E_HCAL4 is registered in
:data:`na64ana.selection.VARIABLES` when this module is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hist
import numpy as np

from na64ana import blinding
from na64ana.selection import VARIABLES, Resolved, Variable, branches_for, compute, cut_masks, region_masks

from .base import CutMasks, SelectionProcessor, ecal_axis, new_hist, read_columns, variable_axis

__all__ = ["ALP_VARIABLES", "SIGNAL_REGIONS", "AlpProcessor", "blind_mask", "register_variables"]

SIGNAL_REGIONS = ("hcal_decay", "beyond")


def _hcal234(c: Mapping[str, np.ndarray]) -> np.ndarray:
    out = np.array(c["hcal_e1"], dtype=np.float64)
    for k in ("hcal_e2", "hcal_e3"):
        np.add(out, c[k], out=out, dtype=np.float64)
    return out


ALP_VARIABLES: tuple[Variable, ...] = (
    Variable("hcal234_e", ("hcal_e1", "hcal_e2", "hcal_e3"), "GeV", (240, 0.0, 120.0), _hcal234),
)


def register_variables() -> None:
    """Add the ALP variables to the shared registry (idempotent; never replaces an entry)."""
    for v in ALP_VARIABLES:
        VARIABLES.setdefault(v.name, v)


register_variables()


def blind_mask(sel: Resolved, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Events inside either signal region (regardless of the other cuts) or inside the A' box."""
    regions = region_masks(sel, values)
    missing = [r for r in SIGNAL_REGIONS if r not in regions]
    if missing:
        raise ValueError(f"selection '{sel.name}' has no region '{missing[0]}': nothing to blind")
    out = blinding.region_mask(sel, values).copy()
    for r in SIGNAL_REGIONS:
        out |= regions[r]
    return out


def _hcal234_axis() -> hist.axis.Regular:
    return hist.axis.Regular(240, 0.0, 120.0, name="hcal234", label="E_HCAL2-4 [GeV]")


def _hcal1_axis() -> hist.axis.Regular:
    return hist.axis.Regular(240, 0.0, 120.0, name="hcal1", label="E_HCAL1 [GeV]")


class AlpProcessor(SelectionProcessor):
    """The NA64 ALP selection (selections/alp.toml), blinded in both signal regions."""

    extra_variables = ("ecal_e", "hcal_e", "hcal_e0", "hcal234_e")

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

        # both signal regions leave blinded data here, before any count or fill
        blinded = blinding.is_blinded(kind, self.unblind)
        keep = ~blind_mask(sel, values) if blinded else np.ones(n, dtype=bool)

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

        ecal, h234, h1 = values["ecal_e"], values["hcal234_e"], values["hcal_e0"]
        before_final = ps.all(*sel.plane_final) if sel.plane_final else np.ones(n, dtype=bool)
        final = before_final & keep
        for hname, mask in (("plane_loose", keep),
                            ("plane_i_iv", (ps.all(*sel.plane_i_iv) if sel.plane_i_iv else True) & keep),
                            ("plane_final", final)):
            hists[hname] = fill(new_hist(key, ecal_axis(), _hcal234_axis()), mask, ecal=ecal, hcal234=h234)
        hists["hcal1_final"] = fill(new_hist(key, _hcal1_axis()), final, hcal1=h1)

        for cut in sel.cuts:
            others = [c for c in names if c != cut.name]
            mask = (ps.all(*others) if others else np.ones(n, dtype=bool)) & keep
            for var in cut.variables:
                hists[f"nminus1_{cut.name}_{var}"] = fill(new_hist(key, variable_axis(var)), mask,
                                                         **{var: values[var]})

        regions_out = {}
        for rname, rmask in region_masks(sel, values).items():
            if mc and rname in SIGNAL_REGIONS:
                hists[f"signal_ecal_{rname}"] = fill(new_hist(key, ecal_axis()), before_final & rmask,
                                                     ecal=ecal)
            if blinded and rname in SIGNAL_REGIONS:
                regions_out[rname] = np.array([np.nan, np.nan])
                continue
            mm = final & rmask
            regions_out[rname] = np.array([np.count_nonzero(mm), total(mm)], dtype=np.float64)

        return {
            "nevents": {key: n},
            "chunks": {key: 1},
            "cutflow": {key: {"events": np.array(events_row, dtype=np.int64),
                              "weighted": np.array(weighted_row, dtype=np.float64)}},
            "regions": {key: regions_out},
            "blinded": {key} if blinded else set(),
            "hists": hists,
        }
