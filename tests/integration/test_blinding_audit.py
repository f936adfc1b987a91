"""Blinding proven over the whole ``na64ana demo`` chain, differentially (issue 8).

One simulated prd2018 campaign gives two data sets, A and B, that differ **only inside the signal box**
B = {E_ECAL < 50 GeV, E_HCAL < 1 GeV}: in B, ``N_CANARY`` box events per run are signal-like (they pass
every cut), in A the same events fail a cut. Both run through the CLI (``na64ana demo --data``) blinded;
every file written must then be identical after normalising the genuinely volatile content (the explicit
list above :func:`normalise`), and :func:`na64ana.bookkeeping.audit.scan_blinding` must find nothing.
Unblinded, the
canary must be visible (box counts, observed limits), or the first comparison would prove nothing.

Why events are *moved* into the box: the skim-level prd2018 simulation has only ~2 events inside B (the
skim already requires a shower the box rarely holds), far too few for a canary a leak could not hide
behind. So ``N_CANARY`` events per run that fail the VETO cut get box energies in both A and B (A: they
still fail the VETO, a plain background-like box event; B: every cut variable set to pass). A and B
then differ only in events inside B; outside B they are the same events, bit for bit.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot

from na64ana import datasets, selection
from na64ana.bookkeeping import audit
from na64ana.cli import build_parser
from na64ana.cli import main as cli_main
from na64ana.presentation import report
from na64ana.simulation.campaign import simulate_campaign
from na64ana.simulation.writer import write_tree

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CAMPAIGN = "prd2018"
SEED = 5
N_CANARY = 20  # moved-in canary events per run (3 runs: 60, plus the few box events already simulated)
DEMO = ["demo", "--datasets", str(REPO / "datasets.json"), "--campaign", CAMPAIGN, "--seed", str(SEED),
        "--n-signal", "3000", "--efficiency-masses", "0.002", "0.5",
        "--limit-masses", "0.001", "0.01", "0.1", "1.0"]

# --- normalisation: the only content allowed to differ between two runs on the same inputs -----------------
# provenance.json, metrics.json, datasets.json describe *how* a run went; keys dropped there:
#   ..._utc                  wall-clock times (time_utc, written_utc)
#   ..._s, ...seconds        durations and rates (wall_time_s, process_time_s, events_per_s, stage_seconds)
#   ..._MB                   memory use (peak_rss_MB)
#   invocation               the id of the process that wrote a record
#   ...sha256, input size    identity of the inputs (A and B differ inside the box by construction; the
#                            size of a compressed ROOT file too) and of outputs (each compared itself)
#   manifest entries of metrics.json, logs and the HEPData archive: their sizes change with the content
#                            normalised here (numbers above, timestamps, archive mtimes)
VOLATILE_KEY = re.compile(r"(_utc|_s|_MB|seconds|sha256)$|^invocation$")
RUN_DESCRIPTIONS = {"provenance.json", "metrics.json", "datasets.json"}
VOLATILE_FILES = re.compile(r"(^|/)(metrics\.json|[^/]*\.log|[^/]*\.tar\.gz)$")
# logs: the asctime prefix of every line, durations ("done in 1.2 s", "run 3s, ...") and rates
# ("3.1e+06 events/s")
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.M)
DURATION = re.compile(r"\b\d+(\.\d+)? ?s\b")
RATE = re.compile(r"\b[\d.]+(e[+-]?\d+)? events/s\b")  # the run stage logs its throughput
# report.md/html: the provenance table shows each stage's time_utc
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
# hepdata/submission.tar.gz: tar and gzip headers carry mtimes; the members' names and bytes are compared


def _drop_volatile(node: Any, parent: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _drop_volatile(v, k) for k, v in node.items()
                if not VOLATILE_KEY.search(k) and not VOLATILE_FILES.search(k)
                and not (parent == "inputs" and k == "size")}
    if isinstance(node, list):
        return [_drop_volatile(v, parent) for v in node]
    return node


def _tar_members(data: bytes) -> bytes:
    out = []
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            body = tar.extractfile(m).read() if m.isfile() else b""
            out.append(f"{m.name} {m.type!r} {hashlib.sha256(body).hexdigest()}".encode())
    return b"\n".join(out)


def normalise(rel: str, data: bytes) -> bytes:
    """The bytes of one output file with the volatile content (list above) removed; everything else kept."""
    name = Path(rel).name
    if name in RUN_DESCRIPTIONS:
        return json.dumps(_drop_volatile(json.loads(data)), indent=1, sort_keys=True).encode()
    if rel.endswith(".log"):
        return RATE.sub("<rate>", DURATION.sub("<t>", LOG_TIME.sub("", data.decode()))).encode()
    if name in ("report.md", "report.html"):
        return ISO_TIME.sub("<time>", data.decode()).encode()
    if name.endswith(".tar.gz"):
        return _tar_members(data)
    return data


def snapshot(folder: Path) -> dict[str, bytes]:
    """{relative path: normalised bytes} of every file of a results folder (inputs excluded: see
    ``--data``, the data files live outside it)."""
    return {str(p.relative_to(folder)): normalise(str(p.relative_to(folder)), p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the two inputs ---------------------------------------------------------------------------------------
PASS_ALL = {  # values that pass every invisible-mode cut (selections/invisible.toml), inside the box
    "trigger": 1, "track_n": 1, "track_p": 100.0, "track_theta": 0.3, "straw_nhits": 4,
    "srd_e0": 10.0, "srd_e1": 10.0, "srd_e2": 10.0, "srd_t0": 0.1, "srd_t1": 0.1, "srd_t2": 0.1,
    "ecal_chi2": 1.0, "ecal_pileup": 0, "veto_e0": 1.0, "veto_e1": 1.0, "veto_e2": 1.0, "hcal0_e": 0.1,
}


def _passes(arrays: dict[str, np.ndarray], run: str, hcal0: bool) -> tuple[np.ndarray, np.ndarray]:
    """(in box B, passes every cut) per event, computed with the package's selection code."""
    sel = selection.resolve("invisible", campaign=CAMPAIGN, run=run, hcal0=hcal0)
    values = selection.compute(arrays, sel.variables)
    masks = selection.cut_masks(sel, values)
    ok = np.logical_and.reduce([masks[c.name] for c in sel.cuts])
    return (values["ecal_e"] < sel.box_ecal_max) & (values["hcal_e"] < sel.box_hcal_max), ok


def canary_arrays(sim_ds: Path) -> tuple[dict[str, dict[str, dict]], dict[str, int]]:
    """``{"A"|"B": {run: arrays}}`` and the expected extra signal-box count of B over A per run."""
    ds = datasets.load(sim_ds)
    rng = np.random.default_rng(8)
    out: dict[str, dict[str, dict]] = {"A": {}, "B": {}}
    extra: dict[str, int] = {}
    for rname, run in ds.campaign(CAMPAIGN).runs.items():
        (entry,) = run.files
        a = uproot.open(datasets.resolve_path(entry, sim_ds))[entry.tree].arrays(library="np")
        inbox, _ = _passes(a, rname, run.hcal0)
        veto = np.max([a["veto_e0"], a["veto_e1"], a["veto_e2"]], axis=0)
        movable = np.flatnonzero(~inbox & (veto > 20.0))
        moved = np.sort(rng.choice(movable, N_CANARY, replace=False))
        # A: the moved events get box energies and keep failing the VETO
        a["ecal_e"][moved] = rng.uniform(5.0, 45.0, N_CANARY).astype(np.float32)
        for i in range(4):
            a[f"hcal_e{i}"][moved] = 0.1
        inbox_a, pass_a = _passes(a, rname, run.hcal0)
        canary = np.flatnonzero(inbox_a)  # moved + box events the simulation made itself
        b = {k: v.copy() for k, v in a.items()}
        for k, v in PASS_ALL.items():
            b[k][canary] = v
        inbox_b, pass_b = _passes(b, rname, run.hcal0)
        assert np.array_equal(inbox_a, inbox_b) and pass_b[canary].all() and not pass_a[moved].any()
        outside = ~inbox_a
        assert all(np.array_equal(a[k][outside], b[k][outside]) for k in a), "A and B differ outside the box"
        out["A"][rname], out["B"][rname] = a, b
        extra[rname] = int(len(canary) - pass_a[canary].sum())
    return out, extra


def write_inputs(runs: dict[str, dict], sim_ds: Path, dest: Path) -> Path:
    """Write the runs with the package's writer and a datasets.json (sha256/nevents of the new files; no
    seed, as the files are no longer what the seed generates); returns the datasets.json."""
    ds = datasets.load(sim_ds)
    for rname, run in ds.campaigns[CAMPAIGN].runs.items():
        files = []
        for f in run.files:
            path = dest / f.path
            path.parent.mkdir(parents=True, exist_ok=True)
            n = write_tree(path, runs[rname], tree=f.tree)
            new = {"sha256": datasets.sha256sum(path), "nevents": n, "seed": None}
            files.append(f.model_copy(update=new))
        run.files = files
    target = dest / "datasets.json"
    datasets.dump(datasets.validate(ds.model_dump(mode="json"), file=str(target)), target)
    return target


@contextmanager
def _numbers_only() -> Iterator[None]:
    """For the unblinded runs: skip the figures and the box-edge scan (~35 s of matplotlib and CLs scans);
    their code and inputs are the same as in the blinded runs, and the box content they would show is
    already in the JSON outputs compared here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "make_plots",
                   lambda results_dir, **_: report.PlotSet(Path(results_dir) / "plots"))
        mp.setattr("na64ana.studies.optimise.run_stage", lambda *a, **k: None)
        yield


def _demo(inputs: Path, out: Path, *extra: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    assert cli_main([*DEMO, "--data", str(inputs), "--out", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Blinded and unblinded chains on A and B. Inputs and results always sit at the same paths (moved
    away afterwards), so no path needs normalising."""
    root = tmp_path_factory.mktemp("blinding_audit")
    sim_ds = simulate_campaign(REPO / "datasets.json", out_dir=root / "sim", campaign=CAMPAIGN, seed=SEED)
    runs, extra = canary_arrays(sim_ds)
    work, inputs = root / "results", root / "input"
    res: dict[str, Any] = {"extra": extra, "snap": {}, "dirs": {}}
    for variant in ("A", "B"):
        shutil.rmtree(inputs, ignore_errors=True)
        ds_file = write_inputs(runs[variant], sim_ds, inputs)
        _demo(ds_file, work)
        res["snap"][variant] = snapshot(work)
        res["dirs"][f"blinded_{variant}"] = work.rename(root / f"blinded_{variant}")
        with _numbers_only():
            _demo(ds_file, work, "--unblind")
        res["dirs"][f"unblinded_{variant}"] = work.rename(root / f"unblinded_{variant}")
    return res


def _json(folder: Path, rel: str) -> Any:
    return json.loads((folder / rel).read_text())


def test_the_canary_is_large(chain):
    assert sum(chain["extra"].values()) >= 50
    assert all(n >= N_CANARY for n in chain["extra"].values())


def test_blinded_outputs_identical_when_only_the_box_differs(chain):
    a, b = chain["snap"]["A"], chain["snap"]["B"]
    assert a.keys() == b.keys()
    kinds = {Path(k).suffix for k in a}
    assert {".json", ".md", ".html", ".png", ".log", ".yaml", ".gz"} <= kinds  # PDFs only with report --pdf
    assert len([k for k in a if k.startswith("plots/")]) >= 20
    differ = sorted(k for k in a if a[k] != b[k])
    assert not differ, f"blinded outputs differ when only the box content differs (leak): {differ}"


def test_blinded_folders_pass_the_audit(chain):
    for variant in ("A", "B"):
        findings = audit.scan_blinding(chain["dirs"][f"blinded_{variant}"])
        assert findings == [], "\n".join(map(str, findings))


def test_unblinded_canary_is_visible(chain):
    ua, ub = chain["dirs"]["unblinded_A"], chain["dirs"]["unblinded_B"]
    ra, rb = _json(ua, "run/regions.json"), _json(ub, "run/regions.json")
    for run, n in chain["extra"].items():
        assert rb[run]["signal_box"] - ra[run]["signal_box"] == n
    sa, sb = _json(ua, "summary.json"), _json(ub, "summary.json")
    extra = chain["extra"]
    assert [r["observed"] for r in sb["runs"]] == [r["observed"] + extra[r["name"]] for r in sa["runs"]]
    la, lb = _json(ua, "limits/limits.json"), _json(ub, "limits/limits.json")
    assert la["blinded"] is False and lb["blinded"] is False
    for pa, pb in zip(la["points"], lb["points"], strict=True):
        # same background and signal model; the observation only moves the CLs root finder (~1e-6)
        assert pb["eps_exp"] == pytest.approx(pa["eps_exp"], rel=1e-4)
        if pb.get("eps_obs") is not None:
            assert pb["eps_obs"] > pa["eps_obs"], "the canary weakens the observed limit"
    assert (ua / "report.md").read_text() != (ub / "report.md").read_text()


def test_audit_reports_unblinded_not_leak(chain):
    for variant in ("A", "B"):
        findings = audit.scan_blinding(chain["dirs"][f"unblinded_{variant}"])
        assert findings and {f.kind for f in findings} == {"unblinded"}, "\n".join(map(str, findings))


def test_unblinding_is_explicit_and_recorded(chain):
    args = build_parser().parse_args([*DEMO, "--data", "x.json"])
    assert args.unblind is False  # blinded unless asked
    for variant in ("A", "B"):
        for state, flag in (("blinded", False), ("unblinded", True)):
            folder = chain["dirs"][f"{state}_{variant}"]
            assert _json(folder, "provenance.json")["stages"]["demo"]["blinding"] == state
            assert _json(folder, "run/provenance.json")["stages"]["run"]["blinding"] == state
            cf = _json(folder, "run/cutflows/I.json")
            assert cf["blinded"] is not flag and (cf["rows"][-1]["events"] is None) is not flag
