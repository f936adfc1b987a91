"""``na64ana background`` end to end on a seeded simulated prd2018 campaign (full EOT, ~1e6 events).

The simulator draws the upstream E_ECAL spectrum with the published per-run slopes (datasets.json
``sideband_slope_per_GeV``) and normalises it to the published per-run box content, so the side-band fit
has an independent truth to be compared with.
"""

from __future__ import annotations

import json
import math

import pytest

from na64ana import datasets, published
from na64ana.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def bkg(tmp_path_factory):
    root = tmp_path_factory.mktemp("bkg_e2e")
    sim, run, out = root / "sim", root / "run", root / "bkg"
    assert main(["simulate", "--datasets", "datasets.json", "--campaign", "prd2018", "--out", str(sim),
                 "--seed", "11"]) == 0
    ds = sim / "datasets.json"
    assert main(["run", "--datasets", str(ds), "--campaign", "prd2018", "--out", str(run)]) == 0
    assert main(["background", "--run-dir", str(run), "--datasets", str(ds), "--out", str(out),
                 "--thresholds", "0.5", "1.0", "2.0"]) == 0
    return json.loads((out / "background.json").read_text()), datasets.load(ds).campaign("prd2018"), out


def test_table_layout_and_blinding(bkg):
    table, _, out = bkg
    assert table["campaign"] == "prd2018" and table["blinded"] is True
    assert [r["run"] for r in table["runs"]] == ["I", "II", "III"]
    assert (out / "provenance.json").exists()
    for r in table["runs"]:
        assert r["box_ecal_max_GeV"] == published.get("selection.signal_box_ecal_max_GeV")
        assert r["fit"]["fit_range"][0] == r["box_ecal_max_GeV"]
        assert r["fit"]["converged"]
        assert {"value", "stat", "syst", "unc"} <= set(r["upstream"])


def test_fitted_slopes_match_the_simulated_truth(bkg):
    table, camp, _ = bkg
    for r in table["runs"]:
        truth = camp.runs[r["run"]].sideband_slope_per_GeV
        assert abs(r["fit"]["p2"] - truth) < 3 * r["fit"]["p2_unc"] + 0.01, (r["run"], r["fit"]["p2"], truth)


def test_upstream_in_the_box_reproduces_the_published_per_run_values(bkg):
    """The simulator is normalised to S001's per-run upstream content (0.043, 0.041, 0.010)."""
    table, _, _ = bkg
    pub = published.get("background.prd2018.upstream_per_run")
    for r, ref in zip(table["runs"], pub, strict=True):
        up = r["upstream"]
        assert 0.5 < up["value"] / ref < 2.0, (r["run"], up["value"], ref)
        assert abs(up["value"] - ref) < 3 * up["unc"]
    total = sum(r["upstream"]["value"] for r in table["runs"])
    assert abs(total - published.get("background.prd2018.upstream")) < 3 * 0.03  # S001 0.09 +- 0.03


def test_threshold_variation_at_the_nominal_threshold_is_the_nominal_fit(bkg):
    """Variations come from the same events as side band C (plane_final): 1 GeV reproduces the nominal."""
    table, _, _ = bkg
    for r in table["runs"]:
        alt = r["upstream"]["alternatives"]["hcal_threshold_1GeV"]
        assert math.isclose(alt["value"], r["upstream"]["value"], rel_tol=1e-6)


def test_published_components_scale_with_run_eot_over_the_published_exposure(bkg):
    table, camp, _ = bkg
    exposure = published.get("exposure.prd2018_eot")
    for r in table["runs"]:
        d = r["components"]["decay_in_flight"]
        expect = published.get("background.prd2018.decay_in_flight") * camp.runs[r["run"]].eot / exposure
        assert math.isclose(d["value"], expect, rel_tol=1e-9)
        assert r["total"]["value"] > r["upstream"]["value"]


def test_validation_region_is_reported(bkg):
    table, _, _ = bkg
    for r in table["runs"]:
        v = r["validation"]
        assert v["chi2_ndf"] is not None and 0.3 < v["chi2_ndf"] < 3.0
        assert 0.0 <= v["p_value"] <= 1.0
