"""The visible-mode (A' -> e+ e-) processor: cut flow, N-1, (E_WCAL, E_ECAL) planes, E_WCAL + E_ECAL regions.

The visible blind box is E_WCAL + E_ECAL in [0.9, 1.1] E0 -- the window of the cut ``energy_sum`` of
``selections/visible.toml`` (resolved per campaign) -- with E_ECAL above the ``ecal_min`` edge (0.3 E0: the
e+ e- pair in the ECAL; a beam electron absorbed in the WCAL is no candidate and stays visible): the
``visible`` rule of :mod:`na64ana.blinding`.
The chunk loop is :class:`SelectionProcessor`'s: read only the needed branches, evaluate the declarative
masks, drop the box from blinded data *before* counting or filling anything, then cut flow (running AND),
N-1 histograms and region counts; the box row and the ``signal_box`` count are null when blinded.

Histograms: ``plane_loose`` (data: after the beam preselection), ``plane_i_iv``, ``plane_final`` in
(E_WCAL, E_ECAL); ``esum_final`` (E_WCAL + E_ECAL after every cut before the box); for MC ``signal_esum``
(the same, the efficiency input).
Regions (after every cut before the box): ``signal_box`` = [lo, hi), ``sideband_low`` = [lo - 2w, lo),
``sideband_high`` = [hi, hi + 2w), w = hi - lo; inside the box the count is null when blinded.

The visible-mode variables (contract.VISIBLE_BRANCHES and the derived ``e_sum``, ``wcal_ecal_dt``) are
registered in :data:`na64ana.selection.VARIABLES` when this module is imported: the shared registry is
built from the invisible contract only (integration point: let ``selection`` build it from both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import hist
import numpy as np

from na64ana import blinding, contract
from na64ana.selection import VARIABLES, Resolved, Variable

from .base import CutMasks, SelectionProcessor, new_hist

__all__ = ["BOX_CUT", "VISIBLE_VARIABLES", "VisibleProcessor", "box_mask", "box_window", "register_variables"]

BOX_CUT = blinding.VISIBLE_BOX_CUT

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
    """[lo, hi) of E_WCAL + E_ECAL: the resolved window of the ``energy_sum`` cut (the ``visible`` rule)."""
    return blinding.visible_window(sel)


def box_mask(sel: Resolved, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Events inside the visible blind box (NaN/inf are outside: they fail every cut anyway)."""
    return blinding.blinded_mask(sel, values, "visible")


def _axes(name: str, label: str, bins: tuple[int, float, float]) -> hist.axis.Regular:
    return hist.axis.Regular(*bins, name=name, label=label)


def _wcal_axis() -> hist.axis.Regular:
    return _axes("wcal", "E_WCAL [GeV]", (200, 0.0, 200.0))


def _ecal_axis() -> hist.axis.Regular:
    return _axes("ecal", "E_ECAL [GeV]", (200, 0.0, 200.0))


def _esum_axis() -> hist.axis.Regular:
    return _axes("esum", "E_WCAL + E_ECAL [GeV]", (300, 0.0, 300.0))


class VisibleProcessor(SelectionProcessor):
    """The NA64 A' -> e+ e- selection (selections/visible.toml), blinded in E_WCAL + E_ECAL (``visible``)."""

    extra_variables = ("wcal_e", "ecal_e", "e_sum")
    blinding_rule = "visible"

    def plane_axes(self) -> tuple[tuple[str, Callable[[], hist.axis.Regular], str], ...]:
        return (("wcal", _wcal_axis, "wcal_e"), ("ecal", _ecal_axis, "ecal_e"))

    def derived_regions(self, sel: Resolved, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        esum = values["e_sum"]
        return {name: (esum >= a) & (esum < b) for name, (a, b) in blinding.visible_windows(sel).items()}

    def extra(self, key: str, sel: Resolved, values: dict[str, np.ndarray], ps: CutMasks,
              keep: np.ndarray, fill: Callable[..., hist.Hist], kind: str) -> dict[str, hist.Hist]:
        final = ps.passed_all(sel.plane_final)
        out = {"esum_final": fill(new_hist(key, _esum_axis()), final, esum=values["e_sum"])}
        if kind == "mc":  # the efficiency input (MC is never blinded: every cut before the box)
            out["signal_esum"] = fill(new_hist(key, _esum_axis()), final, esum=values["e_sum"])
        return out
