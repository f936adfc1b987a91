"""Simulate a campaign to disk: one ROOT file per run plus a validated datasets.json listing them.

Output layout: ``out_dir/<campaign>/run_<RUN>.root`` (skim or trigger level), signal MC as
``out_dir/<campaign>/signal_m<MeV>MeV_run_<RUN>.root``, ``out_dir/datasets.json`` (a copy of the input
with the simulated files filled in; paths relative to ``out_dir``), ``out_dir/provenance.json``.
Nothing half-written is left: files are written atomically and removed again if a later run fails.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from .. import datasets as dsets
from .. import provenance
from ..errors import InputError
from .generate import LEVELS, generate_events
from .signal import simulate_signal_sample
from .writer import COMPRESSIONS, write_tree

STAGE = "simulate"


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
    sample = "campaign" if level == "skim" else "trigger"
    signal = (float(signal_mass), float(signal_eps)) if signal_mass is not None else None
    report = [] if report is None else report
    written: list[Path] = []
    new: dict[str, list[dsets.FileEntry]] = {}
    try:
        (out / cname).mkdir(exist_ok=True)
        with _progress(progress, len(selected)) as bar:
            task = bar.add_task(f"simulate {cname}", total=len(selected)) if bar else None
            for rname, run in selected.items():
                s = run_seed(seed, cname, rname, sample)
                t0 = time.perf_counter()
                info: dict = {}
                arrays = generate_events(run, campaign=cname, run_name=rname, level=level,
                                         rng=np.random.default_rng(s), n_events=n_events,
                                         beam_energy=camp.beam_energy_GeV, signal=signal,
                                         emiss_min=camp.emiss_min_GeV, info=info)
                rel = f"{cname}/run_{rname}.root"
                n = write_tree(out / rel, arrays, compression=compression, tree=camp.tree)
                written.append(out / rel)
                dt = time.perf_counter() - t0
                new[rname] = [dsets.FileEntry(
                    path=rel, tree=camp.tree, nevents=n, eot=float(info["eot"]),
                    sha256=dsets.sha256sum(out / rel), kind="data", sample=sample, seed=s,
                    signal_mass_GeV=signal[0] if signal else None, signal_eps=signal[1] if signal else None)]
                report.append({"run": rname, "events": n, "eot": float(info["eot"]), "seconds": dt,
                               "path": rel, "generated": info.get("generated", {})})
                if bar:
                    bar.advance(task)
        path = _write_datasets(ds, src, out, cname, new)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    provenance.write(out, STAGE, datasets=str(src), campaign=cname, level=level, seed=seed,
                     n_events=n_events, signal_mass_GeV=signal_mass, signal_eps=signal_eps,
                     compression=compression, files=report)
    return path


def simulate_signal_samples(datasets_path: str | Path, *, out_dir: str | Path, masses_GeV: Sequence[float],
                            n_events: int, eps: float = 1e-4, campaign: str | None = None,
                            runs: Sequence[str] | None = None, seed: int = 2019, compression: str = "lz4",
                            progress: bool = False, report: list[dict] | None = None) -> Path:
    """Signal MC (kind="mc", sample="signal") per run and mass for efficiency studies; returns datasets.json.

    Each file holds the triggered events of ``n_events`` generated A'; weight = A' per EOT (at ``eps``,
    E_A' > 0.8 emiss_min) per generated event.
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
    out = provenance.prepare_outdir(out_dir, stage=STAGE)
    report = [] if report is None else report
    written: list[Path] = []
    new: dict[str, list[dsets.FileEntry]] = {r: [] for r in selected}
    try:
        (out / cname).mkdir(exist_ok=True)
        with _progress(progress, len(selected) * len(masses_GeV)) as bar:
            task = bar.add_task("signal MC", total=len(selected) * len(masses_GeV)) if bar else None
            for rname, run in selected.items():
                for m in masses_GeV:
                    tag = f"m{m * 1e3:g}MeV"
                    s = run_seed(seed, cname, rname, f"signal_{tag}")
                    t0 = time.perf_counter()
                    info: dict = {}
                    arrays = simulate_signal_sample(run, mass_GeV=m, n_events=n_events, eps=eps,
                                                    rng=np.random.default_rng(s), run_name=rname,
                                                    beam_energy=camp.beam_energy_GeV,
                                                    emiss_min=camp.emiss_min_GeV, info=info)
                    rel = f"{cname}/signal_{tag}_run_{rname}.root"
                    n = write_tree(out / rel, arrays, compression=compression, tree=camp.tree)
                    written.append(out / rel)
                    new[rname].append(dsets.FileEntry(
                        path=rel, tree=camp.tree, nevents=n, eot=0.0, sha256=dsets.sha256sum(out / rel),
                        kind="mc", sample="signal", seed=s, signal_mass_GeV=m, signal_eps=eps))
                    report.append({"run": rname, "mass_GeV": m, "events": n, "generated": n_events,
                                   "eot": 0.0, "seconds": time.perf_counter() - t0, "path": rel,
                                   "yield_per_eot": info["yield_per_eot"]})
                    if bar:
                        bar.advance(task)
        path = _write_datasets(ds, src, out, cname, new)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    provenance.write(out, f"{STAGE}_signal", datasets=str(src), campaign=cname, seed=seed, eps=eps,
                     masses_GeV=list(masses_GeV), n_events=n_events, compression=compression, files=report)
    return path


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
    report = [] if report is None else report
    written: list[Path] = []
    new: dict[str, list[dsets.FileEntry]] = {}
    try:
        (out / cname).mkdir(exist_ok=True)
        with _progress(progress, len(selected)) as bar:
            task = bar.add_task("dimuon MC", total=len(selected)) if bar else None
            for rname, run in selected.items():
                s = run_seed(seed, cname, rname, "dimuon_mc")
                t0 = time.perf_counter()
                info: dict = {}
                arrays = simulate_dimuon_sample(run, n_events=int(n_events), rng=np.random.default_rng(s),
                                                campaign=cname, run_name=rname,
                                                beam_energy=camp.beam_energy_GeV, info=info)
                rel = f"{cname}/dimuon_mc_run_{rname}.root"
                n = write_tree(out / rel, arrays, compression=compression, tree=camp.tree)
                written.append(out / rel)
                new[rname] = [dsets.FileEntry(path=rel, tree=camp.tree, nevents=n, eot=0.0,
                                              sha256=dsets.sha256sum(out / rel), kind="mc",
                                              sample="dimuon_mc", seed=s)]
                report.append({"run": rname, "events": n, "generated": int(n_events), "eot": 0.0,
                               "seconds": time.perf_counter() - t0, "path": rel,
                               "reduction_factor": info["reduction_factor"]})
                if bar:
                    bar.advance(task)
        path = _write_datasets(ds, src, out, cname, new)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    provenance.write(out, f"{STAGE}_dimuon", datasets=str(src), campaign=cname, seed=seed,
                     n_events=n_events, compression=compression, files=report)
    return path
