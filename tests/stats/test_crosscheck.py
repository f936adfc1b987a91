"""The cross-check that can fail (issue #14, item 6) and the simulator-tuning table (item 8)."""

import json

import pytest

from na64ana.stats.cls import ExactCLs
from na64ana.stats.crosscheck import (
    CrosscheckResult,
    TuningRow,
    crosscheck_limits_dir,
    pick_masses,
    simulator_tuning_rows,
    toys_crosscheck_point,
)
from na64ana.stats.model import counting_model_from_spec, workspace_spec

pytest.importorskip("pyhf")


def _spec(signal, background, eff=0.15, bkg=0.4):
    return workspace_spec([{"name": "run_I", "signal": [signal], "background": [background], "observed": [0],
                            "signal_sys": {"eff_run_I": eff, "eot_run_I": 0.02},
                            "background_sys": {"bkg_run_I": bkg} if background > 0 else {}}],
                          shared={"xsec": 0.1})


@pytest.fixture
def limits_dir(tmp_path):
    """A minimal limits folder as the limits stage writes it: limits.json + workspaces/ (one run each)."""
    (tmp_path / "workspaces").mkdir()
    points = []
    for i, (m, s, b) in enumerate([(0.001, 2.3, 0.1), (0.01, 2.3, 0.5), (0.1, 2.3, 0.0), (1.0, 2.3, 0.2)]):
        name = f"workspaces/workspace_m{m * 1e3:.4g}MeV.json"
        (tmp_path / name).write_text(json.dumps(_spec(s, b, bkg=0.3 + 0.2 * i)))
        points.append({"mass_GeV": m, "workspace": name})
    points.append({"mass_GeV": 2.0, "error": "kinematically closed"})
    (tmp_path / "limits.json").write_text(json.dumps({"cl": 0.9, "points": points}))
    return tmp_path


@pytest.mark.slow  # pyhf toys (3 masses x 120 toys)
def test_toy_crosscheck_passes_on_the_exact_limits(limits_dir):
    res = crosscheck_limits_dir(limits_dir, n_masses=3, ntoys=120, seed=5)
    assert isinstance(res, CrosscheckResult)
    assert [p.mass_GeV for p in res.points] == [0.001, 0.01, 1.0]  # spread in log m, error point skipped
    for p in res.points:
        assert p.cls_exact == pytest.approx(0.10, abs=1e-6)  # the exact CLs at its own limit
        assert -p.allowed_below <= p.deviation <= p.allowed, p
    assert res.passed and "PASSED" in res.line()
    # round trip of what is written (the wall time is kept in memory only)
    assert CrosscheckResult.model_validate_json(res.model_dump_json()).model_dump() == res.model_dump()
    assert "seconds" not in res.model_dump_json()


@pytest.mark.slow  # pyhf toys (300)
def test_toy_crosscheck_fails_on_a_wrong_limit():
    """0.4 x the exact limit (CLs there ~ 0.4) must fail: the check is not a tautology."""
    spec = _spec(2.3, 0.3)
    mu = ExactCLs(counting_model_from_spec(spec)).limits(0.9, expected=False).mu_obs
    bad = toys_crosscheck_point(spec, ntoys=300, seed=5, mu=0.4 * mu)
    assert not bad.passed and bad.cls_toys > 0.2 and bad.allowed < 0.15


def test_pick_masses():
    assert pick_masses([0.001, 0.002, 0.01, 0.1, 1.0], 3) == [0, 2, 4]
    assert pick_masses([0.1, 0.2], 3) == [0, 1]
    assert pick_masses([], 3) == []


def test_simulator_tuning_rows_are_typed_and_sourced():
    rows = simulator_tuning_rows()
    assert rows and all(isinstance(r, TuningRow) for r in rows)
    assert all(r.source and r.source != "?" for r in rows)
    keys = {r.key: r for r in rows}
    assert keys["published.toml:dimuon.rate_per_eot"].role == "target"
    assert keys["published.toml:background.prl2019.total"].role == "normalisation"
    assert keys["published.toml:trigger.ps_threshold_loss"].role == "comparison"
    assert any(k.startswith("datasets.json:campaigns.prl2019.runs.III.efficiency") for k in keys)


def test_minuit_failure_is_retried_with_scipy_and_recorded(monkeypatch):
    """MINUIT's 'invalid minimum' (the code1 kink of the shared asymmetric background nuisance) must not
    lose the cross-check: the toys are rerun with scipy (same seed) and the point says so."""
    import pyhf

    from na64ana.stats import crosscheck as cc

    calls = []
    real = cc._toy_hypotest

    def flaky(spec, mu, ntoys, seed, optimizer):
        calls.append((type(optimizer).__name__, seed))
        if "minuit" in type(optimizer).__name__:
            raise pyhf.exceptions.FailedMinimization(type("R", (), {"message": "Optimization failed. "
                                                                     "Invalid minimum."})())
        return real(spec, mu, ntoys, seed, optimizer)

    monkeypatch.setattr(cc, "_toy_hypotest", flaky)
    spec = _spec(2.3, 0.3)
    p = toys_crosscheck_point(spec, ntoys=20, seed=7, mu=1.0, cls_exact=0.1)
    assert [c[0] for c in calls] == ["minuit_optimizer", "scipy_optimizer"] and calls[0][1] == calls[1][1]
    assert p.optimizer == "scipy" and "Invalid minimum" in (p.minuit_error or "")
    assert json.loads(p.model_dump_json())["optimizer"] == "scipy"
    ok = toys_crosscheck_point(spec, ntoys=20, seed=7, mu=1.0, cls_exact=0.1)  # seeded: reproducible
    assert ok.cls_toys == p.cls_toys
    monkeypatch.setattr(cc, "_toy_hypotest", real)
    assert toys_crosscheck_point(spec, ntoys=20, seed=7, mu=1.0, cls_exact=0.1).optimizer == "minuit"


def test_tuning_rows_quote_the_simulator_values():
    import tomllib
    from importlib import resources

    sim = tomllib.loads(resources.files("na64ana").joinpath("data/simulation.toml").read_text())
    rows = {r.key: r for r in simulator_tuning_rows()}
    lim = sim["selection_model"]["limit_fraction"]["value"]
    for k in ("target_interactions", "punch_through"):
        used = rows[f"published.toml:background.prl2019.{k}"].used_as
        assert f"limit_fraction = {lim:g}" in used and "1/2" not in used
    used = rows["published.toml:selection.events_passing_i_to_iv_prl2019"].used_as
    assert f"upstream.hcal_fraction = {sim['upstream']['hcal_fraction']['value']:g}" in used
