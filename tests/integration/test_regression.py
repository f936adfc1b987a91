"""CI regression: the seeded simulated sample reproduces the stored cut flows (see tests/regression.py)."""

from __future__ import annotations

import copy

import pytest
import regression


def test_cutflows_match_reference(tmp_path):
    if not regression.REFERENCE.exists():
        pytest.fail(f"{regression.REFERENCE} missing: run `python tests/regression.py --write`")
    got = regression.compute(tmp_path)
    diffs = regression.compare(regression.load_reference(), got)
    assert not diffs, "cut flows differ from the reference (intended? make regen-refs):\n" + "\n".join(diffs)
    # the sample exercises what it should: several runs, HCAL0 and non-HCAL0 runs, a weighted MC sample
    cuts = {k: [r["cut"] for r in v["rows"]] for k, v in got["keys"].items()}
    assert "hcal0" not in cuts["I"] and "hcal0" in cuts["III"]
    assert got["keys"]["III-mc_weighted"]["kind"] == "mc"
    assert all(v["rows"][0]["events"] > 1000 for v in got["keys"].values())


def test_compare_reports_readable_diffs():
    ref = {"keys": {"I": {"selection_hash": "a" * 64, "kind": "data", "regions": {"sideband_c": 5},
                          "regions_weighted": None,
                          "rows": [{"cut": "all", "events": 10, "weighted": 10.0},
                                   {"cut": "track", "events": 7, "weighted": 3.5}]}}}
    assert regression.compare(ref, copy.deepcopy(ref)) == []
    got = copy.deepcopy(ref)
    got["keys"]["I"]["rows"][1]["weighted"] = 3.5 * (1 + 1e-12)  # summation-order noise: tolerated
    assert regression.compare(ref, got) == []
    got["keys"]["I"]["rows"][1]["events"] = 8
    got["keys"]["I"]["rows"][1]["weighted"] = 3.6
    got["keys"]["I"]["regions"]["sideband_c"] = 6
    got["keys"]["I"]["selection_hash"] = "b" * 64
    got["keys"]["II"] = got["keys"]["I"]
    diffs = regression.compare(ref, got)
    assert "I: row 'track': events 7 -> 8" in diffs
    assert "I: row 'track': weighted 3.5 -> 3.6" in diffs
    assert "I: region 'sideband_c': 5 -> 6" in diffs
    assert any("selection changed" in d for d in diffs) and "II: unexpected dataset" in diffs
