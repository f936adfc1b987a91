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

import gc
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

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


class CutMasks:
    """Named boolean cut masks with ``PackedSelection``'s ``all(*names)`` (AND of the named cuts).

    Plain in-place ANDs of numpy bool arrays: coffea's ``PackedSelection`` packs every mask into a uint32
    word on ``add`` and unpacks/compares on each ``all``, which cost ~50 ms per 1e6 events and chunk here
    (a third of the processor's compute); this gives the same masks for ~5 ms.
    """

    def __init__(self, masks: Mapping[str, np.ndarray]):
        self._masks = {name: np.asarray(m, dtype=bool) for name, m in masks.items()}

    @property
    def names(self) -> list[str]:
        return list(self._masks)

    def all(self, *names: str) -> np.ndarray:
        if not names:
            raise ValueError("CutMasks.all needs at least one cut name")
        out = self._masks[names[0]].copy()
        for name in names[1:]:
            np.logical_and(out, self._masks[name], out=out)
        return out


_FROZEN = False


def collect_chunk_garbage() -> None:
    """Free the previous chunk's reference cycles (NanoEvents/awkward virtual arrays) before a new chunk.

    Only the cyclic GC frees them, at moments unrelated to chunk boundaries, so without this the peak RSS
    grew with the number of chunks (bench_memory: ~450 -> ~830 MB from 10 to 80 chunks of 500k events) and
    is flat with it (~200 MB anonymous memory per 500k-event chunk). The first call also freezes the objects
    alive at that moment (modules, the processor), so each later full collection takes ~0.1 ms, not ~60 ms.
    """
    global _FROZEN
    gc.collect()
    if not _FROZEN:
        gc.freeze()
        _FROZEN = True


def thaw_chunk_garbage() -> None:
    """Undo the freeze of :func:`collect_chunk_garbage` (after a run, also a failed one)."""
    global _FROZEN
    if _FROZEN:
        gc.unfreeze()
        _FROZEN = False


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

    def __setstate__(self, state: dict[str, Any]) -> None:
        # coffea's executors unpickle the processor for every chunk, before the chunk's events exist: the
        # right moment to drop the previous chunk's garbage (in the worker or the iterative caller).
        self.__dict__.update(state)
        collect_chunk_garbage()

    # -- hooks for the concrete processors ----------------------------------------------------------
    def extra(self, key: str, sel: Resolved, values: dict[str, np.ndarray], ps: CutMasks,
              keep: np.ndarray, fill: Callable[..., hist.Hist], kind: str) -> dict[str, hist.Hist]:
        """More histograms; ``fill(h, mask, axis=values)`` fills with this chunk's key and weights."""
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
        w = np.asarray(cols["weight"], dtype=np.float64) if mc else None  # data: weight 1, nothing to carry

        blinded = blinding.is_blinded(kind, self.unblind)
        keep = ~blinding.region_mask(sel, values) if blinded else np.ones(n, dtype=bool)

        names = [c.name for c in sel.cuts]
        ps = CutMasks(cut_masks(sel, values))

        # Cut flow (running AND) and N-1 from plain bool masks. coffea's Cutflow/NminusOne objects give the
        # same numbers but build 2-D mask stacks and one-cut masks we never use (~3x slower).
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

        ecal, hcal = values["ecal_e"], values["hcal_e"]
        for name, mask in (("plane_loose", keep), ("plane_i_iv", ps.all(*sel.plane_i_iv) & keep)):
            hists[name] = fill(new_hist(key, ecal_axis(), hcal_axis()), mask, ecal=ecal, hcal=hcal)
        final = ps.all(*sel.plane_final) & keep
        hists["plane_final"] = fill(new_hist(key, ecal_axis(), hcal_axis()), final, ecal=ecal, hcal=hcal)

        for cut in sel.cuts:
            mask = ps.all(*[c for c in names if c != cut.name]) & keep
            for var in cut.variables:
                hists[f"nminus1_{cut.name}_{var}"] = fill(new_hist(key, variable_axis(var)), mask,
                                                         **{var: values[var]})

        regions = {}
        for rname, rmask in region_masks(sel, values).items():
            m = final & rmask
            regions[rname] = np.array([np.count_nonzero(m), total(m)], dtype=np.float64)

        hists.update(self.extra(key, sel, values, ps, keep, fill, kind))
        return {
            "nevents": {key: n},
            "chunks": {key: 1},
            "cutflow": {key: {"events": np.array(events_row, dtype=np.int64),
                              "weighted": np.array(weighted_row, dtype=np.float64)}},
            "regions": {key: regions},
            "blinded": {key} if blinded else set(),
            "hists": hists,
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        # Runs in the caller once all chunks are merged: give its objects back to the normal cyclic GC.
        thaw_chunk_garbage()
        hists = accumulator.get("hists", {})
        for name, h in hists.items():
            hists[name] = sort_runs(h)
        return accumulator


def sort_runs(h: hist.Hist) -> hist.Hist:
    """``h`` with its run categories in sorted order.

    Executors merge chunks in completion order, and a growing category axis keeps the order in which the
    runs arrived: the same contents would otherwise pickle differently from one executor to the next.
    """
    runs = list(h.axes["run"])
    if runs == sorted(runs):
        return h
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "List indexing selection is experimental", UserWarning)
        return h[{"run": sorted(runs)}]
