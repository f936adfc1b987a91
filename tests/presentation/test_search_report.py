"""The report of another search's simulated chain (visible mode, ALP): sections chosen by what the chain ran,
no invisible-mode text, skipped stages as one line with their reason, the band figure without exclusion."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from na64ana.presentation import report, search_plots
from na64ana.presentation.results import Results

try:
    from results_factory import make_results, make_search_results
except ImportError:  # tests collected as a package
    from tests.results_factory import make_results, make_search_results

INVISIBLE_ONLY = ("## Background: side-band-C fit", "## Dimuon benchmark", "## Cut optimisation",
                  "## Limits\n",
                  "## The (E_ECAL, E_HCAL) plane", "Signal box E_ECAL <", "side band A", "missing-energy")


@pytest.fixture(scope="module")
def search_reports(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for search in ("visible", "alp"):
        root = make_search_results(tmp_path_factory.mktemp(search), search)
        report.build_report(root, plots_made=report.make_plots(root, pdf=False))  # the tests read the PNGs
        out[search] = root
    return out


@pytest.mark.parametrize(("search", "plane", "limits"), [
    ("visible", "## The (E_WCAL, E_ECAL) plane", "## Visible-mode band"),
    ("alp", "## The (E_ECAL, E_HCAL2-4) plane", "## ALP closed region"),
])
def test_search_report_has_its_own_sections_and_none_of_the_invisible_chain(search_reports, search, plane,
                                                                            limits):
    md = (search_reports[search] / "report.md").read_text()
    for wrong in INVISIBLE_ONLY:
        assert wrong not in md, wrong
    assert plane in md and limits in md
    stages = md[md.index("## Stages not run"):md.index("## Provenance")]
    name = {"visible": "visible-mode", "alp": "ALP"}[search]
    for title in ("Background: side-band-C fit", "Dimuon benchmark", "Cut optimisation"):
        assert f"- **{title}**: not part of the {name} chain" in stages
    assert "Not available" not in md[md.index(plane):md.index("## Provenance")]
    # the planes and the search figure are drawn, in the processor's own axes, labelled as simulation
    figs = report.Results(search_reports[search])
    assert (search_reports[search] / "plots" / "planes.png").stat().st_size > 0
    assert report._llabel(figs) == "Simulation"
    assert search_plots.experiment_label(json.loads(
        (search_reports[search] / "limits" / "limits.json").read_text())) == "NA64 Simulation"


def test_visible_planes_name_the_selection_cuts_not_the_invisible_panels(search_reports):
    md = (search_reports["visible"] / "report.md").read_text()
    sec = md[md.index("## The (E_WCAL, E_ECAL) plane"):md.index("## N-1 distributions")]
    assert "`energy_sum`" in sec and "(i)-(iv)" not in sec and "beam preselection" in sec


def test_skipped_stage_is_one_line_with_the_recorded_reason(tmp_path):
    root = make_results(tmp_path / "r", blinded=True)  # the invisible chain, every stage ...
    (root / "limits" / "optimisation.json").unlink()  # ... but the optimisation, which the demo skipped
    prov = json.loads((root / "provenance.json").read_text())
    prov["stages"]["demo"] = {"stage": "demo", "skipped_stages": {"optimisation": "REASON-OPT"}}
    (root / "provenance.json").write_text(json.dumps(prov))
    report.build_report(root, plots_made=report.PlotSet(root / "plots"))  # the sections only: no figure drawn
    md = (root / "report.md").read_text()
    assert "## Cut optimisation" not in md
    assert "- **Cut optimisation**: skipped (REASON-OPT)." in md
    assert "## Background: side-band-C fit" in md and "## Limits" in md  # the stages that ran keep theirs


def test_missing_stage_without_a_reason_keeps_the_not_available_section(tmp_path):
    root = make_results(tmp_path / "r", blinded=True)
    (root / "limits" / "optimisation.json").unlink()
    report.build_report(root, plots_made=report.PlotSet(root / "plots"))  # the sections only: no figure drawn
    md = (root / "report.md").read_text()
    assert "## Stages not run" not in md
    sec = md[md.index("## Cut optimisation"):md.index("## Provenance")]
    assert "Not available" in sec


@pytest.mark.parametrize("blinded", [True, False])
def test_band_without_excluded_mass_says_so(tmp_path, blinded):
    root = make_search_results(tmp_path / "v", "visible", blinded=blinded, excluded=False)
    rec = Results(root).limits()
    fig = search_plots.plot_band(rec)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] > 0
    assert any("No mass excluded" in t.get_text() for t in ax.texts)
    search_plots.save(fig, tmp_path / "band")  # draws (the log scale raised at save time before)
    assert (tmp_path / "band.png").stat().st_size > 0
    plt.close("all")


def test_band_with_an_excluded_mass_has_no_such_note(tmp_path):
    rec = Results(make_search_results(tmp_path / "v", "visible")).limits()
    fig = search_plots.plot_band(rec)
    assert not any("No mass excluded" in t.get_text() for t in fig.axes[0].texts)
    assert fig.axes[0].get_legend() is not None


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_search_figure_of_a_chain_run_on_given_data_carries_the_reports_label(tmp_path, monkeypatch):
    # a chain run with --data records analysis "na64ana <campaign> (data: ...)" (no "simulated"): the record
    # alone reads as a reinterpretation; the report passes its own label (from the data sets: simulated)
    root = make_search_results(tmp_path / "a", "alp")
    lim = root / "limits" / "limits.json"
    lim.write_text(lim.read_text().replace("(simulated alp_campaign)", "(data: datasets.json)"))
    rec = Results(root).limits()
    assert search_plots.experiment_label(rec.to_json()).startswith("Reinterpretation")
    seen = []
    real = search_plots.search_figure_spec

    def spy(record, *, experiment=None):
        seen.append(experiment)
        return real(record, experiment=experiment)

    monkeypatch.setattr(search_plots, "search_figure_spec", spy)
    # drawn with the report's other figures: the job carries the report's label
    job = next(j for j in report._plot_jobs(Results(root)) if j[0].startswith("search_"))
    fig = job[2]()
    # drawn by the report hook when the figures were not drawn before (the text only here)
    report.build_report(root, plots_made=report.PlotSet(root / "plots", pdf=False))
    assert seen == ["NA64 Simulation", "NA64 Simulation"]
    assert (root / "plots" / f"{job[0]}.png").stat().st_size > 0
    texts = _texts(fig)
    assert any("Simulation" in t for t in texts) and not any("Reinterpretation" in t for t in texts)
    plt.close("all")
