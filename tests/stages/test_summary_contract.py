"""The grown yields-summary contract (issues 14-17): defaults keep old summaries loading, every bad input
is one error naming the field, the schema in docs/interfaces.md is not stale."""

import copy
from pathlib import Path

import pytest

from na64ana import records, summary
from na64ana.errors import InputError
from na64ana.stats import limits

BASE = {"analysis": "t", "beam_energy_GeV": 100, "emiss_min_GeV": 50, "cross_section": "etl", "cl": 0.9,
        "correlated": {"xsec": 0.10}, "masses_GeV": [0.01, 0.237],
        "runs": [{"name": "I", "eot": 1e10, "eot_unc": 0.02, "efficiency": 0.6, "efficiency_unc": 0.1,
                  "background": 0.1, "background_unc": 0.03, "observed": 0}]}


def _with(**kw):
    d = copy.deepcopy(BASE)
    for k, v in kw.items():
        if k.startswith("run_"):
            d["runs"][0][k[4:]] = v
        else:
            d[k] = v
    return d


def test_defaults():
    s = summary.validate(BASE)
    assert (s.beam_particle, s.mechanisms, s.ratio, s.model_name) == ("e-", ["brem"], 3.0, "dark_photon")
    assert s.run_emiss_min(s.runs[0]) == 50


@pytest.mark.parametrize("kw,field", [
    ({"beam_particle": "e+"}, "production"),
    ({"run_emiss_min_GeV": 120.0}, "emiss_min_GeV"),
    ({"alpha_D": 0.0}, "alpha_D"),
    ({"alpha_D": -1.0}, "alpha_D"),
    ({"mass_ratio": 2.0}, "mass_ratio"),
    ({"model": {"name": "nope"}}, "model.name"),
    ({"model": {"name": "b_l", "bogus": 1}}, "model"),
    ({"model": {"name": "vector", "c_e": 1.0}}, "model"),
    ({"production": ["brem", "pair"]}, "production"),
    ({"run_background_unc_up": 0.1}, "background_unc"),
])
def test_bad_inputs_name_the_field(kw, field):
    with pytest.raises(InputError) as exc:
        summary.validate(_with(**kw), file="s.json")
    assert field in str(exc.value) and "s.json" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_visible_summary_without_setup():
    from na64ana.stats import band

    d = {"analysis": "v", "signature": "visible", "runs": [{"name": "a", "eot": 1e10, "efficiency": 0.8,
                                                            "background": 0.0, "observed": 0}],
         "masses_GeV": [0.0167]}
    with pytest.raises(InputError, match="setup"):
        band.validate_summary(d, file="v.json")


def test_wide_and_asymmetric_background_uncertainties_are_accepted():
    wide = summary.validate(_with(run_background_unc=0.3))
    assert wide.runs[0].background_kappa() == pytest.approx(3.0)
    d = _with(run_background_unc_up=0.2, run_background_unc_down=0.05)
    del d["runs"][0]["background_unc"]
    s = summary.validate(d)
    k = s.runs[0].background_kappa()
    # 0.1 +0.2 -0.05: theta = +-1 gives exactly 0.3 and 0.05 (code1: hi^theta, lo^-theta; issue 14)
    assert k == {"hi": pytest.approx(3.0), "lo": pytest.approx(0.5)}
    spec = limits.mass_spec(s, 0.01, 2.3)
    (mod,) = [m for m in spec["channels"][0]["samples"][1]["modifiers"] if m["type"] == "normsys"]
    assert mod["data"] == {"hi": pytest.approx(3.0), "lo": pytest.approx(0.5)}


def test_per_run_window_changes_the_annihilation_yield():
    s = summary.validate(_with(production=["brem", "annihilation"], run_emiss_min_GeV=60.0))
    y = limits.run_yields(s, [0.237])  # E_R = 55 GeV < 60: the resonance is outside this run's window
    assert y["annihilation"][0, 0] == 0 and y["brem"][0, 0] > 0
    s2 = summary.validate(_with(production=["brem", "annihilation"]))
    assert limits.run_yields(s2, [0.237])["annihilation"][0, 0] > 0


def test_schema_doc_not_stale():
    text = (Path(__file__).resolve().parents[2] / "docs" / "interfaces.md").read_text()
    assert records.docs_block(text) == records.schemas_markdown()
