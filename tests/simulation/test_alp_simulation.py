"""ALP signal MC (simulation/alp.py): reproducible per seed, weights = yield per EOT, decay places follow
the decay-length distribution, and the campaign dispatch (production="primakoff") -> ROOT -> ALP processor."""

from __future__ import annotations

import json
from pathlib import Path

import na64ana.processors  # noqa: F401
import numpy as np
import pytest

from na64ana import datasets
from na64ana.physics import alp
from na64ana.processing import execute
from na64ana.simulation.alp import decay_places, simulate_alp_sample
from na64ana.simulation.campaign import simulate_signal_samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run():
    return datasets.load(ROOT / "datasets.json").runs("prl2019")["III"]


def test_same_seed_same_events_other_seed_other_events(run):
    a = simulate_alp_sample(run, mass_GeV=0.02, n_events=3000, rng=np.random.default_rng(7), g_agg=3e-4)
    b = simulate_alp_sample(run, mass_GeV=0.02, n_events=3000, rng=np.random.default_rng(7), g_agg=3e-4)
    c = simulate_alp_sample(run, mass_GeV=0.02, n_events=3000, rng=np.random.default_rng(8), g_agg=3e-4)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["ecal_e"][:100], c["ecal_e"][:100])


def test_weights_and_decay_fractions_follow_the_physics(run):
    m, g, n = 0.03, 2e-4, 40_000
    info: dict = {}
    arr = simulate_alp_sample(run, mass_GeV=m, n_events=n, rng=np.random.default_rng(3), g_agg=g, info=info)
    ay = alp.AlpYield(m)
    e, w = ay.spectrum_above(info["ea_min"])
    assert info["yield_per_eot"] == pytest.approx(g**2 * w.sum(), rel=1e-12)
    assert float(arr["weight"][0]) == pytest.approx(info["yield_per_eot"] / n, rel=1e-6)
    assert info["ea_min"] == pytest.approx(0.8 * 15.0)
    # fraction decaying behind the HCAL and in HCAL2-4: the spectrum-averaged decay probabilities
    geo = alp.load_geometry()
    p = w / w.sum()
    beyond = float(p @ alp.decay_probability(e, m, g, "beyond", geo))
    la, _ = geo.decay_window_cm("hcal")
    lb = 100 * (geo.hcal_end_m(4) - geo.production_depth_m)
    la2 = 100 * (geo.hcal_end_m(1) - geo.production_depth_m)
    assert la == pytest.approx(la2) and lb > la
    hcal = float(p @ alp.decay_probability(e, m, g, "hcal", geo))
    for frac, ref in ((info["decays"]["beyond"], beyond), (info["decays"]["hcal2_4"], hcal)):
        assert frac == pytest.approx(ref, abs=4 * np.sqrt(ref * (1 - ref) / n) + 2e-3)


def test_decay_places_map_the_geometry():
    geo = alp.load_geometry()
    z = np.array([0.1, geo.ecal_length_m + 0.01, geo.hcal_start_m(2) - 0.01, geo.hcal_start_m(2) + 0.5,
                  geo.hcal_end_m(4) - 0.01, geo.hcal_end_m(4) + 0.01])
    assert decay_places(z, geo).tolist() == [-1, 0, 1, 1, 3, 4]


def test_campaign_dispatch_writes_alp_samples_through_the_processor(tmp_path):
    path = simulate_signal_samples(ROOT / "datasets.json", out_dir=tmp_path / "sim", masses_GeV=[0.02],
                                   n_events=20_000, eps=3e-4, campaign="prl2019", runs=["III"],
                                   production="primakoff", seed=5)
    raw = json.loads(Path(path).read_text())
    files = raw["campaigns"]["prl2019"]["runs"]["III"]["files"]
    alp_files = [f for f in files if f.get("sample") == "signal_alp"]
    assert len(alp_files) == 1 and alp_files[0]["path"].endswith("signal_alp_m20MeV_run_III.root")
    assert alp_files[0]["signal_eps"] == 3e-4 and alp_files[0]["kind"] == "mc"
    jobs = execute.plan(path, processor="alp", samples=("signal_alp",))
    out = execute.run(jobs, "alp").output
    key = jobs[0].key
    per = alp.AlpYield(0.02).per_region([3e-4])
    for region in ("hcal_decay", "beyond"):
        selected = out["regions"][key][region][1]  # sum of weights = signal per EOT after the selection
        eff = selected / float(per["hcal" if region == "hcal_decay" else "beyond"][0])
        assert 0.3 < eff < 1.05, (region, eff)  # trigger x cuts; no more than produced
