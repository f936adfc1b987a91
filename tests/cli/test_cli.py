"""The CLI in cabinetry's style: a command parses and validates its arguments and makes one library call.

Each test replaces the stage's library call with a recorder (monkeypatch) and asserts the arguments it
receives, so these tests are fast and pin the CLI -> library contract; what the stages compute is tested
elsewhere (the real chain through the CLI: tests/integration/test_pipeline.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from na64ana import background, efficiency, pipeline, summary
from na64ana.cli import SUBCOMMANDS, build_parser, main
from na64ana.errors import InputError
from na64ana.presentation import hepdata, report
from na64ana.processing import stage as run_stage_module
from na64ana.stats import limits
from na64ana.studies import closure, optimise


class Recorder:
    """Stands in for a library call: records its arguments, returns ``ret``."""

    def __init__(self, ret: Any = None) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.ret = ret

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.ret

    @property
    def once(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


@pytest.fixture
def patch(monkeypatch):
    def _patch(target: Any, name: str, ret: Any = None) -> Recorder:
        rec = Recorder(ret)
        monkeypatch.setattr(target, name, rec)
        return rec

    return _patch


def test_every_stage_has_a_subcommand():
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert list(sub) == list(SUBCOMMANDS)
    for name in ("simulate", "run", "background", "efficiency", "summary", "limits", "optimise", "closure",
                 "report", "export", "demo", "verify"):
        assert name in sub


def _help_in_fresh_process(*argv: str) -> list[str]:
    """The help text of ``na64ana *argv`` from a fresh interpreter, then the heavy modules it imported."""
    code = (f"import sys\nfrom na64ana.cli import main\ntry:\n    main({list(argv)!r})\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('uproot', 'awkward', 'coffea') if m in sys.modules))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()


def test_a_command_imports_only_its_own_module():
    """``na64ana report`` builds the parser of ``report`` alone: the modules of ``run`` (uproot, awkward,
    coffea) are not imported. The top-level help still lists every command (and imports them)."""
    out = _help_in_fresh_process("report", "--help")
    assert out[0].startswith("usage: na64ana report") and out[-1] == "[]"
    assert list(build_parser("report")._subparsers._group_actions[0].choices) == ["report"]  # type: ignore
    listing = _help_in_fresh_process("--help")
    assert all(name in "\n".join(listing) for name in SUBCOMMANDS) and "uproot" in listing[-1]


def test_run_calls_the_run_stage(patch, tmp_path):
    rec = patch(run_stage_module, "run_stage", SimpleNamespace(cutflows={}))
    out = tmp_path / "o"
    assert main(["run", "--datasets", "d.json", "--out", str(out), "--runs", "I", "II", "--unblind",
                 "--processor", "dimuon", "--extra", "mc.json", "dimuon_mc", "--no-cache",
                 "--on-bad-file", "skip", "--chunksize", "500"]) == 0
    args, kw = rec.once
    assert args == ("d.json", str(out))
    assert kw["processor"] == "dimuon" and kw["runs"] == ["I", "II"] and kw["unblind"] is True
    assert kw["extra"] == [("mc.json", ("dimuon_mc",))] and kw["cache_dir"] is None
    assert kw["on_bad_file"] == "skip" and kw["chunksize"] == 500 and kw["executor"] == "iterative"


def test_run_default_cache_is_inside_the_output(patch, tmp_path):
    rec = patch(run_stage_module, "run_stage", SimpleNamespace(cutflows={}))
    assert main(["run", "--out", str(tmp_path / "o")]) == 0
    _, kw = rec.once
    assert kw["cache_dir"] == tmp_path / "o" / ".cache" and kw["unblind"] is False
    assert kw["samples"] == ["campaign"] and kw["processor"] == "invisible"


def test_run_scheduler_is_passed_through(patch, tmp_path):
    rec = patch(run_stage_module, "run_stage", SimpleNamespace(cutflows={}))
    assert main(["run", "--out", str(tmp_path / "o"), "--scheduler", "tcp://h:1"]) == 0
    assert rec.once[1]["scheduler"] == "tcp://h:1"


def test_background_calls_its_stage(patch, tmp_path):
    rec = patch(background, "run_stage")
    assert main(["background", "--run-dir", "r", "--datasets", "d.json", "--out", str(tmp_path / "b"),
                 "--thresholds", "0.7"]) == 0
    assert rec.once == (("r", "d.json", str(tmp_path / "b")),
                        {"thresholds": [0.7], "strict_validation": False})


def test_efficiency_calls_its_stage(patch, monkeypatch, tmp_path, capsys):
    rec = patch(pipeline, "signal_efficiency", "REC")
    monkeypatch.setattr(efficiency, "markdown", lambda r: f"table of {r}\n")
    assert main(["efficiency", "--datasets", "d.json", "--out", str(tmp_path / "e"), "--masses", "0.01",
                 "0.1", "--n-events", "100", "--seed", "3", "--no-syst", "--campaign", "prd2018"]) == 0
    args, kw = rec.once
    assert args == ("d.json", str(tmp_path / "e"))
    assert kw["masses"] == [0.01, 0.1] and kw["n_events"] == 100 and kw["seed"] == 3
    assert kw["syst"] is False and kw["signal_datasets"] is None and kw["campaign"] == "prd2018"
    assert kw["production"] is None  # the library picks brem, or visible for a visible-mode campaign
    assert capsys.readouterr().out == "table of REC\n"


def test_efficiency_with_existing_signal_samples(patch, monkeypatch, tmp_path):
    rec = patch(pipeline, "signal_efficiency", "REC")
    monkeypatch.setattr(efficiency, "markdown", lambda r: "")
    assert main(["efficiency", "--signal-datasets", "sig.json", "--out", str(tmp_path / "e")]) == 0
    assert rec.once[1]["signal_datasets"] == "sig.json" and rec.once[1]["syst"] is True
    assert rec.once[1]["masses"] is None  # the analysis grid


def test_efficiency_refuses_a_negative_mass(patch, tmp_path):
    rec = patch(pipeline, "signal_efficiency", "REC")
    code = main(["efficiency", "--masses", "0.01", "-1", "--out", str(tmp_path / "e")])
    assert code == InputError.exit_code
    assert rec.calls == []


def test_signal_efficiency_simulates_then_measures(patch, tmp_path):
    """The library call behind the CLI: signal MC (simulator) first, then the efficiency stage on it."""
    sim = patch(pipeline.sim, "simulate_signal_samples", tmp_path / "signal_mc" / "datasets.json")
    stage = patch(efficiency, "run_stage", "REC")
    out = tmp_path / "e"
    assert pipeline.signal_efficiency("datasets.json", out, campaign="prd2018", n_events=10, seed=4) == "REC"
    s_args, s_kw = sim.once
    assert s_args == ("datasets.json",) and s_kw["out_dir"] == out / "signal_mc"
    assert s_kw["masses_GeV"] == list(pipeline.EFFICIENCY_MASSES_GEV) and s_kw["production"] == "brem"
    e_args, e_kw = stage.once
    assert e_args == (tmp_path / "signal_mc" / "datasets.json", out) and e_kw["masses"] is None


def test_summary_calls_its_stage(patch, tmp_path):
    rec = patch(summary, "run_stage")
    assert main(["summary", "--run-dir", "r", "--background", "b", "--efficiency", "e", "--datasets",
                 "d.json", "--out", str(tmp_path), "--masses", "0.01", "0.1"]) == 0
    args, kw = rec.once
    assert args == ("r", "b", "e", "d.json", str(tmp_path))
    assert kw == {"masses_GeV": (0.01, 0.1), "analysis": None, "campaign": None}


def test_summary_default_masses_are_the_demo_grid(patch, tmp_path):
    rec = patch(summary, "run_stage")
    assert main(["summary", "--run-dir", "r", "--background", "b", "--efficiency", "e",
                 "--out", str(tmp_path)]) == 0
    assert rec.once[1]["masses_GeV"] == pipeline.LIMIT_MASSES_GEV


def test_summary_refuses_a_negative_mass(patch, tmp_path):
    rec = patch(summary, "run_stage")
    args = build_parser().parse_args(["summary", "--run-dir", "r", "--background", "b", "--efficiency", "e",
                                      "--out", str(tmp_path), "--masses", "-1"])
    with pytest.raises(InputError, match="positive"):
        args.func(args)
    assert rec.calls == []


def test_limits_calls_its_stage_and_fails_when_every_mass_fails(patch, tmp_path):
    ok = SimpleNamespace(n_failed=0, points=[1, 2])
    rec = patch(limits, "run_stage", ok)
    assert main(["limits", "--summary", "s.json", "--out", str(tmp_path / "l"), "--method", "toys",
                 "--cl", "0.95"]) == 0
    assert rec.once == (("s.json", str(tmp_path / "l")), {"method": "toys", "cl": 0.95})
    rec.ret = SimpleNamespace(n_failed=2, points=[1, 2])
    assert main(["limits", "--summary", "s.json", "--out", str(tmp_path / "l")]) == 1


def test_limits_refuses_a_bad_cl_before_the_call(patch, tmp_path, capsys):
    rec = patch(limits, "run_stage")
    assert main(["limits", "--summary", "s.json", "--out", str(tmp_path / "l"), "--cl", "1.5"]) == 2
    assert rec.calls == [] and "--cl" in capsys.readouterr().err


def test_optimise_calls_its_stage(patch, monkeypatch, tmp_path):
    rec = patch(optimise, "run_stage", {"r": 1})
    monkeypatch.setattr(optimise, "markdown", lambda r: "")
    assert main(["optimise", "--run-dir", "r", "--efficiency-dir", "e", "--out", str(tmp_path / "o"),
                 "--masses", "0.002", "--cuts", "40", "50", "5"]) == 0
    args, kw = rec.once
    assert args == ("r", "e", str(tmp_path / "o"))
    assert kw == {"masses": [0.002], "cuts": [40.0, 45.0, 50.0], "xsec_unc": None, "eot_unc": None, "cl": 0.9}


def test_optimise_refuses_a_bad_grid(patch, tmp_path):
    rec = patch(optimise, "run_stage")
    assert main(["optimise", "--run-dir", "r", "--efficiency-dir", "e", "--out", str(tmp_path / "o"),
                 "--cuts", "50", "40", "5"]) == 2
    assert rec.calls == []


def test_closure_calls_the_study(patch, monkeypatch, tmp_path):
    rec = patch(pipeline, "closure_study", {})
    monkeypatch.setattr(closure, "markdown", lambda r: "")
    assert main(["closure", "--mass", "0.01", "--eps", "3e-4", "--out", str(tmp_path / "c"),
                 "--eot-scale", "0.5", "--n-signal-mc", "100", "--seed", "7"]) == 0
    args, kw = rec.once
    assert args == ("datasets.json", str(tmp_path / "c"))
    got = (kw["mass"], kw["eps"], kw["eot_scale"], kw["n_signal_mc"], kw["seed"])
    assert got == (0.01, 3e-4, 0.5, 100, 7)


def test_report_calls_its_stage(patch, tmp_path):
    rec = patch(report, "run_stage")
    assert main(["report", "--results", str(tmp_path)]) == 0
    assert rec.once == ((str(tmp_path),), {"compare": None, "pdf": False})  # PNG only: what the report shows
    rec.calls.clear()
    assert main(["report", "--results", str(tmp_path), "--pdf"]) == 0
    assert rec.once == ((str(tmp_path),), {"compare": None, "pdf": True})


def test_report_and_export_refuse_a_missing_folder(patch, tmp_path):
    rec = patch(report, "run_stage")
    exp = patch(hepdata, "run_stage")
    assert main(["report", "--results", str(tmp_path / "nope")]) == 2
    assert main(["export", "hepdata", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "h")]) == 2
    assert rec.calls == [] and exp.calls == []


def test_export_calls_its_stage(patch, tmp_path):
    rec = patch(hepdata, "run_stage", tmp_path / "h" / "submission.tar.gz")
    assert main(["export", "hepdata", "--results", str(tmp_path), "--out", str(tmp_path / "h")]) == 0
    assert rec.once == ((str(tmp_path), str(tmp_path / "h")), {})


def test_demo_calls_the_pipeline(patch, tmp_path):
    rec = patch(pipeline, "demo", {"run": 1.0})
    assert main(["demo", "--out", str(tmp_path / "res"), "--campaign", "prd2018", "--n-signal", "10",
                 "--limit-masses", "0.01", "--unblind", "--seed", "4"]) == 0
    args, kw = rec.once
    assert args == (str(tmp_path / "res"),)
    assert kw["campaign"] == "prd2018" and kw["n_signal"] == 10 and kw["limit_masses"] == (0.01,)
    assert kw["unblind"] is True and kw["seed"] == 4 and "efficiency_masses" not in kw


def test_handlers_hold_no_stage_logic():
    """A handler is validation + one library call: no stage writes its records from cli/."""
    cli = Path(__file__).resolve().parents[2] / "src" / "na64ana" / "cli"
    for f in cli.glob("*.py"):
        text = f.read_text()
        if f.name in ("physics.py", "simulate.py", "verify.py"):  # own small tools, not chain stages
            continue
        assert "provenance.write(" not in text and "write_json(" not in text, f.name


def test_a_foreign_output_folder_is_refused_and_left_untouched(tmp_path):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    assert main(["background", "--run-dir", str(tmp_path / "r"), "--out", str(foreign)]) == 4
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
