"""The shower per particle (brief 9.2, brief_extensions 1): Rossi A, the derived tables, charges, caching."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest

from na64ana import published
from na64ana.errors import InputError
from na64ana.physics import shower as sh


def _csv(name: str) -> np.ndarray:
    with resources.files("na64ana").joinpath(f"data/{name}").open() as f:
        rows = list(csv.reader(line for line in f if not line.startswith("#")))
    return np.array(rows[1:], dtype=float)


def _binned(table, lo, hi, e0=100.0, particle="charged"):
    """Mean T (X0/GeV) over [lo, hi] GeV."""
    return (table.cumulative_above(lo / e0, particle) - table.cumulative_above(hi / e0, particle)) / (hi - lo)


def test_rossi_approximation_a_between_3_and_20_gev():
    table = sh.shower_table()
    for lo in np.arange(3.0, 20.0, 1.0):
        rossi = float(np.mean(sh.track_length_rossi(np.linspace(lo, lo + 1, 101))))
        assert _binned(table, lo, lo + 1) == pytest.approx(rossi, rel=0.10), lo


def test_photons_follow_rossi_approximation_a():
    """brief_extensions 1: T_gamma(k) ~ 0.572 E0/k^2 for E_c << k << E0 (the reference cascade: 1-6%)."""
    table = sh.shower_table()
    for lo in np.arange(3.0, 20.0, 1.0):
        rossi = float(np.mean(sh.track_length_rossi_photons(np.linspace(lo, lo + 1, 101))))
        assert _binned(table, lo, lo + 1, particle="gamma") == pytest.approx(rossi, rel=0.06), lo


def test_charged_total_agrees_with_reference_table():
    table = sh.shower_table()
    ref = _csv("track_length_pb_100GeV.csv")
    for lo in np.arange(5.0, 95.0, 5.0):
        sel = (ref[:, 0] >= lo) & (ref[:, 1] <= lo + 5)
        assert _binned(table, lo, lo + 5) == pytest.approx(ref[sel, 2].mean(), rel=0.05), lo
    sel = ref[:, 0] >= 50
    assert _binned(table, 50, 100) * 50 == pytest.approx(ref[sel, 2].sum(), rel=0.02)


def test_positrons_agree_with_derived_table_and_check_numbers():
    """T_+ of a 100 GeV e- beam vs the independent 6e5-primary cascade (brief_extensions 1, ~10%)."""
    table = sh.shower_table()
    ref = _csv("tplus_pb_100GeV_derived.csv")  # E_lo, E_hi, T_plus, T_minus
    for lo in np.arange(40.0, 85.0, 5.0):
        sel = (ref[:, 0] >= lo) & (ref[:, 1] <= lo + 5)
        assert _binned(table, lo, lo + 5, particle="e+") == pytest.approx(ref[sel, 2].mean(), rel=0.10), lo
        assert _binned(table, lo, lo + 5, particle="e-") == pytest.approx(ref[sel, 3].mean(), rel=0.05), lo
    energies = published.get("physics.shower.tplus_check_energies_GeV")
    expected = published.get("physics.shower.tplus_check_X0_per_GeV")
    got = table.smoothed(np.array(energies), 100.0, "e+")
    np.testing.assert_allclose(got, expected, rtol=0.10)


def test_all_particles_agree_with_derived_low_energy_table():
    table = sh.shower_table()
    ref = _csv("tpg_pb_100GeV_derived.csv")  # E_lo, E_hi, T_plus, T_minus, T_gamma (4e4 primaries)
    for lo, hi in [(3, 5), (5, 10), (10, 20), (20, 40)]:
        sel = (ref[:, 0] >= lo) & (ref[:, 1] <= hi)
        for col, particle in ((2, "e+"), (3, "e-"), (4, "gamma")):
            got = _binned(table, lo, hi, particle=particle)
            assert got == pytest.approx(ref[sel, col].mean(), rel=0.06), (lo, hi, particle)


def test_charges_add_up_and_are_positive():
    table = sh.shower_table()
    np.testing.assert_allclose(table.g_minus + table.g_plus, table.g, rtol=1e-12)
    assert np.all(table.g_plus >= 0) and np.all(table.g_minus >= 0) and np.all(table.g_gamma >= 0)
    # secondaries only: an e- beam has fewer positrons than electrons at every energy above 5 GeV
    assert _binned(table, 5, 100, particle="e+") < 0.7 * _binned(table, 5, 100, particle="e-")


def test_positron_beam_mirrors_electron_beam():
    """No charge-dependent process in the model: T_+ of an e+ beam = T_- of an e- beam (statistically)."""
    em, ep = sh.track_length_table("e-"), sh.track_length_table("e+")
    for lo, hi in [(3, 10), (10, 30), (30, 60), (60, 95)]:
        same = _binned(em, lo, hi, particle="e-")
        assert _binned(ep, lo, hi, particle="e+") == pytest.approx(same, rel=0.03)
        mirrored = _binned(em, lo, hi, particle="e+")
        assert _binned(ep, lo, hi, particle="e-") == pytest.approx(mirrored, rel=0.08)
    # brief_extensions 1: ~1.7e-2 X0/GeV at 50 GeV and ~1.4e-2 at 90 GeV, primary dominated
    got = ep.smoothed(np.array([50.0, 90.0]), 100.0, "e+")
    np.testing.assert_allclose(got, [1.7e-2, 1.4e-2], rtol=0.10)


def test_spike_is_the_mean_free_path_to_the_first_hard_emission():
    table = sh.shower_table()
    assert table.spike == pytest.approx(1.0 / sh.hard_emission_rate(), rel=0.01)
    # it sits in the beam particle's top bin, and the continuous part excludes it
    du = table.edges[-1] - table.edges[-2]
    assert table.g_minus[-1] * du > table.spike
    assert table.continuous_above(1 - du, "e-") == pytest.approx(table.g_minus[-1] * du - table.spike)
    assert float(table.continuous_above(1 - du, "e+")) == pytest.approx(table.g_plus[-1] * du)


def test_smoothed_equals_bin_average_of_a_smooth_region():
    table = sh.shower_table()
    for e in (10.0, 30.0):
        window = _binned(table, e - 1, e + 1, particle="e-")
        assert float(table.smoothed(e, 100.0, "e-")) == pytest.approx(window, rel=1e-9)


def test_tsai_primary_matches_reference_column():
    ref = _csv("track_length_pb_100GeV.csv")
    centres = 0.5 * (ref[::10, 0] + ref[::10, 1])
    got = sh.track_length_tsai_primary(centres, 100.0, b=4 / 3)
    np.testing.assert_allclose(got, ref[::10, 3], rtol=0.02)


def test_secondaries_matter_at_50_gev():
    table = sh.shower_table()
    mc = _binned(table, 50.0, 55.0)
    primary = float(np.mean(sh.track_length_tsai_primary(np.linspace(50, 55, 11))))
    assert mc > 1.15 * primary
    assert _binned(table, 80.0, 90.0) == pytest.approx(
        float(np.mean(sh.track_length_tsai_primary(np.linspace(80, 90, 11)))), rel=0.06)


def test_scaling_with_beam_energy():
    # no ionisation => T(E; E0) = g(E/E0)/E0
    assert float(sh.track_length(30.0, 60.0)) == pytest.approx(float(sh.track_length(50.0, 100.0)) * 100 / 60)
    assert float(sh.differential_track_length(30.0, 60.0, particle="gamma")) == pytest.approx(
        float(sh.differential_track_length(50.0, 100.0, particle="gamma")) * 100 / 60)


def test_track_length_is_electrons_plus_positrons():
    e = np.linspace(3.0, 99.0, 50)
    np.testing.assert_allclose(sh.track_length(e),
                               sh.differential_track_length(e, particle="e-")
                               + sh.differential_track_length(e, particle="e+"), rtol=1e-12)


def test_small_regeneration_agrees_with_cached_table(tmp_path, monkeypatch):
    """Regenerate a small, independent table (different seed) and compare with the cached default."""
    monkeypatch.setenv("NA64ANA_CACHE_DIR", str(tmp_path))
    small = sh.ShowerConfig(n_primaries=20_000, seed=7)
    fresh = sh.shower_table(small)
    assert (tmp_path / f"shower-{small.key()}.npz").exists()
    default = sh.shower_table()
    for lo, hi in [(3, 5), (5, 10), (10, 20), (20, 35), (35, 50), (50, 70), (70, 99)]:
        assert _binned(fresh, lo, hi) == pytest.approx(_binned(default, lo, hi), rel=0.04), (lo, hi)
    sh.shower_table.cache_clear()
    again = sh.shower_table(small)
    for name in ("g", "g_plus", "g_gamma"):
        np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name))
    assert again.spike == fresh.spike


def test_cache_key_covers_beam_and_version():
    keys = {sh.ShowerConfig().key(), sh.ShowerConfig(beam="e+").key(), sh.ShowerConfig(version=1).key()}
    assert len(keys) == 3


def test_simulation_is_reproducible_with_seed():
    cfg = sh.ShowerConfig(n_primaries=2000, seed=3)
    a, b = sh.simulate_shower(cfg), sh.simulate_shower(cfg)
    np.testing.assert_array_equal(a.g, b.g)
    np.testing.assert_array_equal(a.g_gamma, b.g_gamma)


@pytest.mark.parametrize("kwargs, field", [({"beam": "mu-"}, "beam"), ({"u_min": 0.0}, "shower")])
def test_bad_config(kwargs, field):
    with pytest.raises(InputError) as exc:
        sh.ShowerConfig(**kwargs)
    assert exc.value.field == field


def test_bad_particle():
    with pytest.raises(InputError) as exc:
        sh.shower_table().at(10.0, 100.0, "proton")  # type: ignore[arg-type]
    assert exc.value.field == "particle"
