"""Issue #13, folders: one run per output folder (a second fails fast, exit 4, naming the holder pid);
--workers 0 is a one-line error instead of a hang."""

from __future__ import annotations

import fcntl
import os

from na64ana.bookkeeping import provenance
from na64ana.cli import main as cli_main


def test_second_run_into_a_locked_folder_fails_fast(synth_campaign, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--no-cache"]) == 0
    fd = os.open(out / provenance.LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the folder
        os.pwrite(fd, b"424242\n", 0)
        before = (out / "cutflows" / "A.json").read_bytes()
        capsys.readouterr()
        assert cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out),
                         "--no-cache"]) == 4
        err = capsys.readouterr().err
        assert "424242" in err and len(err.strip().splitlines()) == 1
        assert (out / "cutflows" / "A.json").read_bytes() == before and (out / "run.complete").exists()
    finally:
        os.close(fd)
    # the holder is gone: the lock goes with it (no stale lock)
    assert cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--no-cache"]) == 0
    assert cli_main(["verify", str(out)]) == 0


def test_zero_workers_is_a_one_line_error(synth_campaign, tmp_path, capsys):
    for ex in ("futures", "dask"):
        rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(tmp_path / ex),
                       "--executor", ex, "--workers", "0", "--no-cache"])
        assert rc == 2
        assert "--workers" in capsys.readouterr().err
