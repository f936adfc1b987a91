"""Simulate a campaign to disk: one ROOT file per run plus a validated datasets.json listing them.

Output layout: ``out_dir/<campaign>/run_<RUN>.root`` (skim or trigger level), signal MC as
``out_dir/<campaign>/signal_m<MeV>MeV_run_<RUN>.root``, ``out_dir/datasets.json`` (a copy of the input
with the simulated files filled in; paths relative to ``out_dir``), ``out_dir/provenance.json``.
Nothing half-written is left: files are written atomically and removed again if a later run fails.
The provenance record lists every written file (path, sha256, events, EOT, seed) and the source
datasets.json as input; the folder's manifest hashes all of them (``na64ana verify``).
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets as dsets
from ..bookkeeping import provenance
from ..errors import InputError
from .generate import LEVELS, generate_events
from .rates import BeamSpec
from .signal import PRODUCTIONS, simulate_signal_sample
from .visible import generate_visible_run, write_visible_tree
from .writer import COMPRESSIONS, write_tree

STAGE = "simulate"
# A skim of a run above this many EOT is written as several files ("parts") of equal EOT: memory stays that of
# the largest 2016-2018 run (1.85e11 EOT, ~3.8e6 skim events) whatever the run's size (2022: 6.15e11 EOT).
MAX_EOT_PER_FILE = 2.0e11


def run_parts(eot: float, max_eot: float | None = None) -> int:
    """Number of equal-EOT files a skim of ``eot`` is written as (1 up to ``max_eot``, default
    :data:`MAX_EOT_PER_FILE`)."""
    return max(1, int(np.ceil(eot / (max_eot or MAX_EOT_PER_FILE) - 1e-9)))


def run_seed(seed: int, campaign: str, run_name: str, sample: str = "campaign") -> int:
    """Deterministic per-file seed from (seed, campaign, run, sample): independent, reproducible runs."""
    key = zlib.crc32(f"{campaign}/{run_name}/{sample}".encode())
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, key]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _check_options(level: str, n_events: int | None, compression: str, signal_mass: float | None,
                   signal_eps: float | None) -> None:
    if level not in LEVELS:
        raise InputError(f"unknown level '{level}' (choose {', '.join(LEVELS)})", field="level")
    if compression not in COMPRESSIONS:
        raise InputError(f"unknown compression '{compression}' (choose {', '.join(COMPRESSIONS)})",
                         field="compression")
    if level == "trigger" and (n_events is None or n_events <= 0):
        raise InputError("trigger level needs --n-events > 0", field="n_events")
    if n_events is not None and (int(n_events) != n_events or n_events < 0):
        raise InputError(f"n_events must be a non-negative integer, got {n_events!r}", field="n_events")
    if (signal_mass is None) != (signal_eps is None):
        raise InputError("give both --signal-mass and --signal-eps (or neither)", field="signal")
    for name, v in (("signal_mass", signal_mass), ("signal_eps", signal_eps)):
        if v is not None and not (np.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a positive number, got {v!r}", field=name)


def _rebase(entry: dsets.FileEntry, src: Path, out: Path) -> dsets.FileEntry:
    """Keep an input file entry valid from the new datasets.json location."""
    p = dsets.resolve_path(entry, src)
    return entry.model_copy(update={"path": os.path.relpath(p, out.resolve())})


def _write_datasets(ds: dsets.Datasets, src: Path, out: Path, campaign: str,
                    new: dict[str, list[dsets.FileEntry]]) -> Path:
    data = ds.model_copy(deep=True)
    for cname, camp in data.campaigns.items():
        for rname, run in camp.runs.items():
            fresh = new.get(rname, []) if cname == campaign else []
            fresh_paths = {f.path for f in fresh}
            kept = [_rebase(f, src, out) for f in run.files]
            run.files = [f for f in kept if f.path not in fresh_paths] + fresh
    checked = dsets.validate(data.model_dump(mode="json"), file=str(out / "datasets.json"))
    dsets.dump(checked, out / "datasets.json")
    return out / "datasets.json"


def _progress(enabled: bool, total: int):
    if not enabled:
        return nullcontext(None)
    from rich.progress import Progress

    return Progress(transient=True)


def _record(out: Path, stage: str, src: Path, seed: int, files: list[dict], clock: provenance.Clock,
            **info: Any) -> None:
    """The stage's provenance: source datasets.json in, the files written (with their seeds) out."""
    provenance.write(out, stage, inputs=[src], outputs=[r["path"] for r in files] + ["datasets.json"],
                     seeds={"seed": seed, "files": {r["path"]: r["seed"] for r in files}},
                     metrics=clock.metrics(events=sum(r["events"] for r in files)), datasets=str(src),
                     seed=seed, files=files, **info)


@dataclass
class _File:
    """One file to simulate: where it goes, its seed, how to make its arrays, its datasets.json fields."""

    run: str
    rel: str
    seed: int
    make: Callable[[np.random.Generator, dict], dict[str, np.ndarray]]  # (rng, info) -> arrays
    entry: dict[str, Any]
    extra: Callable[[dict], dict[str, Any]] = lambda info: {}  # report fields from the generator's info
    write: Callable[..., int] = write_tree  # the branch set's writer (visible mode: write_visible_tree)


def _simulate_files(ds: dsets.Datasets, src: Path, out: Path, cname: str, tree: str, files: list[_File], *,
                    compression: str, progress: bool, label: str, report: list[dict]) -> Path:
    """Generate and write ``files``, then the datasets.json listing them; on any failure the files written
    so far are removed again, so nothing half-written is left behind."""
    written: list[Path] = []
    new: dict[str, list[dsets.FileEntry]] = {}
    try:
        (out / cname).mkdir(exist_ok=True)
        with _progress(progress, len(files)) as bar:
            task = bar.add_task(label, total=len(files)) if bar else None
            for f in files:
                t0 = time.perf_counter()
                info: dict = {}
                arrays = f.make(np.random.default_rng(f.seed), info)
                n = f.write(out / f.rel, arrays, compression=compression, tree=tree)
                written.append(out / f.rel)
                eot = float(info.get("eot", 0.0))
                sha = provenance.file_sha256(out / f.rel)  # cached: the manifest reuses it
                new.setdefault(f.run, []).append(dsets.FileEntry(
                    path=f.rel, tree=tree, nevents=n, eot=eot, sha256=sha, seed=f.seed, **f.entry))
                report.append({"run": f.run, "events": n, "eot": eot, "seconds": time.perf_counter() - t0,
                               "path": f.rel, "sha256": sha, "seed": f.seed, **f.extra(info)})
                if bar:
                    bar.advance(task)
        return _write_datasets(ds, src, out, cname, new)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise


def simulate_campaign(datasets_path: str | Path, *, out_dir: str | Path, campaign: str | None = None,
                      runs: Sequence[str] | None = None, level: str = "skim", seed: int = 2019,
                      n_events: int | None = None, signal_mass: float | None = None,
                      signal_eps: float | None = None, compression: str = "lz4", progress: bool = False,
                      report: list[dict] | None = None) -> Path:
    """Simulate the runs of a campaign; returns the path of the written ``out_dir/datasets.json``.

    ``report`` (optional list) receives one dict per written file (run, events, eot, seconds, path).
    """
    src = Path(datasets_path)
    ds = dsets.load(src)
    cname = campaign or ds.default_campaign
    selected = ds.runs(cname, list(runs) if runs else None, file=str(src))
    camp = ds.campaign(cname, file=str(src))
    _check_options(level, n_events, compression, signal_mass, signal_eps)
    out = provenance.prepare_outdir(out_dir, stage=STAGE)
    clock = provenance.Clock()
    sample = "campaign" if level == "skim" else "trigger"
    signal = (float(signal_mass), float(signal_eps)) \
        if signal_mass is not None and signal_eps is not None else None
    report = [] if report is None else report
    n0 = len(report)  # the caller's list may hold earlier files

    beam = BeamSpec.of(camp)

    def make(run, rname, eot=None, spill_offset=0):
        box = run.box_ecal_max_GeV  # None: the published 50 GeV (unchanged for the 2016-2018 campaigns)
        return lambda rng, info: generate_events(run, campaign=cname, run_name=rname, level=level, rng=rng,
                                                 n_events=n_events, beam_energy=camp.beam_energy_GeV,
                                                 signal=signal, emiss_min=camp.emiss_min(run), info=info,
                                                 beam=beam, box_ecal_max=box, eot=eot,
                                                 spill_offset=spill_offset)

    writer: Callable[..., int] = write_tree
    if camp.selection == "visible":  # A' -> e+e- behind the WCAL: its own detector, generator and branches
        def make(run, rname, eot=None, spill_offset=0):  # one file per run: eot, spill_offset unused
            return lambda rng, info: generate_visible_run(run, campaign=cname, run_name=rname, rng=rng,
                                                          beam_energy=camp.beam_energy_GeV, n_events=n_events,
                                                          signal=signal, info=info)
        writer = write_visible_tree

    entry = {"kind": "data", "sample": sample, "signal_mass_GeV": signal[0] if signal else None,
             "signal_eps": signal[1] if signal else None}
    files = []
    for rname, run in selected.items():
        parts = run_parts(run.eot) if level == "skim" and camp.selection != "visible" else 1
        if parts == 1:
            files.append(_File(rname, f"{cname}/run_{rname}.root", run_seed(seed, cname, rname, sample),
                               make(run, rname), entry, lambda info: {"generated": info.get("generated", {})},
                               writer))
            continue
        spills = int(np.ceil(run.eot / parts / run.intensity_nominal))
        files += [_File(rname, f"{cname}/run_{rname}_part{i}.root",
                        run_seed(seed, cname, rname, f"{sample}_part{i}"),
                        make(run, rname, run.eot / parts, i * spills), entry,
                        lambda info: {"generated": info.get("generated", {})}, writer)
                  for i in range(parts)]
    path = _simulate_files(ds, src, out, cname, camp.tree, files, compression=compression, progress=progress,
                           label=f"simulate {cname}", report=report)
    _record(out, STAGE, src, seed, report[n0:], clock, campaign=cname, level=level, n_events=n_events,
            signal_mass_GeV=signal_mass, signal_eps=signal_eps, compression=compression)
    return path


def simulate_signal_samples(datasets_path: str | Path, *, out_dir: str | Path, masses_GeV: Sequence[float],
                            n_events: int, eps: float = 1e-4, campaign: str | None = None,
                            runs: Sequence[str] | None = None, seed: int = 2019, compression: str = "lz4",
                            progress: bool = False, report: list[dict] | None = None,
                            production: str = "brem") -> Path:
    """Signal MC (kind="mc", sample="signal") per run and mass for efficiency studies; returns datasets.json.

    Each file holds the triggered events of ``n_events`` generated A'; weight = A' per EOT (at ``eps``,
    E_A' > 0.8 emiss_min) per generated event. ``production="annihilation"``: resonant e+ e- -> A' events
    (the line E_miss = E_R, files ``signal_annihilation_m<MeV>MeV_run_<RUN>.root``, entries with
    ``signal_production``); every mass must have its line inside the run's window. The campaign's beam
    particle and each run's box edge (``emiss_min`` = E0 - box) are used.
    """
    src = Path(datasets_path)
    ds = dsets.load(src)
    cname = campaign or ds.default_campaign
    selected = ds.runs(cname, list(runs) if runs else None, file=str(src))
    camp = ds.campaign(cname, file=str(src))
    if not masses_GeV:
        raise InputError("give at least one mass", field="masses")
    _check_options("skim", n_events, compression, masses_GeV[0], eps)
    if n_events is None or n_events <= 0:
        raise InputError("--n-events must be > 0 for signal samples", field="n_events")
    for m in masses_GeV:
        _check_options("skim", None, compression, m, eps)
    if production not in (*PRODUCTIONS, "primakoff"):
        raise InputError(f"unknown production '{production}' (choose {', '.join(PRODUCTIONS)}, primakoff)",
                         field="production")
    ann = production == "annihilation"
    if ann:  # every line must be inside every run's window before anything is written
        from .annihilation import check_line

        for run in selected.values():
            for m in masses_GeV:
                check_line(m, e_nominal=camp.beam_energy_GeV, ea_min=0.8 * camp.emiss_min(run),
                           beam=camp.beam)
    out = provenance.prepare_outdir(out_dir, stage=STAGE)
    clock = provenance.Clock()
    report = [] if report is None else report
    n0 = len(report)  # the caller's list may hold earlier files

    def make(run, rname, m):
        if production == "primakoff":  # ALPs (simulation/alp.py): eps is g_agg in GeV^-1
            from .alp import simulate_alp_sample

            return lambda rng, info: simulate_alp_sample(run, mass_GeV=m, n_events=n_events, g_agg=eps,
                                                         rng=rng, run_name=rname,
                                                         beam_energy=camp.beam_energy_GeV, info=info)
        return lambda rng, info: simulate_signal_sample(run, mass_GeV=m, n_events=n_events, eps=eps, rng=rng,
                                                        run_name=rname, beam_energy=camp.beam_energy_GeV,
                                                        emiss_min=camp.emiss_min(run), info=info,
                                                        production=production, beam=camp.beam)

    tag = {"annihilation": "signal_annihilation", "primakoff": "signal_alp"}.get(production, "signal")
    files = [_File(rname, f"{cname}/{tag}_m{m * 1e3:g}MeV_run_{rname}.root",
                   run_seed(seed, cname, rname, f"{tag}_m{m * 1e3:g}MeV"), make(run, rname, m),
                   {"kind": "mc", "sample": "signal_alp" if production == "primakoff" else "signal",
                    "signal_mass_GeV": m, "signal_eps": eps,
                    "signal_production": "annihilation" if ann else None},
                   _signal_extra(m, n_events))
             for rname, run in selected.items() for m in masses_GeV]
    path = _simulate_files(ds, src, out, cname, camp.tree, files, compression=compression, progress=progress,
                           label="signal MC", report=report)
    _record(out, f"{STAGE}_signal", src, seed, report[n0:], clock, campaign=cname, eps=eps,
            masses_GeV=list(masses_GeV), n_events=n_events, compression=compression,
            **({"production": production} if ann else {}))
    return path


def _signal_extra(m: float, n_events: int) -> Callable[[dict], dict[str, Any]]:
    """Report fields of a signal file (from the generator's info)."""
    return lambda info: {"mass_GeV": m, "generated": n_events, "yield_per_eot": info["yield_per_eot"]}


def simulate_dimuon_samples(datasets_path: str | Path, *, out_dir: str | Path, n_events: int,
                            campaign: str | None = None, runs: Sequence[str] | None = None, seed: int = 2019,
                            compression: str = "lz4", progress: bool = False,
                            report: list[dict] | None = None) -> Path:
    """Dimuon MC prediction (kind="mc", sample="dimuon_mc") per run; returns the written datasets.json.

    ``n_events`` dimuons are generated per run; sum of weights = expected dimuons at the run's EOT / f
    (published data/MC reduction factor), see :mod:`na64ana.simulation.dimuon`.
    """
    from .dimuon import simulate_dimuon_sample

    src = Path(datasets_path)
    ds = dsets.load(src)
    cname = campaign or ds.default_campaign
    selected = ds.runs(cname, list(runs) if runs else None, file=str(src))
    camp = ds.campaign(cname, file=str(src))
    if n_events is None or int(n_events) != n_events or n_events <= 0:
        raise InputError("--n-events must be > 0 for the dimuon sample", field="n_events")
    _check_options("skim", n_events, compression, None, None)
    out = provenance.prepare_outdir(out_dir, stage=STAGE)
    clock = provenance.Clock()
    report = [] if report is None else report
    n0 = len(report)  # the caller's list may hold earlier files

    def make(run, rname):
        return lambda rng, info: simulate_dimuon_sample(run, n_events=int(n_events), rng=rng, campaign=cname,
                                                        run_name=rname, beam_energy=camp.beam_energy_GeV,
                                                        info=info)

    files = [_File(rname, f"{cname}/dimuon_mc_run_{rname}.root", run_seed(seed, cname, rname, "dimuon_mc"),
                   make(run, rname), {"kind": "mc", "sample": "dimuon_mc"},
                   lambda info: {"generated": int(n_events), "reduction_factor": info["reduction_factor"]})
             for rname, run in selected.items()]
    path = _simulate_files(ds, src, out, cname, camp.tree, files, compression=compression, progress=progress,
                           label="dimuon MC", report=report)
    _record(out, f"{STAGE}_dimuon", src, seed, report[n0:], clock, campaign=cname, n_events=n_events,
            compression=compression)
    return path
