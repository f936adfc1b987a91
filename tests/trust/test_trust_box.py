"""Issue #13 item 2: the box belongs to the campaign. A selection that moves, widens, NaNs or bypasses the
campaign's signal box (datasets.json) is refused for blinded data (exit 2, naming the field); --unblind
lifts the refusal; the shipped selections (per-run prl2023 box included) pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from na64ana import blinding, selection
from na64ana.cli import main as cli_main
from na64ana.errors import InputError

SHIPPED = Path(selection.__file__).resolve().parents[2] / "selections" / "invisible.toml"


def _variant(tmp_path: Path, old: str, new: str, extra: str = "", name: str = "evil.toml") -> Path:
    text = SHIPPED.read_text()
    if old:
        assert text.count(old) == 1
        text = text.replace(old, new)
    p = tmp_path / name
    p.write_text(text + extra)
    return p


def _override(value: str, target: str = "box.ecal_max") -> str:
    return f'\n[[override]]\ncampaign = "test"\ntarget = "{target}"\nvalue = {value}\nsource = "attack"\n'


ATTACKS = {
    "override-zero": ("", "", _override("0.0"), "override[box.ecal_max]"),
    "override-nan": ("", "", _override("nan"), "override[box.ecal_max]"),
    "override-wider": ("", "", _override("60.0"), "override[box.ecal_max]"),
    "override-hcal": ("", "", _override("0.001", "box.hcal_max"), "override[box.hcal_max]"),
    "literal-box-cut": ('requires = [{ variable = "ecal_e", max = "box.ecal_max" }]',
                        'requires = [{ variable = "ecal_e", max = 45.0 }]', "", "cuts.signal_box.ecal_e"),
    "literal-hcal-cut": ('requires = [{ variable = "hcal_e", max = "box.hcal_max" }]',
                         'requires = [{ variable = "hcal_e", max = 0.5 }]', "", "cuts.hcal_zero.hcal_e"),
    "literal-box-region": ('signal_box = [{ variable = "ecal_e", max = "box.ecal_max" }',
                           'signal_box = [{ variable = "ecal_e", max = 40.0 }', "", "regions.signal_box"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_moved_box_refused_without_unblind(attack, synth_campaign, tmp_path, capsys):
    old, new, extra, field = ATTACKS[attack]
    sel = _variant(tmp_path, old, new, extra)
    out = tmp_path / "out"
    argv = ["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--selection", str(sel),
            "--no-cache"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert field in err and "box" in err
    assert not (out / "cutflows").exists()
    assert cli_main([*argv, "--unblind"]) == 0  # an opened box hides nothing: allowed, and recorded


def test_shipped_selection_and_per_run_boxes_pass():
    from na64ana import datasets as ds

    dsets = ds.load(Path(selection.__file__).resolve().parents[2] / "datasets.json")
    sel = selection.load("invisible")
    n = 0
    for cname, camp in dsets.campaigns.items():
        if camp.selection != "invisible":
            continue
        for rname, run in camp.runs.items():
            res = selection.resolve(sel, campaign=cname, run=rname, hcal0=run.hcal0)
            blinding.check_campaign_box(res, blinding.SignalBox(camp.box_ecal_max(run)))
            n += 1
    assert n > 3


def test_check_names_the_field():
    sel = selection.resolve("invisible", campaign="prl2019", run="I", hcal0=False)
    with pytest.raises(InputError, match="box.ecal_max"):
        blinding.check_campaign_box(sel, blinding.SignalBox(47.0))
