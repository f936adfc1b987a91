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
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets as dsets
from ..bookkeeping import provenance
from ..errors import InputError
from ..physics import visible as vis_physics
from .generate import LEVELS, generate_events
from .rates import BeamSpec
from .signal import MIGRATION_FRACTION, PRODUCTIONS, simulate_signal_sample
from .visible import generate_visible_run, simulate_visible_signal_sample, write_visible_tree
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
    #: datasets.json fields known only after generation (from the generator's info)
    entry_from_info: Callable[[dict], dict[str, Any]] = lambda info: {}


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
                    path=f.rel, tree=tree, nevents=n, eot=eot, sha256=sha, seed=f.seed, **f.entry,
                    **f.entry_from_info(info)))
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


def simulate_signal_samples(datasets_path: str | Path, *, out_dir: str | Path,
                            masses_GeV: Sequence[float] | Mapping[str, Sequence[float]],
                            n_events: int, eps: float = 1e-4, campaign: str | None = None,
                            runs: Sequence[str] | None = None, seed: int = 2019, compression: str = "lz4",
                            progress: bool = False, report: list[dict] | None = None,
                            production: str | Sequence[str] = "brem",
                            couplings: Mapping[float, float] | None = None) -> Path:
    """Signal MC (kind="mc", sample="signal") per run, production and mass; returns datasets.json.

    Each file holds the triggered events of ``n_events`` generated signal events; weight = signal per EOT
    (at ``eps``, E_A' > 0.8 emiss_min) per generated event. ``production`` is one mechanism or several
    (one datasets.json lists them all): ``"brem"``; ``"annihilation"`` (resonant e+ e- -> A' events, the line
    E_miss = E_R, files ``signal_annihilation_m<MeV>MeV_run_<RUN>.root``, entries with
    ``signal_production``); ``"primakoff"`` (ALPs, :mod:`.alp`, ``eps`` is g_agg in GeV^-1, sample
    ``signal_alp``); ``"visible"`` (A' -> e+e- behind the WCAL, :mod:`.visible`; the only production of a
    visible-mode campaign). ``masses_GeV``: the masses of every production, or ``{production: masses}``.
    Annihilation alone: every mass must have its line inside every run's window; annihilation next to
    another production: the masses whose line misses a window are left out (recorded in the provenance),
    none left is an error. ``couplings``: ``{mass: coupling}`` overriding ``eps`` per mass (e.g. an ALP
    g_agg whose decays reach the HCAL). The campaign's beam particle and each run's box edge
    (``emiss_min`` = E0 - box) are used. The provenance records the generation coverage
    ``signal_ea_min_fraction`` (E_A' generated above that fraction of the run's E_miss threshold).
    """
    from .annihilation import check_line

    src = Path(datasets_path)
    ds = dsets.load(src)
    cname = campaign or ds.default_campaign
    selected = ds.runs(cname, list(runs) if runs else None, file=str(src))
    camp = ds.campaign(cname, file=str(src))
    prods = [production] if isinstance(production, str) else list(production)
    visible = camp.selection == "visible"
    known = ("visible",) if visible else (*PRODUCTIONS, "primakoff")
    bad = [p for p in prods if p not in known] or ([] if prods else ["(none)"])
    if bad or len(set(prods)) != len(prods):
        what = f"unknown production '{bad[0]}'" if bad else "repeated production"
        raise InputError(f"{what} for campaign {cname} (choose {', '.join(known)})", field="production")
    per_prod = ({p: list(masses_GeV.get(p, ())) for p in prods} if isinstance(masses_GeV, Mapping)
                else {p: list(masses_GeV) for p in prods})
    if not any(per_prod.values()):
        raise InputError("give at least one mass", field="masses")
    if n_events is None or n_events <= 0:
        raise InputError("--n-events must be > 0 for signal samples", field="n_events")
    for ms in per_prod.values():
        for m in ms:
            _check_options("skim", n_events, compression, m, (couplings or {}).get(m, eps))
    skipped: dict[str, list[float]] = {}
    if "annihilation" in per_prod:  # every line inside every run's window, before anything is written
        inside = []
        for m in per_prod["annihilation"]:
            try:
                for run in selected.values():
                    check_line(m, e_nominal=camp.beam_energy_GeV, beam=camp.beam,
                               ea_min=MIGRATION_FRACTION * camp.emiss_min(run))
                inside.append(m)
            except InputError:
                if len(prods) == 1:
                    raise
                skipped.setdefault("annihilation", []).append(m)
        if not inside:
            raise InputError(f"no mass of {per_prod['annihilation']} GeV has its annihilation line inside "
                             "the window of every run", field="masses")
        per_prod["annihilation"] = inside
    out = provenance.prepare_outdir(out_dir, stage=STAGE)
    clock = provenance.Clock()
    report = [] if report is None else report
    n0 = len(report)  # the caller's list may hold earlier files

    def make(run, rname, m, prod, coupling):
        if prod == "primakoff":  # ALPs (simulation/alp.py): the coupling is g_agg in GeV^-1
            from .alp import simulate_alp_sample

            return lambda rng, info: simulate_alp_sample(run, mass_GeV=m, n_events=n_events, g_agg=coupling,
                                                         rng=rng, run_name=rname,
                                                         beam_energy=camp.beam_energy_GeV, info=info)
        if prod == "visible":  # A' -> e+e- decaying between the veto and the ECAL (simulation/visible.py)
            return lambda rng, info: _visible_signal(run, cname, rname, m, n_events, coupling,
                                                     camp.beam_energy_GeV, rng, info)
        return lambda rng, info: simulate_signal_sample(run, mass_GeV=m, n_events=n_events, eps=coupling,
                                                        rng=rng, run_name=rname, info=info,
                                                        beam_energy=camp.beam_energy_GeV,
                                                        emiss_min=camp.emiss_min(run),
                                                        production=prod, beam=camp.beam)

    files = []
    for prod in prods:
        tag = {"annihilation": "signal_annihilation", "primakoff": "signal_alp"}.get(prod, "signal")
        for rname, run in selected.items():
            for m in per_prod[prod]:
                coupling = float((couplings or {}).get(m, eps))
                files.append(_File(
                    rname, f"{cname}/{tag}_m{m * 1e3:g}MeV_run_{rname}.root",
                    run_seed(seed, cname, rname, f"{tag}_m{m * 1e3:g}MeV"),
                    make(run, rname, m, prod, coupling),
                    {"kind": "mc", "sample": tag,
                     "signal_mass_GeV": m, "signal_eps": coupling,
                     "signal_production": "annihilation" if prod == "annihilation" else None},
                    _signal_extra(m, n_events, prod),
                    write_visible_tree if visible else write_tree,
                    _signal_entry_from_info))
    path = _simulate_files(ds, src, out, cname, camp.tree, files, compression=compression, progress=progress,
                           label="signal MC", report=report)
    coverage = None if visible else MIGRATION_FRACTION
    masses_rec: Any = (per_prod[prods[0]] if len(prods) == 1
                       else {p: [float(m) for m in ms] for p, ms in per_prod.items()})
    _record(out, f"{STAGE}_signal", src, seed, report[n0:], clock, campaign=cname, eps=eps,
            masses_GeV=masses_rec, n_events=n_events, compression=compression, productions=prods,
            couplings={str(m): c for m, c in (couplings or {}).items()}, skipped_masses=skipped,
            signal_ea_min_fraction=coverage,
            **({"production": production} if prods == ["annihilation"] else {}))
    return path


def _visible_signal(run: dsets.Run, cname: str, rname: str, mass: float, n_events: int, eps: float,
                    beam_energy: float, rng: np.random.Generator, info: dict) -> dict[str, np.ndarray]:
    """Visible-mode signal MC of one run: its setup (checked against the campaign) and A' decaying in the
    decay volume; weight = A' per EOT decaying there (E_A' above the setup's threshold) per generated
    event."""
    setups = vis_physics.load_setups()
    if run.setup is None:
        raise InputError("a visible-mode run needs 'setup' (a configuration of visible_setup.toml)",
                         field=f"campaigns.{cname}.runs.{rname}.setup")
    setup = vis_physics.setup_for_campaign(setups, run.setup, campaign=cname, beam_energy_GeV=beam_energy)
    arrays = simulate_visible_signal_sample(setup, mass_GeV=mass, eps=eps, n_events=n_events, rng=rng,
                                            setups=setups, info=info)
    arrays["run"][:] = int(rname) if rname.isdigit() else run.year
    return arrays


def _signal_extra(m: float, n_events: int, production: str = "brem") -> Callable[[dict], dict[str, Any]]:
    """Report fields of a signal file (from the generator's info)."""
    return lambda info: {"mass_GeV": m, "generated": n_events, "yield_per_eot": info["yield_per_eot"],
                         "production": production,
                         **({"ea_min_GeV": float(info["ea_min"])} if "ea_min" in info else {}),
                         **{k: info[k] for k in ("ps_threshold_loss", "ecal_below_ps_threshold",
                                                 "ps_box_events") if k in info}}


def _signal_entry_from_info(info: dict) -> dict[str, Any]:
    """datasets.json fields of a signal file from its generator's info: the preshower-threshold loss in the
    box (:func:`.signal.ps_threshold_loss`; absent for samples whose generator does not measure it, and
    None when no generated event fell in the box)."""
    loss = info.get("ps_threshold_loss")
    return {} if loss is None else {"signal_ps_threshold_loss": float(loss)}


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
