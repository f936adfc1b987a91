"""The ALP closed excluded region (na64ana.stats.coupling.alp_limits): edges solve N(g) = s_up, combined
over runs and regions; the region closes at high mass; speed; input errors."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from na64ana.errors import InputError
from na64ana.physics import alp
from na64ana.stats import band, coupling

EX = Path(__file__).resolve().parents[2] / "examples" / "summaries" / "alp_2016_2018_published.json"


def _raw() -> dict:
    return json.loads(EX.read_text())


def _n_signal(raw: dict, mass: float, g: float) -> float:
    per = alp.AlpYield(mass).per_region([g])
    return sum(r["eot"] * r["efficiency"] * float(per[r["region"]][0]) for r in raw["runs"])


@pytest.fixture(scope="module")
def record():
    return coupling.limits_from_summary(EX, masses=[0.001, 0.01, 0.03, 0.05, 0.08])


def test_edges_solve_n_equals_s_up(record):
    raw = _raw()
    for p in record["points"][:4]:
        m = p["mass_GeV"]
        for key in ("coupling_obs", "coupling_exp", "coupling_exp_m1", "coupling_exp_p2"):
            lo, hi = p[key], p[key + "_upper"]
            assert lo is not None and hi is not None and lo < hi, (m, key)
            s_lo, s_hi = p["s_up"][key]
            assert _n_signal(raw, m, lo) == pytest.approx(s_lo, rel=1e-6)
            assert _n_signal(raw, m, hi) == pytest.approx(s_hi, rel=1e-6)
            assert _n_signal(raw, m, math.sqrt(lo * hi)) > max(s_lo, s_hi)  # inside: excluded
            assert _n_signal(raw, m, 0.9 * lo) < s_lo and _n_signal(raw, m, 1.1 * hi) < s_hi
        assert p["coupling"] == "g_agg" and p["coupling_unit"] == "GeV^-1"


def test_lower_edge_at_small_mass_is_the_long_lifetime_yield(record):
    """m = 1 MeV: c tau is huge, every ALP with E > 50 GeV leaves the HCAL (P_beyond = 1) and the HCAL
    region gets ~nothing, so N = g^2 EOT eff Y_beyond: g_lo = sqrt(s_up / (EOT eff Y))."""
    raw = _raw()
    p = record["points"][0]
    beyond = [r for r in raw["runs"] if r["region"] == "beyond"][0]
    y = alp.AlpYield(0.001).produced("beyond")
    s = p["s_up"]["coupling_exp"][0]
    assert p["coupling_exp"] == pytest.approx(math.sqrt(s / (beyond["eot"] * beyond["efficiency"] * y)),
                                              rel=1e-4)
    # and s_up is the exact CLs of the two channels with the share all in 'beyond'
    ref = band.s_up(coupling._alp_summary({k: v for k, v in raw.items() if k != "model"}, None), [1e-3, 1.0])
    assert s == pytest.approx(ref.mu_exp["median"], rel=0.02)


def test_region_closes_at_high_mass(record):
    top = record["points"][-1]
    assert top["mass_GeV"] == 0.08
    assert top["coupling_exp"] is None and top["coupling_exp_upper"] is None and "no exclusion" in top["note"]
    # the excluded band narrows with mass: the upper edge falls like ~1/m^2
    ups = [p["coupling_exp_upper"] for p in record["points"][:4]]
    assert all(a > b for a, b in zip(ups, ups[1:], strict=False))


def test_blinded_alp_summary_reports_expected_edges_only():
    raw = copy.deepcopy(_raw())
    for r in raw["runs"]:
        r["observed"] = None
    p = coupling.alp_limits(raw, masses=[0.01])["points"][0]
    assert p["coupling_obs"] is None and p["coupling_obs_upper"] is None and p["blinded"]
    assert p["coupling_exp"] < p["coupling_exp_upper"]


@pytest.mark.slow  # a speed budget of the 60-mass default scan (the record fixture covers the scan)
def test_closed_region_scan_of_60_masses_is_fast():
    coupling.alp_limits(_raw(), masses=[0.01])  # warm the shower table
    t0 = time.perf_counter()
    rec = coupling.limits_from_summary(EX)
    dt = time.perf_counter() - t0
    assert len(rec["points"]) == 60 and rec["n_failed"] == 0
    assert dt < 60.0, f"60-mass closed-region scan took {dt:.1f} s"


@pytest.mark.parametrize("path, value, field", [
    ("runs.0.region", "ecal", "runs.0.region"),
    ("runs.1.efficiency", 1.5, "runs.1.efficiency"),
    ("masses_GeV", [0.01, 55.0], "masses_GeV.1"),
    ("model.name", "axion", "model.name"),
    ("model.g_agg", 1e-4, "model.g_agg"),
])
def test_alp_summary_errors_name_the_field(path, value, field):
    raw = _raw()
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    node[keys[-1]] = value
    with pytest.raises(InputError) as exc:
        coupling.limits_from_summary(raw)
    assert exc.value.field == field


def test_points_carry_the_requested_keys(record):
    p = record["points"][1]
    for key in ("coupling_obs", "coupling_obs_upper", "coupling_exp", "coupling_exp_upper", "coupling_exp_m1",
                "coupling_exp_p1", "coupling_exp_m2", "coupling_exp_p2", "coupling_exp_m2_upper"):
        assert key in p
    assert record["coupling"] == "g_agg" and not record["blinded"]
    assert np.isfinite(p["n_signal_max"]) and p["n_signal_max"] > 2.3
