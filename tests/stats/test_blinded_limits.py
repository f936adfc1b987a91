"""A blinded summary (observed = null) gives expected limits only, identical to the open ones."""

import json

import numpy as np
import pytest

from na64ana import summary as summ
from na64ana.errors import InputError
from na64ana.stats import interpret, limits


def _summary(observed):
    return {
        "analysis": "test", "beam_energy_GeV": 100, "emiss_min_GeV": 50, "cross_section": "etl", "cl": 0.9,
        "correlated": {"xsec": 0.1},
        "runs": [{"name": n, "eot": eot, "eot_unc": 0.02, "efficiency": 0.6, "efficiency_unc": 0.1,
                  "background": 0.1, "background_unc": 0.03, "observed": o}
                 for n, eot, o in (("I", 1e10, observed[0]), ("II", 2e10, observed[1]))],
        "masses_GeV": [0.01, 0.1],
    }


def test_blinded_points_have_expected_but_no_observed():
    yields = np.array([1e-10, 1e-12])
    open_ = limits.scan(summ.validate(_summary([0, 0])), yields=yields)
    blind = limits.scan(summ.validate(_summary([None, None])), yields=yields)
    assert blind["blinded"] is True and open_["blinded"] is False
    for po, pb in zip(open_["points"], blind["points"], strict=True):
        assert pb["eps_obs"] is None and pb["blinded"] is True and "error" not in pb
        for key in limits.BANDS:
            assert pb[key] == pytest.approx(po[key], rel=1e-9)
    interpret.add_interpretation(blind)
    y = blind["y_limits"]["alpha_d=0.5"]
    assert all(v is None for v in y["y_obs"]) and all(v > 0 for v in y["y_exp"])
    assert all(v is None for v in blind["alpha_d_limits"]["majorana"]["alpha_d_min_obs"])
    assert "null" not in json.dumps([p.get("eps_exp") for p in blind["points"]])


def test_mixed_blinding_is_refused():
    with pytest.raises(InputError, match="observed"):
        summ.validate(_summary([None, 0]))
