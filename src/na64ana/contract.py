"""The NA64 ntuple contract: the flat per-triggered-event branches na64ana reads.

One row per triggered event, one TTree (default name ``events``) per file, flat scalar branches only
(fast columnar reads; no jagged branches). Units: energies in GeV except SRD and VETO (MeV, as the
published cut windows are), times in ns relative to the trigger, angles in mrad, positions in mm.

Real NA64 ntuples with other branch names are read through a *branch map* ``{canonical: name_in_file}``
(a TOML/JSON file or a dict in ``datasets.json``); code always asks for canonical names via
:func:`resolve`. Simulated files also carry ``truth_*`` branches and ``weight``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

DEFAULT_TREE = "events"


@dataclass(frozen=True)
class Branch:
    name: str
    dtype: str
    unit: str
    doc: str
    mc_only: bool = False


BRANCHES: tuple[Branch, ...] = (
    Branch("run", "int32", "", "run number"),
    Branch("spill", "int32", "", "SPS spill number within the run"),
    Branch("event", "int64", "", "event number within the run"),
    Branch("trigger", "uint16", "bits", "trigger bits: 1 = physics Tr(A'), 2 = random/calibration"),
    Branch("track_n", "int16", "", "number of reconstructed incoming tracks (MM/GEM)"),
    Branch("track_p", "float32", "GeV", "reconstructed incoming momentum (magnetic spectrometer)"),
    Branch("track_theta", "float32", "mrad", "incoming track angle w.r.t. the beam axis"),
    Branch("straw_nhits", "int16", "", "hit multiplicity in the straw-tube chambers ST1,2 (single track: 4)"),
    Branch("srd_e0", "float32", "MeV", "SRD module 1 energy"),
    Branch("srd_e1", "float32", "MeV", "SRD module 2 energy"),
    Branch("srd_e2", "float32", "MeV", "SRD module 3 energy"),
    Branch("srd_t0", "float32", "ns", "SRD module 1 time w.r.t. trigger"),
    Branch("srd_t1", "float32", "ns", "SRD module 2 time w.r.t. trigger"),
    Branch("srd_t2", "float32", "ns", "SRD module 3 time w.r.t. trigger"),
    Branch("ecal_e", "float32", "GeV", "ECAL total energy (6x6 cells, PS included)"),
    Branch("ecal_ps_e", "float32", "GeV", "preshower energy (first ~4 X0)"),
    Branch("ecal_chi2", "float32", "", "e-m shower-shape chi2 (lateral + longitudinal) per d.o.f."),
    Branch("ecal_x", "float32", "mm", "ECAL shower centroid x"),
    Branch("ecal_y", "float32", "mm", "ECAL shower centroid y"),
    Branch("ecal_t", "float32", "ns", "time of the ECAL central-cell peak w.r.t. trigger"),
    Branch("ecal_pileup", "uint8", "", "pile-up algorithm flag: >1 peak within +-2 ns in a cell > 1 GeV"),
    Branch("veto_e0", "float32", "MeV", "VETO (V2) counter 1 energy"),
    Branch("veto_e1", "float32", "MeV", "VETO (V2) counter 2 energy"),
    Branch("veto_e2", "float32", "MeV", "VETO (V2) counter 3 energy"),
    Branch("hcal_e0", "float32", "GeV", "HCAL1 module energy"),
    Branch("hcal_e1", "float32", "GeV", "HCAL2 module energy"),
    Branch("hcal_e2", "float32", "GeV", "HCAL3 module energy"),
    Branch("hcal_e3", "float32", "GeV", "HCAL4 module energy"),
    Branch("hcal0_e", "float32", "GeV", "zero-degree calorimeter HCAL0 energy (0 where not installed)"),
    Branch("truth_process", "int8", "", "simulated process id (see Process)", mc_only=True),
    Branch("truth_pdg", "int32", "", "true beam particle PDG id", mc_only=True),
    Branch("truth_e0", "float32", "GeV", "true beam-particle energy", mc_only=True),
    Branch("truth_eaprime", "float32", "GeV", "true A' energy (0 if no A')", mc_only=True),
    Branch("weight", "float32", "", "event weight (events per generated event)", mc_only=True),
)

BY_NAME = {b.name: b for b in BRANCHES}
DATA_BRANCHES = tuple(b.name for b in BRANCHES if not b.mc_only)


class Process(IntEnum):
    """Simulated process ids stored in ``truth_process``."""

    EM_SHOWER = 0
    HADRON_ELECTROPRODUCTION = 1
    DIMUON = 2
    UPSTREAM_INTERACTION = 3
    DECAY_IN_FLIGHT = 4
    PUNCH_THROUGH = 5
    PILEUP = 6
    BEAM_HADRON = 7
    LOW_ENERGY_ELECTRON = 8
    BEAM_MUON = 9
    SIGNAL = 10


def branch_types(mc: bool = True) -> dict[str, np.dtype]:
    """``{branch: numpy dtype}`` for ``uproot.WritableDirectory.mktree``."""
    return {b.name: np.dtype(b.dtype) for b in BRANCHES if mc or not b.mc_only}


def load_branch_map(spec: str | Path | dict | None, *, base: Path | None = None) -> dict[str, str]:
    """Read a branch map ``{canonical: name_in_file}`` from a dict, or a .toml/.json file.

    Unknown canonical names are an error naming the file: a typo must not silently fall back.
    """
    if spec is None:
        return {}
    origin = "branch map"
    if isinstance(spec, dict):
        mapping = dict(spec)
    else:
        path = Path(spec)
        if base is not None and not path.is_absolute():
            path = base / path
        origin = str(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: branch map file not found")
        text = path.read_bytes()
        mapping = tomllib.loads(text.decode()) if path.suffix == ".toml" else json.loads(text)
        mapping = mapping.get("branches", mapping)
    unknown = sorted(set(mapping) - set(BY_NAME))
    if unknown:
        raise ValueError(f"{origin}: unknown canonical branch(es) {unknown}; see na64ana.contract.BRANCHES")
    return {str(k): str(v) for k, v in mapping.items()}


def resolve(name: str, branch_map: dict[str, str] | None = None) -> str:
    """Name in the file for canonical branch ``name``."""
    if branch_map and name in branch_map:
        return branch_map[name]
    return name


def markdown_table() -> str:
    """The contract as a markdown table (embedded in the README and docs)."""
    rows = ["| branch | dtype | unit | meaning |", "|---|---|---|---|"]
    for b in BRANCHES:
        doc = b.doc + (" (MC only)" if b.mc_only else "")
        rows.append(f"| `{b.name}` | {b.dtype} | {b.unit or '-'} | {doc} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------------
# Visible mode (A' -> e+ e- behind the tungsten calorimeter WCAL): a separate branch set.
#
# Why separate: the visible-mode detector is a different arrangement (WCAL as the target, V2/W2 veto, the
# decay volume with the counters S1-S4, the ECAL as the e+e- detector, V3 and the HCAL behind it), so its
# files carry other branches; the invisible contract above and everything keyed on it stay unchanged.
# Detectors common to both setups keep their invisible-mode names and meaning (run/event bookkeeping,
# tracker, SRD, ECAL, HCAL modules), so the shared cut variables (srd_e_min, hcal_e, ...) apply as they
# are. Energies in GeV except the counters S1-S4, V2/W2 and V3 (MeV; one MIP ~ 1 MeV), times in ns.

VISIBLE_BRANCHES: tuple[Branch, ...] = (
    *(b for b in BRANCHES if b.name in ("run", "spill", "event", "trigger", "track_n", "track_p")),
    *(b for b in BRANCHES if b.name.startswith("srd_")),
    Branch("wcal_e", "float32", "GeV", "WCAL (tungsten-scintillator target calorimeter) total energy"),
    Branch("wcal_ps_e", "float32", "GeV", "WCAL energy in its first ~2 X0 (early shower start)"),
    Branch("wcal_t", "float32", "ns", "WCAL signal time w.r.t. trigger"),
    Branch("v2_e", "float32", "MeV", "veto right behind the WCAL: V2 (2017) or the thin W2 (2018)"),
    Branch("s1_e", "float32", "MeV", "beam counter S1 energy (upstream)"),
    Branch("s2_e", "float32", "MeV", "beam counter S2 energy (upstream)"),
    Branch("s3_e", "float32", "MeV", "beam counter S3 energy (upstream, in front of the WCAL)"),
    Branch("s4_e", "float32", "MeV", "counter S4 at the end of the decay volume (e+e- pair: two MIPs)"),
    *(b for b in BRANCHES if b.name in ("ecal_e", "ecal_chi2", "ecal_x", "ecal_y", "ecal_t")),
    Branch("ecal_ncl", "int16", "", "number of separated e-m clusters in the ECAL (signal: 1)"),
    Branch("v3_e", "float32", "MeV", "veto V3 between the ECAL and the HCAL"),
    *(b for b in BRANCHES if b.name in ("hcal_e0", "hcal_e1", "hcal_e2", "hcal_e3")),
    Branch("truth_process", "int8", "", "simulated process id (see VisibleProcess)", mc_only=True),
    Branch("truth_pdg", "int32", "", "true beam particle PDG id", mc_only=True),
    Branch("truth_e0", "float32", "GeV", "true beam-particle energy", mc_only=True),
    Branch("truth_eaprime", "float32", "GeV", "true A' energy (0 if no A')", mc_only=True),
    Branch("truth_decay_z", "float32", "mm", "true A' (or K0_S) decay point from the WCAL front (0 if none)",
           mc_only=True),
    Branch("weight", "float32", "", "event weight (events per generated event)", mc_only=True),
)

VISIBLE_BY_NAME = {b.name: b for b in VISIBLE_BRANCHES}


class VisibleProcess(IntEnum):
    """Simulated process ids of the visible mode, stored in ``truth_process`` of visible files."""

    EM_SHOWER = 0
    BEAM_HADRON = 1
    K0_CONVERSION = 2
    PILEUP = 3
    SIGNAL = 10


def visible_branch_types(mc: bool = True) -> dict[str, np.dtype]:
    """``{branch: numpy dtype}`` of the visible-mode contract (for ``mktree``)."""
    return {b.name: np.dtype(b.dtype) for b in VISIBLE_BRANCHES if mc or not b.mc_only}


def visible_markdown_table() -> str:
    """The visible-mode contract as a markdown table (docs/visible.md)."""
    rows = ["| branch | dtype | unit | meaning |", "|---|---|---|---|"]
    for b in VISIBLE_BRANCHES:
        doc = b.doc + (" (MC only)" if b.mc_only else "")
        rows.append(f"| `{b.name}` | {b.dtype} | {b.unit or '-'} | {doc} |")
    return "\n".join(rows)
