"""Track length of e+- in the lead shower (brief 9.2): Rossi A, reference table, secondaries, caching."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest

from na64ana.physics import tracklength as tl


def _reference():
    with resources.files("na64ana").joinpath("data/track_length_pb_100GeV.csv").open() as f:
        rows = list(csv.reader(line for line in f if not line.startswith("#")))
    return np.array(rows[1:], dtype=float)  # E_lo, E_hi, T_mc, T_tsai(b=4/3)


def _binned(table, lo, hi, e0=100.0):
    """Mean T (X0/GeV) over [lo, hi] GeV."""
    return (table.cumulative_above(lo / e0) - table.cumulative_above(hi / e0)) / (hi - lo)


def test_rossi_approximation_a_between_3_and_20_gev():
    table = tl.track_length_table()
    for lo in np.arange(3.0, 20.0, 1.0):
        rossi = float(np.mean(tl.track_length_rossi(np.linspace(lo, lo + 1, 101))))
        assert _binned(table, lo, lo + 1) == pytest.approx(rossi, rel=0.10), lo


def test_agrees_with_reference_table():
    table = tl.track_length_table()
    ref = _reference()
    # 5 GeV groups below the primary spike (the reference has 60k primaries, i.e. ~1-2% noise per group)
    for lo in np.arange(5.0, 95.0, 5.0):
        sel = (ref[:, 0] >= lo) & (ref[:, 1] <= lo + 5)
        assert _binned(table, lo, lo + 5) == pytest.approx(ref[sel, 2].mean(), rel=0.05), lo
    # the total path above 50 GeV (what the E_miss > 50 GeV yield uses), spike included
    sel = ref[:, 0] >= 50
    assert _binned(table, 50, 100) * 50 == pytest.approx(ref[sel, 2].sum(), rel=0.02)


def test_tsai_primary_matches_reference_column():
    ref = _reference()
    centres = 0.5 * (ref[::10, 0] + ref[::10, 1])
    # the reference column is bin-averaged; compare at bin centres with b = 4/3 as stated in its header
    got = tl.track_length_tsai_primary(centres, 100.0, b=4 / 3)
    np.testing.assert_allclose(got, ref[::10, 3], rtol=0.02)


def test_secondaries_matter_at_50_gev():
    table = tl.track_length_table()
    mc = _binned(table, 50.0, 55.0)
    primary = float(np.mean(tl.track_length_tsai_primary(np.linspace(50, 55, 11))))
    assert mc > 1.15 * primary
    # and become small close to the beam energy
    assert _binned(table, 80.0, 90.0) == pytest.approx(
        float(np.mean(tl.track_length_tsai_primary(np.linspace(80, 90, 11)))), rel=0.06)


def test_scaling_with_beam_energy():
    # no ionisation => T(E; E0) = g(E/E0)/E0
    assert float(tl.track_length(30.0, 60.0)) == pytest.approx(float(tl.track_length(50.0, 100.0)) * 100 / 60)


def test_small_regeneration_agrees_with_cached_table(tmp_path, monkeypatch):
    """Regenerate a small, independent table (different seed) and compare with the cached default."""
    monkeypatch.setenv("NA64ANA_CACHE_DIR", str(tmp_path))
    small = tl.ShowerConfig(n_primaries=20_000, seed=7)
    fresh = tl.track_length_table(small)
    assert (tmp_path / f"tracklength-{small.key()}.npz").exists()
    default = tl.track_length_table()
    for lo, hi in [(3, 5), (5, 10), (10, 20), (20, 35), (35, 50), (50, 70), (70, 99)]:
        assert _binned(fresh, lo, hi) == pytest.approx(_binned(default, lo, hi), rel=0.04), (lo, hi)
    # the on-disk copy is what a new process would read back
    tl.track_length_table.cache_clear()
    again = tl.track_length_table(small)
    np.testing.assert_array_equal(again.g, fresh.g)


def test_simulation_is_reproducible_with_seed():
    cfg = tl.ShowerConfig(n_primaries=2000, seed=3)
    np.testing.assert_array_equal(tl.simulate_track_length(cfg).g, tl.simulate_track_length(cfg).g)
