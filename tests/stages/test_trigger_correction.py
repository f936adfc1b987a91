"""Preshower-threshold correction of the signal efficiency (issue 14 item 5): the signal MC's loss to the
trigger's E_PS threshold, carried in datasets.json, corrected to the published loss with its systematics."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from na64ana import datasets as ds
from na64ana import efficiency as E
from na64ana import published
from na64ana.errors import InputError
from na64ana.processing import execute, outputs
from na64ana.records import EfficiencyTable, RunOutput

REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets.json"
P_LOSS = published.entry(E.PS_PUBLISHED_KEY)
CAMPAIGN, RUN, MASSES = "prl2019", "III", [0.001, 1.0]


def _measurement(passed: float = 5000.0) -> E.Measurement:
    names = ["all", "track", "srd", "shower", "signal_box"]
    counts = [10_000.0, 9_000.0, 8_800.0, 8_000.0, passed]
    rows = [{"cut": c, "events": int(n), "weighted": n * 1e-6} for c, n in zip(names, counts, strict=True)]
    return E.from_cutflow(rows, 12_000.0 * 1e-6)


def test_published_loss_is_stored_once_with_its_source():
    assert (P_LOSS["value"], P_LOSS["unc"]) == (0.05, 0.03)
    assert P_LOSS["source"].startswith("S001 Sec. VI.A")


def test_factor_is_applied_exactly_as_defined_above_the_published_loss():
    loss, p, dp = 0.16, P_LOSS["value"], P_LOSS["unc"]
    factor, unc = E.ps_threshold_factor(loss, p, dp)
    assert factor == pytest.approx((1 - p) / (1 - loss), rel=1e-15)
    # published +-0.03 propagated (3.2% of the factor) and half the correction (x -> 1 shape) in quadrature
    assert unc / factor == pytest.approx(math.hypot(dp / (1 - p), 0.5 * (factor - 1) / factor), rel=1e-12)
    raw = _measurement()
    m = E.with_ps_correction(raw, loss)
    assert m.efficiency == pytest.approx(raw.efficiency * factor, rel=1e-15)
    assert m.unc == pytest.approx(raw.unc * factor, rel=1e-15)  # the statistical error scales too
    assert m.factors[E.PS_GROUP] == factor and m.factors_unc[E.PS_GROUP] == unc
    assert math.prod(m.factors.values()) == pytest.approx(m.efficiency, rel=1e-12)
    assert (m.ps_loss_sim, m.ps_correction, m.ps_correction_unc) == (loss, factor, unc)


@pytest.mark.parametrize("loss", [None, 0.0, 0.008, 0.05])
def test_no_factor_without_the_loss_or_at_or_below_the_published_one(loss):
    raw = _measurement()
    m = E.with_ps_correction(raw, loss)
    assert (m.efficiency, m.unc, m.factors, m.factors_unc) == (raw.efficiency, raw.unc, raw.factors,
                                                               raw.factors_unc)
    assert (m.ps_loss_sim, m.ps_correction, m.ps_correction_unc) == (loss, 1.0, 0.0)  # recorded
    rec = E.table({"III": {0.001: m}}, campaign="c", syst_rel={"III": 0.17})["runs"]["III"]
    assert rec["efficiency"] == [raw.efficiency]
    assert rec["unc"] == [pytest.approx(E.with_systematic(raw.efficiency, raw.unc, 0.17), rel=1e-15)]
    if loss is None:
        assert "ps_threshold_loss_sim" not in rec
    else:
        assert rec["ps_threshold_loss_sim"] == [loss] and rec["ps_threshold_correction"] == [1.0]


def test_switched_off_keeps_the_raw_efficiency_and_records_the_loss():
    raw = _measurement()
    m = E.with_ps_correction(raw, 0.16, apply=False)
    assert m.efficiency == raw.efficiency and E.PS_GROUP not in m.factors and m.ps_loss_sim == 0.16


@pytest.mark.parametrize("syst_rel", [None, 0.17])
def test_uncertainty_grows_by_the_factors_relative_uncertainty_in_quadrature(syst_rel):
    light, heavy = _measurement(), E.with_ps_correction(_measurement(), 0.16)
    rec = E.table({"III": {0.001: light, 1.0: heavy}}, campaign="c",
                  syst_rel=None if syst_rel is None else {"III": syst_rel})["runs"]["III"]
    base = heavy.unc if syst_rel is None else E.with_systematic(heavy.efficiency, heavy.unc, syst_rel)
    rel_factor = heavy.ps_correction_unc / heavy.ps_correction
    assert rec["unc"][1] == pytest.approx(math.hypot(base, heavy.efficiency * rel_factor), rel=1e-12)
    assert rec["unc"][1] > base * (1 + 1e-3)
    assert rec["unc_stat"] == [light.unc, heavy.unc]
    assert rec["ps_threshold_correction"] == [1.0, heavy.ps_correction]
    assert rec["ps_threshold_correction_unc"] == [0.0, heavy.ps_correction_unc]
    assert rec["factors"][E.PS_GROUP] == [1.0, heavy.ps_correction]


@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan"), float("inf")])
def test_datasets_entry_with_an_impossible_loss_is_refused_naming_file_and_field(bad):
    raw = json.loads(REPO_DATASETS.read_text())
    raw = copy.deepcopy(raw)
    raw["campaigns"][CAMPAIGN]["runs"][RUN]["files"] = [{
        "path": "sig.root", "nevents": 10, "eot": 0.0, "kind": "mc", "sample": "signal",
        "signal_mass_GeV": 1.0, "signal_eps": 1e-4, "signal_ps_threshold_loss": bad}]
    with pytest.raises(InputError) as err:
        ds.validate(raw, file="sig/datasets.json")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("sig/datasets.json:")
    assert f"campaigns.{CAMPAIGN}.runs.{RUN}.files.0.signal_ps_threshold_loss" in msg


def test_a_loss_on_some_files_of_a_sample_only_is_refused():
    raw = json.loads(REPO_DATASETS.read_text())
    f = {"path": "a.root", "nevents": 10, "eot": 0.0, "kind": "mc", "sample": "signal",
         "signal_mass_GeV": 1.0, "signal_eps": 1e-4}
    raw["campaigns"][CAMPAIGN]["runs"][RUN]["files"] = [{**f, "signal_ps_threshold_loss": 0.1},
                                                      {**f, "path": "b.root", "nevents": 30}]
    camp = ds.validate(raw).campaigns[CAMPAIGN]
    with pytest.raises(InputError, match="1 of 2 files"):
        E._ps_loss_sim(camp, Path("d.json"), CAMPAIGN, RUN, 1.0)
    raw["campaigns"][CAMPAIGN]["runs"][RUN]["files"][1]["signal_ps_threshold_loss"] = 0.2
    camp = ds.validate(raw).campaigns[CAMPAIGN]
    got = E._ps_loss_sim(camp, Path("d.json"), CAMPAIGN, RUN, 1.0)
    assert got == pytest.approx((0.1 * 10 + 0.2 * 30) / 40)  # weighted by entries


# ------------------------------------------------------------------------------------------------------
# The chain: the simulator writes the loss into datasets.json, the stage reads it there


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    from na64ana.simulation import simulate_signal_samples

    tmp = tmp_path_factory.mktemp("ps")
    sig = simulate_signal_samples(REPO_DATASETS, out_dir=tmp / "signal_mc", masses_GeV=MASSES, n_events=2000,
                                  campaign=CAMPAIGN, runs=[RUN], seed=5)
    rec = E.run_stage(sig, tmp / "out", campaign=CAMPAIGN, ps_correction=True)
    return sig, tmp / "out", rec


def test_the_simulator_writes_the_loss_and_the_stage_corrects_heavy_a_prime_only(corrected):
    sig, out, rec = corrected
    files = {f.signal_mass_GeV: f for f in ds.load(sig).campaigns[CAMPAIGN].runs[RUN].files}
    loss = [files[m].signal_ps_threshold_loss for m in MASSES]
    assert all(v is not None and 0 <= v < 1 for v in loss)
    r = rec.runs[RUN]
    assert r.ps_threshold_loss_sim == loss
    assert loss[0] < P_LOSS["value"] < loss[1]  # light A' agree with the publication, heavy lose more
    assert r.ps_threshold_correction == [1.0, pytest.approx((1 - P_LOSS["value"]) / (1 - loss[1]))]
    assert rec.ps_threshold_correction is not None and rec.ps_threshold_correction.applied
    on_disk = EfficiencyTable.load(out)
    assert on_disk.runs[RUN].ps_threshold_correction == r.ps_threshold_correction
    md = (out / "efficiency.md").read_text()
    assert "PS loss (sim)" in md and E.PS_GROUP in md and "0.05 +- 0.03 (S001 Sec. VI.A)" in md


def test_switching_it_off_gives_the_raw_simulated_efficiency(corrected):
    sig, out, rec = corrected
    run_out = RunOutput.load(out)
    jobs = execute.plan(sig, campaign=CAMPAIGN, samples=("signal",), processor="invisible")
    camp = ds.load(sig).campaigns[CAMPAIGN]
    off = E.compute({k: cf.rows for k, cf in run_out.cutflows.items()}, jobs, camp, datasets_file=sig,
                    loose=outputs.load_hist(out, "plane_loose"), ps_correction=False)
    on, raw = rec.runs[RUN], off.runs[RUN]
    assert raw.ps_threshold_loss_sim == on.ps_threshold_loss_sim  # recorded either way
    assert off.ps_threshold_correction is not None and not off.ps_threshold_correction.applied
    assert E.PS_GROUP not in raw.factors and raw.ps_threshold_correction == [1.0, 1.0]
    for i in range(len(MASSES)):
        assert on.efficiency[i] == pytest.approx(raw.efficiency[i] * on.ps_threshold_correction[i], rel=1e-12)
    assert on.unc[1] > raw.unc[1] * on.ps_threshold_correction[1]
    assert "switched off" in E.markdown(off)
    # off is the default: the simulator's efficiencies are tuned to the published ones, which already
    # contain the PS-threshold correction (docs/simulator_tuning.md)
    default = E.compute({k: cf.rows for k, cf in run_out.cutflows.items()}, jobs, camp, datasets_file=sig,
                        loose=outputs.load_hist(out, "plane_loose"))
    assert default.runs[RUN].efficiency == raw.efficiency and not default.ps_threshold_correction.applied
