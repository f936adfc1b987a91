"""Light thermal DM translation (brief Sec. 10)."""

from __future__ import annotations

import numpy as np
import pytest

from na64ana import published
from na64ana.errors import InputError
from na64ana.physics import darkmatter as dm


def test_y_definition_and_round_trip():
    eps, m_chi, alpha_d = 3e-5, 0.02, 0.5
    m_aprime = 3 * m_chi
    expected = eps**2 * alpha_d * (m_chi / m_aprime) ** 4
    assert float(dm.y_from_eps(eps, m_chi, alpha_d)) == pytest.approx(expected)
    assert float(dm.eps_from_y(dm.y_from_eps(eps, m_chi, alpha_d, ratio=2.5), m_chi, alpha_d, ratio=2.5)) == \
        pytest.approx(eps, rel=1e-12)
    assert dm.default_ratio() == 3.0


def test_alpha_d_limit_scaling():
    base = float(dm.alpha_d_lower_limit(1e-4, 0.01, 0.25))
    assert float(dm.alpha_d_lower_limit(2e-4, 0.01, 0.25)) == pytest.approx(base / 4)
    assert float(dm.alpha_d_lower_limit(1e-4, 0.02, 0.25)) == pytest.approx(base * 4)  # m^4/m^2
    assert float(dm.alpha_d_lower_limit(1e-4, 0.01, "majorana")) == pytest.approx(base * 12)


@pytest.mark.parametrize("kind", ["pseudodirac", "majorana"])
def test_relic_relation_is_consistent_with_relic_curves(kind):
    """At alpha_D = alpha_D,min the point (eps, alpha_D) lies on y = 2e-8 f m_chi^2 (brief 10), and that
    approximate line is within 10% of the ESPP relic curve at m_chi = 10 MeV (f = 0.25, 3 vs fitted 0.245,
    2.75 in brief 10)."""
    m_chi, eps = 0.01, 1e-4
    a = dm.alpha_d_lower_limit(eps, m_chi, kind)
    y = float(dm.y_from_eps(eps, m_chi, float(a)))
    assert y == pytest.approx(2e-8 * dm.relic_f(kind) * m_chi**2, rel=1e-9)
    assert y == pytest.approx(float(dm.relic_y_at(kind, m_chi)), rel=0.10)


@pytest.mark.parametrize("kind", dm.RELIC_KINDS)
def test_relic_target_curves_load(kind):
    m, y = dm.relic_target(kind)
    assert m.size > 100 and np.all(np.diff(m) >= 0) and np.all(y > 0)
    assert 0.9e-3 < m[0] < 1.1e-3 and m[-1] > 1.5


def test_relic_ordering():
    # scalar needs the largest y, pseudo-Dirac the smallest (brief 10 spot values)
    ys = [float(dm.relic_y_at(k, 0.03)) for k in ("pseudodirac", "majorana", "scalar")]
    assert ys == sorted(ys)


def test_f_values_are_published():
    assert dm.relic_f("pseudodirac") == published.get("darkmatter.relic_f_pseudodirac")
    assert dm.relic_f("majorana") == published.get("darkmatter.relic_f_majorana")


@pytest.mark.parametrize("call, field", [
    (lambda: dm.y_from_eps(-1e-4, 0.01, 0.5), "eps"),
    (lambda: dm.y_from_eps(1e-4, 0.0, 0.5), "m_chi"),
    (lambda: dm.y_from_eps(1e-4, 0.01, -0.1), "alpha_d"),
    (lambda: dm.eps_from_y(float("nan"), 0.01, 0.5), "y"),
    (lambda: dm.alpha_d_lower_limit(0.0, 0.01, 0.25), "eps90"),
    (lambda: dm.alpha_d_lower_limit(1e-4, 0.01, "dirac"), "f"),
    (lambda: dm.relic_target("fermion"), "kind"),
    (lambda: dm.relic_y_at("scalar", 10.0), "m_chi"),
])
def test_bad_input(call, field):
    with pytest.raises(InputError) as exc:
        call()
    assert exc.value.field == field
