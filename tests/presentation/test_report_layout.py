"""The report's layout (issue 18): the result first with the key numbers, a table of contents, source
codes resolved, every stage in the provenance table, per-sample detail in collapsible appendices, a
hand-written summary never labelled as NA64 data, user curves overlaid with --compare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from na64ana.cli import main
from na64ana.presentation import report
from na64ana.presentation.results import Results

try:
    from results_factory import make_results
except ImportError:  # tests collected as a package
    from tests.results_factory import make_results

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = make_results(tmp_path_factory.mktemp("layout"), blinded=True)
    sig = root / "cutflows" / "I-signal-m0.01.json"
    sig.write_text(json.dumps({"key": "I-signal-m0.01", "run": "I", "sample": "signal", "kind": "mc",
                               "selection": "invisible", "rows": [
                                   {"cut": "all", "label": "all", "events": 10, "weighted": 1e-12,
                                    "eff_abs": 1.0, "eff_rel": 1.0}]}))
    (root / "background").mkdir(exist_ok=True)
    (root / "background" / "provenance.json").write_text(json.dumps(
        {"stages": {"background": {"time_utc": "t", "git_commit": "c", "blinding": "blinded"}}}))
    curve = root.parent / "theirs.csv"
    curve.write_text("# mass_GeV, eps\nmass,eps\n0.001,2e-5\n0.1,2e-3\n")
    with pytest.MonkeyPatch.context() as mp:  # the tests read the text and one figure: only it is drawn
        every_figure = report._plot_jobs
        mp.setattr(report, "_plot_jobs", lambda res, compare=None: [
            job for job in every_figure(res, compare) if job[0] == "eps_limits"])
        assert main(["report", "--results", str(root), "--compare", f"{curve}:Their limit"]) == 0
    return root


def test_result_and_contents_come_first(folder):
    md = (folder / "report.md").read_text()
    first = md[: md.index("## Data sets")]
    assert "## Result" in first and "**Contents**" in first and "(plots/eps_limits.png)" in first
    assert "| run | EOT | signal efficiency | background n_b | observed |" in first
    assert "one-sided at n = 0" in first
    for title, _ in report.SECTIONS:
        assert f"](#{report.slug(title)})" in first
    html = (folder / "report.html").read_text()
    assert f'id="{report.slug("Appendix: per-sample cut flows")}"' in html


def test_detail_goes_to_collapsible_appendices(folder):
    md = (folder / "report.md").read_text()
    main_text = md[: md.index("## Appendix")]
    assert "I-signal-m0.01" not in main_text and "| selection hash |" not in main_text
    html = (folder / "report.html").read_text()
    assert html.count("<details>") + html.count("<details ") >= 2 and "<summary>" in html
    assert "I-signal-m0.01" in html[html.index("<details"):]


def test_efficiency_definition_and_provenance_of_every_stage(folder):
    md = (folder / "report.md").read_text()
    assert "ε_sig(m_A') = W_pass / D" in md
    prov = md[md.index("## Provenance"): md.index("## References")]
    assert "| background | `background` |" in prov


def test_source_codes_are_resolved(tmp_path):
    res = Results(tmp_path)
    used: dict[str, str] = {}
    text = report.cite("S003 (iv); S001 Sec. IV", report.references(res), used)
    assert text.startswith("[S003](#ref-s003)") and "PRL 123" in used["S003"] and "S001" in used


def test_compare_curve_is_drawn_and_bad_curves_are_one_line_errors(folder, tmp_path, capsys):
    assert (folder / "plots" / "eps_limits.png").stat().st_size > 0
    bad = tmp_path / "bad.csv"
    bad.write_text("0.01,1e-4\n0.1,oops\n")
    assert main(["report", "--results", str(folder), "--compare", str(bad)]) == 2
    assert "line 2" in capsys.readouterr().err
    label, (m, e) = report.read_curve(f"{folder.parent / 'theirs.csv'}:Their limit")
    assert label == "Their limit" and list(m) == [0.001, 0.1]


def test_hand_written_summary_is_not_labelled_as_na64_data(tmp_path):
    root = make_results(tmp_path / "r", blinded=False, stages=("limits",))
    doc = json.loads((ROOT / "examples" / "summaries" / "prl2019_published.json").read_text())
    (root / "summary.json").write_text(json.dumps({**doc, "analysis": "BaBar 2017 recast (by hand)"}))
    res = Results(root)
    assert report.hand_written(res) is not None
    assert report._llabel(res).startswith("Reinterpretation of ")
    md = report.render_markdown(res, report.PlotSet(root / "plots"))
    assert "not an NA64 result" in md[: md.index("**Contents**")]


def test_na64_published_summary_is_labelled_as_published_inputs(tmp_path):
    root = make_results(tmp_path / "r", blinded=False, stages=("limits",))
    shutil.copy(ROOT / "examples" / "summaries" / "prl2019_published.json", root / "summary.json")
    res = Results(root)
    assert report._llabel(res) == "published inputs"  # drawn as "NA64 published inputs"
    md = report.render_markdown(res, report.PlotSet(root / "plots"))
    assert "NA64's published inputs" in md[: md.index("**Contents**")]
