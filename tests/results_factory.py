"""Small synthetic results folders for the consumer tests (plots, report, HEPData, audit).

The stage products are built as the typed records of :mod:`na64ana.records` and dumped by them, so the
formats are the package's (validated on construction), not re-typed here."""

from __future__ import annotations

import json
from pathlib import Path

import hist
import numpy as np

from na64ana import records as R

RUNS = ("I", "II")
CUTS = (
    ("all", "all events"),
    ("track", "(i) track"),
    ("srd", "(ii) SRD"),
    ("shower", "(iii) shower"),
    ("veto", "(iv) veto"),
    ("box", "signal box"),
)
BOX_COUNT = 4242  # a distinctive signal-box count: must never appear in a blinded output
OBS_FACTOR = 0.7777  # observed eps = expected * this: must never appear in a blinded output
MASSES = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])


def _dump_hist(folder: Path, name: str, h: hist.Hist) -> None:
    from na64ana.processing import safeio

    safeio.write_hist(folder / f"{name}{safeio.HIST_SUFFIX}", h)


def _plane(
    rng: np.random.Generator, n: int, *, box_events: int = 0, metadata: dict | None = None
) -> hist.Hist:
    h = hist.Hist(
        hist.axis.StrCategory(list(RUNS), name="run"),
        hist.axis.Regular(50, 0, 100, name="ecal", label="E_ECAL [GeV]"),
        hist.axis.Regular(50, 0, 100, name="hcal", label="E_HCAL [GeV]"),
        storage=hist.storage.Weight(),
        metadata=metadata,
    )
    for run in RUNS:
        e = rng.uniform(1, 99, n)
        h.fill(run=run, ecal=e, hcal=np.clip(100 - e + rng.normal(0, 3, n), 0, 99))  # class II
        h.fill(run=run, ecal=rng.uniform(0, 60, n // 5), hcal=rng.normal(10, 1.5, n // 5))  # class I
        h.fill(run=run, ecal=60 + rng.exponential(8, n // 5) % 40, hcal=rng.uniform(0, 0.9, n // 5))  # C
        if box_events:
            h.fill(run=run, ecal=rng.uniform(5, 45, box_events), hcal=rng.uniform(0, 0.9, box_events))
    return h


def make_results(
    root: Path, *, blinded: bool, stages: tuple[str, ...] = ("run", "background", "efficiency", "limits")
) -> Path:
    """Write a results folder; ``stages`` selects which producing stages 'ran'."""
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".na64ana").write_text('{"tool": "na64ana", "stages": ["run"]}')
    if "run" in stages:
        (root / "cutflows").mkdir()
        for k, run in enumerate(RUNS):
            n = [100000 // (k + 1), 60000, 40000, 30000, 25000, BOX_COUNT]
            rows = []
            for i, (cut, lab) in enumerate(CUTS):
                hide = blinded and cut == "box"
                rows.append(
                    {
                        "cut": cut,
                        "label": lab,
                        "events": None if hide else n[i],
                        "weighted": None if hide else float(n[i]),
                        "eff_abs": None if hide else n[i] / n[0],
                        "eff_rel": None if hide else n[i] / n[max(i - 1, 0)],
                        "blinded": hide,
                    }
                )
            doc = {
                "campaign": "prl2019",
                "run": run,
                "key": run,
                "sample": "campaign",
                "selection": "invisible",
                "selection_hash": "abc123",
                "blinded": blinded,
                "kind": "data",
                "eot": 4.3e10,
                "rows": rows,
            }
            if blinded:
                doc["blinded_region"] = {"ecal_max": 50.0, "hcal_max": 1.0}
            R.Cutflow.model_validate(doc).dump(root / "cutflows" / f"{run}.json")
        hd = root / "hists"
        hd.mkdir()
        meta = {
            "name": "plane_final",
            "processor": "invisible",
            "blinded": blinded,
            "blinded_region": {r: {"ecal_max": 50.0, "hcal_max": 1.0} for r in RUNS} if blinded else {},
        }
        _dump_hist(hd, "plane_loose", _plane(rng, 3000))
        _dump_hist(hd, "plane_i_iv", _plane(rng, 1000))
        _dump_hist(hd, "plane_final", _plane(rng, 300, box_events=0 if blinded else 3, metadata=meta))
        sb = hist.Hist(
            hist.axis.StrCategory(list(RUNS), name="run"), hist.axis.Regular(50, 0, 100, name="ecal")
        )
        for run in RUNS:
            e = rng.exponential(1 / 0.35, 20000)
            sb.fill(run=run, ecal=np.clip(100 - e, 50.5, 99.9))
        _dump_hist(hd, "ecal_sideband_c", sb)
        chi2 = hist.Hist(
            hist.axis.StrCategory(list(RUNS), name="run"),
            hist.axis.Regular(40, 0, 20, name="ecal_chi2", label="ecal_chi2"),
        )
        for run in RUNS:
            chi2.fill(run=run, ecal_chi2=rng.chisquare(4, 5000))
        _dump_hist(hd, "nminus1_shower_ecal_chi2", chi2)
        dimu = hist.Hist(
            hist.axis.StrCategory(["I-dimuon", "I-dimuon_mc"], name="run"),
            hist.axis.Regular(30, 0, 30, name="hcal", label="E_HCAL [GeV]"),
        )
        dimu.fill(run="I-dimuon", hcal=rng.normal(10, 2, 1100))
        dimu.fill(run="I-dimuon_mc", hcal=rng.normal(10, 2, 1223))
        _dump_hist(hd, "dimuon_hcal", dimu)
        keys = [f"{r}-signal-m{m:g}" for r in RUNS for m in (0.002, 0.02, 0.2)]
        sig = hist.Hist(hist.axis.StrCategory(keys, name="run"), hist.axis.Regular(50, 0, 100, name="ecal"))
        for k in keys:
            sig.fill(run=k, ecal=100 * rng.beta(2 + 20 * float(k.split("-m")[1]), 2, 2000))
        _dump_hist(hd, "signal_ecal", sig)
        regions = {
            r: {
                "signal_box": None if blinded else BOX_COUNT,
                "sideband_a": 120,
                "sideband_c": 800,
                "validation": 5000,
            }
            for r in RUNS
        }
        R.Regions(keys={k: R.RegionCounts.model_validate(v) for k, v in regions.items()}).dump(
            root / "regions.json")
        datasets = {
            "schema_version": 1,
            "default_campaign": "prl2019",
            "sources": {},
            "campaigns": {
                "prl2019": {
                    "description": "2016-2018 like",
                    "source": "S003",
                    "runs": {
                        r: {
                            "year": 2016 + i,
                            "eot": 4.3e10 * (i + 1),
                            "intensity_e_per_spill": [1.4e6 * (i + 1), 2e6 * (i + 1)],
                            "files": [{"path": f"{r}.root", "nevents": 10, "eot": 1, "seed": 1}],
                        }
                        for i, r in enumerate(RUNS)
                    },
                }
            },
        }
        (root / "datasets.json").write_text(json.dumps(datasets))
        prov = {
            "stages": {
                "simulate": {
                    "stage": "simulate",
                    "time_utc": "2026-11-01T00:00:00Z",
                    "git_commit": "deadbeef",
                    "seed": 2019,
                    "versions": {"na64ana": "0.1.0"},
                    "command": "na64ana simulate",
                },
                "run": {
                    "stage": "run",
                    "time_utc": "2026-11-01T00:01:00Z",
                    "git_commit": "deadbeef",
                    "blinding": "blinded" if blinded else "unblinded",
                    "selections": {
                        r: {
                            "name": "invisible",
                            "box": {"ecal_max": 50.0, "hcal_max": 1.0},
                            "cuts": [
                                {
                                    "name": "shower",
                                    "label": "(iii) shower",
                                    "source": "S002",
                                    "requires": [{"variable": "ecal_chi2", "max": 8.0}],
                                }
                            ],
                        }
                        for r in RUNS
                    },
                    "versions": {"na64ana": "0.1.0", "coffea": "2026.9.0"},
                    "command": "na64ana run",
                },
            }
        }
        (root / "provenance.json").write_text(json.dumps(prov))
    if "background" in stages:
        edges = np.linspace(50, 80, 16)
        counts = [40.0 * np.exp(-0.33 * (e - 50)) for e in edges[:-1]]
        fit = R.SidebandFit(model="exp", params=[-12.0, 0.33], cov=[[0.04, -0.0005], [-0.0005, 1e-4]],
                            fit_range=[50.0, 80.0], edges=edges.tolist(), counts=counts, nll=10.0, chi2=12.0,
                            ndf=13, converged=True, pulls=[0.0] * len(counts), reference_energy_GeV=50.0,
                            p1=-12.0, p2=0.33, p2_unc=0.01)
        table = R.BackgroundTable(campaign="prl2019", blinded=blinded, runs=[
            R.BackgroundRun(
                run=run, fit=fit,
                upstream=R.Upstream(value=0.043, stat=0.01, syst=0.01, unc=0.017, syst_parts={"shape": 0.01},
                                    alternatives={}),
                components={
                    "upstream": R.Component(value=0.043, unc=0.017, limit=False, source="side-band-C fit"),
                    "dimuon": R.Component(value=0.005, unc=0.001, limit=False, source="S001"),
                    "punch_through": R.Component(value=0.001, unc=None, limit=True, source="S001"),
                },
                total=R.ValueUnc(value=0.06, unc=0.02), validation=R.Validation())
            for run in RUNS])
        table.dump(root / R.BackgroundTable.file_name)
    if "efficiency" in stages:
        n = len(MASSES)
        runs = {}
        for i, r in enumerate(RUNS):
            eff = (0.69 - 0.1 * i - 0.05 * np.log10(MASSES / 1e-3) / 3).tolist()
            runs[r] = R.EfficiencyRun(
                mass_GeV=MASSES.tolist(), efficiency=eff, unc=[0.05] * n, unc_stat=[0.01] * n, syst_rel=0.07,
                factors={"primary_e": [0.9] * n, "ecal": [e / 0.9 for e in eff]},
                factors_unc={"primary_e": [0.01] * n, "ecal": [0.01] * n},
                cuts={"acceptance": [1.0] * n}, n_eff=[1000.0] * n, weighted_pass_per_eot=[1e-12] * n,
                denominator_per_eot=[2e-12] * n,
                published=R.PublishedEfficiency(light=0.69 - 0.1 * i, heavy=0.64 - 0.1 * i, rel_unc=0.07))
        R.EfficiencyTable(campaign="prl2019", emiss_min_GeV=50.0, beam_energy_GeV=100.0,
                          runs=runs).dump(root / R.EfficiencyTable.file_name)
    if "limits" in stages:
        ld = root / "limits"
        (ld / "workspaces").mkdir(parents=True)
        exp = 1e-5 * (MASSES / 1e-3) ** 0.9
        bands = {"eps_exp": 1.0, "eps_exp_m2": 0.7, "eps_exp_m1": 0.85, "eps_exp_p1": 1.2, "eps_exp_p2": 1.45}
        points = [
            R.LimitPoint(mass_GeV=float(m), eps_obs=float(e * OBS_FACTOR), workspace="workspaces/ws.json",
                         **{k: float(e * f) for k, f in bands.items()})
            for m, e in zip(MASSES, exp, strict=True)
        ]
        points.append(R.LimitPoint(mass_GeV=2.0, error="kinematically closed"))

        def y_band(a: float) -> R.YBand:
            y = exp**2 * a / 81
            return R.YBand(y_obs=(OBS_FACTOR * y).tolist(), y_exp=y.tolist(),
                           **{f"y_exp_{k}": (y * f**2).tolist() for k, f in
                              (("m1", 0.85), ("p1", 1.2), ("m2", 0.7), ("p2", 1.45))})

        lim = R.LimitsRecord(
            method="exact-hybrid-cls", cl=0.9, analysis="factory", blinded=blinded, cross_section="etl",
            beam_energy_GeV=100.0, emiss_min_GeV=50.0, poi="mu", normsys="log-normal", points=points,
            simplified_check=R.SimplifiedCheck(description="runs merged", max_abs_rel_diff=0.01), n_failed=1,
            y_limits=R.YLimits(ratio_mA_over_mchi=3.0, m_chi_GeV=(MASSES / 3).tolist(),
                               **{f"alpha_d={a:g}": y_band(a) for a in (0.5, 0.1)}),
            alpha_d_limits=R.AlphaDLimits(ratio_mA_over_mchi=3.0, m_chi_GeV=(MASSES / 3).tolist(), **{
                m: R.AlphaDEntry(f=f, alpha_d_min_obs=(f * 1e-3 * MASSES).tolist(),
                                 alpha_d_min_exp=(f * 1.3e-3 * MASSES).tolist())
                for m, f in (("pseudodirac", 0.25), ("majorana", 3.0))}),
        )
        lim.dump(ld / R.LimitsRecord.file_name)
        # the optimisation scan in optimisation.json (studies.optimise writes it beside the limits)
        opt = {"optimisation": {str(m): {"cut_GeV": [30, 40, 50, 60, 70],
                                         "eps_exp": [1.3e-4, 1.1e-4, 1.0e-4, 1.05e-4, 1.2e-4],
                                         "optimum_GeV": 50} for m in (0.01, 0.1)}}
        (ld / "optimisation.json").write_text(json.dumps(opt))
        spec = {
            "channels": [
                {
                    "name": f"run{r}",
                    "samples": [
                        {
                            "name": "signal",
                            "data": [5.0],
                            "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                        },
                        {
                            "name": "bkg",
                            "data": [0.05],
                            "modifiers": [
                                {"name": f"bkg_run{r}", "type": "normsys", "data": {"hi": 1.4, "lo": 0.6}}
                            ],
                        },
                    ],
                }
                for r in RUNS
            ],
            "observations": [{"name": f"run{r}", "data": [0]} for r in RUNS],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
            "version": "1.0.0",
        }
        (ld / "workspaces" / "ws_m0.01.json").write_text(json.dumps(spec))
    return root


# --- the simulated chain of another search (visible mode, ALP) ----------------------------------------------
SEARCH_SETUPS = {
    # search -> (selection cuts (name, label), plane axes, the search's own distribution, mass grid GeV)
    "visible": ((("all", "all events read"), ("track", "one incoming track"),
                 ("ecal_min", "E_ECAL >= 30% of E0"), ("hcal_zero", "no HCAL activity"),
                 ("energy_sum", "blind box E_WCAL + E_ECAL in [0.9, 1.1] E0")),
                ("wcal", "ecal"), ("esum_final", "esum"), (0.001, 0.005, 0.0167, 0.025)),
    "alp": ((("all", "all events read"), ("track", "(i) one incoming track"), ("pileup", "pile-up removal"),
             ("hcal0", "HCAL0 veto"), ("ecal_max", "E_ECAL < 85 GeV")),
            ("ecal", "hcal234"), ("hcal1_final", "hcal1"), (0.001, 0.01, 0.03, 0.06)),
}


def make_search_results(root: Path, search: str, *, blinded: bool = True, excluded: bool = True,
                        skipped: dict[str, str] | None = None) -> Path:
    """A results folder of the simulated chain of ``search`` ("visible" or "alp"), as ``demo --search``
    writes it: cut flows, planes in the processor's own axes, its distribution, efficiency, summary and the
    search's limits record (visible band / ALP closed region; with ``excluded`` False no mass is excluded).
    No background, dimuon or optimisation stage (not part of these chains); ``skipped``: the demo
    provenance's ``skipped_stages``."""
    cuts, (xname, yname), (dist, dist_axis), masses = SEARCH_SETUPS[search]
    rng = np.random.default_rng(11)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".na64ana").write_text('{"tool": "na64ana", "stages": ["demo"]}')
    (root / "cutflows").mkdir()
    for run in RUNS:
        n = [20000, 1200, 900, 800, 700]
        rows = [R.CutflowRow(cut=c, label=lab, events=None if blinded and i == len(cuts) - 1 else n[i],
                             weighted=None if blinded and i == len(cuts) - 1 else float(n[i]),
                             eff_abs=None if blinded and i == len(cuts) - 1 else n[i] / n[0],
                             eff_rel=None if blinded and i == len(cuts) - 1 else n[i] / n[max(i - 1, 0)],
                             blinded=blinded and i == len(cuts) - 1) for i, (c, lab) in enumerate(cuts)]
        R.Cutflow(campaign=f"{search}_campaign", run=run, key=run, sample="campaign", selection=search,
                  selection_hash="f00d", blinded=blinded, kind="mc", eot=3e10, rows=rows,
                  ).dump(root / "cutflows" / f"{run}.json")
    hd = root / "hists"
    hd.mkdir()
    for name, k in (("plane_loose", 3000), ("plane_i_iv", 1000), ("plane_final", 300)):
        h = hist.Hist(hist.axis.StrCategory(list(RUNS), name="run"),
                      hist.axis.Regular(40, 0, 200, name=xname), hist.axis.Regular(40, 0, 200, name=yname),
                      storage=hist.storage.Weight())
        for run in RUNS:
            h.fill(run=run, **{xname: rng.uniform(1, 150, k), yname: rng.uniform(1, 150, k)})
        _dump_hist(hd, name, h)
    h = hist.Hist(hist.axis.StrCategory(list(RUNS), name="run"),
                  hist.axis.Regular(60, 0, 300, name=dist_axis))
    for run in RUNS:
        h.fill(run=run, **{dist_axis: rng.normal(60, 15, 500)})
    _dump_hist(hd, dist, h)
    selection = {"name": search,
                 "planes": {"i_iv": [c for c, _ in cuts[1:3]], "final": [c for c, _ in cuts[1:-1]]},
                 "cuts": [{"name": c, "label": lab} for c, lab in cuts]}
    stages: dict = {"run": {"stage": "run", "time_utc": "2026-11-01T00:01:00Z", "git_commit": "deadbeef",
                            "blinding": "blinded" if blinded else "unblinded",
                            "selections": {r: selection for r in RUNS}, "command": "na64ana run"}}
    if skipped:
        stages["demo"] = {"stage": "demo", "time_utc": "2026-11-01T00:09:00Z", "git_commit": "deadbeef",
                          "command": f"na64ana demo --search {search}", "skipped_stages": skipped}
    (root / "provenance.json").write_text(json.dumps({"stages": stages}))
    n = len(masses)
    effs = {r: R.EfficiencyRun(mass_GeV=list(masses), efficiency=[0.7] * n, unc=[0.03] * n,
                               unc_stat=[0.01] * n, syst_rel=0.04, factors={}, factors_unc={}, cuts={},
                               n_eff=[1000.0] * n, weighted_pass_per_eot=[1e-12] * n,
                               denominator_per_eot=[1.4e-12] * n)
            for r in RUNS}
    (root / "efficiency").mkdir()
    R.EfficiencyTable(campaign=f"{search}_campaign", emiss_min_GeV=0.0, beam_energy_GeV=100.0,
                      runs=effs).dump(root / "efficiency" / R.EfficiencyTable.file_name)
    summary = {"analysis": f"na64ana {search} (simulated {search}_campaign)", "cl": 0.9,
               "runs": [{"name": r, "eot": 3e10, "efficiency": 0.7, "efficiency_unc": 0.03,
                         "background": 0.03, "background_unc": 0.01, "observed": None,
                         "notes": {"background": "APPROX: the run's published estimate (datasets.json)"}}
                        for r in RUNS]}
    (root / "summary.json").write_text(json.dumps(summary))
    prefix = "eps" if search == "visible" else "coupling"
    points = []
    for m in masses:
        lo, hi = 1e-4 * (1 + 10 * m), 1e-2 / (1 + 100 * m)
        vals = {f"{prefix}_{k}": (lo * f if excluded else None) for k, f in
                (("exp", 1.0), ("exp_m1", 0.9), ("exp_p1", 1.1), ("exp_m2", 0.8), ("exp_p2", 1.25))}
        vals |= {f"{prefix}_{k}_upper": (hi / f if excluded else None) for k, f in
                 (("exp", 1.0), ("exp_m1", 0.9), ("exp_p1", 1.1), ("exp_m2", 0.8), ("exp_p2", 1.25))}
        if not blinded and excluded:
            vals |= {f"{prefix}_obs": lo * OBS_FACTOR, f"{prefix}_obs_upper": hi / OBS_FACTOR}
        points.append(R.LimitPoint(mass_GeV=m, blinded=blinded, coupling="eps" if search == "visible"
                                   else "g_agg", **vals))
    (root / "limits").mkdir()
    R.LimitsRecord(method="exact-hybrid-cls s_up on the total signal count", cl=0.9, blinded=blinded,
                   analysis=summary["analysis"], points=points, n_failed=0, search=search,  # type: ignore[arg-type]
                   signature="visible" if search == "visible" else "invisible",
                   coupling="eps" if search == "visible" else "g_agg", summary_file="../summary.json",
                   simplified_check=R.SimplifiedCheck(description="not applicable", max_abs_rel_diff=None),
                   ).dump(root / "limits" / R.LimitsRecord.file_name)
    return root
