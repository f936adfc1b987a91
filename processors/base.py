"""Shared machinery of the na64ana processors: columns -> declarative masks -> cut flow, N-1, histograms.

Every processor (invisible, dimuon, ALP, visible) runs this one chunk loop; a concrete processor only
declares its blinding rule (:attr:`SelectionProcessor.blinding_rule`, applied through
:meth:`SelectionProcessor.blinded_region` = :func:`na64ana.blinding.blinded_mask`: blinded data lose their
blinded region before anything is counted or filled), its plane axes, the regions it derives and its extra
histograms.

The processor is deliberately thin: it reads only the branches the resolved selection needs (through the
branch map), converts them once to flat numpy, evaluates the requirement masks, and fills ``hist.Hist``
objects. No per-event Python and no awkward records, so it runs near plain uproot + numpy speed.

Output of ``process`` (merged by coffea over chunks; keys are dataset keys, usually the run name):
``{"nevents": {key: int}, "chunks": {key: int}, "cutflow": {key: {"events": int64[ncut+1],
"weighted": float64[ncut+1]}}, "regions": {key: {region: float64[2] (count, sum w)}},
"blinded": set(keys), "hists": {name: {key: hist.Hist}}}``: each chunk's histograms are kept per dataset
key, so merging chunks adds histograms with identical axes. :meth:`SelectionProcessor.postprocess` then
stacks every name's keys into one ``hist.Hist`` with a ``run`` category axis in sorted order (the output of
``processor.Runner``: ``"hists": {name: hist.Hist}``).
"""

from __future__ import annotations

import gc
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


def run_axis(*keys: str) -> hist.axis.StrCategory:
    # Created with its key(s) so that a chunk with no entries still yields the run's category.
    return hist.axis.StrCategory(list(keys), growth=True, name="run", label="run")


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


_CHUNK_KEYS = ("filename", "treename", "entrystart", "entrystop")


def read_columns(events: Any, branches: list[str],
                 branch_map: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """Flat numpy columns for canonical ``branches`` (only these are read from the file).

    A coffea chunk of a local ROOT file (its metadata names the file, tree and entry range) is read with
    one ``TTree.arrays`` call through :class:`~na64ana.processing.sources.KeptOpenSource` (the file and its
    TTree metadata stay open across the chunks of the file): the same arrays as through NanoEvents, without
    its per-column awkward wrapping (~0.3 CPU-s per 2e7 events on ROOT-written files,
    docs/performance.md). Anything else (a NanoEvents object without that metadata, a dict of arrays) is
    read column by column through ``events[...]``.
    """
    names = [resolve_branch(b, branch_map) for b in branches]
    md = getattr(events, "metadata", None)
    if isinstance(md, Mapping) and all(md.get(k) is not None for k in _CHUNK_KEYS) and \
            not str(md["filename"]).startswith(("root:", "http:", "https:", "s3:")):
        import uproot

        from na64ana.processing.sources import KeptOpenSource, decompression_executor

        with uproot.open({md["filename"]: None}, handler=KeptOpenSource, array_cache=None) as f:
            arrays = f[md["treename"]].arrays(names, entry_start=md["entrystart"], entry_stop=md["entrystop"],
                                             library="np", how=dict,
                                             decompression_executor=decompression_executor())
        return {b: arrays[n] for b, n in zip(branches, names, strict=True)}
    return {b: ak.to_numpy(events[n]) for b, n in zip(branches, names, strict=True)}


class CutMasks:
    """Named boolean cut masks with ``PackedSelection``'s ``all(*names)`` (AND of the named cuts).

    Plain in-place ANDs of numpy bool arrays: coffea's ``PackedSelection`` packs every mask into a uint32
    word on ``add`` and unpacks/compares on each ``all``, which cost ~50 ms per 1e6 events and chunk here
    (a third of the processor's compute); this gives the same masks for ~5 ms.

    With the cut order and the blinding mask ``keep`` it also gives, each computed once per chunk:
    :meth:`passed` (``keep`` AND the first k cuts: the cut-flow rows and the planes) and :meth:`nminus1`
    (``keep`` AND every cut but one), from running prefix and suffix ANDs: 2n array ANDs for all n N-1
    masks instead of n(n-1). Masks returned by these two are shared: do not modify them in place.
    """

    def __init__(self, masks: Mapping[str, np.ndarray], keep: np.ndarray | None = None,
                 regions: Mapping[str, np.ndarray] | None = None):
        self._masks = {name: np.asarray(m, dtype=bool) for name, m in masks.items()}
        self._keep = keep
        #: ``{region: mask}`` of the selection (not combined with the cuts), when the processor gave them
        self.regions = dict(regions) if regions is not None else None
        self._prefix: list[np.ndarray] | None = None
        self._nminus1: dict[str, np.ndarray] | None = None

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

    def _keep_mask(self) -> np.ndarray:
        if self._keep is None:
            n = len(next(iter(self._masks.values()))) if self._masks else 0
            self._keep = np.ones(n, dtype=bool)
        return self._keep

    def passed(self, k: int) -> np.ndarray:
        """``keep`` AND the first ``k`` cuts (``passed(0)`` is ``keep``)."""
        if self._prefix is None:
            run = [self._keep_mask()]
            for m in self._masks.values():
                run.append(np.logical_and(run[-1], m))
            self._prefix = run
        return self._prefix[k]

    def passed_all(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """``keep`` AND the cuts ``names`` (a shared prefix mask when they are the first len(names) cuts)."""
        names = tuple(names)
        if names == tuple(self._masks)[: len(names)]:
            return self.passed(len(names))
        return np.logical_and(self.all(*names), self._keep_mask()) if names else self._keep_mask()

    def nminus1(self, name: str) -> np.ndarray:
        """``keep`` AND every cut except ``name``."""
        if self._nminus1 is None:
            order = list(self._masks)
            suffix: list[np.ndarray | None] = [None] * (len(order) + 1)
            for i in range(len(order) - 1, -1, -1):
                m = self._masks[order[i]]
                suffix[i] = m if suffix[i + 1] is None else np.logical_and(m, suffix[i + 1])
            self._nminus1 = {}
            for i, cut in enumerate(order):
                after = suffix[i + 1]
                before = self.passed(i)
                self._nminus1[cut] = before if after is None else np.logical_and(before, after)
        return self._nminus1[name]


_FROZEN = False


def collect_chunk_garbage() -> None:
    """Free the previous chunk's reference cycles (NanoEvents/awkward virtual arrays) before a new chunk.

    Only the cyclic GC frees them, at moments unrelated to chunk boundaries, so without this the peak RSS
    grew with the number of chunks (bench_memory: ~450 -> ~830 MB from 10 to 80 chunks of 500k events) and
    is flat with it (~200 MB anonymous memory per 500k-event chunk). The first call first freezes the
    objects alive at that moment (modules, the processor), so each full collection takes ~0.1 ms, not ~60 ms.
    """
    global _FROZEN
    if not _FROZEN:
        # Freeze without the first full collection (~60-140 ms over the whole heap): what is alive now
        # (modules, the processor; garbage of earlier work too, until thaw_chunk_garbage) is never scanned.
        gc.freeze()
        _FROZEN = True
    gc.collect()


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
    #: the blinding rule of this search (:data:`na64ana.blinding.RULES`): which region blinded data lose
    blinding_rule: blinding.Rule = "invisible"

    def __init__(self, selections: Mapping[str, Resolved], *, unblind: bool = False):
        self.selections = dict(selections)
        self.unblind = unblind

    def __setstate__(self, state: dict[str, Any]) -> None:
        # coffea's executors unpickle the processor for every chunk, before the chunk's events exist: the
        # right moment to drop the previous chunk's garbage (in the worker or the iterative caller).
        self.__dict__.update(state)
        collect_chunk_garbage()

    # -- hooks for the concrete processors ----------------------------------------------------------
    def blinded_region(self, sel: Resolved, values: Mapping[str, np.ndarray],
                       regions: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Events inside this search's blinded region: :func:`na64ana.blinding.blinded_mask` with the
        processor's :attr:`blinding_rule` (the one rule; a processor does not blind on its own)."""
        return blinding.blinded_mask(sel, values, self.blinding_rule, regions)

    def plane_axes(self) -> tuple[tuple[str, Callable[[], hist.axis.Regular], str], ...]:
        """The two axes of the planes (loose, i-iv, final): ``(axis name, axis factory, variable)``."""
        return (("ecal", ecal_axis, "ecal_e"), ("hcal", hcal_axis, "hcal_e"))

    def derived_regions(self, sel: Resolved, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Region masks the processor derives beyond the selection's [regions] (counted like them, after
        every cut before planes.final; hidden by the blinding rule like them)."""
        return {}

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
        rule_vars = blinding.RULE_VARIABLES[self.blinding_rule]
        variables = tuple(dict.fromkeys((*sel.variables, *self.extra_variables, *rule_vars)))
        branches = branches_for(variables) + (["weight"] if mc else [])
        cols = read_columns(events, branches, md.get("branch_map"))
        n = len(cols[branches[0]])
        values = compute(cols, variables)
        w = np.asarray(cols["weight"], dtype=np.float64) if mc else None  # data: weight 1, nothing to carry

        names = [c.name for c in sel.cuts]
        memo: dict = {}  # each distinct requirement evaluated once per chunk (cuts and regions)
        region_sel = {**region_masks(sel, values, memo), **self.derived_regions(sel, values)}
        # The one blinding rule: blinded data lose their blinded region here, before any count or fill.
        blinded = blinding.is_blinded(kind, self.unblind)
        keep = ~self.blinded_region(sel, values, region_sel) if blinded else np.ones(n, dtype=bool)
        ps = CutMasks(cut_masks(sel, values, memo), keep, region_sel)

        # Cut flow (running AND) and N-1 from plain bool masks. coffea's Cutflow/NminusOne objects give the
        # same numbers but build 2-D mask stacks and one-cut masks we never use (~3x slower).
        def total(mask: np.ndarray) -> float:
            return float(np.count_nonzero(mask)) if w is None else float(w[mask].sum())

        events_row, weighted_row = [n], [float(n) if w is None else float(w.sum())]
        for i in range(1, len(names) + 1):
            m = ps.passed(i)
            events_row.append(int(np.count_nonzero(m)))
            weighted_row.append(total(m))

        hists: dict[str, hist.Hist] = {}

        def fill(h: hist.Hist, mask: np.ndarray, **axes: Any) -> hist.Hist:
            # An array axis value is selected by ``mask``; a scalar (e.g. a category) applies to every entry.
            # A sparse mask selects as take(flatnonzero(mask)): the same entries in the same order as v[mask],
            # but numpy's boolean indexing of a sparse random mask was ~10x slower than one nonzero scan +
            # gathers here; dense masks keep boolean indexing (no 8-byte index per event).
            k = int(np.count_nonzero(mask))
            if k == n:
                def pick(v: np.ndarray) -> np.ndarray:
                    return v
            elif 8 * k < n:
                idx = np.flatnonzero(mask)

                def pick(v: np.ndarray) -> np.ndarray:
                    return v.take(idx)
            else:
                def pick(v: np.ndarray) -> np.ndarray:
                    return v[mask]
            h.fill(run=key, **{a: pick(v) if isinstance(v, np.ndarray) else v for a, v in axes.items()},
                   weight=None if w is None else pick(w))
            return h

        (xname, xaxis, xvar), (yname, yaxis, yvar) = self.plane_axes()
        plane_values = {xname: values[xvar], yname: values[yvar]}
        # Data: the loose plane after the beam preselection (SRD-tagged electrons, as NA64 shows it), not
        # every event outside the box: "all events read" minus the integral of an all-outside plane would be
        # the box count before any cut (#13 item 3). Simulation keeps every event (weight scale).
        loose = keep if mc else ps.passed(sel.preselection_rows)
        final = ps.passed_all(sel.plane_final)
        for name, mask in (("plane_loose", loose), ("plane_i_iv", ps.passed_all(sel.plane_i_iv)),
                           ("plane_final", final)):
            hists[name] = fill(new_hist(key, xaxis(), yaxis()), mask, **plane_values)

        # N-1: every N-1 mask lies inside their union (events failing at most one cut), usually a few % of
        # the chunk: select the union once, then each N-1 set inside it. Same entries in the same order as
        # filling each N-1 mask over the whole chunk.
        union = None
        for cut in sel.cuts:
            m = ps.nminus1(cut.name)
            union = m.copy() if union is None else np.logical_or(union, m, out=union)
        cand = np.flatnonzero(union) if union is not None else np.zeros(0, dtype=np.intp)
        w_cand = None if w is None else w.take(cand)
        picked: dict[str, np.ndarray] = {}
        for cut in sel.cuts:
            idx = np.flatnonzero(ps.nminus1(cut.name).take(cand))
            for var in cut.variables:
                if var not in picked:
                    picked[var] = values[var].take(cand)
                h = new_hist(key, variable_axis(var))
                h.fill(run=key, **{var: picked[var].take(idx)},
                       weight=None if w_cand is None else w_cand.take(idx))
                hists[f"nminus1_{cut.name}_{var}"] = h

        regions = {}
        for rname, rmask in region_sel.items():
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
            # per key until postprocess: boost-histogram adds two histograms whose category axes differ
            # (I + II) ~7x slower than identical ones, and dask's tree reduction then ran as a serial tail
            "hists": {name: {key: h} for name, h in hists.items()},
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        # Runs in the caller once all chunks are merged: give its objects back to the normal cyclic GC.
        thaw_chunk_garbage()
        hists = accumulator.get("hists", {})
        for name, parts in hists.items():
            hists[name] = stack_runs(parts)
        return accumulator


def stack_runs(parts: Mapping[str, hist.Hist]) -> hist.Hist:
    """One histogram with a ``run`` category per key of ``parts`` (``{key: histogram of that key}``, each
    with the one-category run axis of :func:`new_hist`), in sorted key order.

    Executors merge chunks in completion order; sorting makes the result independent of it (the same
    contents pickle and serialise the same from one executor to the next).

    >>> a = new_hist("II", hist.axis.Regular(2, 0, 2, name="x")).fill(run="II", x=[0.5])
    >>> b = new_hist("I", hist.axis.Regular(2, 0, 2, name="x")).fill(run="I", x=[1.5, 1.5])
    >>> h = stack_runs({"II": a, "I": b})
    >>> list(h.axes["run"]), h[{"run": "I"}].values().tolist(), h[{"run": "II"}].values().tolist()
    (['I', 'II'], [0.0, 2.0], [1.0, 0.0])
    """
    keys = sorted(parts)
    first = parts[keys[0]]
    for key in keys:
        if list(parts[key].axes["run"]) != [key]:
            raise ValueError(f"histogram of {key!r} has run categories {list(parts[key].axes['run'])}")
    out = hist.Hist(run_axis(*keys), *first.axes[1:], storage=first.storage_type())
    view = out.view(flow=True)
    for i, key in enumerate(keys):
        view[i] = parts[key].view(flow=True)[0]
    return out
