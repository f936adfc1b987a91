"""The invisible-mode search processor: cut flow, N-1, (E_ECAL, E_HCAL) planes, side bands, region counts.

Histograms (besides those of :class:`SelectionProcessor`): ``ecal_sideband_c`` (E_ECAL of events passing
every cut before ``hcal_zero`` with E_HCAL below threshold: side band C, plus the box when unblinded),
``ecal_validation`` (E_ECAL in the validation region) and, for MC, ``signal_ecal`` (E_ECAL after every
cut except the signal-box cut: the input of the efficiency stage).
"""

from __future__ import annotations

from collections.abc import Callable

import hist
import numpy as np

from na64ana.selection import Resolved, region_masks

from .base import CutMasks, SelectionProcessor, ecal_axis, new_hist


class InvisibleProcessor(SelectionProcessor):
    """The NA64 A' -> invisible selection (selections/invisible.toml)."""

    def extra(self, key: str, sel: Resolved, values: dict[str, np.ndarray], ps: CutMasks,
              keep: np.ndarray, fill: Callable[..., hist.Hist], kind: str) -> dict[str, hist.Hist]:
        ecal = values["ecal_e"]
        final = ps.passed_all(sel.plane_final)
        side_c = final & (values["hcal_e"] < sel.box_hcal_max)
        out = {"ecal_sideband_c": fill(new_hist(key, ecal_axis()), side_c, ecal=ecal)}
        regions = ps.regions if ps.regions is not None else region_masks(sel, values)
        if "validation" in regions:
            valid = final & regions["validation"]
            out["ecal_validation"] = fill(new_hist(key, ecal_axis()), valid, ecal=ecal)
        if kind == "mc":
            others = [c.name for c in sel.cuts if c.name != "signal_box"]
            before_box = (ps.nminus1("signal_box") if len(others) < len(sel.cuts)
                          else ps.passed_all(others))
            out["signal_ecal"] = fill(new_hist(key, ecal_axis()), before_box, ecal=ecal)
        return out
