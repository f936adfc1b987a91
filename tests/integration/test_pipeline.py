"""The whole chain (``make demo``) on a small campaign: every stage runs, the report links existing
figures, the limits are expected-only because the box stays closed, and the HEPData export validates.

One owner per stage: the same chain run stage by stage through the CLI (simulate -> run -> background ->
efficiency -> summary -> limits -> optimise -> report -> export -> verify) writes the same records as the
demo (paths, timestamps and timings aside), and ``na64ana verify`` notices a changed summary or background
table downstream."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from na64ana import pipeline
from na64ana.cli import main as cli_main
from na64ana.presentation.hepdata import validate_archive

pytestmark = pytest.mark.slow
SEED, N_SIGNAL, CAMPAIGN = 5, 3000, "prd2018"
EFF_MASSES, LIMIT_MASSES = ("0.002", "0.5"), ("0.001", "0.01", "0.1", "1.0")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "results"
    timings = pipeline.demo(out, campaign=CAMPAIGN, seed=SEED, n_signal=N_SIGNAL,
                            efficiency_masses=tuple(map(float, EFF_MASSES)),
                            limit_masses=tuple(map(float, LIMIT_MASSES)))
    return out, timings


def _cli(*argv: str) -> None:
    assert cli_main(list(argv)) == 0, argv


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """The demo's chain, one ``na64ana`` command per stage, into the demo's folder layout."""
    o = tmp_path_factory.mktemp("cli") / "results"
    data = str(o / "data" / "datasets.json")
    common = ("--campaign", CAMPAIGN, "--seed", str(SEED))
    _cli("simulate", *common, "--out", str(o / "data"))
    _cli("simulate", *common, "--dimuon-sample", "--n-events", str(pipeline.DIMUON_MC_EVENTS),
         "--out", str(o / "dimuon_mc"))
    _cli("simulate", *common, "--signal-sample", "--masses", *EFF_MASSES, "--n-events", str(N_SIGNAL),
         "--out", str(o / "signal_mc"))
    _cli("run", "--datasets", data, "--campaign", CAMPAIGN, "--out", str(o / "run"), "--no-cache")
    _cli("run", "--datasets", data, "--campaign", CAMPAIGN, "--processor", "dimuon", "--no-cache",
         "--extra", str(o / "dimuon_mc" / "datasets.json"), "dimuon_mc", "--out", str(o / "dimuon"))
    _cli("background", "--run-dir", str(o / "run"), "--datasets", data, "--out", str(o / "background"))
    _cli("efficiency", "--campaign", CAMPAIGN, "--signal-datasets", str(o / "signal_mc" / "datasets.json"),
         "--out", str(o / "efficiency"))
    _cli("summary", "--run-dir", str(o / "run"), "--background", str(o / "background"), "--efficiency",
         str(o / "efficiency"), "--datasets", data, "--masses", *LIMIT_MASSES, "--out", str(o))
    _cli("limits", "--summary", str(o / "summary.json"), "--out", str(o / "limits"))
    _cli("optimise", "--run-dir", str(o / "run"), "--efficiency-dir", str(o / "efficiency"),
         "--masses", *map(str, pipeline.OPTIMISATION_MASSES_GEV), "--out", str(o / "optimisation"))
    _cli("report", "--results", str(o))
    _cli("export", "hepdata", "--results", str(o), "--out", str(o / "hepdata"))
    return o


# Record fields that legitimately differ between two invocations: when, how and how long; paths are
# compared relative to the results folder (inputs) or dropped (fields naming a path given on the CLI).
# metrics.json (a run's timings) is read by later stages as part of their inputs: compared by name only.
VOLATILE = {"time_utc", "command", "invocation", "metrics", "stage_seconds"}
PATHS = {"run_dir", "datasets_file", "summary", "efficiency_dir", "results", "archive", "datasets", "source"}
TIMINGS = "metrics.json"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _inputs(rec: dict[str, Any], root: Path) -> Any:
    if not isinstance(rec.get("inputs"), list):
        return rec.get("inputs")
    out = []
    for i in rec["inputs"]:
        p = Path(i["path"])
        where = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix()
        if i.get("type") == "folder":
            files = {k: v for k, v in i["files"].items() if Path(k).name != TIMINGS}
            out.append((where, json.dumps(files, sort_keys=True), i.get("role"), "folder"))
        else:
            out.append((where, None if p.name == TIMINGS else i.get("sha256"), i.get("role"), i.get("type")))
    return sorted(out, key=str)


def normalised(folder: Path, stage: str, root: Path) -> dict[str, Any]:
    rec = json.loads((folder / "provenance.json").read_text())["stages"][stage]
    out = {k: v for k, v in rec.items() if k not in VOLATILE | PATHS | {"inputs"}}
    out["inputs"] = _inputs(rec, root.resolve())
    return out


STAGES = [("run", "run"), ("dimuon", "run"), ("background", "background"), ("efficiency", "efficiency"),
          (".", "summary"), ("limits", "limits"), ("optimisation", "optimise"), ("plots", "plots"),
          (".", "report"), ("hepdata", "export")]
RECORDS = ["run/regions.json", "run/cutflows/I.json", "run/cutflows/III.md", "dimuon/regions.json",
           "background/background.json", "efficiency/efficiency.json", "efficiency/efficiency.md",
           "summary.json", "limits/limits.json", "optimisation/optimisation.json", "report.md"]


@pytest.mark.parametrize(("folder", "stage"), STAGES, ids=[f"{f}:{s}" for f, s in STAGES])
def test_cli_stage_by_stage_records_what_the_demo_records(results, staged, folder, stage):
    demo = results[0]
    assert normalised(staged / folder, stage, staged) == normalised(demo / folder, stage, demo)


@pytest.mark.parametrize("rel", RECORDS)
def test_cli_stage_by_stage_writes_the_demo_products(results, staged, rel):
    demo = results[0]
    if rel.endswith(".json"):
        got, want = json.loads((staged / rel).read_text()), json.loads((demo / rel).read_text())
        if rel == "limits/limits.json":  # where the summary was read from, relative to limits/
            assert got["summary_file"] == "../summary.json"
        assert got == want
    else:
        def text(root: Path) -> str:
            return TIMESTAMP.sub("<time>", (root / rel).read_text().replace(str(root), "<root>"))

        assert text(staged) == text(demo)


def test_staged_folder_verifies_and_a_changed_summary_or_background_is_caught(staged, tmp_path, capsys):
    assert cli_main(["verify", str(staged)]) == 0
    for rel, consumer in (("summary.json", "limits"), ("background/background.json", ".")):
        copy = tmp_path / rel.replace("/", "_")
        shutil.copytree(staged, copy)
        doc = json.loads((copy / rel).read_text())
        if rel == "summary.json":
            doc["runs"][0]["background"] *= 2
        else:
            doc["runs"][0]["total"]["value"] *= 2
        (copy / rel).write_text(json.dumps(doc))
        capsys.readouterr()
        assert cli_main(["verify", str(copy)]) == 3
        out = capsys.readouterr().out
        assert re.search(rf"ERROR +{re.escape(consumer)} .*{rel.split('/')[-1]} +input of stage "
                         rf"'{'limits' if consumer == 'limits' else 'summary'}' changed", out), out
        assert "output modified" in out


def test_every_stage_ran_and_is_recorded(results):
    out, timings = results
    stages = ["simulate", "run", "dimuon", "background", "signal_mc", "efficiency", "summary", "limits",
              "optimisation", "report", "hepdata"]
    assert list(timings) == stages
    prov = json.loads((out / "provenance.json").read_text())["stages"]
    assert prov["demo"]["blinding"] == "blinded" and prov["demo"]["campaign"] == "prd2018"
    assert "unblind" not in prov["demo"]
    for folder, stage in STAGES:
        rec = json.loads((out / folder / "provenance.json").read_text())["stages"][stage]
        assert rec["blinding"] == ("no-data" if stage == "efficiency" else "blinded"), (folder, stage)
        assert rec["inputs"], (folder, stage)


def test_limits_are_expected_only_while_blinded(results):
    out, _ = results
    lim = json.loads((out / "limits" / "limits.json").read_text())
    assert lim["blinded"] is True and lim["cl"] == pytest.approx(0.9)
    for p in lim["points"]:
        assert "error" not in p
        assert p["eps_obs"] is None
        assert p["eps_exp_m2"] <= p["eps_exp"] <= p["eps_exp_p2"]
    eps = [p["eps_exp"] for p in lim["points"]]
    assert eps == sorted(eps), "the expected eps limit rises with the A' mass"
    summ = json.loads((out / "summary.json").read_text())
    assert all(r["observed"] is None for r in summ["runs"])
    regions = json.loads((out / "run" / "regions.json").read_text())
    assert all(v["signal_box"] is None for v in regions.values())


def test_report_links_existing_figures(results):
    out, _ = results
    md = (out / "report.md").read_text()
    links = re.findall(r"\]\((plots/[^)]+)\)", md)
    assert len(links) >= 10
    for link in links:
        assert (out / link).stat().st_size > 0, link
    assert (out / "report.html").exists()
    for name in ("planes", "cutflow", "eps_limits", "y_limits", "alpha_d_limits", "efficiency",
                 "signal_spectra", "optimisation"):
        assert (out / "plots" / f"{name}.png").exists(), name


def test_hepdata_submission_validates(results):
    out, _ = results
    ok, msgs = validate_archive(out / "hepdata" / "submission.tar.gz")
    assert ok, msgs


def test_adopt_data_copies_the_datasets_with_rebased_paths(tmp_path, synth_campaign):
    from na64ana import datasets
    from na64ana.errors import InputError

    src = synth_campaign.datasets
    copy = pipeline.adopt_data(src, tmp_path / "out" / "data", campaign="test", runs=["A", "B"])
    old, new = datasets.load(src), datasets.load(copy)
    for rname, run in new.campaigns["test"].runs.items():
        before = old.campaigns["test"].runs[rname].files
        assert [datasets.resolve_path(f, copy).resolve() for f in run.files] == \
            [datasets.resolve_path(f, src).resolve() for f in before]
        assert [f.sha256 for f in run.files] == [f.sha256 for f in before]
    prov = json.loads((copy.parent / "provenance.json").read_text())["stages"]["data"]
    assert prov["source"] == str(src)
    with pytest.raises(InputError, match="differ from the runs"):
        pipeline.adopt_data(src, tmp_path / "x", campaign="test", runs=["A"])
    repo = Path(__file__).resolve().parents[2] / "datasets.json"  # campaigns without files
    with pytest.raises(InputError, match="no data files"):
        pipeline.adopt_data(repo, tmp_path / "y", campaign="prd2018", runs=["I", "II", "III"])
