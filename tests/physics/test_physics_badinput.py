"""Bad input to the signal physics: a clear InputError naming the argument, never a NaN or a silent clamp."""

from __future__ import annotations

import numpy as np
import pytest

from na64ana.errors import InputError
from na64ana.physics import yields as y
from na64ana.physics.production import brem as xs

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("kwargs, field", [
    ({"mass_GeV": 5.0}, "mass"),                     # above the k-factor table
    ({"mass_GeV": 0.0005}, "mass"),                  # below the k-factor table
    ({"mass_GeV": 150.0, "xsec": "ww"}, "mass"),     # >= beam energy
    ({"mass_GeV": 60.0, "xsec": "ww"}, "mass"),      # cannot give E_A' > 50 below the mass
    ({"mass_GeV": -0.01}, "mass"),
    ({"mass_GeV": float("nan")}, "mass"),
    ({"eps": -1e-4}, "eps"),
    ({"eps": float("inf")}, "eps"),
    ({"target": "tungsten"}, "target"),
    ({"xsec": "iww"}, "xsec"),
    ({"e0": -100.0}, "e0"),
    ({"emiss_min": 120.0}, "emiss_min"),
    ({"emiss_min": 0.5}, "emiss_min"),               # below the track-length table
    ({"beam_spread": -0.01}, "beam_spread"),
])
def test_signal_yield_bad_input(kwargs, field):
    args = {"mass_GeV": 0.02, "eps": 1e-4, **kwargs}
    with pytest.raises(InputError) as exc:
        y.signal_yield_per_eot(args.pop("mass_GeV"), args.pop("eps"), **args)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_grid_rejects_one_bad_mass():
    with pytest.raises(InputError) as exc:
        y.yield_per_eot_grid([0.01, 0.1, 4.0], 1e-4)
    assert exc.value.field == "mass"


@pytest.mark.parametrize("call, field", [
    (lambda: y.aprime_energy_spectrum(0.02, bins=0), "bins"),
    (lambda: y.aprime_energy_spectrum(0.02, bins=[60.0, 50.0]), "bins"),
    (lambda: y.aprime_energy_spectrum(0.02, bins=[0.1, 50.0]), "bins"),
    (lambda: y.aprime_energy_spectrum(0.02, xsec="x"), "xsec"),
    (lambda: y.aprime_energy_spectrum(7.0), "mass"),
    (lambda: y.sample_aprime_energy(0.02, -1, RNG), "n"),
    (lambda: y.sample_aprime_energy(0.02, 10, RNG, ea_min=200.0), "ea_min"),
    (lambda: y.sample_aprime_energy(3.5, 10, RNG), "mass"),
    (lambda: xs.sigma_total(0.02, 100.0, 1e-4, xsec="bogus"), "xsec"),
    (lambda: xs.check_mass(0.02, 0.0), "e0"),
])
def test_spectrum_sampler_bad_input(call, field):
    with pytest.raises(InputError) as exc:
        call()
    assert exc.value.field == field


def test_ww_allows_masses_beyond_the_k_table_and_stays_finite():
    val = y.signal_yield_per_eot(5.0, 1e-4, xsec="ww")
    assert np.isfinite(val) and val > 0


def test_low_emitter_energies_warn_about_k_clamp():
    with pytest.warns(UserWarning, match="clamped"):
        y.signal_yield_per_eot(0.02, 1e-4, emiss_min=10.0)
