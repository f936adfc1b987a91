"""The whole analysis chain on one campaign, stage after stage, into one results folder (``make demo``).

Data flows one way; each stage reads only what earlier stages wrote:

```
datasets.json -> data/ (simulated runs + filled datasets.json; or a copy of the given --data datasets.json)
  -> run/ (invisible cut flows, histograms)  -> dimuon/ (QED benchmark)
  -> background/background.json (side-band C)  -> signal_mc/ + efficiency/efficiency.json
  -> summary.json -> limits/limits.json (+ workspaces) -> optimisation/ -> plots/, report.md/html, hepdata/
```
Blinded unless ``unblind``: the signal box is never opened, so the limits are expected limits only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

import na64ana.processors  # noqa: F401  (registers the ALP and visible selection variables before plan())

from . import background, contract, datasets, efficiency, searches, summary
from .blinding import Blinding
from .bookkeeping import provenance
from .errors import InputError
from .physics.production.annihilation import resonance_energy
from .presentation import hepdata, report
from .processing.stage import run_stage as run_events
from .records import ClosureRecord, EfficiencyTable, RunOutput
from .searches import SearchDefinition
from .simulation import campaign as sim
from .stats import limits
from .studies import closure, optimise
from .workers import beside

log = logging.getLogger("na64ana.pipeline")
T = TypeVar("T")

# Analysis choices (not published numbers): the signal-MC mass grid of issue 4 and the limit scan grid.
EFFICIENCY_MASSES_GEV = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
LIMIT_MASSES_GEV = tuple(float(m) for m in np.geomspace(1e-3, 1.0, 31))
# Resonant annihilation: lines E_R = m^2/(2 m_e) inside every prl2023 window (E_R > 53 GeV, < E0)
# (E_R > 53 GeV: m > 0.233 GeV; below, the efficiency relative to the resonant A' with E_R > emiss_min is
# undefined)
ANNIHILATION_MASSES_GEV = (0.237, 0.26, 0.285, 0.31)
# the dip, densely (the window is [0.226, 0.320] GeV for a 50 GeV box), and the masses of the closing note
ANNIHILATION_SCAN_GEV = tuple(float(m) for m in np.linspace(0.2, 0.33, 14))
QUOTED_MASSES_GEV = (0.01, 0.1, 0.237, 0.3)
ALP_EFFICIENCY_MASSES_GEV = (0.005, 0.02, 0.05)  # the ALP signal MC (both signal regions, 1-80 MeV scan)
X17_MASS_GEV = 0.0167  # the ATOMKI X17 (brief_extensions 6), where the closing note quotes the band
VISIBLE_EFFICIENCY_MASSES_GEV = (0.01, X17_MASS_GEV, 0.025)  # around X17 (the summary takes 16.7 MeV)
# Box-edge scan: the two ends of the signal E_ECAL shape (light A' put most signal near the edge).
OPTIMISATION_MASSES_GEV = (0.002, 0.5)
OPTIMISATION_CUTS_GEV = tuple(30.0 + 2.5 * i for i in range(17))  # 30 ... 70 GeV
MAX_OPTIMISATION_RUNS = 3  # the box-edge scan computes an exact CLs per cut; 5 runs cost ~1 CPU-min each
DIMUON_MC_EVENTS = 100_000


def _stage(name: str, timings: dict[str, float], fn: Callable[[], T]) -> T:
    log.info("== %s", name)
    t0 = time.perf_counter()
    result = fn()
    timings[name] = round(time.perf_counter() - t0, 2)
    log.info("   %s done in %.1f s", name, timings[name])
    return result


def run_processor(datasets_file: Path, out: Path, *, processor: str, campaign: str | None,
                  samples: Sequence[str], unblind: bool, executor: str, workers: int,
                  extra: Sequence[tuple[Path, Sequence[str]]] = ()) -> dict[str, dict[str, object]]:
    """The run stage (:func:`na64ana.processing.stage.run_stage`); returns ``{key: cut-flow JSON}``
    (kept for notebooks and tests that index the cut flows as dicts)."""
    res = run_events(datasets_file, out, processor=processor, campaign=campaign, samples=samples,
                     extra=extra, unblind=unblind, executor=executor, workers=workers)
    return {k: cf.to_json() for k, cf in res.cutflows.items()}


@dataclass(frozen=True)
class Chain:
    """What the one chain runs for a search (from its definition; :func:`chain_for`).

    ``kind``: "dark_photon" (invisible mode: side-band background, dimuon benchmark, optimisation; any
    vector model is limited through its model block), "alp" (its own selection and processor, a closed
    region in g_agg) or "visible" (the WCAL setup, a band in eps); ``processor`` = the search's selection;
    ``productions``: the signal MC to simulate and measure (the search's mechanisms)."""

    kind: str
    campaigns: tuple[str, ...]
    processor: str
    productions: tuple[str, ...]
    search: SearchDefinition | None = None

    def folder(self, name: str, campaign: str) -> str:
        """A stage folder: ``name`` for a one-campaign search, ``name_<campaign>`` for each of several."""
        return name if len(self.campaigns) == 1 else f"{name}_{campaign}"


def chain_for(search: SearchDefinition | None, campaign: str) -> Chain:
    """The chain of a search definition; without one, the invisible bremsstrahlung chain on ``campaign``
    (what ``na64ana demo`` always ran)."""
    if search is None:
        return Chain("dark_photon", (campaign,), "invisible", ("brem",))
    kind = summary.search_kind(search)
    prods = {"alp": ("primakoff",), "visible": ("visible",)}.get(kind, tuple(search.signal.production))
    return Chain(kind, tuple(search.campaigns), search.selection, prods, search)


def alp_mc_coupling(mass_GeV: float, *, energy_GeV: float = 50.0, decay_length_m: float = 3.0) -> float:
    """g_agg (GeV^-1) of the ALP signal MC at ``mass_GeV``: the one whose ``energy_GeV`` ALP decays after
    ``decay_length_m`` on average, so that both signal regions (HCAL2-4 and beyond the HCAL) are populated.
    Gamma = g^2 m^3/(64 pi), l = (E/m) hbar c/Gamma (docs/mediators.md). The efficiency is the weighted
    MC in a region over the physics yield in it at the same g, so the choice only sets the MC statistics."""
    hbar_c_GeV_m = 1.973269804e-16
    return float(np.sqrt(64.0 * np.pi * hbar_c_GeV_m * energy_GeV / (mass_GeV**4 * decay_length_m)))


def demo(out: str | Path = "results", *, datasets_file: str | Path = "datasets.json",
         data: str | Path | None = None, campaign: str | None = None, seed: int = 2019,
         unblind: bool = False, n_signal: int = 20_000, executor: str = "iterative", workers: int = 2,
         efficiency_masses: Sequence[float] | None = None,
         limit_masses: Sequence[float] | None = None, progress: bool = False,
         search: str | Path | None = None, n_events: int | None = None,
         crosscheck_toys: int | None = None) -> dict[str, float]:
    """Simulate -> cut flows -> background -> signal MC -> efficiency -> summary -> limits -> report; returns
    the stage timings.

    Every stage is the stage's own ``run_stage`` (the code ``na64ana <stage>`` runs), so a results
    folder made stage by stage through the CLI holds the same records.

    ``search`` (a name of ``na64ana.searches`` or a path): the chain of that definition (:func:`chain_for`):
    its campaign(s), its selection and processor, its signal MC (bremsstrahlung and resonant annihilation,
    Primakoff ALPs or visible A'), its summary (the dark photon with each run's E_miss window, the ALP
    closed region or the visible band) and its limits and figures. Without it: the invisible chain on
    ``campaign`` (default: the datasets file's). ``efficiency_masses`` / ``limit_masses`` default to the
    analysis grids (the search's mass grid for the limits). ``n_events``: simulate the data at trigger level
    with this many events per run (quick checks; default: the skim at full EOT, or the visible setup's
    beam particles).

    ``data``: a datasets.json whose files are the data (simulated elsewhere or real ntuples): the simulate
    stage is skipped (a "data" stage copies that file to ``out/data/datasets.json`` instead, so every later
    stage and the report read the same layout either way). The campaign's runs (EOT, efficiencies) are
    then taken from it; the signal and dimuon MC are still simulated from ``datasets_file``.
    """
    t_start = time.perf_counter()
    out = provenance.prepare_outdir(out, stage="demo")
    src = Path(datasets_file)
    ds = datasets.load(src)
    definition = searches.load(search) if search is not None else None
    chain = chain_for(definition, campaign or ds.default_campaign)
    if definition is not None and campaign is not None and campaign not in chain.campaigns:
        raise InputError(f"campaign '{campaign}' is not one of search '{definition.name}' "
                         f"({', '.join(chain.campaigns)})", field="--campaign")
    if data is not None and len(chain.campaigns) != 1:
        raise InputError("--data gives one campaign's data; this search has several", field="--data")
    t: dict[str, float] = {}
    data_ds: dict[str, Path] = {}
    blind_states: list[Blinding] = []
    skipped: dict[str, str] = {}  # stage -> why it could not run (in the provenance and the log)
    def campaign_stages(cname: str) -> None:
        """simulate (or adopt the data) -> run -> [dimuon, background], and beside it (a forked process,
        :func:`na64ana.workers.beside`) signal MC -> efficiency, which need none of the data."""
        sfx = "" if len(chain.campaigns) == 1 else f" {cname}"
        # the signal branch may fork only when it forks nothing itself (a pool worker cannot) and draws
        # no progress bar over the data branch's
        with beside(lambda: signal_stages(cname, sfx),
                                 enabled=executor == "iterative" and not progress) as signal_branch:
            data_stages(cname, sfx)
        t.update(signal_branch())

    def data_stages(cname: str, sfx: str) -> None:
        level = "skim" if data is not None or n_events is None or chain.kind == "visible" else "trigger"
        if data is None:
            data_ds[cname] = _stage("simulate" + sfx, t, lambda: sim.simulate_campaign(
                src, out_dir=out / chain.folder("data", cname), campaign=cname, seed=seed, progress=progress,
                level=level, n_events=n_events))
        else:
            mc_runs = sorted(ds.campaign(cname, file=str(src)).runs)
            data_ds[cname] = _stage("data", t, lambda: adopt_data(data, out / "data", campaign=cname,
                                                                  runs=mc_runs))
        run_out: RunOutput = _stage("run" + sfx, t, lambda: run_events(
            data_ds[cname], out / chain.folder("run", cname), processor=chain.processor, campaign=cname,
            samples=("campaign",) if level == "skim" else ("trigger",), unblind=unblind, executor=executor,
            workers=workers))
        blind_states.append(run_out.blinding)
        if chain.kind == "dark_photon":
            try:
                _stage("dimuon" + sfx, t, lambda: _dimuon(src, data_ds[cname], out, cname, seed, unblind,
                                                          executor, workers))
            except InputError as err:  # the dimuon selection has no per-run box edge of this campaign
                if not (err.field or "").startswith("box."):
                    raise
                skipped["dimuon" + sfx] = str(err)
                log.warning("dimuon benchmark skipped (recorded in the provenance): %s", err)
            _stage("background" + sfx, t, lambda: background.run_stage(
                out / chain.folder("run", cname), data_ds[cname], out / chain.folder("background", cname)))

    def signal_stages(cname: str, sfx: str) -> dict[str, float]:
        """signal MC -> efficiency per production; returns their timings."""
        own: dict[str, float] = {}
        camp = ds.campaign(cname, file=str(src))
        masses = _signal_masses(chain, efficiency_masses, max(camp.emiss_min(r) for r in camp.runs.values()))
        sig = _stage("signal_mc" + sfx, own, lambda: sim.simulate_signal_samples(
            src, out_dir=out / chain.folder("signal_mc", cname), masses_GeV=masses, n_events=n_signal,
            campaign=cname, seed=seed, progress=progress, production=list(chain.productions),
            couplings=_signal_couplings(chain, masses)))
        for prod in chain.productions:
            name = "efficiency" if prod == chain.productions[0] else f"efficiency_{prod}"
            measure_efficiency(name + sfx, own, sig, out / chain.folder(name, cname), cname, prod)
        return own

    def measure_efficiency(name: str, own: dict[str, float], sig: Path, folder: Path, cname: str,
                           prod: str) -> None:
        _stage(name, own, lambda: efficiency.run_stage(sig, folder, campaign=cname, production=prod,
                                                       executor=executor, workers=workers))

    for c in chain.campaigns:
        campaign_stages(c)
    scan = _limit_masses(chain, limit_masses)
    label = None if data is None else f"na64ana {chain.campaigns[0]} (data: {Path(data).name})"
    if chain.kind == "dark_photon":
        (cname,) = chain.campaigns
        others = {p: out / f"efficiency_{p}" for p in chain.productions[1:]}
        _stage("summary", t, lambda: summary.run_stage(
            out / "run", out / "background", out / "efficiency", data_ds[cname], out, masses_GeV=scan,
            analysis=label if definition is None else label or f"na64ana {definition.name} (simulated "
            f"{cname})", campaign=cname, search=definition, efficiencies=others))
    else:
        parts = [{"campaign": c, "datasets": data_ds[c], "run_dir": out / chain.folder("run", c),
                  "efficiency": out / chain.folder("efficiency", c)} for c in chain.campaigns]
        _stage("summary", t, lambda: summary.run_search_stage(definition, parts, out, masses_GeV=scan,
                                                              analysis=label))
    toys = crosscheck_toys if crosscheck_toys is not None else limits.DEFAULT_CROSSCHECK_TOYS
    _stage("limits", t, lambda: limits.run_stage(out / summary.FILE, out / "limits", method="exact",
                                                 crosscheck_toys=toys))
    n_runs = len(ds.campaign(chain.campaigns[0], file=str(src)).runs)
    if chain.kind == "dark_photon" and chain.productions != ("brem",):
        skipped["optimisation"] = ("the box-edge scan models the bremsstrahlung E_ECAL shape only (not the "
                                   "annihilation line)")
    elif chain.kind == "dark_photon" and n_runs > MAX_OPTIMISATION_RUNS:
        skipped["optimisation"] = (f"{n_runs} runs: the exact CLs per cut value costs ~1 CPU-min above "
                                   f"{MAX_OPTIMISATION_RUNS} runs")
    if skipped.get("optimisation"):
        log.warning("optimisation skipped (recorded in the provenance): %s", skipped["optimisation"])
    elif chain.kind == "dark_photon":
        brem = sorted(_signal_masses(chain, efficiency_masses)["brem"])
        opt = [m for m in OPTIMISATION_MASSES_GEV if m in brem] or sorted({brem[0], brem[-1]})
        _stage("optimisation", t, lambda: optimise.run_stage(
            out / "run", out / "efficiency", out / "optimisation", masses=opt, cuts=OPTIMISATION_CUTS_GEV))
    blind: Blinding = ("blinded" if "blinded" in blind_states
                       else "unblinded" if "unblinded" in blind_states else "no-data")
    info: dict[str, Any] = {} if definition is None else {
        "search": definition.name, "search_hash": definition.hash, "mode": "simulated-chain",
        "kind": chain.kind, "campaigns": list(chain.campaigns)}
    if skipped:
        info["skipped_stages"] = skipped
        # recorded before the report, which says which stages were skipped and why (merged with the
        # demo's full record below: one record per stage)
        provenance.write(out, "demo", inputs=[src], blinding=blind, **info)
    _stage("report", t, lambda: report.run_stage(out))
    _stage("hepdata", t, lambda: hepdata.run_stage(out, out / "hepdata"))
    # the wall clock, not the sum of the stages: the signal branch runs beside the data branch
    metrics = {"wall_time_s": round(time.perf_counter() - t_start, 2),
               "peak_rss_MB": provenance.peak_rss_mb()}
    provenance.write(out, "demo", inputs=[src], blinding=blind, workers=workers, metrics=metrics,
                     campaign=",".join(chain.campaigns), seed=seed, n_signal=n_signal, executor=executor,
                     datasets=str(src), data=str(data) if data is not None else None, stage_seconds=t,
                     **info)
    return t


def _signal_masses(chain: Chain, masses: Sequence[float] | None,
                   emiss_max: float | None = None) -> dict[str, list[float]]:
    """Signal-MC masses per production: the given ones for every production (annihilation: only those
    whose line E_R = m^2/(2 m_e) lies above ``emiss_max``, the largest E_miss threshold of the runs, where
    the efficiency is defined), else the analysis grids."""
    if masses is not None:
        out = {p: [float(m) for m in masses] for p in chain.productions}
        if "annihilation" in out and emiss_max is not None:
            out["annihilation"] = [m for m in out["annihilation"] if resonance_energy(m) > emiss_max]
        return out
    grids = {"brem": EFFICIENCY_MASSES_GEV, "annihilation": ANNIHILATION_MASSES_GEV,
             "primakoff": ALP_EFFICIENCY_MASSES_GEV, "visible": VISIBLE_EFFICIENCY_MASSES_GEV}
    return {p: list(grids[p]) for p in chain.productions}


def _signal_couplings(chain: Chain, masses: dict[str, list[float]]) -> dict[float, float] | None:
    """Per-mass couplings of the signal MC: the ALP's g_agg reaching the HCAL (:func:`alp_mc_coupling`)."""
    if chain.kind != "alp":
        return None
    return {m: alp_mc_coupling(m) for ms in masses.values() for m in ms}


def _limit_masses(chain: Chain, masses: Sequence[float] | None) -> list[float]:
    """The limit scan: the given masses, else the search's grid (plus the annihilation window, densely, and
    the masses quoted in the closing note, when the search has annihilation; plus X17 for the visible
    mode) or the analysis grid."""
    if masses is not None:
        return [float(m) for m in masses]
    if chain.search is None:
        return list(LIMIT_MASSES_GEV)
    grid = [float(m) for m in chain.search.masses()]
    if "annihilation" in chain.productions:
        grid += [*ANNIHILATION_SCAN_GEV, *QUOTED_MASSES_GEV]
    if chain.kind == "visible":
        grid.append(X17_MASS_GEV)
    return sorted({round(m, 9) for m in grid})


def signal_efficiency(datasets_file: str | Path, out: str | Path, *, masses: Sequence[float] | None = None,
                      n_events: int = 20_000, eps: float = 1e-4, campaign: str | None = None,
                      runs: Sequence[str] | None = None, seed: int = 2019, production: str | None = None,
                      signal_datasets: str | Path | None = None, executor: str = "iterative",
                      workers: int = 2, scheduler: str | None = None, chunksize: int | None = None,
                      syst: bool = True, progress: bool = False) -> EfficiencyTable:
    """``na64ana efficiency``: the signal MC (simulated into ``out/signal_mc/`` unless ``signal_datasets``
    lists existing samples) -> :func:`na64ana.efficiency.run_stage`. The simulator is called here, the
    efficiency stage only reads signal-MC datasets. ``production`` None: brem, or visible for a visible-mode
    campaign; ``masses`` None: the analysis grid."""
    if signal_datasets is None:
        if production is None:
            production = efficiency.default_production(
                datasets.load(datasets_file).campaign(campaign, file=str(datasets_file)))
        provenance.prepare_outdir(out, stage="efficiency")  # claimed before signal_mc/ goes inside
        signal_datasets = sim.simulate_signal_samples(
            datasets_file, out_dir=Path(out) / "signal_mc",
            masses_GeV=list(EFFICIENCY_MASSES_GEV if masses is None else masses), n_events=n_events, eps=eps,
            campaign=campaign, runs=runs, seed=seed, production=production, progress=progress)
        masses = None  # exactly the simulated samples
    return efficiency.run_stage(signal_datasets, out, masses=masses, campaign=campaign, runs=runs,
                                production=production, executor=executor, workers=workers,
                                scheduler=scheduler, chunksize=chunksize, syst=syst)


def closure_inputs(datasets_file: str | Path, *, mass: float, eps: float, out: Path, seed: int,
                    campaign: str | None, runs: list[str] | None, eot_scale: float, n_signal_mc: int,
                    efficiency_dir: str | None, executor: str, workers: int) -> closure.ClosureInputs:
    """The simulation half of the closure (the pipeline calls the simulator; the study may not): the
    injected and the null campaigns (seeds ``seed``, ``seed + 1``) and, unless ``efficiency_dir`` is
    given, the signal MC (``seed + 2``) through the efficiency stage, all under ``out``."""
    src = Path(datasets_file)
    cname = campaign or datasets.load(src).default_campaign
    base = src if eot_scale == 1.0 else closure.scaled_datasets(src, out / "datasets_scaled.json", eot_scale)
    injected = sim.simulate_campaign(base, out_dir=out / "injected" / "sim", campaign=cname, runs=runs,
                                     seed=seed, signal_mass=mass, signal_eps=eps)
    null = sim.simulate_campaign(base, out_dir=out / "null" / "sim", campaign=cname, runs=runs,
                                 seed=seed + 1)
    seeds = {"injected": seed, "null": seed + 1}
    if efficiency_dir is None:
        signal = sim.simulate_signal_samples(base, out_dir=out / "signal_mc", masses_GeV=[mass],
                                             n_events=n_signal_mc, campaign=cname, runs=runs, seed=seed + 2,
                                             production="brem")
        efficiency.run_stage(signal, out / "efficiency", campaign=cname, runs=runs, production="brem",
                             executor=executor, workers=workers)
        efficiency_dir = str(out / "efficiency")
        seeds["signal_mc"] = seed + 2
    return closure.ClosureInputs(injected_datasets=injected, null_datasets=null,
                                 efficiency_dir=Path(efficiency_dir), campaign=cname, mass_GeV=mass,
                                 eps_injected=eps, source_datasets=src, seeds=seeds, eot_scale=eot_scale,
                                 n_signal_mc=n_signal_mc if "signal_mc" in seeds else None)


def closure_study(datasets_file: str | Path, out: str | Path, *, mass: float, eps: float, seed: int = 2019,
                  campaign: str | None = None, runs: list[str] | None = None, eot_scale: float = 1.0,
                  n_signal_mc: int = 20_000, efficiency_dir: str | None = None, executor: str = "iterative",
                  workers: int = 2) -> ClosureRecord:
    """``na64ana closure``: :func:`closure_inputs` (the simulations) ->
    :func:`na64ana.studies.closure.run_closure` into ``out`` (claimed first: the simulations go inside)."""
    dest = provenance.prepare_outdir(out, stage="closure")
    inputs = closure_inputs(datasets_file, mass=mass, eps=eps, out=dest, seed=seed, campaign=campaign,
                            runs=runs, eot_scale=eot_scale, n_signal_mc=n_signal_mc,
                            efficiency_dir=efficiency_dir, executor=executor, workers=workers)
    return closure.run_closure(inputs, out=dest, runs=runs, executor=executor, workers=workers)


def adopt_data(data: str | Path, out_dir: str | Path, *, campaign: str, runs: Sequence[str]) -> Path:
    """Take a datasets.json listing the data as the chain's ``data/`` stage; returns the copy's path.

    The copy (``out_dir/datasets.json``) lists the same files with paths rebased to its new folder and a
    branch-map file inlined (it was relative to the given file), so the results folder always describes its
    own inputs, whichever folder the command ran from. Refused (InputError): a campaign whose runs differ from
    ``runs`` (those the MC is simulated for) or a run without data files (kind "data", sample "campaign").
    """
    src = Path(data)
    ds = datasets.load(src)
    camp = ds.campaign(campaign, file=str(src))
    if sorted(camp.runs) != sorted(runs):
        raise InputError(f"runs {sorted(camp.runs)} differ from the runs {sorted(runs)} the MC is simulated "
                         "for (--datasets)", file=str(src), field=f"campaigns.{campaign}.runs")
    empty = [r for r, run in camp.runs.items()
             if not any(f.kind == "data" and f.sample == "campaign" for f in run.files)]
    if empty:
        raise InputError(f"no data files (kind 'data', sample 'campaign') for run(s) {', '.join(empty)}",
                         file=str(src), field=f"campaigns.{campaign}.runs.{empty[0]}.files")
    dest = provenance.prepare_outdir(out_dir, stage="data")
    copy = ds.model_copy(deep=True)
    for cn, c in copy.campaigns.items():
        if isinstance(c.branch_map, str):  # relative to the given file: inlined, so the copy stands alone
            try:
                c.branch_map = contract.load_branch_map(c.branch_map, base=src.resolve().parent)
            except (OSError, ValueError) as exc:
                raise InputError(str(exc), file=str(src), field=f"campaigns.{cn}.branch_map") from None
        for run in c.runs.values():
            run.files = [f.model_copy(update={"path": os.path.relpath(datasets.resolve_path(f, src),
                                                                      dest.resolve())})
                         for f in run.files]
    target = dest / "datasets.json"
    datasets.dump(datasets.validate(copy.model_dump(mode="json"), file=str(target)), target)
    provenance.write(dest, "data", inputs=[src], source=str(src), campaign=campaign)
    return target


def _dimuon(src: Path, data_ds: Path, out: Path, cname: str, seed: int, unblind: bool, executor: str,
            workers: int) -> RunOutput:
    """The QED dimuon benchmark: the dimuon selection on the data and on the dimuon MC prediction."""
    mc_ds = sim.simulate_dimuon_samples(src, out_dir=out / "dimuon_mc", campaign=cname, seed=seed,
                                        n_events=DIMUON_MC_EVENTS)
    return run_events(data_ds, out / "dimuon", processor="dimuon", campaign=cname, unblind=unblind,
                      executor=executor, workers=workers, extra=[(mc_ds, ("dimuon_mc",))])


# --------------------------------------------------------------------------------------------------
# Searches from their published inputs (``na64ana demo --search NAME --published-inputs``)

#: short names accepted by ``demo --search``
SEARCH_ALIASES = {"visible": "visible_2017_2018", "alp": "alp_2016_2018"}

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "summaries"
#: search -> (example summary, overrides): the published-input summary each search is run from
SEARCH_SUMMARIES: dict[str, tuple[str, dict[str, object]]] = {
    "invisible_2016": ("prd2018_published.json", {}),
    "invisible_2016_2018": ("prl2019_published.json", {}),
    "invisible_2016_2018_annihilation": ("prl2019_published.json", {"production": ["brem", "annihilation"]}),
    "prl2023": ("prl2023_published.json", {}),
    "positron2022": ("positron2022_published.json", {}),
    "lmu_ltau_2016_2018": ("lmu_ltau_2016_2018_published.json", {}),
    "b_l_2016_2021": ("b_l_2016_2021_published.json", {}),
    "alp_2016_2018": ("alp_2016_2018_published.json", {}),
    "visible_2017_2018": ("visible_2017_2018_published.json", {}),
}


def search_names() -> tuple[str, ...]:
    """Searches ``demo --search`` knows: the shipped definitions plus those with a published-input summary."""
    return tuple(sorted({*searches.available(), *SEARCH_SUMMARIES}))


def search_demo(search: str, out: str | Path = "results", *, masses: Sequence[float] | None = None,
                crosscheck_toys: int = limits.DEFAULT_CROSSCHECK_TOYS) -> dict[str, float]:
    """A search run from its PUBLISHED INPUTS: the hand-written yields summary of the paper (examples/
    summaries) -> limits (dispatched on the summary: eps with brem + annihilation, a model's coupling, the
    ALP closed region or the visible band) -> report with the search figure. Not the simulated event chain
    (that is :func:`demo` with ``search``): the summary is labelled so in ``summary.json`` and in the
    provenance. Returns the stage timings."""
    import json

    if search not in SEARCH_SUMMARIES:
        raise InputError(f"no published-input summary for search '{search}' (known: "
                         f"{', '.join(sorted(SEARCH_SUMMARIES))})", field="--search")
    if search in searches.available():
        searches.load(search)  # the definition validates
    name, overrides = SEARCH_SUMMARIES[search]
    src = EXAMPLES_DIR / name
    if not src.exists():
        raise InputError("published-input summary not found (run from the repository)", file=str(src))
    out = provenance.prepare_outdir(out, stage="demo")
    t: dict[str, float] = {}
    data = json.loads(src.read_text())
    data.update(overrides)
    if masses:
        data["masses_GeV"] = [float(m) for m in masses]
    label = f"PUBLISHED INPUTS (not the simulated chain): {name}"
    notes = data.get("notes")
    data["notes"] = ({**notes, "demo": label} if isinstance(notes, dict)
                     else {"demo": label, **({"notes": notes} if notes else {})})
    provenance.write_json(out / summary.FILE, data)
    rec = _stage("limits", t, lambda: limits.run_stage(out / summary.FILE, out / "limits",
                                                        crosscheck_toys=crosscheck_toys))
    _stage("report", t, lambda: report.run_stage(out))
    metrics = {"wall_time_s": round(sum(t.values()), 2), "peak_rss_MB": provenance.peak_rss_mb()}
    provenance.write(out, "demo", inputs=[src], outputs=[summary.FILE],
                     blinding="blinded" if rec.blinded else "unblinded", metrics=metrics, search=search,
                     mode="published-inputs", summary_source=str(src), stage_seconds=t)
    return t
