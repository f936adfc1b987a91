"""Generic properties of the NA64 event simulator (no cut-flow code here: the lead's processor tests that)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from na64ana import contract, datasets
from na64ana.cli import main as cli_main
from na64ana.contract import Process
from na64ana.errors import InputError, OutputError
from na64ana.published import get as pub
from na64ana.simulation import generate_events, simulate_campaign, simulate_signal_sample, write_tree
from na64ana.simulation.rates import skim_sources

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets.json"
SMALL_EOT = 2e9


@pytest.fixture(scope="module")
def ds() -> datasets.Datasets:
    return datasets.load(DATASETS)


@pytest.fixture(scope="module")
def skim(ds):
    """prd2018 run III (highest 2016 slope) at a sub-range of its EOT, with the generation record."""
    info: dict = {}
    run = ds.campaigns["prd2018"].runs["III"]
    arrays = generate_events(run, campaign="prd2018", run_name="III", level="skim",
                             rng=np.random.default_rng(11), eot=SMALL_EOT, info=info)
    return arrays, info, run


@pytest.fixture(scope="module")
def trig(ds):
    run = ds.campaigns["prl2019"].runs["III"]
    info: dict = {}
    arrays = generate_events(run, campaign="prl2019", run_name="III", level="trigger", n_events=100_000,
                             rng=np.random.default_rng(5), info=info)
    return arrays, info


def _hcal(a):
    return a["hcal_e0"] + a["hcal_e1"] + a["hcal_e2"] + a["hcal_e3"]


# ----------------------------------------------------------------------------------- reproducibility

def test_same_seed_same_events_and_different_seed_differs(ds):
    run = ds.campaigns["prl2019"].runs["I"]
    kw = dict(campaign="prl2019", run_name="I", level="skim", eot=3e8)
    a = generate_events(run, rng=np.random.default_rng(1), **kw)
    b = generate_events(run, rng=np.random.default_rng(1), **kw)
    c = generate_events(run, rng=np.random.default_rng(2), **kw)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert len(a["ecal_e"]) != len(c["ecal_e"]) or not np.array_equal(a["ecal_e"], c["ecal_e"])


def test_branches_and_dtypes_are_exactly_the_contract(skim, trig):
    expected = [(b.name, np.dtype(b.dtype)) for b in contract.BRANCHES]
    for arrays in (skim[0], trig[0]):
        assert [(k, v.dtype) for k, v in arrays.items()] == expected
        assert len({len(v) for v in arrays.values()}) == 1


def test_every_written_event_fired_the_trigger(skim, trig):
    for a in (skim[0], trig[0]):
        assert np.all(a["trigger"] == 1)
        assert np.all(np.isfinite(a["ecal_e"]))
        assert np.all(a["ecal_e"] < pub("trigger.ecal_max_GeV"))
        assert np.all(a["ecal_ps_e"] > pub("trigger.ps_min_GeV"))
        assert np.all(a["weight"] == 1)
        assert np.all(np.diff(a["event"]) > 0)


def test_generated_counts_follow_the_configured_rates(skim):
    _, info, run = skim
    for src in skim_sources("prd2018", "III", run, e_nominal=100.0):
        lam = src.rate_per_eot * SMALL_EOT
        k = info["generated"][src.name]
        assert abs(k - lam) <= 5 * np.sqrt(lam) + 3, (src.name, k, lam)


def test_trigger_level_composition_is_dominated_by_the_beam_contaminants(trig):
    a, info = trig
    frac = {p: np.mean(a["truth_process"] == p) for p in Process}
    # low-energy tail (1% of the beam, ~75% hitting the ECAL) vs pi/K (0.6%, rarely passing the PS threshold)
    assert frac[Process.LOW_ENERGY_ELECTRON] > frac[Process.BEAM_HADRON] > frac[Process.DIMUON]
    supp = 1.0 / (len(a["event"]) / info["eot"])
    assert 30 < supp < 300  # trigger suppression ~1e2 (S001 Sec. VI)


# ---------------------------------------------------------------------------------------- physics

def test_electroproduction_shares_the_beam_energy_between_ecal_and_hcal(skim):
    a = skim[0]
    hc = _hcal(a)
    sel = (a["truth_process"] == Process.HADRON_ELECTROPRODUCTION) & (hc > 5)
    assert sel.sum() > 500
    e_sum, e0 = a["ecal_e"][sel] + hc[sel], a["truth_e0"][sel]
    sigma = np.sqrt(pub("detector.hcal_resolution_stochastic") ** 2 * hc[sel]
                    + pub("detector.ecal_resolution_stochastic") ** 2 * a["ecal_e"][sel])
    pull = (e_sum - e0) / sigma
    assert abs(np.median(pull)) < 0.2
    assert 0.8 < np.std(pull) < 1.3


def test_dimuons_deposit_the_muon_mip_in_each_hcal_module(skim):
    a = skim[0]
    hc = _hcal(a)
    sel = (a["truth_process"] == Process.DIMUON) & (hc > 1)
    per_module = pub("detector.muon_mip_per_hcal_module_GeV")
    for i in range(4):
        assert abs(np.median(a[f"hcal_e{i}"][sel]) - per_module) < 0.3 * per_module
    assert abs(np.median(hc[sel]) - 4 * per_module) < 0.2 * 4 * per_module
    veto_max = np.max([a[f"veto_e{i}"][sel] for i in range(3)], axis=0)
    assert np.mean(veto_max > pub("detector.veto_mip_MeV")) > 0.99


def test_upstream_side_band_slope_matches_the_published_run_slope(skim):
    a, _, run = skim
    lo, hi = 50.0, 78.0
    sel = (a["truth_process"] == Process.UPSTREAM_INTERACTION) & (a["ecal_e"] > lo) & (a["ecal_e"] < hi)
    e = a["ecal_e"][sel].astype(float)
    assert e.size > 200
    grid = np.linspace(0.05, 1.0, 2000)  # maximum likelihood for exp(p E) truncated to [lo, hi]
    ll = [e.size * np.log(p / np.expm1(p * (hi - lo))) + p * np.sum(e - lo) for p in grid]
    p_hat = grid[int(np.argmax(ll))]
    lo_pub, hi_pub = pub("background.prl2019.sideband_slope_range_per_GeV")
    assert lo_pub - 0.05 < p_hat < hi_pub + 0.05
    assert abs(p_hat - run.sideband_slope_per_GeV) < 5 * p_hat / np.sqrt(e.size) + 0.02


def test_pileup_grows_with_intensity_and_costs_signal_efficiency(ds):
    base = ds.campaigns["prl2019"].runs["I"]
    eff, pileup = [], []
    for intensity in ((1e6, 1e6), (9e6, 9e6)):
        run = base.model_copy(update={"intensity_e_per_spill": intensity})
        a = simulate_signal_sample(run, mass_GeV=0.01, n_events=20_000, rng=np.random.default_rng(3))
        pileup.append(np.mean(a["ecal_pileup"]))
        eff.append(np.mean(a["track_n"] == 1))
    assert pileup[0] < 0.05 < pileup[1] < 0.3
    assert eff[1] < eff[0]


def test_signal_sample_keeps_e0_minus_eaprime_and_weights_to_the_yield(ds):
    from na64ana.physics.yields import signal_yield_per_eot

    run = ds.campaigns["prl2019"].runs["II"]
    info: dict = {}
    a = simulate_signal_sample(run, mass_GeV=0.01, n_events=5000, eps=1e-4, rng=np.random.default_rng(9),
                               info=info)
    assert np.all(a["truth_process"] == Process.SIGNAL)
    # E_A' sampled above 0.8 * 50 GeV for a nominal 100 GeV e-, scaled with the actual beam-particle energy
    assert np.all(a["truth_eaprime"] >= 0.8 * 50.0 * a["truth_e0"] / 100.0 * (1 - 1e-5))
    assert 0.85 < info["triggered"] / info["generated"] <= 1.0
    y40 = signal_yield_per_eot(0.01, 1e-4, emiss_min=40.0)
    assert np.allclose(a["weight"] * info["generated"], y40, rtol=1e-5)
    clean = (a["ecal_pileup"] == 0) & (a["truth_e0"] - a["truth_eaprime"] > 5)
    resid = a["ecal_e"][clean] - (a["truth_e0"] - a["truth_eaprime"])[clean]
    assert abs(np.median(resid)) < 0.3


# ------------------------------------------------------------------------------------------- files

def test_write_tree_gives_a_ttree_with_the_contract_branches(tmp_path, trig):
    a = {k: v[:20_000] for k, v in trig[0].items()}
    n = write_tree(tmp_path / "x.root", a, compression="zstd")
    with uproot.open(tmp_path / "x.root") as f:
        t = f["events"]
        assert t.classname == "TTree"
        assert t.num_entries == n == 20_000
        assert list(t.keys()) == [b.name for b in contract.BRANCHES]
        back = t.arrays(["ecal_e", "truth_process"], library="np")
    assert np.array_equal(back["ecal_e"], a["ecal_e"])
    assert [p.name for p in tmp_path.iterdir()] == ["x.root"]


def test_write_tree_leaves_nothing_behind_on_bad_input(tmp_path, trig):
    a = {k: v[:100] for k, v in trig[0].items()}
    a["ecal_e"] = a["ecal_e"][:50]
    with pytest.raises(InputError, match="length"):
        write_tree(tmp_path / "bad.root", a)
    assert list(tmp_path.iterdir()) == []


def test_write_tree_failing_midway_leaves_neither_file_nor_temporary(tmp_path, trig, monkeypatch):
    from na64ana.simulation import writer

    calls = []

    def fail_on_second(a, dtype):
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full")
        return a.astype(dtype)

    monkeypatch.setattr(writer, "_big_endian", fail_on_second)
    a = {k: v[:100] for k, v in trig[0].items()}
    with pytest.raises(OSError, match="disk full"):
        write_tree(tmp_path / "x.root", a)
    assert list(tmp_path.iterdir()) == []


def test_simulate_campaign_writes_validated_datasets_with_matching_checksums(tmp_path):
    out = tmp_path / "sim"
    path = simulate_campaign(DATASETS, out_dir=out, campaign="prd2018", runs=["II"], level="trigger",
                             n_events=3000, seed=4)
    ds = datasets.load(path)
    files = ds.campaigns["prd2018"].runs["II"].files
    assert len(files) == 1 and ds.campaigns["prd2018"].runs["I"].files == []
    f = files[0]
    assert (f.kind, f.sample, f.nevents, f.path) == ("data", "trigger", 3000, "prd2018/run_II.root")
    assert f.sha256 == datasets.sha256sum(out / f.path) and f.eot > 0 and f.seed is not None
    assert "simulate" in json.loads((out / "provenance.json").read_text())["stages"]
    again = simulate_campaign(DATASETS, out_dir=tmp_path / "sim2", campaign="prd2018", runs=["II"],
                              level="trigger", n_events=3000, seed=4)
    assert datasets.load(again).campaigns["prd2018"].runs["II"].files[0].seed == f.seed
    with uproot.open(out / f.path) as fr, uproot.open(tmp_path / "sim2" / f.path) as fr2:
        assert np.array_equal(fr["events"]["ecal_e"].array(library="np"),
                              fr2["events"]["ecal_e"].array(library="np"))


# --------------------------------------------------------------------------------------- bad input

def test_unknown_campaign_or_run_is_an_input_error_naming_the_field(tmp_path):
    with pytest.raises(InputError, match="unknown campaign 'nope'"):
        simulate_campaign(DATASETS, out_dir=tmp_path / "a", campaign="nope")
    with pytest.raises(InputError, match=r"campaigns\.prd2018\.runs.*unknown run"):
        simulate_campaign(DATASETS, out_dir=tmp_path / "b", campaign="prd2018", runs=["IV"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_negative_eot_is_rejected(ds):
    run = ds.campaigns["prd2018"].runs["I"]
    with pytest.raises(InputError, match=r"runs\.I\.eot"):
        generate_events(run, campaign="prd2018", run_name="I", level="skim", rng=np.random.default_rng(0),
                        eot=-1.0)


@pytest.mark.parametrize("edit, where", [(lambda r: r.update(eot=-5), "eot"),
                                         (lambda r: r.pop("eot"), "eot"),
                                         (lambda r: r.update(hcal0="maybe"), "hcal0")])
def test_invalid_datasets_file_names_file_and_field(tmp_path, edit, where):
    raw = json.loads(DATASETS.read_text())
    edit(raw["campaigns"]["prd2018"]["runs"]["II"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        simulate_campaign(bad, out_dir=tmp_path / "out", campaign="prd2018")
    assert str(bad) in str(err.value) and f"campaigns.prd2018.runs.II.{where}" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_foreign_output_folder_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError):
        simulate_campaign(DATASETS, out_dir=out, campaign="prd2018", runs=["III"], level="trigger",
                          n_events=10)
    code = cli_main(["simulate", "--datasets", str(DATASETS), "--campaign", "prd2018", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == OutputError.exit_code and len(err) == 1 and str(out) in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_cli_bad_run_exits_nonzero_with_one_line(tmp_path, capsys):
    code = cli_main(["simulate", "--datasets", str(DATASETS), "--runs", "XIV", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == InputError.exit_code and len(err) == 1 and "XIV" in err[0] and "datasets.json" in err[0]


def test_cli_writes_files_and_summary(tmp_path, capsys):
    code = cli_main(["simulate", "--datasets", str(DATASETS), "--campaign", "prd2018", "--runs", "I",
                     "--level", "trigger", "--n-events", "2000", "--out", str(tmp_path / "o")])
    assert code == 0
    assert "prd2018/run_I.root" in capsys.readouterr().out
    assert (tmp_path / "o" / "prd2018" / "run_I.root").exists()


def test_interleaved_truth_has_exact_counts_in_random_order():
    from na64ana.simulation.generate import _shuffled_labels

    counts = np.array([90_000, 9_000, 1_000, 0, 3])
    labels = _shuffled_labels(counts, np.random.default_rng(5))
    assert np.array_equal(np.bincount(labels, minlength=counts.size), counts)
    first, second = labels[: labels.size // 2], labels[labels.size // 2:]
    assert abs(np.mean(first == 2) - np.mean(second == 2)) < 0.003  # not blocked by source


def test_trigger_level_is_seeded(ds):
    run = ds.campaigns["prl2019"].runs["III"]
    a, b = (generate_events(run, campaign="prl2019", run_name="III", level="trigger", n_events=20_000,
                            rng=np.random.default_rng(3)) for _ in range(2))
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert np.all(np.diff(a["spill"]) >= 0)


def test_aprime_emitter_lies_between_eaprime_and_e0_and_heavy_ones_radiate_first():
    from na64ana.simulation.processes import emitter_energy

    rng = np.random.default_rng(1)
    e0 = np.full(50_000, 100.0)
    ea = rng.uniform(40.0, 99.9, e0.size)
    for m in (0.001, 1.0):
        ee = emitter_energy(e0, ea, m, 100.0, rng)
        assert np.all((ee >= ea - 1e-9) & (ee <= e0 + 1e-9))
    light, heavy = (np.mean(e0 - emitter_energy(e0, ea, m, 100.0, rng)) for m in (0.001, 1.0))
    assert heavy > light  # S peaks at x -> 1 for heavy A': the emitter already lost E0 - E_A'


def test_dimuon_mc_weights_are_the_prediction_before_the_reduction_factor(ds):
    from na64ana.simulation import simulate_dimuon_sample
    from na64ana.simulation.dimuon import reduction_factor

    run = ds.campaigns["prl2019"].runs["I"]
    info: dict = {}
    mc = simulate_dimuon_sample(run, n_events=20_000, rng=np.random.default_rng(2), campaign="prl2019",
                                run_name="I", info=info)
    f = reduction_factor(run)
    assert min(pub("dimuon.reduction_factor")) <= f <= max(pub("dimuon.reduction_factor"))
    expected_total = info["rate_per_eot"] * run.eot / f
    assert mc["weight"][0] * info["generated"] == pytest.approx(expected_total, rel=1e-5)
    assert np.all(mc["truth_process"] == int(Process.DIMUON))
    assert info["triggered"] == mc["weight"].size < info["generated"]
