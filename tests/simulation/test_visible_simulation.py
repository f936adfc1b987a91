"""Visible-mode simulation: reproducibility for a seed, the signature of each process, campaigns on disk.

Expectations come from the setup file and the physics (E_WCAL ~ E0 for a contained shower, E_WCAL +
E_ECAL ~ E0 and a decay point inside the decay volume for the signal, two MIPs in S4 for a pair), not from
the generator's code paths.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import na64ana.processors  # noqa: F401  (registers the visible-mode variables)
import numpy as np
import pytest
import uproot

from na64ana import contract, datasets, selection
from na64ana.contract import VisibleProcess as VP
from na64ana.errors import InputError
from na64ana.physics import visible as vis
from na64ana.simulation import campaign
from na64ana.simulation import visible as sv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setups() -> vis.VisibleSetups:
    return vis.load_setups()


def _events(setups, name="2017_40X0", seed=5, **kw):
    kw = {"n_signal": 300, "signal": (0.0167, 3e-4), "n_k0": 200, **kw}
    return sv.generate_visible_events(setups.setups[name], 20000, np.random.default_rng(seed), **kw)


def test_same_seed_same_events_and_bytes(setups, tmp_path):
    a, b = _events(setups), _events(setups)
    c = _events(setups, seed=6)
    assert set(a) == {br.name for br in contract.VISIBLE_BRANCHES}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not np.array_equal(a["wcal_e"], c["wcal_e"])
    sums = []
    for name, arrays in (("x.root", a), ("y/x.root", b)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        sv.write_visible_tree(tmp_path / name, arrays)
        sums.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert sums[0] == sums[1]
    back = uproot.open(tmp_path / "x.root")["events"].arrays(library="np")
    np.testing.assert_array_equal(back["ecal_e"], a["ecal_e"])


def test_em_showers_stay_in_the_wcal(setups):
    a = _events(setups)
    em = a["truth_process"] == VP.EM_SHOWER
    assert em.sum() > 15000
    assert np.median(a["wcal_e"][em]) == pytest.approx(100.0, rel=0.01)
    assert np.all(a["ecal_e"][em] < 0.5) and np.all(a["hcal_e0"][em] < 0.5)
    assert np.mean(a["v2_e"][em] > 0.5) < 0.01 and np.all(a["s4_e"][em] < 0.5)


def test_signal_signature(setups):
    s = setups.setups["2017_40X0"]
    a = _events(setups)
    sig = a["truth_process"] == VP.SIGNAL
    assert sig.sum() == 300
    e_a = a["truth_eaprime"][sig]
    assert e_a.min() >= setups.threshold_GeV(s) and e_a.max() <= s.e0
    z = a["truth_decay_z"][sig]
    assert z.min() >= s.shield_cm * 10 - 1e-3 and z.max() <= s.ecal_z_mm.f + 1e-3
    esum = a["wcal_e"][sig] + a["ecal_e"][sig]
    assert np.median(esum) == pytest.approx(s.e0, rel=0.02)
    assert np.median(a["s4_e"][sig]) == pytest.approx(2.0, rel=0.15)  # two MIPs
    assert np.all(a["ecal_ncl"][sig] == 1) and np.all(a["v2_e"][sig] < 0.5)
    assert np.corrcoef(e_a, a["ecal_e"][sig])[0, 1] > 0.99


def test_decay_points_follow_the_lifetime(setups):
    """At long lifetime (small eps) the decay points fill the volume uniformly; at short lifetime they
    pile up right behind the veto."""
    s = setups.setups["2017_40X0"]
    lo, hi = s.shield_cm * 10, s.ecal_z_mm.f
    long = _events(setups, signal=(0.0167, 2e-5), n_signal=4000, n_k0=0)
    z = long["truth_decay_z"][long["truth_process"] == VP.SIGNAL]
    assert np.mean(z) == pytest.approx(0.5 * (lo + hi), rel=0.03)
    short = _events(setups, signal=(0.0167, 1.2e-3), n_signal=4000, n_k0=0)
    z = short["truth_decay_z"][short["truth_process"] == VP.SIGNAL]
    assert np.median(z) < lo + 0.2 * (hi - lo)


def test_k0_background_signature(setups):
    a = _events(setups)
    k0 = a["truth_process"] == VP.K0_CONVERSION
    assert k0.sum() == 200
    assert np.all(a["v2_e"][k0] < 0.5)  # neutral through the veto
    assert np.median(a["s4_e"][k0]) == pytest.approx(2.0, rel=0.15)  # the converted photon's pair
    assert np.mean(a["srd_e0"][k0] > 1.0) < 0.01  # no SR tag for a hadron
    had = a["truth_process"] == VP.BEAM_HADRON
    assert np.mean(a["v2_e"][had] > 0.5) > 0.5


def test_selection_keeps_signal_and_rejects_backgrounds(setups):
    a = _events(setups)
    sel = selection.resolve("visible", campaign="visible2017", run="2017a", hcal0=False)
    masks = selection.cut_masks(sel, selection.compute(a, sel.variables))
    passed = np.all(list(masks.values()), axis=0)
    proc = a["truth_process"]
    eff = passed[proc == VP.SIGNAL].mean()
    assert 0.6 < eff < 0.97  # SRD 0.97 x single track x two-MIP window x timing
    for p in (VP.EM_SHOWER, VP.BEAM_HADRON, VP.K0_CONVERSION, VP.PILEUP):
        assert passed[proc == p].sum() == 0, p.name


def test_campaign_on_disk(tmp_path):
    out = campaign.simulate_campaign(ROOT / "datasets.json", out_dir=tmp_path / "sim", campaign="visible2018",
                                     n_events=3000, seed=11)
    ds = datasets.load(out)
    run = ds.campaign("visible2018").runs["2018"]
    (f,) = run.files
    assert f.nevents >= 3000 and 0 < f.eot <= 3000
    t = uproot.open(datasets.resolve_path(f, out))["events"]
    assert {"wcal_e", "s4_e", "v2_e", "truth_decay_z"} <= set(t.keys())
    a = t.arrays(["track_p", "run"], library="np")
    assert np.median(a["track_p"]) == pytest.approx(150.0, rel=0.01) and set(a["run"]) == {2018}
    again = campaign.simulate_campaign(ROOT / "datasets.json", out_dir=tmp_path / "sim2",
                                       campaign="visible2018", n_events=3000, seed=11)
    f2 = datasets.load(again).campaign("visible2018").runs["2018"].files[0]
    assert f2.sha256 == f.sha256


def test_beam_energy_must_match_the_setup(tmp_path):
    raw = json.loads((ROOT / "datasets.json").read_text())
    raw["campaigns"]["visible2018"]["beam_energy_GeV"] = 100.0
    p = tmp_path / "datasets.json"
    p.write_text(json.dumps(raw))
    with pytest.raises(InputError) as e:
        campaign.simulate_campaign(p, out_dir=tmp_path / "sim", campaign="visible2018", n_events=100)
    assert e.value.field == "beam_energy_GeV"
    assert not list((tmp_path / "sim").glob("*/*.root"))  # nothing half-written


def test_visible_run_needs_a_setup(tmp_path):
    raw = json.loads((ROOT / "datasets.json").read_text())
    del raw["campaigns"]["visible2017"]["runs"]["2017b"]["setup"]
    p = tmp_path / "datasets.json"
    p.write_text(json.dumps(raw))
    with pytest.raises(InputError) as e:
        campaign.simulate_campaign(p, out_dir=tmp_path / "sim", campaign="visible2017", n_events=100)
    assert e.value.field == "campaigns.visible2017.runs.2017b.setup"


def test_signal_sample_weights(setups):
    s = setups.setups["2018"]
    info: dict = {}
    a = sv.simulate_visible_signal_sample(s, mass_GeV=0.01, eps=2e-4, n_events=500,
                                          rng=np.random.default_rng(3), info=info)
    assert len(a["run"]) == 500 and np.all(a["truth_process"] == VP.SIGNAL)
    assert a["weight"].sum() == pytest.approx(float(vis.yield_per_eot(0.01, 2e-4, s)), rel=1e-5)
    assert info["yield_per_eot"] > 0
