"""The report: every section in order, images linked and present, missing stages, blinding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from na64ana.presentation.report import SECTIONS
from na64ana.presentation.results import Results

try:
    from results_factory import BOX_COUNT, make_results
except ImportError:  # tests collected as a package
    from tests.results_factory import BOX_COUNT, make_results


@pytest.fixture
def reports(built_reports) -> dict[str, Path]:
    """The full open and blinded reports (conftest ``built_reports``, built once per session; read only)."""
    return built_reports


@pytest.mark.parametrize("name", ["open", "blind"])
def test_report_has_every_section_in_order_and_links_existing_images(reports, name):
    root = reports[name]
    md = (root / "report.md").read_text()
    positions = [md.index(f"## {title}") for title, _ in SECTIONS]
    assert positions == sorted(positions)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    wanted = {"plots/planes.png", "plots/cutflow.png", "plots/eps_limits.png", "plots/y_limits.png"}
    assert wanted <= set(links)
    for link in links:
        png = root / link
        assert png.stat().st_size > 0
        assert png.with_suffix(".pdf").is_file() == (name == "open")  # PDFs only when asked (open: asked)
    html = (root / "report.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"plots/[^\"]+\.png\"", html)) == len(links)
    assert "<table>" in html
    assert "Not available" not in md  # every stage of the synthetic folder is present


def test_blinded_report_hides_box_content(reports):
    md = (reports["blind"] / "report.md").read_text()
    assert "BLINDED" in md
    assert f"{BOX_COUNT:,}" not in md and str(BOX_COUNT) not in md
    limits = md[md.index("## Limits"):md.index("## Cut optimisation")]
    rows = [r for r in limits.splitlines() if re.match(r"\| [0-9.]+ \|", r)]
    assert rows and all(r.rstrip(" |").endswith("blinded") for r in rows)
    res = Results(reports["blind"])
    assert res.blinded and res.eps_limits().obs is None
    assert all(c.y is None for c in res.y_limits().values())


def test_unblinded_report_shows_box_content(reports):
    md = (reports["open"] / "report.md").read_text()
    assert f"{BOX_COUNT:,}" in md          # the blinded test above is therefore not vacuous
    assert "eps observed" in md and Results(reports["open"]).eps_limits().obs is not None


def test_missing_stages_are_marked_not_available(tmp_path):
    root = make_results(tmp_path / "r", blinded=False, stages=("background",))
    from na64ana.cli import main

    assert main(["report", "--results", str(root)]) == 0
    md = (root / "report.md").read_text()
    for title, _ in SECTIONS:
        assert f"## {title}" in md
    for stage in ("run", "efficiency", "limits", "optimise"):
        assert f"stage {stage} not run" in md
    assert "0.043" in md  # the background that did run is reported
    assert "(plots/sideband_c_I.png)" in md  # no hist: the side-band plot uses the counts stored with the fit


def test_report_refuses_a_foreign_folder(tmp_path):
    from na64ana.cli import main

    (tmp_path / "someone_elses.txt").write_text("x")
    assert main(["report", "--results", str(tmp_path)]) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["someone_elses.txt"]  # not even a log left


def test_nested_stage_folders_prefer_the_campaign_run(tmp_path):
    """A demo-like layout: run/, limits/ and a signal-MC output whose name sorts first."""
    import json
    import shutil

    make_results(tmp_path / "run", blinded=False, stages=("run",))
    make_results(tmp_path, blinded=False, stages=("limits",))  # -> tmp_path/limits/
    sig = tmp_path / "efficiency"
    (sig / "cutflows").mkdir(parents=True)
    (sig / "hists").mkdir()
    shutil.copy(tmp_path / "run" / "hists" / "plane_loose.json", sig / "hists" / "plane_final.json")
    (sig / "cutflows" / "I-signal-m0.01.json").write_text(json.dumps(
        {"key": "I-signal-m0.01", "run": "I", "sample": "signal", "kind": "mc", "rows": []}))
    res = Results(tmp_path)
    assert res.hist("plane_final").metadata["name"] == "plane_final"
    assert res.keys(campaign_sample=True) == ["I", "II"]
    assert res.eps_limits() is not None and len(res.workspaces()) == 1
