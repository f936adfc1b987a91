"""Selections as data: validation errors name file and field, values trace to published.toml, stable hash."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from na64ana import blinding, published, selection
from na64ana.errors import InputError


def _resolve(campaign="prl2019", run="III", hcal0=True, name="invisible"):
    return selection.resolve(name, campaign=campaign, run=run, hcal0=hcal0)


def _req(sel, cut, var):
    (c,) = [c for c in sel.cuts if c.name == cut]
    (r,) = [r for r in c.requires if r.variable == var]
    return r


def test_shipped_selections_load_and_trace_to_published():
    for name in ("invisible", "dimuon"):
        selection.load(name)
    sel = _resolve()
    assert [c.name for c in sel.cuts] == ["track", "srd", "shower", "straw", "veto", "pileup", "hcal0",
                                          "hcal_zero", "signal_box"]
    assert _req(sel, "shower", "ecal_chi2").max == published.get("detector.ecal_shower_chi2_max")
    assert _req(sel, "srd", "srd_e_min").min == published.get("detector.srd_window_MeV")[0]
    assert _req(sel, "srd", "srd_e_max").max == published.get("detector.srd_window_MeV")[1]
    assert _req(sel, "veto", "veto_e_max").max == published.get("detector.veto_mip_MeV")
    assert sel.box_ecal_max == published.get("selection.signal_box_ecal_max_GeV")
    assert _req(sel, "signal_box", "ecal_e").max == sel.box_ecal_max
    beam = published.get("beam.energy_GeV")
    for campaign, key in (("prl2019", "prl2019"), ("prd2018", "prd2018")):
        r = _req(_resolve(campaign=campaign), "track", "track_p")
        half = published.get(f"selection.track_momentum_window_{key}_GeV")
        assert (r.min, r.max) == (beam - half, beam + half)
    assert all(c.source for c in sel.cuts)


def test_hcal0_cut_only_where_installed():
    assert "hcal0" in [c.name for c in _resolve(hcal0=True).cuts]
    assert "hcal0" not in [c.name for c in _resolve(hcal0=False).cuts]
    assert _resolve(hcal0=True).hash != _resolve(hcal0=False).hash


def test_hash_is_sha256_of_canonical_json_and_stable():
    a, b = _resolve(), _resolve()
    assert a.hash == b.hash
    blob = json.dumps(a.as_dict(), sort_keys=True, separators=(",", ":"))
    assert a.hash == hashlib.sha256(blob.encode()).hexdigest()
    assert _resolve(campaign="prd2018").hash != a.hash


def _write(tmp_path, text):
    base = selection.selection_path("invisible").read_text()
    p = tmp_path / "sel.toml"
    p.write_text(text(base))
    return p


def test_unknown_variable_names_file_and_field(tmp_path):
    p = _write(tmp_path, lambda s: s.replace('variable = "ecal_chi2"', 'variable = "ecal_chi3"'))
    with pytest.raises(InputError) as e:
        selection.load(p)
    assert e.value.file == str(p) and "cuts.2.requires.0" in e.value.field and "ecal_chi3" in str(e.value)


def test_inverted_window(tmp_path):
    p = _write(tmp_path, lambda s: s.replace("min = 97.0, max = 103.0", "min = 103.0, max = 97.0"))
    with pytest.raises(InputError) as e:
        selection.load(p)
    assert e.value.field == "cuts.0.requires.1" and "inverted" in str(e.value)


@pytest.mark.parametrize("edit,field", [
    (lambda s: s.replace('"@detector.ecal_shower_chi2_max"', '"@detector.nope"'), "cuts.2.requires.0.max"),
    (lambda s: s.replace('target = "cuts.track.track_p"', 'target = "cuts.track.nope"'), "override.0.target"),
    (lambda s: s.replace('name = "srd"', 'name = "track"'), ""),
    (lambda s: s.replace('i_iv = "pileup"', 'i_iv = "nocut"'), ""),
    (lambda s: s + '\n[[cuts]]\nname = "x"\nlabel = "x"\nsource = "s"\n'
                   'requires = [{ variable = "ecal_e" }]\n',
     "cuts.9.requires.0"),
])
def test_bad_selection_files(tmp_path, edit, field):
    p = _write(tmp_path, edit)
    with pytest.raises(InputError) as e:
        selection.load(p)
    assert e.value.file == str(p)
    assert field in (e.value.field or "")


def test_run_override_moves_box_everywhere(tmp_path):
    extra = ('\n[[override]]\ncampaign = "c"\nruns = ["r2"]\ntarget = "box.ecal_max"\n'
             'value = 47.0\nsource = "S004 (47-50 GeV)"\n')
    p = _write(tmp_path, lambda s: s + extra)
    r1 = selection.resolve(p, campaign="c", run="r1", hcal0=False)
    r2 = selection.resolve(p, campaign="c", run="r2", hcal0=False)
    assert r1.box_ecal_max == 50.0 and r2.box_ecal_max == 47.0
    assert _req(r2, "signal_box", "ecal_e").max == 47.0
    regions = dict(r2.regions)
    assert regions["sideband_c"][0].min == 47.0 and regions["signal_box"][0].max == 47.0
    assert blinding.hidden_cuts(r2) == {"signal_box"}
    assert dict(r2.sources)["box.ecal_max"].startswith("S004")


def test_requirement_masks_fail_nonfinite():
    x = np.array([np.nan, np.inf, -np.inf, 0.5, 1.0, 2.0])
    assert selection.Req("v", max=1.0).mask(x).tolist() == [False, False, False, True, False, False]
    assert selection.Req("v", min=1.0).mask(x).tolist() == [False, False, False, False, True, True]
    assert selection.Req("v", equals=2.0).mask(x).tolist() == [False] * 5 + [True]
    assert selection.Req("n", max=7).mask(np.array([6, 7], dtype=np.int16)).tolist() == [True, False]


def test_derived_variables():
    cols = {f"hcal_e{i}": np.array([1.0, 0.5, np.nan]) for i in range(4)}
    cols |= {"veto_e0": np.array([1.0, 3.0, 0.0]), "veto_e1": np.array([2.0, np.nan, 0.0]),
             "veto_e2": np.zeros(3)}
    cols |= {f"srd_e{i}": np.array([i + 1.0] * 3) for i in range(3)}
    cols |= {f"srd_t{i}": np.array([-3.0 * (i == 1), 1.0, 0.0]) for i in range(3)}
    v = selection.compute(cols, ["hcal_e", "veto_e_max", "srd_e_min", "srd_e_max", "srd_t_absmax"])
    assert v["hcal_e"][:2].tolist() == [4.0, 2.0] and np.isnan(v["hcal_e"][2])
    assert v["veto_e_max"][0] == 2.0 and np.isnan(v["veto_e_max"][1])  # NaN propagates -> fails the cut
    assert v["srd_e_min"][0] == 1.0 and v["srd_e_max"][0] == 3.0
    assert v["srd_t_absmax"].tolist() == [3.0, 1.0, 0.0]
    assert selection.branches_for(["hcal_e", "ecal_e"]) == ["ecal_e", *[f"hcal_e{i}" for i in range(4)]]
    for var in selection.VARIABLES.values():
        n, lo, hi = var.bins
        assert n > 0 and lo < hi
