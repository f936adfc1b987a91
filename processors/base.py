"""Shared machinery of the na64ana processors: columns -> declarative masks -> cut flow, N-1, histograms.

The processor is deliberately thin: it reads only the branches the resolved selection needs (through the
branch map), converts them once to flat numpy, evaluates the requirement masks, and fills ``hist.Hist``
objects. No per-event Python and no awkward records, so it runs near plain uproot + numpy speed.

Output of ``process`` (merged by coffea over chunks; keys are dataset keys, usually the run name):
``{"nevents": {key: int}, "chunks": {key: int}, "cutflow": {key: {"events": int64[ncut+1],
"weighted": float64[ncut+1]}}, "regions": {key: {region: float64[2] (count, sum w)}},
"blinded": set(keys), "hists": {name: hist.Hist}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection, Weights

from na64ana import blinding
from na64ana.contract import resolve as resolve_branch
from na64ana.selection import VARIABLES, Resolved, branches_for, compute, cut_masks, region_masks

PLANE_ECAL = (240, 0.0, 120.0)
PLANE_HCAL = (240, 0.0, 120.0)


def run_axis(key: str) -> hist.axis.StrCategory:
    # Created with its key so that a chunk with no entries still yields the run's category.
    return hist.axis.StrCategory([key], growth=True, name="run", label="run")


def ecal_axis() -> hist.axis.Regular:
    return hist.axis.Regular(*PLANE_ECAL, name="ecal", label="E_ECAL [GeV]")


def hcal_axis() -> hist.axis.Regular:
    return hist.axis.Regular(*PLANE_HCAL, name="hcal", label="E_HCAL [GeV]")


def variable_axis(name: str) -> hist.axis.Regular:
    v = VARIABLES[name]
    unit = f" [{v.unit}]" if v.unit else ""
    return hist.axis.Regular(*v.bins, name=name, label=f"{name}{unit}")


def new_hist(key: str, *axes: hist.axis.AxesMixin) -> hist.Hist:
    # Weight storage everywhere: data have weight 1 (exact integer sums), MC carries its weight.
    return hist.Hist(run_axis(key), *axes, storage=hist.storage.Weight())


def read_columns(events: Any, branches: list[str],
                 branch_map: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """Flat numpy columns for canonical ``branches`` (only these are read from the file)."""
    return {b: ak.to_numpy(events[resolve_branch(b, branch_map)]) for b in branches}


class SelectionProcessor(processor.ProcessorABC):
    """Cut flow + N-1 + plane histograms + region counts for a declarative selection.

    ``selections`` maps dataset keys (``events.metadata["key"]``) to resolved selections, so the exact
    cut values travel with the processor to every worker and match the hash written with the outputs.
    """

    #: variables the concrete processor needs beyond those of the selection
    extra_variables: tuple[str, ...] = ()

    def __init__(self, selections: Mapping[str, Resolved], *, unblind: bool = False):
        self.selections = dict(selections)
        self.unblind = unblind

    # -- hooks for the concrete processors ----------------------------------------------------------
    def extra(self, key: str, sel: Resolved, values: dict[str, np.ndarray], ps: PackedSelection,
              keep: np.ndarray, w: np.ndarray, kind: str) -> dict[str, hist.Hist]:
        return {}

    # -- the chunk loop -----------------------------------------------------------------------------
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
        w = np.asarray(cols["weight"], dtype=np.float64) if mc else np.ones(n)

        blinded = blinding.is_blinded(kind, self.unblind)
        keep = ~blinding.region_mask(sel, values) if blinded else np.ones(n, dtype=bool)

        names = [c.name for c in sel.cuts]
        ps = PackedSelection(dtype="uint64" if len(names) > 32 else "uint32")
        for name, mask in cut_masks(sel, values).items():
            ps.add(name, mask)
        weights = Weights(n)
        weights.add("weight", w)
        flow = ps.cutflow(*names, commonmask=keep, weights=weights).result()
        events_row = np.array([n, *flow.nevcutflow[1:]], dtype=np.int64)
        weighted_row = np.array([w.sum(), *flow.wgtevcutflow[1:]], dtype=np.float64)

        hists: dict[str, hist.Hist] = {}
        ecal, hcal = values["ecal_e"], values["hcal_e"]

        def fill_plane(name: str, mask: np.ndarray) -> None:
            h = hists[name] = new_hist(key, ecal_axis(), hcal_axis())
            h.fill(run=key, ecal=ecal[mask], hcal=hcal[mask], weight=w[mask])

        fill_plane("plane_loose", keep)
        fill_plane("plane_i_iv", ps.all(*sel.plane_i_iv) & keep)
        final = ps.all(*sel.plane_final) & keep
        fill_plane("plane_final", final)

        nm1 = ps.nminusone(*names, commonmask=keep).result()
        for cut, mask in zip(sel.cuts, nm1.masks[:-1], strict=True):
            for var in cut.variables:
                h = hists[f"nminus1_{cut.name}_{var}"] = new_hist(key, variable_axis(var))
                h.fill(run=key, **{var: values[var][mask]}, weight=w[mask])

        regions = {}
        for rname, rmask in region_masks(sel, values).items():
            m = final & rmask
            regions[rname] = np.array([np.count_nonzero(m), w[m].sum()], dtype=np.float64)

        hists.update(self.extra(key, sel, values, ps, keep, w, kind))
        return {
            "nevents": {key: n},
            "chunks": {key: 1},
            "cutflow": {key: {"events": events_row, "weighted": weighted_row}},
            "regions": {key: regions},
            "blinded": {key} if blinded else set(),
            "hists": hists,
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator
