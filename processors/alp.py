"""The ALP (Primakoff, a -> gamma gamma) processor: cut flow, N-1, (E_ECAL, E_HCAL2-4) planes, two regions.

The ALP search has two signal regions that are an OR (selections/alp.toml): ``hcal_decay`` (E_ECAL < 85
GeV, HCAL1 empty, E_HCAL2-4 >= 15 GeV: the ALP decays in HCAL2-4 behind the HCAL1 shield) and ``beyond``
(the A' box E_ECAL < 50, E_HCAL < 1 GeV: it decays behind the HCAL). The chunk loop is
:class:`SelectionProcessor`'s; its blinding rule ``alp`` (:mod:`na64ana.blinding`) removes the events inside
EITHER signal region (or the A' box) from blinded data before anything is counted or filled, and the run
outputs show both regions as null.

Histograms: ``plane_loose`` (data: after the beam preselection), ``plane_i_iv``, ``plane_final`` in (E_ECAL,
E_HCAL2-4); ``hcal1_final`` (E_HCAL1 after every cut before ``ecal_max``); N-1 per cut variable; for MC
``signal_ecal_<region>`` (E_ECAL of the events in each signal region after every cut before the last: the
efficiency input). Regions (after every cut before planes.final): ``hcal_decay``, ``beyond`` (null when
blinded) and the control region ``hcal1_active``.

The derived variable ``hcal234_e`` = E_HCAL2 + E_HCAL3 + E_HCAL4 is registered in
:data:`na64ana.selection.VARIABLES` when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import hist
import numpy as np

from na64ana import blinding
from na64ana.selection import VARIABLES, Resolved, Variable

from .base import CutMasks, SelectionProcessor, ecal_axis, new_hist

__all__ = ["ALP_VARIABLES", "SIGNAL_REGIONS", "AlpProcessor", "blind_mask", "register_variables"]

SIGNAL_REGIONS = blinding.ALP_SIGNAL_REGIONS


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
    """Events inside either signal region (regardless of the other cuts) or inside the A' box: the
    ``alp`` rule of :func:`na64ana.blinding.blinded_mask`."""
    return blinding.blinded_mask(sel, values, "alp")


def _hcal234_axis() -> hist.axis.Regular:
    return hist.axis.Regular(240, 0.0, 120.0, name="hcal234", label="E_HCAL2-4 [GeV]")


def _hcal1_axis() -> hist.axis.Regular:
    return hist.axis.Regular(240, 0.0, 120.0, name="hcal1", label="E_HCAL1 [GeV]")


class AlpProcessor(SelectionProcessor):
    """The NA64 ALP selection (selections/alp.toml), blinded in both signal regions (the ``alp`` rule)."""

    extra_variables = ("ecal_e", "hcal_e", "hcal_e0", "hcal234_e")
    blinding_rule = "alp"

    def plane_axes(self) -> tuple[tuple[str, Callable[[], hist.axis.Regular], str], ...]:
        return (("ecal", ecal_axis, "ecal_e"), ("hcal234", _hcal234_axis, "hcal234_e"))

    def extra(self, key: str, sel: Resolved, values: dict[str, np.ndarray], ps: CutMasks,
              keep: np.ndarray, fill: Callable[..., hist.Hist], kind: str) -> dict[str, hist.Hist]:
        final = ps.passed_all(sel.plane_final)
        out = {"hcal1_final": fill(new_hist(key, _hcal1_axis()), final, hcal1=values["hcal_e0"])}
        if kind == "mc" and ps.regions is not None:  # the efficiency inputs (simulation is never blinded)
            for rname in SIGNAL_REGIONS:
                if rname in ps.regions:
                    out[f"signal_ecal_{rname}"] = fill(new_hist(key, ecal_axis()), final & ps.regions[rname],
                                                       ecal=values["ecal_e"])
        return out
