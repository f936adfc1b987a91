"""The invisible-mode search processor: cut flow, N-1, (E_ECAL, E_HCAL) planes, side bands, region counts.

Histograms (besides those of :class:`SelectionProcessor`): ``ecal_sideband_c`` (E_ECAL of events passing
every cut before ``hcal_zero`` with E_HCAL below threshold: side band C, plus the box when unblinded),
``ecal_validation`` (E_ECAL in the validation region) and, for MC, ``signal_ecal`` (E_ECAL after every
cut except the signal-box cut: the input of the efficiency stage).
"""

from __future__ import annotations

import numpy as np
from coffea.analysis_tools import PackedSelection

from na64ana.selection import Resolved, region_masks

from .base import SelectionProcessor, ecal_axis, new_hist


class InvisibleProcessor(SelectionProcessor):
    """The NA64 A' -> invisible selection (selections/invisible.toml)."""

    def extra(self, key: str, sel: Resolved, values: dict[str, np.ndarray], ps: PackedSelection,
              keep: np.ndarray, w: np.ndarray, kind: str) -> dict:
        ecal = values["ecal_e"]
        final = ps.all(*sel.plane_final) & keep
        out = {}
        h = out["ecal_sideband_c"] = new_hist(key, ecal_axis())
        m = final & (values["hcal_e"] < sel.box_hcal_max)
        h.fill(run=key, ecal=ecal[m], weight=w[m])
        regions = region_masks(sel, values)
        if "validation" in regions:
            h = out["ecal_validation"] = new_hist(key, ecal_axis())
            m = final & regions["validation"]
            h.fill(run=key, ecal=ecal[m], weight=w[m])
        if kind == "mc":
            before_box = [c.name for c in sel.cuts if c.name != "signal_box"]
            h = out["signal_ecal"] = new_hist(key, ecal_axis())
            m = ps.all(*before_box) & keep
            h.fill(run=key, ecal=ecal[m], weight=w[m])
        return out
