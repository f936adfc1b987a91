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
from typing import Any

import numpy as np

from .bookkeeping import provenance

log = logging.getLogger("na64ana.pipeline")

# Analysis choices (not published numbers): the signal-MC mass grid of issue 4 and the limit scan grid.
EFFICIENCY_MASSES_GEV = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
LIMIT_MASSES_GEV = tuple(float(m) for m in np.geomspace(1e-3, 1.0, 31))
# Box-edge scan: the two ends of the signal E_ECAL shape (light A' put most signal near the edge).
OPTIMISATION_MASSES_GEV = (0.002, 0.5)
OPTIMISATION_CUTS_GEV = tuple(30.0 + 2.5 * i for i in range(17))  # 30 ... 70 GeV


def _stage(name: str, timings: dict[str, float], fn: Callable[[], Any]) -> Any:
    log.info("== %s", name)
    t0 = time.perf_counter()
    result = fn()
    timings[name] = round(time.perf_counter() - t0, 2)
    log.info("   %s done in %.1f s", name, timings[name])
    return result


def run_processor(datasets_file: Path, out: Path, *, processor: str, campaign: str | None,
                  samples: Sequence[str], unblind: bool, executor: str, workers: int,
                  extra: Sequence[tuple[Path, Sequence[str]]] = ()) -> dict[str, Any]:
    """Plan, run and write one processor over the chosen samples (the ``na64ana run`` core).

    ``extra``: more (datasets file, samples) to process in the same run, e.g. an MC prediction simulated
    into its own folder, so no datasets file is edited behind the user's back."""
    from .processing import execute, outputs

    jobs = execute.plan(datasets_file, campaign=campaign, samples=samples, processor=processor)
    for ds_file, ds_samples in extra:
        jobs += execute.plan(ds_file, campaign=campaign, samples=ds_samples, processor=processor)
    result = execute.run(jobs, processor, executor=executor, workers=workers, unblind=unblind)
    return outputs.write_run(out, result, processor=processor, unblind=unblind, datasets_file=datasets_file)


def demo(out: str | Path = "results", *, datasets_file: str | Path = "datasets.json",
         data: str | Path | None = None, campaign: str | None = None, seed: int = 2019,
         unblind: bool = False, n_signal: int = 20_000, executor: str = "iterative", workers: int = 2,
         efficiency_masses: Sequence[float] = EFFICIENCY_MASSES_GEV,
         limit_masses: Sequence[float] = LIMIT_MASSES_GEV, progress: bool = False) -> dict[str, float]:
    """Simulate -> cut flows -> background -> efficiency -> summary -> limits -> report; returns timings.

    ``data``: a datasets.json whose files are the data (simulated elsewhere or real ntuples): the simulate
    stage is skipped (a "data" stage copies that file to ``out/data/datasets.json`` instead, so every later
    stage and the report read the same layout either way). The campaign's runs (EOT, efficiencies) are
    then taken from it; the signal and dimuon MC are still simulated from ``datasets_file``.
    """
    from . import background, datasets, efficiency, summary
    from .presentation import hepdata, report
    from .simulation import campaign as sim
    from .stats import interpret, limits

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
    camp = datasets.load(data_ds).campaign(cname, file=str(data_ds))
    simulated = all(f.seed is not None for r in camp.runs.values() for f in r.files)
    _stage("run", t, lambda: run_processor(data_ds, out / "run", processor="invisible", campaign=cname,
                                           samples=("campaign",), unblind=unblind, executor=executor,
                                           workers=workers))
    _stage("dimuon", t, lambda: _dimuon(src, data_ds, out, cname, seed, unblind, executor, workers))

    def _background() -> dict[str, Any]:
        bdir = provenance.prepare_outdir(out / "background", stage="background")
        table = background.table_from_run(out / "run", data_ds)
        provenance.write_json(bdir / "background.json", table)
        provenance.write(bdir, "background", inputs=[out / "run", data_ds], outputs=["background.json"],
                         run_dir=str(out / "run"), unblind=unblind, blinded=bool(table.get("blinded")))
        return table

    bkg = _stage("background", t, _background)

    def _efficiency() -> dict[str, Any]:
        sig_ds = sim.simulate_signal_samples(src, out_dir=out / "signal_mc",
                                             masses_GeV=list(efficiency_masses), n_events=n_signal,
                                             campaign=cname, seed=seed, progress=progress)
        return efficiency.measure(sig_ds, out=out / "efficiency", campaign=cname, executor=executor,
                                  workers=workers)

    eff = _stage("efficiency", t, _efficiency)

    def _summary() -> Path:
        from .processing.outputs import load_regions

        label = "simulated" if simulated else f"data: {Path(data).name}"
        summ = summary.from_results(analysis=f"na64ana {cname} ({label})", campaign=camp, background=bkg,
                                    efficiency=eff, regions=load_regions(out / "run"),
                                    masses_GeV=limit_masses)
        summary.validate(summ, file="summary.json")
        path = provenance.write_json(out / "summary.json", summ)
        read = [out / "background" / "background.json", out / "efficiency" / "efficiency.json",
                out / "run" / "regions.json"]
        provenance.write(out, "summary", inputs=read, outputs=["summary.json"], unblind=unblind,
                         blinded=all(r["observed"] is None for r in summ["runs"]))
        return path

    summary_file = _stage("summary", t, _summary)

    def _limits() -> dict[str, Any]:
        ldir = provenance.prepare_outdir(out / "limits", stage="limits")
        res = limits.scan(summary.load(summary_file), method="exact", out_dir=ldir, summary_file=summary_file)
        interpret.add_interpretation(res)
        res["summary_file"] = str(summary_file)
        provenance.write_json(ldir / "limits.json", res)
        provenance.write(ldir, "limits", summary=str(summary_file), method="exact", cl=res["cl"],
                         unblind=unblind, blinded=bool(res.get("blinded")))
        return res

    _stage("limits", t, _limits)
    _stage("optimisation", t, lambda: _optimisation(out, unblind))

    def _report() -> None:
        plots = report.make_plots(out)
        for name, why in plots.missing.items():
            log.info("   figure %s not drawn: %s", name, why)
        report.build_report(out, plots_made=plots)

    _stage("report", t, _report)
    _stage("hepdata", t, lambda: hepdata.export_hepdata(out, out / "hepdata"))
    metrics = {"wall_time_s": round(sum(t.values()), 2), "peak_rss_MB": provenance.peak_rss_mb()}
    provenance.write(out, "demo", inputs=[src], workers=workers, metrics=metrics,
                     campaign=cname, seed=seed, unblind=unblind, n_signal=n_signal,
                     executor=executor, datasets=str(src), data=str(data) if data is not None else None,
                     stage_seconds=t)
    return t


def adopt_data(data: str | Path, out_dir: str | Path, *, campaign: str, runs: Sequence[str]) -> Path:
    """Take a datasets.json listing the data as the chain's ``data/`` stage; returns the copy's path.

    The copy (``out_dir/datasets.json``) lists the same files with paths rebased to its new folder, so the
    results folder always describes its own inputs. Refused (InputError): a campaign whose runs differ from
    ``runs`` (those the MC is simulated for) or a run without data files (kind "data", sample "campaign").
    """
    from . import datasets
    from .errors import InputError

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
            workers: int) -> None:
    """The QED dimuon benchmark: the dimuon selection on the data and on the dimuon MC prediction."""
    from .simulation import campaign as sim

    mc_ds = sim.simulate_dimuon_samples(src, out_dir=out / "dimuon_mc", campaign=cname, seed=seed,
                                        n_events=100_000)
    run_processor(data_ds, out / "dimuon", processor="dimuon", campaign=cname, samples=("campaign",),
                  unblind=unblind, executor=executor, workers=workers, extra=[(mc_ds, ("dimuon_mc",))])


def _optimisation(out: Path, unblind: bool) -> None:
    """Expected limit vs the E_ECAL box edge for two masses (side band C and signal MC only: blinded)."""
    from .studies import optimise

    odir = provenance.prepare_outdir(out / "optimisation", stage="optimise")
    optimise.optimise(out / "run", out / "efficiency", odir, masses=OPTIMISATION_MASSES_GEV,
                      cuts=OPTIMISATION_CUTS_GEV)
