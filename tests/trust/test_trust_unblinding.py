"""Issue #13 item 5: unblinding is permanent and visible. Every unblinded run of a folder appends to
OUT/unblinding.log (hash-chained); a blinded re-run keeps it and its chunk outputs of the opened box are
purged; deleting or editing the log is found by verify and refused by the next run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from na64ana.bookkeeping import unblinding
from na64ana.cli import main as cli_main

# make test-fast leaves this module to make test:
# blinded and unblinded runs of the processor per test (~4 s CPU for the module)
pytestmark = pytest.mark.slow


def _run(dsets: Path, out: Path, *extra: str) -> int:
    return cli_main(["run", "--datasets", str(dsets), "--out", str(out), "--chunksize", "100", *extra])


def test_unblinding_is_recorded_and_survives_a_blinded_rerun(synth_campaign, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(synth_campaign.datasets, out, "--unblind") == 0
    entries, problem = unblinding.read(out)
    assert problem is None and len(entries) == 1 and entries[0]["keys"] == ["A", "B"]
    assert _run(synth_campaign.datasets, out) == 0  # blinded re-run into the same folder
    entries, problem = unblinding.check(out)
    assert problem is None and len(entries) == 1
    assert not (out / ".cache" / "unblinded").exists()
    capsys.readouterr()
    assert cli_main(["verify", str(out)]) == 0
    assert "opened 1 time" in capsys.readouterr().out
    assert _run(synth_campaign.datasets, out, "--unblind") == 0
    assert len(unblinding.read(out)[0]) == 2


def test_erasing_the_log_is_not_silent(synth_campaign, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(synth_campaign.datasets, out, "--unblind") == 0
    assert _run(synth_campaign.datasets, out) == 0
    (out / unblinding.LOG).unlink()
    assert cli_main(["verify", str(out)]) == 3
    assert _run(synth_campaign.datasets, out) == 4  # refused: the opened box stays on record
    assert "unblinding log" in capsys.readouterr().err


def test_editing_the_log_breaks_the_chain(synth_campaign, tmp_path):
    out = tmp_path / "out"
    assert _run(synth_campaign.datasets, out, "--unblind") == 0
    e = json.loads((out / unblinding.LOG).read_text())
    e["keys"] = []
    (out / unblinding.LOG).write_text(json.dumps(e) + "\n")
    assert unblinding.check(out)[1] is not None
    assert cli_main(["verify", str(out)]) == 3
