"""The QED dimuon benchmark processor (S001 Sec. V): data/MC comparison of the HCAL response and rate.

Histograms (besides those of :class:`SelectionProcessor`): ``dimuon_hcal`` (E_HCAL of the selected
pairs), ``dimuon_hcal_module`` (per-module spectra, axis ``module`` = HCAL1..4, for events passing every
cut before the module cuts: the single-muon MIP peaks), ``dimuon_ecal``. The rate per EOT is derived
from the final cut-flow row and the run EOT by :mod:`na64ana.processing.outputs`.
"""

from __future__ import annotations

from collections.abc import Callable

import hist
import numpy as np

from na64ana.selection import Resolved

from .base import CutMasks, SelectionProcessor, ecal_axis, hcal_axis, new_hist

MODULES = ("hcal_e0", "hcal_e1", "hcal_e2", "hcal_e3")


class DimuonProcessor(SelectionProcessor):
    """The dimuon calibration selection (selections/dimuon.toml)."""

    extra_variables = MODULES

    def extra(self, key: str, sel: Resolved, values: dict[str, np.ndarray], ps: CutMasks,
              keep: np.ndarray, fill: Callable[..., hist.Hist], kind: str) -> dict[str, hist.Hist]:
        selected = ps.passed(len(sel.cuts))
        out = {"dimuon_hcal": fill(new_hist(key, hcal_axis()), selected, hcal=values["hcal_e"]),
               "dimuon_ecal": fill(new_hist(key, ecal_axis()), selected, ecal=values["ecal_e"])}
        loose = ps.passed_all(sel.plane_final)
        h = out["dimuon_hcal_module"] = new_hist(
            key,
            hist.axis.StrCategory([f"HCAL{i + 1}" for i in range(len(MODULES))], name="module"),
            hist.axis.Regular(120, 0.0, 30.0, name="energy", label="E_HCALi [GeV]"),
        )
        for i, m in enumerate(MODULES):
            fill(h, loose, module=f"HCAL{i + 1}", energy=values[m])
        return out
