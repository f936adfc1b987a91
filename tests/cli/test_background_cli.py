"""'na64ana background --strict-validation': a FAILED validation-region verdict becomes an error (exit 3,
one line naming the run output and the run); without the flag it is a warning recorded per run."""

from __future__ import annotations

import json

from na64ana import background
from na64ana.cli import main
from na64ana.errors import DataError


def test_strict_validation_makes_a_failed_verdict_an_error(tiny_run, tiny_campaign, tmp_path, monkeypatch,
                                                           capsys):
    def failing(*args, **kwargs):
        return {"flag": "fail", "message": f"validation region run {kwargs.get('run')}: (test) FAILED"}

    monkeypatch.setattr(background, "validate_shape", failing)
    base = ["background", "--run-dir", str(tiny_run), "--datasets", str(tiny_campaign.datasets)]

    assert main([*base, "--out", str(tmp_path / "lenient")]) == 0  # default: recorded, not an error
    runs = json.loads((tmp_path / "lenient" / "background.json").read_text())["runs"]
    checked = [r for r in runs if (r.get("validation") or {}).get("flag") is not None]
    assert checked and all(r["validation"]["flag"] == "fail" for r in checked)
    capsys.readouterr()

    assert main([*base, "--out", str(tmp_path / "strict"), "--strict-validation"]) == DataError.exit_code
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("na64ana background: error: ")
    assert f"{tiny_run}:validation.A: " in errors[0] and "FAILED" in errors[0]  # file:field: message
    assert not (tmp_path / "strict" / "background.json").exists()  # nothing presented as a result
