"""Issue 14 in the background stage: upper-limit components, the validation verdict, the asymmetric shape
uncertainty (see docs/inference.md section 5)."""

import dataclasses
import math

import numpy as np
import pytest

from na64ana import background as bg
from na64ana.simulation import rates
from na64ana.simulation.config import tune

EDGES = np.arange(0.0, 101.0, 1.0)


def _expected(p2, n_box, edges=EDGES, hi=80.0):
    p1 = math.log(n_box * p2 / (math.exp(50 * p2) - 1))
    mu = np.exp(p1) * (np.exp(p2 * edges[1:]) - np.exp(p2 * edges[:-1])) / p2
    mu[edges[1:] > hi] = 0.0
    return mu


def test_published_total_with_upper_limits_prl2019():
    """S003 Table I: 0.024 + 0.02 + 0.43 + 0.044 (<) + 0.01 (<) = 0.528, sqrt(0.007^2 + 0.01^2 + 0.16^2 +
    0.044^2 + 0.01^2) = 0.167 ('0.53 +- 0.17'): the limits count as value = limit +- 100%."""
    est = bg.estimate_upstream(_expected(0.3, 0.43), EDGES)
    est = dataclasses.replace(est, value=0.43, stat=0.16, syst=0.0)
    comps = bg.published_components("prl2019", 1.0)
    assert {n for n, c in comps.items() if c.limit} == {"target_interactions", "punch_through"}
    assert all("100% uncertainty" in c.source for c in comps.values() if c.limit)
    row = bg.run_table("all", est, components=comps)
    assert row.total.value == pytest.approx(0.528, abs=1e-12)
    quad = math.sqrt(0.007**2 + 0.01**2 + 0.16**2 + 0.044**2 + 0.01**2)
    assert row.total.unc == pytest.approx(quad, rel=1e-9)
    assert round(row.total.unc, 2) == 0.17


def test_simulator_generates_limits_at_the_limit():
    """Same convention in the simulator calibration: a limit component is generated at the limit."""
    assert tune("selection_model.limit_fraction") == 1.0
    assert rates._pub_value({"value": 0.044, "limit": True}) == pytest.approx(0.044)
    assert rates._pub_value({"value": 0.024, "unc": 0.007}) == pytest.approx(0.024)
