"""The bad-input corpus: every kind of broken input, generated here, and what it must produce.

Each kind is one row of a table: how to make it, the error class (hence the CLI exit code: InputError 2,
DataError 3, OutputError 4), the file and the field the error must name, and a fragment of its message.
Data-file kinds also go through ``na64ana run``: non-zero exit and no ``run.complete``. NaN/inf in cut
variables are *not* errors: such events are read, counted in row 0 and fail the cut. Last, the
``--on-bad-file skip`` policy: a bad file is left out, reported, and its EOT leaves the normalisation
of every later stage (cut flows, background table, summary).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import awkward as ak
import numpy as np
import pytest
import regression
import uproot

from na64ana import background, contract, selection, summary
from na64ana import datasets as ds
from na64ana.cli import main as cli_main
from na64ana.errors import DataError, InputError, Na64Error, OutputError
from na64ana.processing import execute, inputs, outputs


def _same(a: str | Path | None, b: str | Path) -> bool:
    return a is not None and Path(a).resolve() == Path(b).resolve()


def _write_tree(path: Path, arrays: dict[str, np.ndarray], *, types: dict | None = None,
                rename: dict[str, str] | None = None, tree: str = "events") -> Path:
    """The data branches of ``arrays`` with some types changed (numpy dtype, "var * float32", "string")."""
    types, rename = types or {}, rename or {}

    def column(name: str, t: object) -> object:
        if t == "var * float32":
            n = len(arrays[name])  # counts of 1 as an array: a var (not regular) dimension
            return ak.unflatten(arrays[name].astype(np.float32), np.ones(n, dtype=np.int64))
        if t == "string":
            return ak.Array([f"{x:g}" for x in arrays[name]])
        if isinstance(t, np.dtype) and t.shape:  # fixed-size array per event, e.g. float32[2]
            return np.repeat(arrays[name][:, None], t.shape[0], axis=1).astype(t.base)
        return arrays[name].astype(t)

    want = {k: types.get(k, v) for k, v in contract.branch_types(mc=False).items()}
    with uproot.recreate(path) as f:
        t = f.mktree(tree, {rename.get(k, k): v for k, v in want.items()})
        if len(arrays["ecal_e"]):
            t.extend({rename.get(k, k): column(k, v) for k, v in want.items()})
    return path


# ------------------------------------------------------------------------------------------------------
# Data files: each maker breaks file a2 (run A) of the synth_campaign fixture and returns its path


def _truncated(sc):
    p = sc.paths["a2"]
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def _not_root(sc):
    sc.paths["a2"].write_text("run,event,ecal_e\n1,1,65.0\n" * 50)
    return sc.paths["a2"]


def _missing(sc):
    sc.paths["a2"].unlink()
    return sc.paths["a2"]


def _other_tree(sc):
    return _write_tree(sc.paths["a2"], sc.arrays["a2"], tree="ntuple")


def _rntuple(sc):
    p = sc.paths["a2"]
    with uproot.recreate(p) as f:  # uproot >= 5.6 writes an RNTuple for a plain assignment
        f["events"] = {k: sc.arrays["a2"][k] for k in contract.DATA_BRANCHES}
    return p


def _missing_branch(sc):
    a = {k: v for k, v in sc.arrays["a2"].items()}
    return _write_tree(sc.paths["a2"], a, rename={"ecal_chi2": "ecal_chi"})


def _typed(branch: str, t: object) -> Callable:
    def make(sc):
        return _write_tree(sc.paths["a2"], sc.arrays["a2"], types={branch: t})
    return make


def _empty(sc):
    return _write_tree(sc.paths["a2"], {k: v[:0] for k, v in sc.arrays["a2"].items()})


def _mapped_int(sc):
    """Branch map ecal_e -> ECAL_TOTAL: a1 is fine, a2 has ECAL_TOTAL as int32 (checked after mapping)."""
    raw = json.loads(sc.datasets.read_text())
    raw["campaigns"]["test"]["branch_map"] = {"ecal_e": "ECAL_TOTAL"}
    sc.datasets.write_text(json.dumps(raw))
    _write_tree(sc.paths["a1"], sc.arrays["a1"], rename={"ecal_e": "ECAL_TOTAL"})
    return _write_tree(sc.paths["a2"], sc.arrays["a2"], rename={"ecal_e": "ECAL_TOTAL"},
                       types={"ecal_e": np.int32})


@dataclass(frozen=True)
class Kind:
    name: str
    make: Callable
    field: str | None
    message: str


DATA_KINDS = [
    Kind("truncated", _truncated, None, "truncated ROOT file"),
    Kind("not_root", _not_root, None, "not a readable ROOT file"),
    Kind("missing_file", _missing, None, "file not found"),
    Kind("missing_tree", _other_tree, "events", "no tree 'events'"),
    Kind("rntuple_not_ttree", _rntuple, "events", "is not a TTree"),
    Kind("missing_branch", _missing_branch, "ecal_chi2", "missing branch 'ecal_chi2'"),
    Kind("int_for_float", _typed("ecal_e", np.int32), "ecal_e", "dtype int32 is not of float kind"),
    Kind("float_for_int", _typed("track_n", np.float32), "track_n", "dtype float32 is not of integer kind"),
    Kind("bool_for_int", _typed("ecal_pileup", np.bool_), "ecal_pileup", "dtype bool is not of integer kind"),
    Kind("jagged", _typed("ecal_e", "var * float32"), "ecal_e", "is not a flat numeric branch"),
    Kind("string", _typed("track_p", "string"), "track_p", "is not a flat numeric branch"),
    Kind("fixed_array", _typed("hcal_e0", np.dtype((np.float32, (2,)))), "hcal_e0",
         "is not a flat numeric branch"),
    Kind("empty_tree", _empty, "events", "empty tree 'events'"),
    Kind("branch_map_dtype", _mapped_int, "ECAL_TOTAL", "(canonical 'ecal_e'): dtype int32"),
]


@pytest.mark.parametrize("kind", DATA_KINDS, ids=lambda k: k.name)
def test_bad_data_file(kind, synth_campaign, capsys):
    bad = kind.make(synth_campaign)
    jobs = execute.plan(synth_campaign.datasets, runs=["A"])
    with pytest.raises(DataError) as err:
        inputs.check_inputs(jobs)
    e = err.value
    assert _same(e.file, bad) and e.field == kind.field and kind.message in e.message
    assert "\n" not in str(e)  # one line
    out = synth_campaign.datasets.parent / "out"
    rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--runs", "A"])
    assert rc == DataError.exit_code
    msg = capsys.readouterr().err
    assert bad.name in msg and kind.message in msg
    assert not outputs.is_complete(out)


def test_corrupted_basket_fails_the_run_naming_file_and_entries(synth_campaign, capsys):
    """A file whose header and trailer are intact passes the up-front checks; a basket with garbage
    inside is found only while processing: the run must still stop naming the file (not a WorkItem repr)."""
    p = synth_campaign.paths["a2"]
    with uproot.open(p) as f:
        branch = f["events"]["ecal_e"]
        start, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    data = bytearray(p.read_bytes())
    data[start + 80: start + size - 4] = b"Z" * (size - 84)  # keep the key header, smash the payload
    p.write_bytes(bytes(data))
    inputs.check_inputs(execute.plan(synth_campaign.datasets, runs=["A"]))  # undetectable up front
    out = synth_campaign.datasets.parent / "out"
    rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--runs", "A",
                   "--no-cache", "--retries", "0"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == DataError.exit_code and not outputs.is_complete(out)
    assert err.startswith(f"na64ana run: error: {p}:entries 0-") and "processing failed" in err
    assert "WorkItem" not in err


def test_bad_file_also_stops_a_previously_complete_output(synth_campaign):
    """Re-running into a complete folder with a bad input leaves it marked incomplete, not stale."""
    out = synth_campaign.datasets.parent / "out"
    args = ["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--runs", "A"]
    assert cli_main(args) == 0 and outputs.is_complete(out)
    _truncated(synth_campaign)
    assert cli_main(args) == DataError.exit_code
    assert not outputs.is_complete(out)
    with pytest.raises(OutputError, match="not a complete run output"):
        outputs.load_cutflow(out, "A")


def test_wider_numeric_types_are_accepted_and_give_the_same_cut_flow(synth_campaign):
    """float64 for a float32 branch and int64/uint8 for int16 ones: same kind, same cut flow."""
    ref = execute.run(execute.plan(synth_campaign.datasets, runs=["A"]), unblind=True)
    _write_tree(synth_campaign.paths["a2"], synth_campaign.arrays["a2"],
                types={"ecal_e": np.float64, "track_p": np.float64, "track_n": np.int64,
                       "straw_nhits": np.uint8})
    got = execute.run(execute.plan(synth_campaign.datasets, runs=["A"]), unblind=True)
    assert got.output["cutflow"]["A"]["events"].tolist() == ref.output["cutflow"]["A"]["events"].tolist()


def test_nan_and_inf_fail_their_cut_and_are_counted(tmp_path, synth):
    """Non-finite cut variables are data, not errors: read (row 0), then failing the cut that uses them."""
    bad = {"track_p": (3, np.nan), "srd_e1": (2, np.inf), "ecal_chi2": (4, np.nan), "veto_e0": (2, np.nan),
           "hcal_e2": (3, np.inf), "ecal_e": (5, np.nan)}
    n_box, n_golden = 6, 40
    a = synth.golden(n_golden + n_box + sum(k for k, _ in bad.values()))
    a["ecal_e"][:n_box] = 30.0  # inside the signal box: pass every cut
    start = n_golden + n_box
    for branch, (k, value) in bad.items():
        a[branch][start:start + k] = value
        start += k
    n = len(a["ecal_e"])
    synth.write_tree(tmp_path / "nan.root", a)
    dsets = synth.write_datasets(tmp_path / "datasets.json", {"A": (False, [synth.file_entry(
        tmp_path / "nan.root", n)])})
    out = tmp_path / "out"
    assert cli_main(["run", "--datasets", str(dsets), "--out", str(out), "--unblind"]) == 0
    rows = {r["cut"]: r["events"] for r in outputs.load_cutflow(out, "A")["rows"]}
    metrics = json.loads((out / "metrics.json").read_text())
    assert rows["all"] == n == metrics["events"]  # nothing dropped
    k = {b: v[0] for b, v in bad.items()}
    assert rows["track"] == n - k["track_p"]
    assert rows["srd"] == rows["track"] - k["srd_e1"]  # +inf fails the SRD max window
    assert rows["shower"] == rows["srd"] - k["ecal_chi2"]
    assert rows["veto"] == rows["straw"] - k["veto_e0"]  # max() propagates NaN: fails
    assert rows["hcal_zero"] == rows["pileup"] - k["hcal_e2"]
    assert rows["signal_box"] == n_box  # NaN E_ECAL never enters the box


# ------------------------------------------------------------------------------------------------------
# datasets.json


def _edit(fn: Callable[[dict], None]) -> Callable:
    def make(sc):
        raw = json.loads(sc.datasets.read_text())
        fn(raw["campaigns"]["test"])
        sc.datasets.write_text(json.dumps(raw))
    return make


def _text(fn: Callable[[str], str]) -> Callable:
    def make(sc):
        sc.datasets.write_text(fn(sc.datasets.read_text()))
    return make


def _set(path: str, value: object) -> Callable[[dict], None]:
    def fn(camp: dict) -> None:
        node = camp
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value
    return fn


def _duplicate_run(text: str) -> str:
    """The same run name twice in one object: plain json.loads would keep the second one silently."""
    body = json.dumps(json.loads(text)["campaigns"]["test"]["runs"]["A"])
    assert '"runs": {' in text
    return text.replace('"runs": {', f'"runs": {{"A": {body},', 1)


def _listed_twice_in_run(camp):
    camp["runs"]["A"]["files"].append(dict(camp["runs"]["A"]["files"][0]))


def _listed_in_two_runs(camp):
    camp["runs"]["B"]["files"][1] = dict(camp["runs"]["A"]["files"][1])


def _listed_via_other_path(sc):
    os.symlink(sc.paths["a1"], sc.datasets.parent / "alias.root")
    raw = json.loads(sc.datasets.read_text())
    raw["campaigns"]["test"]["runs"]["B"]["files"][0]["path"] = "alias.root"
    sc.datasets.write_text(json.dumps(raw))


def _copy_same_sha(sc):
    shutil.copy(sc.paths["b1"], sc.datasets.parent / "b1_copy.root")
    raw = json.loads(sc.datasets.read_text())
    files = raw["campaigns"]["test"]["runs"]["B"]["files"]
    files[0]["sha256"] = ds.sha256sum(sc.paths["b1"])
    files.append({**files[0], "path": "b1_copy.root"})
    sc.datasets.write_text(json.dumps(raw))


R = "campaigns.test.runs"
DATASET_KINDS = [
    Kind("negative_run_eot", _edit(_set("runs.A.eot", -1.0)), f"{R}.A.eot", "greater than 0"),
    Kind("negative_file_eot", _edit(_set("runs.B.files.0.eot", -5.0)), f"{R}.B.files.0.eot",
         "greater than or equal to 0"),
    Kind("unknown_field", _edit(_set("runs.A.eot_total", 1.0)), f"{R}.A.eot_total", "Extra inputs"),
    Kind("duplicate_run_name", _text(_duplicate_run), f"{R}.A", "duplicate key 'A'"),
    Kind("nan_literal", _text(lambda t: t.replace('"eot": 1000000000.0', '"eot": NaN', 1)), None,
         "'NaN' is not a JSON number"),
    Kind("truncated_json", _text(lambda t: t[: len(t) // 2]), None, "not valid JSON"),
    Kind("listed_twice_in_run", _edit(_listed_twice_in_run), f"{R}.A.files.2",
         f"the same file as {R}.A.files.0"),
    Kind("listed_in_two_runs", _edit(_listed_in_two_runs), f"{R}.B.files.1",
         f"the same file as {R}.A.files.1"),
    Kind("listed_via_symlink", _listed_via_other_path, f"{R}.B.files.0", f"the same file as {R}.A.files.0"),
    Kind("copy_with_same_sha256", _copy_same_sha, f"{R}.B.files.2", f"the same sha256 as {R}.B.files.0"),
]


@pytest.mark.parametrize("kind", DATASET_KINDS, ids=lambda k: k.name)
def test_bad_datasets_json(kind, synth_campaign, capsys):
    kind.make(synth_campaign)
    f = synth_campaign.datasets
    with pytest.raises(InputError) as err:
        ds.load(f)
    e = err.value
    assert e.file == str(f) and e.field == kind.field and kind.message in e.message
    out = f.parent / "out"
    assert cli_main(["run", "--datasets", str(f), "--out", str(out)]) == InputError.exit_code
    assert kind.message in capsys.readouterr().err
    assert not outputs.is_complete(out)


def test_unknown_campaign_and_run_on_the_command_line(synth_campaign, capsys):
    out = synth_campaign.datasets.parent / "o"
    args = ["run", "--datasets", str(synth_campaign.datasets), "--out", str(out)]
    assert cli_main([*args, "--campaign", "nope"]) == InputError.exit_code
    err = capsys.readouterr().err
    assert "datasets.json:campaigns: unknown campaign 'nope'" in err
    assert cli_main([*args, "--runs", "Z"]) == InputError.exit_code
    assert "datasets.json:campaigns.test.runs: unknown run(s) ['Z']" in capsys.readouterr().err


def test_missing_datasets_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        ds.load(tmp_path / "nope.json")
    assert err.value.file == str(tmp_path / "nope.json")


def test_output_folder_with_foreign_content(synth_campaign, capsys):
    out = synth_campaign.datasets.parent / "foreign"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out)])
    assert rc == OutputError.exit_code and "foreign" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "mine" and not outputs.is_complete(out)


# ------------------------------------------------------------------------------------------------------
# Selection files


SHIPPED = selection.selection_path("invisible").read_text()
SELECTION_KINDS = [
    Kind("unknown_variable", (lambda t: t.replace('variable = "ecal_chi2"', 'variable = "chi2x"')),
         "cuts.2.requires.0", "unknown variable 'chi2x'"),
    Kind("inverted_window", (lambda t: t.replace("min = 97.0, max = 103.0", "min = 103.0, max = 97.0")),
         "cuts.0.requires.1", "inverted window: min 103.0 >= max 97.0"),
    Kind("empty_window", (lambda t: t.replace("min = 97.0, max = 103.0", "min = 97.0, max = 97.0")),
         "cuts.0.requires.1", "inverted window"),
    Kind("duplicate_cut_name", (lambda t: t.replace('name = "straw"', 'name = "srd"')), "cuts.3.name",
         "duplicate cut name 'srd' (also cuts.1.name)"),
    Kind("plane_not_a_cut", (lambda t: t.replace('i_iv = "pileup"', 'i_iv = "pile_up"')), "planes.i_iv",
         "'pile_up' is not a cut"),
    Kind("bad_reference", (lambda t: t.replace('"@detector.veto_mip_MeV"', '"@detector.nope"')),
         "cuts.4.requires.0.max", "bad reference '@detector.nope'"),
    Kind("bad_override_target", (lambda t: t.replace('target = "cuts.track.track_p"',
                                                          'target = "cuts.track.track_q"')),
         "override.0.target", "unknown target 'cuts.track.track_q'"),
    Kind("invalid_toml", (lambda t: t.replace("[box]", "[box")), None, "not valid TOML"),
]


@pytest.mark.parametrize("kind", SELECTION_KINDS, ids=lambda k: k.name)
def test_bad_selection(kind, synth_campaign, capsys):
    text = kind.make(SHIPPED)
    assert text != SHIPPED  # the edit applied
    f = synth_campaign.datasets.parent / "sel.toml"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        selection.load(f)
    e = err.value
    assert e.file == str(f) and e.field == kind.field and kind.message in e.message
    out = f.parent / "out"
    rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out),
                   "--selection", str(f)])
    assert rc == InputError.exit_code and kind.message in capsys.readouterr().err
    assert not outputs.is_complete(out)


# ------------------------------------------------------------------------------------------------------
# Yields summary JSON (na64ana limits --summary)

GOOD_SUMMARY = {
    "analysis": "t", "beam_energy_GeV": 100, "emiss_min_GeV": 50, "cross_section": "etl", "cl": 0.9,
    "correlated": {"xsec": 0.10}, "masses_GeV": [0.01, 0.1],
    "runs": [{"name": "I", "eot": 2.3e10, "eot_unc": 0.02, "efficiency": 0.7, "efficiency_unc": 0.09,
              "background": 0.043, "background_unc": 0.017, "observed": 0}]}


def _summary_text(fn: Callable[[dict], None] | None = None, text: Callable[[str], str] | None = None):
    def make() -> str:
        d = json.loads(json.dumps(GOOD_SUMMARY))
        if fn:
            fn(d)
        t = json.dumps(d, indent=1)
        return text(t) if text else t
    return make


def _second_run(d):
    d["runs"].append({**d["runs"][0], "observed": None, "name": "II"})


SUMMARY_KINDS = [
    Kind("truncated", _summary_text(text=lambda t: t[:-40]), None, "not valid JSON"),
    Kind("duplicate_key", _summary_text(text=lambda t: t.replace('"eot": 23000000000.0',
                                                                  '"eot": 1.0, "eot": 23000000000.0')),
         "runs.0.eot", "duplicate key 'eot'"),
    Kind("nan_literal", _summary_text(text=lambda t: t.replace("0.043", "NaN", 1)), None, "'NaN'"),
    Kind("negative_eot", _summary_text(_set("runs.0.eot", -1.0)), "runs.0.eot", "greater than 0"),
    Kind("negative_background_unc", _summary_text(_set("runs.0.background_unc", -0.05)),
         "runs.0.background_unc", "greater than or equal to 0"),
    Kind("fractional_observed", _summary_text(_set("runs.0.observed", 2.0)), "runs.0.observed", "integer"),
    Kind("mixed_blinding", _summary_text(_second_run), "runs", "observed must be null"),
    Kind("not_an_object", _summary_text(text=lambda t: "[" + t + "]"), None, "valid dictionary"),
]


@pytest.mark.parametrize("kind", SUMMARY_KINDS, ids=lambda k: k.name)
def test_bad_summary(kind, tmp_path, capsys):
    f = tmp_path / "summary.json"
    f.write_text(kind.make())
    with pytest.raises(InputError) as err:
        summary.load(f)
    e = err.value
    assert e.file == str(f) and e.field == kind.field and kind.message in e.message
    out = tmp_path / "lim"
    assert cli_main(["limits", "--summary", str(f), "--out", str(out)]) == InputError.exit_code
    assert kind.message in capsys.readouterr().err
    assert not (out / "limits.json").exists()


# ------------------------------------------------------------------------------------------------------
# The CI regression reference


def _ref(fn: Callable[[dict], None] | None = None, text: Callable[[str], str] | None = None):
    def make() -> str:
        d = json.loads(regression.REFERENCE.read_text())
        if fn:
            fn(d)
        t = json.dumps(d, indent=1)
        return text(t) if text else t
    return make


def _del(path: str) -> Callable[[dict], None]:
    def fn(d: dict) -> None:
        keys = path.split(".")
        node = d
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        del node[int(keys[-1]) if isinstance(node, list) else keys[-1]]
    return fn


REFERENCE_KINDS = [
    Kind("truncated", _ref(text=lambda t: t[: len(t) // 3]), None, "not valid JSON"),
    Kind("empty_file", _ref(text=lambda t: ""), None, "not valid JSON"),
    Kind("no_datasets", _ref(lambda d: d.update(keys={})), "keys", "at least 1 item"),
    Kind("rows_missing", _ref(_del("keys.I.rows")), "keys.I.rows", "Field required"),
    Kind("count_as_string", _ref(lambda d: d["keys"]["II"]["rows"][1].update(events="31603")),
         "keys.II.rows.1.events", "valid integer"),
    Kind("keys_a_list", _ref(lambda d: d.update(keys=list(d["keys"].values()))), "keys", "valid dictionary"),
    Kind("bad_hash", _ref(lambda d: d["keys"]["I"].update(selection_hash="b03e")), "keys.I.selection_hash",
         "pattern"),
]


@pytest.mark.parametrize("kind", REFERENCE_KINDS, ids=lambda k: k.name)
def test_corrupted_regression_reference(kind, tmp_path, capsys):
    f = tmp_path / "cutflow_reference.json"
    f.write_text(kind.make())
    with pytest.raises(InputError) as err:
        regression.load_reference(f)
    e = err.value
    assert e.file == str(f) and e.field == kind.field and kind.message in e.message
    # the CI entry point refuses it before recomputing anything (no traceback, no silent pass)
    assert regression.main(["--reference", str(f)]) == InputError.exit_code
    assert kind.message in capsys.readouterr().err


def test_shipped_reference_is_well_formed():
    assert set(regression.load_reference()["keys"]) >= {"I", "II", "III"}


def test_missing_reference_names_the_file(tmp_path):
    with pytest.raises(InputError, match="reference file not found") as err:
        regression.load_reference(tmp_path / "none.json")
    assert err.value.file == str(tmp_path / "none.json")


# ------------------------------------------------------------------------------------------------------
# --on-bad-file skip


@pytest.fixture
def two_file_run(tmp_path, synth):
    """Run A: a1 (6e8 EOT) + a2 (4e8 EOT) = the run's 1e9; run B: b1 (1e9). Side band C has an exponential
    E_ECAL spectrum (the background fit needs one); a few events in the validation region."""
    rng = np.random.default_rng(11)

    def arrays(n: int) -> dict[str, np.ndarray]:
        a = synth.golden(n)
        a["ecal_e"][:] = np.maximum(100.0 - rng.exponential(8.0, n), 50.5)  # rising towards the beam energy
        val = slice(0, n // 5)
        a["ecal_e"][val] = rng.uniform(5.0, 75.0, n // 5)
        for i in range(4):
            a[f"hcal_e{i}"][val] = 4.0
        return a

    n = {"a1": 600, "a2": 400, "b1": 800}
    paths = {k: synth.write_tree(tmp_path / f"{k}.root", arrays(m)) for k, m in n.items()}
    # campaign prl2019: the published background table has components that scale with the EOT
    dsets = synth.write_datasets(tmp_path / "datasets.json", {
        "A": (False, [synth.file_entry(paths["a1"], n["a1"], eot=6e8),
                      synth.file_entry(paths["a2"], n["a2"], eot=4e8)]),
        "B": (True, [synth.file_entry(paths["b1"], n["b1"], eot=1e9)])}, campaign="prl2019")
    return SimpleNamespace(datasets=dsets, paths=paths, n=n, out=tmp_path / "out")


def test_skip_policy_end_to_end(two_file_run, caplog):
    t = two_file_run
    t.paths["a2"].write_bytes(t.paths["a2"].read_bytes()[: t.paths["a2"].stat().st_size // 2])
    args = ["run", "--datasets", str(t.datasets), "--out", str(t.out)]
    # default policy: the same input stops the run
    assert cli_main(args) == DataError.exit_code and not outputs.is_complete(t.out)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="na64ana.processing.inputs"):
        assert cli_main([*args, "--on-bad-file", "skip"]) == 0
    warned = [r for r in caplog.records
              if r.name == "na64ana.processing.inputs" and r.levelno == logging.WARNING]
    assert len(warned) == 1 and "a2.root" in warned[0].getMessage() and "4e+08 EOT" in warned[0].getMessage()

    metrics = json.loads((t.out / "metrics.json").read_text())
    (sk,) = metrics["skipped_files"]
    assert _same(sk["path"], t.paths["a2"]) and sk["key"] == "A" and sk["eot"] == 4e8
    assert sk["status"] == "skipped" and "truncated" in sk["reason"]
    assert metrics["eot_skipped"] == {"A": 4e8}
    assert metrics["events"] == t.n["a1"] + t.n["b1"]
    cf = outputs.load_cutflow(t.out, "A")
    assert cf["eot"] == 6e8 and cf["rows"][0]["events"] == t.n["a1"]
    assert outputs.load_cutflow(t.out, "B")["eot"] == 1e9

    # downstream: the background table and the summary use the EOT actually processed
    bkg = background.table_from_run(t.out, t.datasets)
    by_run = {r["run"]: r for r in bkg["runs"]}
    assert by_run["A"]["eot"] == 6e8 and by_run["A"]["eot_skipped"] == 4e8
    assert [Path(p).name for p in by_run["A"]["skipped_files"]] == ["a2.root"]
    assert by_run["B"]["eot"] == 1e9 and by_run["B"]["eot_skipped"] == 0.0
    camp = ds.load(t.datasets).campaign(None)
    eff = {"runs": {r: {"mass_GeV": [0.01, 0.1], "efficiency": [0.5, 0.4]} for r in ("A", "B")}}
    summ = summary.from_results(analysis="skip test", campaign=camp, background=bkg, efficiency=eff,
                                regions=outputs.load_regions(t.out), masses_GeV=[0.01])
    runs = {r["name"]: r for r in summary.validate(summ).model_dump()["runs"]}
    assert runs["A"]["eot"] == camp.runs["A"].eot - 4e8 == 6e8
    assert runs["B"]["eot"] == camp.runs["B"].eot
    assert "skipped" in runs["A"]["notes"]["eot"] and "a2.root" in runs["A"]["notes"]["eot"]
    assert "eot" not in runs["B"]["notes"] and "run(s) A" in summ["notes"]


def test_skip_published_components_scale_with_processed_eot(two_file_run):
    """The published non-upstream background components scale with the processed EOT, not the listed one."""
    t = two_file_run
    args = ["run", "--datasets", str(t.datasets), "--out", str(t.out)]
    assert cli_main(args) == 0
    full = {r["run"]: r for r in background.table_from_run(t.out, t.datasets)["runs"]}
    t.paths["a2"].write_text("not ROOT")
    assert cli_main([*args, "--on-bad-file", "skip"]) == 0
    part = {r["run"]: r for r in background.table_from_run(t.out, t.datasets)["runs"]}
    comps = [k for k, c in full["A"]["components"].items() if k != "upstream" and c["value"]]
    assert comps  # the campaign's published table has components to scale
    for k in comps:
        assert part["A"]["components"][k]["value"] == pytest.approx(0.6 * full["A"]["components"][k]["value"])
    assert part["B"]["components"] == full["B"]["components"]


def test_skip_unit_job_and_records(two_file_run):
    t = two_file_run
    t.paths["a2"].write_text("not ROOT")
    jobs = execute.plan(t.datasets)
    before = {j.key: (list(j.files), j.eot) for j in jobs}
    recs = inputs.check_inputs(jobs, on_bad="skip")
    a = next(j for j in jobs if j.key == "A")
    assert [p.name for p in a.files] == ["a1.root"] and a.file_eot == [6e8] and a.eot == before["A"][1] - 4e8
    assert [r.status for r in recs] == ["ok", "skipped", "ok"]  # listing order kept
    skipped = recs[1]
    assert skipped.nevents == 0 and skipped.sha256 is None and t.paths["a2"].name in skipped.reason
    assert "not a readable ROOT file" in skipped.reason and "\n" not in skipped.reason
    assert inputs.skip_report(recs)["eot_skipped"] == {"A": 4e8}
    assert inputs.skip_report(recs[:1]) == {"skipped_files": [], "eot_skipped": {}}


@pytest.mark.parametrize("what", ["unknown_eot", "all_bad"])
def test_skip_refusals(two_file_run, capsys, what):
    """A skip that cannot keep the normalisation right is refused: EOT 0 (unknown) and nothing left."""
    t = two_file_run
    raw = json.loads(t.datasets.read_text())
    if what == "unknown_eot":
        raw["campaigns"]["prl2019"]["runs"]["A"]["files"][1]["eot"] = 0.0
        t.paths["a2"].write_text("not ROOT")
        expect = ("cannot be skipped: its EOT is 0", t.paths["a2"])
    else:
        t.paths["a1"].write_text("not ROOT")
        t.paths["a2"].write_text("not ROOT")
        expect = ("every input file of run 'A'", None)
    t.datasets.write_text(json.dumps(raw))
    with pytest.raises(DataError) as err:
        inputs.check_inputs(execute.plan(t.datasets), on_bad="skip")
    assert expect[0] in err.value.message
    if expect[1] is not None:
        assert _same(err.value.file, expect[1])
    else:
        assert err.value.field == "A"
    rc = cli_main(["run", "--datasets", str(t.datasets), "--out", str(t.out), "--on-bad-file", "skip"])
    assert rc == DataError.exit_code and expect[0] in capsys.readouterr().err
    assert not outputs.is_complete(t.out)


def test_unknown_policy_is_an_input_error():
    with pytest.raises(InputError) as err:
        inputs.check_inputs([], on_bad="ignore")
    assert err.value.field == "--on-bad-file" and isinstance(err.value, Na64Error)
