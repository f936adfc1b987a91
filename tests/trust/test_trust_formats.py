"""Issue #13 item 1 and 5: nothing read back from a results folder or a chunk cache can execute code, and
no opened-box chunk output stays in a folder whose current state is blinded.

Every attack plants a pickle whose ``__reduce__`` would create a marker file when unpickled; the test
requires the marker never to appear and the reader to answer with one line (OutputError/InputError, exit 3
for ``verify``) or, for the cache, a miss.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import lz4.frame
import pytest

from na64ana.cli import main as cli_main
from na64ana.errors import OutputError
from na64ana.processing import cache, outputs, safeio


class _Boom:
    """Unpickling this creates ``self.marker`` (code execution)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _run(dsets: Path, out: Path, *extra: str) -> int:
    return cli_main(["run", "--datasets", str(dsets), "--out", str(out), "--chunksize", "100", *extra])


@pytest.fixture
def run_dir(tiny_run_copy):
    """A private copy of the session's blinded ``na64ana run`` of the synthetic campaign (chunk size 100,
    default cache): the same folder this fixture used to make per test, made once (conftest.tiny_run)."""
    return tiny_run_copy


def _pickle_files(folder: Path) -> list[Path]:
    found = []
    for p in folder.rglob("*"):
        if p.is_file():
            head = p.read_bytes()[:2]
            if p.suffix in (".pkl", ".pickle") or head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05":
                found.append(p)
    return found


def test_outputs_and_cache_hold_no_pickle(run_dir):
    n = len(outputs.list_hists(run_dir))
    assert sorted(p.suffix for p in (run_dir / "hists").iterdir()) == [".json"] * n
    assert len(outputs.list_hists(run_dir)) > 10
    assert not _pickle_files(run_dir)
    entries = list((run_dir / ".cache").rglob("*.chunk"))
    assert entries and all("/blinded/" in str(e) for e in entries)
    for e in entries:  # magic, key, sha256 of the payload, lz4(JSON)
        magic, key, digest, payload = e.read_bytes().split(b"\n", 3)
        assert digest.decode() == safeio.sha256(payload)
        json.loads(lz4.frame.decompress(payload))
    h = outputs.load_hist(run_dir, "plane_final")  # readable alone, by the field's format
    from hist import serialization
    assert serialization.from_uhi(json.loads((run_dir / "hists" / "plane_final.json").read_text())) == h


def test_grep_finds_no_pickle_loader():
    src = Path(__file__).resolve().parents[2]
    for folder in (src / "src" / "na64ana", src / "processors"):
        for p in folder.rglob("*.py"):
            text = p.read_text()
            assert "pickle.load" not in text and "allow_pickle=True" not in text, p


def test_planted_pickle_histogram_is_refused_everywhere(run_dir, tmp_path, capsys):
    marker = tmp_path / "pwned"
    (run_dir / "hists" / "evil.pkl").write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(OutputError, match="predates the safe output format"):
        outputs.load_hist(run_dir, "plane_final")
    assert cli_main(["verify", str(run_dir)]) == 3
    err = capsys.readouterr()
    assert "pickle not read" in err.out + err.err
    from na64ana.errors import InputError
    from na64ana.presentation.results import Results

    with pytest.raises(InputError, match="predates"):
        Results(run_dir).hist("plane_final")
    cli_main(["background", "--run-dir", str(run_dir), "--out", str(tmp_path / "bkg")])
    assert not marker.exists()


def test_old_pickle_folder_is_refused(run_dir, tmp_path):
    """A whole folder written before the safe format (hists/*.pkl): one line, nothing unpickled."""
    marker = tmp_path / "pwned"
    for p in (run_dir / "hists").glob("*.json"):
        p.unlink()
        p.with_suffix(".pkl").write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(OutputError, match="predates the safe output format"):
        outputs.load_hist(run_dir, "plane_final")
    assert cli_main(["verify", str(run_dir)]) == 3
    assert not marker.exists()


def test_tampered_histogram_json_is_an_error_not_a_crash(run_dir, capsys):
    (run_dir / "hists" / "plane_final.json").write_text('{"uhi_schema": 1, "axes": "x"}')
    with pytest.raises(OutputError, match="safe format"):
        outputs.load_hist(run_dir, "plane_final")
    assert cli_main(["verify", str(run_dir)]) == 3


def test_planted_cache_entries_are_misses_not_code(synth_campaign, tmp_path):
    """Anyone who can write a shared --cache: a pickle entry under the right key (old and new layout),
    with a valid sha256, is a miss; the re-run processes the chunk and its outputs are the clean ones."""
    out, cdir = tmp_path / "out", tmp_path / "shared-cache"
    assert _run(synth_campaign.datasets, out, "--cache", str(cdir)) == 0
    clean = {n: outputs.load_hist(out, n) for n in outputs.list_hists(out)}
    marker = tmp_path / "pwned"
    entries = sorted(cdir.rglob("*.chunk"))
    assert entries
    evil = lz4.frame.compress(pickle.dumps({"out": _Boom(marker), "metrics": {}}), content_checksum=True)
    for e in entries:
        magic, key, _digest, _ = e.read_bytes().split(b"\n", 3)
        e.write_bytes(magic + b"\n" + key + b"\n" + safeio.sha256(evil).encode() + b"\n" + evil)
        legacy = cdir / f"v1-{'0' * 16}" / key[:2].decode() / f"{key.decode()}.chunk"
        legacy.parent.mkdir(parents=True, exist_ok=True)
        legacy.write_bytes(b"na64ana-chunk\n" + key + b"\n" + evil)
    assert _run(synth_campaign.datasets, out, "--cache", str(cdir)) == 0
    assert not marker.exists()
    again = {n: outputs.load_hist(out, n) for n in outputs.list_hists(out)}
    assert again == clean


def test_cache_entry_sha256_checked_before_decoding(tmp_path):
    c = cache.ChunkCache(tmp_path, {}, "x" * 64)
    blob = c._encode({"out": {"n": 1}, "metrics": {}}, "k" * 64)
    assert c._decode(blob, "k" * 64)["out"] == {"n": 1}
    bad = blob[:-3] + b"}}}"
    with pytest.raises(ValueError, match="sha256"):
        c._decode(bad, "k" * 64)
    with pytest.raises(safeio.UnsafeContent):
        safeio.decode_output(b"[" * 100000 + b"]" * 100000)  # deeply nested: refused, no crash


def test_unblinded_cache_purged_by_blinded_rerun(synth_campaign, tmp_path):
    out = tmp_path / "out"
    assert _run(synth_campaign.datasets, out, "--unblind") == 0
    assert list((out / ".cache" / "unblinded").rglob("*.chunk"))
    assert _run(synth_campaign.datasets, out) == 0
    assert not (out / ".cache" / "unblinded").exists()
    assert list((out / ".cache" / "blinded").rglob("*.chunk"))
    assert [p.name for p in (out / ".cache").iterdir()] == ["blinded"]
