"""Plot functions: pure figures from synthetic hists; blinding masks the box; files are written."""

from __future__ import annotations

import hist
import numpy as np
from matplotlib.collections import QuadMesh

from na64ana.blinding import SignalBox
from na64ana.presentation import plots
from na64ana.records import SidebandFit


def _plane_with_box_events() -> hist.Hist:
    h = hist.Hist(hist.axis.StrCategory(["I"], name="run"), hist.axis.Regular(50, 0, 100, name="ecal"),
                  hist.axis.Regular(50, 0, 100, name="hcal"))
    h.fill(run="I", ecal=np.full(100, 20.0), hcal=np.full(100, 0.5))   # inside the box
    h.fill(run="I", ecal=np.full(100, 70.0), hcal=np.full(100, 0.5))   # side band C
    return h


def _mesh(fig) -> np.ma.MaskedArray:
    ax = fig.axes[0]
    return next(c for c in ax.collections if isinstance(c, QuadMesh)).get_array()


def test_blinded_plane_masks_the_box_and_draws_it_hatched():
    box = SignalBox()
    h = _plane_with_box_events()
    fig = plots.plot_planes([("after all cuts", h)], box=box, blinded=True)
    arr = np.ma.masked_invalid(_mesh(fig)).reshape(50, 50)  # (hcal, ecal): pcolormesh takes values.T
    assert arr[0, 10] is np.ma.masked                       # E_ECAL = 20, E_HCAL = 0.5: box bin hidden
    assert arr[0, 35] == 100                                # side band C still shown
    ax = fig.axes[0]
    assert any(p.get_hatch() for p in ax.patches)
    assert any("BLINDED" in t.get_text() for t in ax.texts)


def test_unblinded_plane_shows_the_box():
    fig = plots.plot_planes([("after all cuts", _plane_with_box_events())], blinded=False)
    arr = np.ma.masked_invalid(_mesh(fig)).reshape(50, 50)
    assert arr[0, 10] == 100
    assert not any("BLINDED" in t.get_text() for t in fig.axes[0].texts)


def test_fit_curve_matches_model_and_band_brackets_it():
    fit = SidebandFit(model="exp", params=[-10.0, 0.3], cov=[[0.04, -0.0007], [-0.0007, 2e-5]],
                      fit_range=[50.0, 80.0], edges=[50.0, 80.0], counts=[10.0], nll=0.0, chi2=0.0, ndf=0,
                      converged=True, pulls=[0.0], reference_energy_GeV=50.0, p1=-10.0, p2=0.3)
    e = np.linspace(0, 80, 9)
    f, lo, hi = plots.fit_curve(fit, e)
    np.testing.assert_allclose(f, np.exp(-10.0 + 0.3 * e))
    assert np.all(lo < f) and np.all(f < hi)
    rel = np.log(hi / f)
    expected = np.sqrt(0.04 - 2 * 0.0007 * e + 2e-5 * e**2)
    np.testing.assert_allclose(rel, expected, rtol=1e-4)


def test_cutflow_blinded_rows_are_not_plotted_and_files_are_written(tmp_path):
    rows = [{"cut": "all", "label": "all", "events": 100, "weighted": 100.0, "blinded": False},
            {"cut": "veto", "label": "veto", "events": 50, "weighted": 50.0, "blinded": False},
            {"cut": "box", "label": "box", "events": None, "weighted": None, "blinded": True}]
    fig = plots.plot_cutflow({"I": {"rows": rows}})
    y = np.asarray(fig.axes[0].lines[0].get_ydata(), float)
    assert np.isfinite(y).sum() == 2 and np.isnan(y[2])
    assert any("BLINDED" in t.get_text() for t in fig.axes[0].texts)
    paths = plots.save(fig, tmp_path, "cutflow")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_cutflow_marks_where_a_run_empties_instead_of_dropping_the_line_silently():
    """0 events cannot sit on a log axis: the run's line stops and a marker at the bottom of the cut that
    emptied it says so (legend entry); a run that never empties gets no marker."""
    def rows(n):
        return [{"cut": c, "label": c, "events": k, "weighted": float(k), "blinded": False}
                for c, k in zip(("all", "track", "s4", "ecal"), n, strict=True)]
    fig = plots.plot_cutflow({"2017": {"rows": rows((100, 50, 0, 0))},
                              "2018": {"rows": rows((90, 40, 0, 0))}})
    ax = fig.axes[0]
    zeros = [ln for ln in ax.lines if ln.get_marker() == "v" and len(ln.get_xdata()) == 1]
    assert sorted(float(ln.get_xdata()[0]) for ln in zeros) == [2.0, 2.0]  # at "s4", once per run
    assert "no event left after this cut" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig = plots.plot_cutflow({"I": {"rows": rows((100, 50, 20, 10))}})
    assert "no event left after this cut" not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_eps_plot_without_observed_has_no_observed_line():
    from na64ana.presentation.results import EpsLimits

    m = np.array([0.001, 0.01, 0.1])
    lim = EpsLimits(m, 1e-5 * m / 1e-3, None, {k: 1e-5 * m / 1e-3 * f for k, f in
                                              (("m2", 0.7), ("m1", 0.85), ("p1", 1.2), ("p2", 1.4))})
    fig = plots.plot_eps_limits(lim)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "Expected" in labels and "Observed" not in labels


def test_cutflow_union_of_cut_lists_keeps_each_runs_order_and_mc_is_drawn_as_efficiency():
    def rows(cuts, n):
        return [{"cut": c, "label": c, "events": n[i], "weighted": n[i] * 1e-9, "eff_abs": n[i] / n[0]}
                for i, c in enumerate(cuts)]

    cfs = {"I": {"rows": rows(["all", "veto", "hcal", "box"], [100, 50, 40, 10])},
           "II": {"rows": rows(["all", "veto", "hcal0", "hcal", "box"], [100, 60, 50, 45, 12])}}
    fig = plots.plot_cutflow(cfs, efficiency=True)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all", "veto", "hcal0", "hcal", "box"]
    assert ax.get_yscale() == "linear" and np.nanmax(ax.lines[0].get_ydata()) == 1.0
    many = {f"s{i}": cfs["I"] for i in range(30)}
    legend = plots.plot_cutflow(many, efficiency=True).axes[0].get_legend()
    assert legend.get_bbox_to_anchor().x0 > 0  # outside the axes, not over the curves


def test_blinded_empty_nminus1_says_so_and_uses_a_physics_label():
    h = hist.Hist(hist.axis.StrCategory(["I", "II"], name="run"),
                  hist.axis.Regular(10, 0, 200, name="srd_e_max"))
    fig = plots.plot_nminus1(h, "srd_e_max", window=(1, 80), blinded=True)
    ax = fig.axes[0]
    assert any("blinded region removed" in t.get_text() for t in ax.texts)
    assert ax.get_xlabel() == "SRD module energy, maximum [MeV]" and ax.get_ylim() == (0.0, 1.0)
    assert plots.physics_label("track_track_p", plain=True) == "track momentum p (GeV)"


def test_labels_follow_the_data_kind():
    fig = plots.new_figure((4, 3))
    ax = fig.subplots()
    plots.label(ax, llabel="Reinterpretation of PRL 123 121801")
    texts = [t.get_text() for t in ax.texts]
    assert "NA64" not in texts and texts == ["Reinterpretation of PRL 123 121801"]


def test_observed_limit_keeps_the_expected_visible_and_shades_to_the_top():
    from na64ana.presentation.results import EpsLimits

    m = np.array([0.001, 0.01, 0.1])
    exp = 1e-5 * m / 1e-3
    lim = EpsLimits(m, exp, exp.copy(), None)
    fig = plots.plot_eps_limits(lim, compare={"theirs": (m, exp * 2)})
    ax = fig.axes[0]
    by = {ln.get_label(): ln for ln in ax.lines}
    assert by["Expected"].get_zorder() > by["Observed"].get_zorder() and "theirs" in by
    top = ax.get_ylim()[1]
    shade = next(c for c in ax.collections if c.get_label() == "Excluded")
    assert np.isclose(shade.get_paths()[0].vertices[:, 1].max(), top)


def test_relic_curves_are_smoothed_not_moved():
    x = np.geomspace(1e-3, 1, 40)
    y = 1e-10 * x**2 * (1 + 0.05 * (-1) ** np.arange(40))
    xs, ys = plots.smooth_loglog(x, y)
    jitter = lambda v: np.abs(np.diff(np.log(v), 2)).max()  # noqa: E731
    assert jitter(ys[2:-2]) < jitter(y[2:-2]) / 3
    assert np.allclose(ys[5:-5] / (1e-10 * x[5:-5] ** 2), 1, atol=0.02)
