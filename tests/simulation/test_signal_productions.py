"""Signal MC per production through simulate_signal_samples: the visible-mode samples (their own branch
set and weights) and the refusals (a production that does not fit the campaign, a repeated one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from na64ana import datasets as dsets
from na64ana.contract import VISIBLE_BRANCHES
from na64ana.errors import InputError
from na64ana.physics import visible as vis
from na64ana.simulation import simulate_signal_samples

DATASETS = Path(__file__).resolve().parents[2] / "datasets.json"


def test_visible_signal_samples_carry_the_decay_volume_yield(tmp_path):
    path = simulate_signal_samples(DATASETS, out_dir=tmp_path / "vis", masses_GeV=[0.0167], n_events=300,
                                   eps=1e-4, campaign="visible2018", production="visible", seed=3)
    (entry,) = dsets.load(path).campaign("visible2018").runs["2018"].files
    got = (entry.kind, entry.sample, entry.signal_mass_GeV, entry.signal_eps)
    assert got == ("mc", "signal", 0.0167, 1e-4)
    arrays = uproot.open(dsets.resolve_path(entry, path))[entry.tree].arrays(library="np")
    names = [b.name for b in VISIBLE_BRANCHES]
    assert set(names) <= set(arrays)
    setups = vis.load_setups()
    want = float(np.asarray(vis.yield_per_eot(0.0167, 1e-4, setups.setups["2018"], setups=setups)))
    assert float(np.sum(arrays["weight"].astype(float))) == pytest.approx(want, rel=1e-5)
    assert np.all(arrays["run"] == 2018)
    stage = json.loads((tmp_path / "vis" / "provenance.json").read_text())["stages"]["simulate_signal"]
    assert stage["signal_ea_min_fraction"] is None  # the setup's threshold, not a fraction of emiss_min


@pytest.mark.parametrize(("campaign", "production", "match"), [
    ("visible2017", "brem", "production"),
    ("prl2019", "visible", "production"),
    ("prl2019", ["brem", "brem"], "repeated"),
])
def test_productions_that_do_not_fit_are_refused(tmp_path, campaign, production, match):
    with pytest.raises(InputError, match=match):
        simulate_signal_samples(DATASETS, out_dir=tmp_path / "x", masses_GeV=[0.0167], n_events=10,
                                campaign=campaign, production=production)
    assert not (tmp_path / "x").exists()
