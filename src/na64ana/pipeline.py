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
from pathlib import Path
from typing import TypeVar

import numpy as np

from . import background, datasets, efficiency, summary
from .bookkeeping import provenance
from .errors import InputError
from .presentation import hepdata, report
from .processing.stage import run_stage as run_events
from .records import RunOutput
from .simulation import campaign as sim
from .stats import limits
from .studies import optimise

log = logging.getLogger("na64ana.pipeline")
T = TypeVar("T")

# Analysis choices (not published numbers): the signal-MC mass grid of issue 4 and the limit scan grid.
EFFICIENCY_MASSES_GEV = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
LIMIT_MASSES_GEV = tuple(float(m) for m in np.geomspace(1e-3, 1.0, 31))
# Box-edge scan: the two ends of the signal E_ECAL shape (light A' put most signal near the edge).
OPTIMISATION_MASSES_GEV = (0.002, 0.5)
OPTIMISATION_CUTS_GEV = tuple(30.0 + 2.5 * i for i in range(17))  # 30 ... 70 GeV
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


def demo(out: str | Path = "results", *, datasets_file: str | Path = "datasets.json",
         data: str | Path | None = None, campaign: str | None = None, seed: int = 2019,
         unblind: bool = False, n_signal: int = 20_000, executor: str = "iterative", workers: int = 2,
         efficiency_masses: Sequence[float] = EFFICIENCY_MASSES_GEV,
         limit_masses: Sequence[float] = LIMIT_MASSES_GEV, progress: bool = False) -> dict[str, float]:
    """Simulate -> cut flows -> background -> efficiency -> summary -> limits -> report; returns timings.

    Every stage is the stage's own ``run_stage`` (the code ``na64ana <stage>`` runs), so a results
    folder made stage by stage through the CLI holds the same records.

    ``data``: a datasets.json whose files are the data (simulated elsewhere or real ntuples): the simulate
    stage is skipped (a "data" stage copies that file to ``out/data/datasets.json`` instead, so every later
    stage and the report read the same layout either way). The campaign's runs (EOT, efficiencies) are
    then taken from it; the signal and dimuon MC are still simulated from ``datasets_file``.
    """
    out = provenance.prepare_outdir(out, stage="demo")
    src = Path(datasets_file)
    ds = datasets.load(src)
    cname = campaign or ds.default_campaign
    mc_runs = sorted(ds.campaign(cname, file=str(src)).runs)
    t: dict[str, float] = {}

    if data is None:
        data_ds = _stage("simulate", t, lambda: sim.simulate_campaign(
            src, out_dir=out / "data", campaign=cname, seed=seed, progress=progress))
    else:
        data_ds = _stage("data", t, lambda: adopt_data(data, out / "data", campaign=cname, runs=mc_runs))
    run_out: RunOutput = _stage("run", t, lambda: run_events(
        data_ds, out / "run", processor="invisible", campaign=cname, unblind=unblind, executor=executor,
        workers=workers))
    _stage("dimuon", t, lambda: _dimuon(src, data_ds, out, cname, seed, unblind, executor, workers))
    _stage("background", t, lambda: background.run_stage(out / "run", data_ds, out / "background"))
    _stage("efficiency", t, lambda: efficiency.run_stage(
        src, out / "efficiency", signal_dir=out / "signal_mc", masses=list(efficiency_masses),
        n_events=n_signal, campaign=cname, seed=seed, executor=executor, workers=workers, progress=progress))
    analysis = None if data is None else f"na64ana {cname} (data: {Path(data).name})"
    _stage("summary", t, lambda: summary.run_stage(
        out / "run", out / "background", out / "efficiency", data_ds, out, masses_GeV=limit_masses,
        analysis=analysis, campaign=cname))
    _stage("limits", t, lambda: limits.run_stage(out / summary.FILE, out / "limits", method="exact"))
    _stage("optimisation", t, lambda: optimise.run_stage(
        out / "run", out / "efficiency", out / "optimisation", masses=OPTIMISATION_MASSES_GEV,
        cuts=OPTIMISATION_CUTS_GEV))
    _stage("report", t, lambda: report.run_stage(out))
    _stage("hepdata", t, lambda: hepdata.run_stage(out, out / "hepdata"))
    metrics = {"wall_time_s": round(sum(t.values()), 2), "peak_rss_MB": provenance.peak_rss_mb()}
    provenance.write(out, "demo", inputs=[src], blinding=run_out.blinding, workers=workers, metrics=metrics,
                     campaign=cname, seed=seed, n_signal=n_signal, executor=executor, datasets=str(src),
                     data=str(data) if data is not None else None, stage_seconds=t)
    return t


def adopt_data(data: str | Path, out_dir: str | Path, *, campaign: str, runs: Sequence[str]) -> Path:
    """Take a datasets.json listing the data as the chain's ``data/`` stage; returns the copy's path.

    The copy (``out_dir/datasets.json``) lists the same files with paths rebased to its new folder, so the
    results folder always describes its own inputs. Refused (InputError): a campaign whose runs differ from
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
    for c in copy.campaigns.values():
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
# Searches from their published inputs (``na64ana demo --search NAME``)

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
    """Searches ``demo --search`` runs: the shipped definitions plus the visible one (summary only)."""
    from . import searches

    return tuple(sorted({*searches.available(), *SEARCH_SUMMARIES}))


def search_demo(search: str, out: str | Path = "results", *, masses: Sequence[float] | None = None,
                crosscheck_toys: int = limits.DEFAULT_CROSSCHECK_TOYS) -> dict[str, float]:
    """A search run from its PUBLISHED INPUTS: the hand-written yields summary of the paper (examples/
    summaries) -> limits (dispatched on the summary: eps with brem + annihilation, a model's coupling, the
    ALP closed region or the visible band) -> report with the search figure. Not the simulated event chain:
    the summary is labelled so in ``summary.json`` and in the provenance. Returns the stage timings."""
    import json

    from . import searches

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
