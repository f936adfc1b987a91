"""Issue 18/19 additions: background validation verdicts and assumed defaults in the report, the search
figures' experiment label, HEPData tables of the searches, the figures drawn in parallel like in series,
PNG only unless PDFs are asked for, many-sample cut-flow legends."""

from __future__ import annotations

import gc
import json
from types import SimpleNamespace

import numpy as np
import pytest

from na64ana.cli import main
from na64ana.presentation import plots, report, search_plots
from na64ana.presentation.hepdata import search_tables
from na64ana.presentation.results import Results

try:
    from results_factory import make_results
except ImportError:  # tests collected as a package
    from tests.results_factory import make_results


def _run(flag=None, message=None):
    v = SimpleNamespace() if flag is None else SimpleNamespace(flag=flag, message=message)
    return SimpleNamespace(run="I", validation=v)


def test_background_validation_verdict_is_read_when_present_and_absent_is_fine():
    assert report.validation_verdict(_run("fail", "slope differs by 4.1 sigma")) == (
        "FAILED", "slope differs by 4.1 sigma")
    assert report.validation_verdict(_run("warn", "chi2/ndf = 2.3"))[0] == "WARNING"
    assert report.validation_verdict(_run("ok", ""))[0] == "OK"
    assert report.validation_verdict(_run()) is None  # a record from before the flag


def test_key_numbers_gain_the_verdict_column_only_when_the_record_has_one(tmp_path, monkeypatch):
    root = make_results(tmp_path / "res", blinded=True)
    res = Results(root)
    header, rows = report.key_numbers(res)
    assert "background validation" not in header
    bkg = res.background()
    flagged = SimpleNamespace(runs=[SimpleNamespace(run=r.run, total=r.total, validation=SimpleNamespace(
        flag="warn" if i == 0 else "ok", message="m")) for i, r in enumerate(bkg.runs)])
    monkeypatch.setattr(Results, "background", lambda self: flagged)
    header2, rows2 = report.key_numbers(Results(root))
    assert header2[-1] == "background validation"
    assert "Background validation FAILED" not in report._sec_result(Results(root), report.PlotSet(root))
    flagged.runs[0].validation.flag = "fail"
    assert f"Background validation FAILED** for run(s) {bkg.runs[0].run}:" in report._sec_result(
        Results(root), report.PlotSet(root))
    assert [r[-1] for r in rows2][: len(bkg.runs)] == ["WARNING"] + ["OK"] * (len(bkg.runs) - 1)


def test_minimal_summary_report_states_what_was_assumed(tmp_path):
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"masses_GeV": [0.01, 0.1], "runs": [
        {"name": "A", "eot": 3e11, "efficiency": 0.6, "background": 0.5, "observed": 0,
         "efficiency_unc": 0.1}]}))
    out = tmp_path / "res"
    assert main(["limits", "--summary", str(f), "--out", str(out / "limits"), "--crosscheck-toys", "0"]) == 0
    text = report._sec_result(Results(out), report.PlotSet(out / "plots"))
    assert "**Assumed**" in text and "`runs.A.background_unc` = 0.0" in text and "`cl` = 0.9" in text
    assert "runs.A.efficiency_unc" not in text  # given, so not assumed
    assert "Reinterpretation" in report._llabel(Results(out)) or "reinterpretation" in text


def test_search_figure_label_says_whose_numbers():
    assert search_plots.experiment_label({"analysis": "alp_2016_2018_published (PRL 125)"}) == \
        "NA64 (published inputs)"
    assert search_plots.experiment_label({"analysis": "na64ana prl2019 (simulated)"}) == "NA64 Simulation"
    other = search_plots.experiment_label({"analysis": "my BaBar recast (2017)"})
    assert other.startswith("Reinterpretation of my BaBar recast") and "NA64" not in other


def _alp_record(blinded=False):
    pts = []
    for m, lo, hi in ((0.001, 2e-4, 5.0), (0.01, 2e-4, 4e-2), (0.05, 3e-4, None)):
        p = {"mass_GeV": m, "coupling_exp": lo, "coupling_obs": None if blinded else lo,
             "coupling_exp_upper": hi, "coupling_obs_upper": None if blinded else hi}
        for k, f in (("m1", 0.9), ("p1", 1.2), ("m2", 0.8), ("p2", 1.5)):
            p[f"coupling_exp_{k}"] = lo * f
            p[f"coupling_exp_{k}_upper"] = None if hi is None else hi / f
        pts.append(p)
    return {"search": "alp", "coupling": "g_agg", "cl": 0.9, "blinded": blinded, "analysis": "x",
            "points": pts}


@pytest.mark.parametrize("blinded", [False, True])
def test_search_tables_have_both_edges_and_no_nan(blinded):
    tables = search_tables(_alp_record(blinded))
    assert [t.name for t in tables] == ["Limits on g_agg, lower edge", "Limits on g_agg, upper edge"]
    lower, upper = tables
    assert len(lower.variables[0].values) == 3 and len(upper.variables[0].values) == 2  # closed at 50 MeV
    assert ("Observed g_agg" in [v.name for v in lower.variables]) is (not blinded)
    assert all(np.isfinite(x) for t in tables for v in t.variables for x in v.values)
    assert tables[0].keywords["reactions"][0].startswith("E- NUCLEUS --> E- NUCLEUS a")


def test_figures_drawn_in_parallel_equal_serial_and_record_what_children_read(tmp_path):
    root = make_results(tmp_path / "res", blinded=True)

    def jobs_of(res):  # the jobs read through the view they were made with
        return [j for j in report._plot_jobs(res, {}) if j[0].startswith(("nminus1_", "cutflow", "eps"))]

    res_s, res_p = Results(root), Results(root)
    serial = report.draw_all(res_s, jobs_of(res_s), tmp_path / "s", pdf=False, workers=1)
    parallel = report.draw_all(res_p, jobs_of(res_p), tmp_path / "p", pdf=False, workers=2)
    assert gc.get_freeze_count() == 0  # the heap frozen while drawing is handed back to the collector
    assert len(serial) == 3
    assert [(n, why) for n, _, why, _ in parallel] == [(n, why) for n, _, why, _ in serial]
    for (n, png_s, _, _), (_, png_p, _, _) in zip(serial, parallel, strict=True):
        assert png_s.name == png_p.name == f"{n}.png" and png_p.stat().st_size > 0
        assert not png_p.with_suffix(".pdf").exists()
    read_in_children = {p for *_, r in parallel for p in r}
    nm1 = next(n for n, *_ in serial if n.startswith("nminus1_"))
    assert any(p.name.startswith(nm1) for p in read_in_children)  # read only in a child, still recorded
    assert read_in_children == res_s.read  # the same files as drawn in series


def test_report_stage_writes_png_only_unless_pdf_is_asked(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    root = make_results(tmp_path / "res", blinded=True)
    monkeypatch.setattr(report, "_plot_jobs",
                        lambda r, *_: [("cutflow", "run", lambda: (r.cutflows, plt.figure())[1])])
    report.run_stage(root)
    assert (root / "plots" / "cutflow.png").is_file() and not (root / "plots" / "cutflow.pdf").exists()
    assert "[PDF]" not in (root / "report.md").read_text()
    report.run_stage(root, pdf=True)
    assert (root / "plots" / "cutflow.pdf").is_file()


def test_many_sample_cutflow_legend_groups_samples_and_runs():
    rows = [{"cut": "all", "events": 10, "eff_abs": 1.0}, {"cut": "box", "events": 5, "eff_abs": 0.5}]
    cfs = {f"{r}-signal-m{m}": {"rows": rows} for r in ("I", "II", "III") for m in (0.001, 0.01, 0.1)}
    fig = plots.plot_cutflow(cfs, efficiency=True)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["A' 1 MeV", "A' 10 MeV", "A' 100 MeV", "run I", "run II", "run III"]


def test_search_chain_plane_uses_its_own_axes_and_the_search_hist_is_drawn(tmp_path):
    import hist as hist_mod

    h = hist_mod.Hist(hist_mod.axis.StrCategory(["I"], name="run", growth=True),
                      hist_mod.axis.Regular(10, 0, 100, name="ecal"),
                      hist_mod.axis.Regular(10, 0, 100, name="hcal234"))
    h.fill(run="I", ecal=[10, 60], hcal234=[5, 20])
    fig = plots.plot_planes([("after all cuts", h)], blinded=True)
    assert "modules 2-4" in fig.axes[0].get_ylabel()
    assert not any(t.get_text() == "C" for t in fig.axes[0].texts)  # no invisible-box regions drawn
    assert set(report.SEARCH_HISTS) == {"hcal1_final", "esum_final"}


def test_garwood_interval_equals_hist_poisson_interval():
    import hist.intervals

    vals = np.array([0.0, 1.0, 2.0, 7.0, 40.0, 3.0])
    var = np.array([0.0, 1.0, 2.0, 7.0, 40.0, 6.0])  # the last bin weighted
    lo, hi = plots.garwood_interval(vals, var)
    ref = hist.intervals.poisson_interval(vals, var)
    np.testing.assert_allclose(lo[1:], ref[0][1:], rtol=1e-10)
    np.testing.assert_allclose(hi[1:], ref[1][1:], rtol=1e-10)
    assert lo[0] == 0.0
