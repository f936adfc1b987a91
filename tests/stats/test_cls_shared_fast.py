"""The exact CLs with ONE background nuisance shared by the runs (issue 14 cost): the factorised quadrature
(:func:`na64ana.stats.cls._probabilities_shared`) against the direct one and against an independent
brute-force integration written here; limits of the fast path against the direct path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from na64ana.stats import cls as C

# the demo's 3-run model at m = 10 MeV (summary of `na64ana demo`, seed 2019): inputs, not results
DEMO = dict(signal=[0.397, 0.477, 1.429], background=[0.0854, 0.151, 0.360], observed=[0, 0, 0],
            shared_rel=[0.1], signal_rel=[[0.13, 0.02], [0.17, 0.02], [0.17, 0.02]],
            background_rel=[0.166, 0.310, 0.179],
            background_shared_kappa=[(1.0008, 0.2416), (1.285, 0.285), (1.0042, 0.222)])


def _demo(**kw) -> C.CountingModel:
    return C.CountingModel.build(**{**DEMO, **kw})


@pytest.mark.parametrize("mu", [0.0, 0.7, 3.0])
def test_fast_probabilities_equal_the_direct_quadrature(mu):
    model = _demo()
    assert model.has_shared_background and C._one_bin_per_channel(model)
    outcomes = C.enumerate_outcomes(3, 20)
    direct = C._probabilities_direct(model, mu, outcomes)
    fast = C.probabilities(model, mu, outcomes)
    big = direct > 1e-14
    assert np.max(np.abs(fast[big] / direct[big] - 1.0)) < 1e-10
    assert np.max(np.abs(fast - direct)) < 1e-15
    # the large-depth branch (convolution by a loop over the lag) gives the same numbers
    old = C._TOEPLITZ_CELLS
    try:
        C._TOEPLITZ_CELLS = 0
        C._SHARED_CACHE.clear()
        looped = C.probabilities(model, mu, outcomes)
    finally:
        C._TOEPLITZ_CELLS = old
    assert np.max(np.abs(looped[big] / direct[big] - 1.0)) < 1e-10


def _brute_force(s, b, a_x, a_v, a_up, a_dn, mu, outcomes):
    """P(n_1, n_2) with x (signal, shared), v_c (background, per run) and y (background, shared, kinked
    at 0): 120-point Gauss-Legendre on each side of the kink in y (the integrand is smooth on each half),
    60-point Gauss-Hermite in x and v, the Poisson pmf written out."""
    t, wt = np.polynomial.legendre.leggauss(120)
    half = 4.25 * (t + 1.0)  # [0, 8.5]
    y = np.concatenate([-half[::-1], half])
    wy = np.concatenate([wt[::-1], wt]) * 4.25 * stats.norm.pdf(y)
    z, wz = np.polynomial.hermite_e.hermegauss(60)
    wz = wz / math.sqrt(2 * math.pi)
    out = np.zeros(len(outcomes))
    for i, n in enumerate(outcomes):
        prod = np.ones((y.size, z.size))  # (y, x)
        for c in range(2):
            ly = np.where(y > 0, a_up[c] * y, a_dn[c] * y)
            lam = (mu * s[c] * np.exp(a_x * z)[None, :, None]
                   + b[c] * np.exp(ly[:, None, None] + a_v[c] * z[None, None, :]))  # (y, x, v)
            pmf = np.exp(n[c] * np.log(lam) - lam - math.lgamma(n[c] + 1))
            prod *= np.einsum("yxv,v->yx", pmf, wz)
        out[i] = wy @ prod @ wz
    return out


def test_fast_probabilities_match_a_brute_force_integration():
    s, b = [0.8, 1.5], [0.15, 0.4]
    kap = [(1.3, 0.25), (1.05, 0.2)]
    model = C.CountingModel.build(s, b, [0, 0], shared_rel=[0.1], background_rel=[0.2, 0.3],
                                  background_shared_kappa=kap)
    a_up = [math.log(k[0]) for k in kap]
    a_dn = [-math.log(k[1]) for k in kap]
    outcomes = np.array([[0, 0], [1, 0], [0, 1], [2, 1], [1, 3], [4, 0]])
    for mu in (0.0, 1.5):
        fast = C.probabilities(model, mu, np.vstack([outcomes, C.enumerate_outcomes(2, 12)]))[:len(outcomes)]
        ref = _brute_force(s, b, math.log(1.1), [math.log(1.2), math.log(1.3)], a_up, a_dn, mu, outcomes)
        assert np.max(np.abs(fast / ref - 1.0)) < 1e-8, (mu, fast, ref)


@pytest.mark.slow  # the direct quadrature costs ~7 s; make test runs it
def test_fast_limits_equal_the_direct_path(monkeypatch):
    """Limits (observed and band) of the fast path against the direct quadrature (narrower shared prior:
    the direct path costs ~10 s on the demo's)."""
    model = _demo(background_shared_kappa=[(1.0008, 0.6), (1.2, 0.5), (1.0042, 0.55)])
    fast = C.limits(model, 0.9)
    monkeypatch.setattr(C, "_one_bin_per_channel", lambda m: False)
    direct = C.limits(model, 0.9)
    assert fast.mu_obs == pytest.approx(direct.mu_obs, rel=1e-6)
    for q, v in direct.mu_exp.items():
        assert fast.mu_exp[q] == pytest.approx(v, rel=1e-6), q
    assert fast.n_outcomes == direct.n_outcomes


def test_multibin_channels_keep_the_direct_path():
    model = C.CountingModel.build([0.5, 0.5, 1.0], [0.1, 0.1, 0.2], [0, 0, 0], channel=[0, 0, 1],
                                  background_shared_kappa=[(1.2, 0.5), (1.1, 0.6)])
    assert not C._one_bin_per_channel(model)
    out = C.enumerate_outcomes(3, 6)
    assert np.array_equal(C.probabilities(model, 1.0, out), C._probabilities_direct(model, 1.0, out))


def test_one_channel_with_a_shared_nuisance_takes_the_fast_path():
    model = C.CountingModel.build([1.0], [0.3], [0], background_rel=[0.2],
                                  background_shared_kappa=[(1.5, 0.3)])
    assert model.has_shared_background and C._one_bin_per_channel(model)
    out = C.enumerate_outcomes(1, 15)
    direct = C._probabilities_direct(model, 1.2, out)
    assert np.max(np.abs(C.probabilities(model, 1.2, out) / direct - 1.0)) < 1e-10
