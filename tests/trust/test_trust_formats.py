"""Issue #13 item 1 and 5: nothing read back from a results folder or a chunk cache can execute code, and
no opened-box chunk output stays in a folder whose current state is blinded.

Every attack plants a pickle whose ``__reduce__`` would create a marker file when unpickled; the test
requires the marker never to appear and the reader to answer with one line (OutputError/InputError, exit 3
for ``verify``) or, for the cache, a miss.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import lz4.frame
import numpy as np
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
    for e in entries:  # magic, key, sha256 of the payload, lz4(magic, header length, JSON header, arrays)
        magic, key, digest, payload = e.read_bytes().split(b"\n", 3)
        assert digest.decode() == safeio.sha256(payload)
        blob = lz4.frame.decompress(payload)
        assert blob.startswith(safeio.OUTPUT_MAGIC)
        n = int.from_bytes(blob[8:16], "little")
        header = json.loads(blob[16:16 + n])
        assert header["v"] == 1 and header["data_bytes"] > 0 and "__d__" in header["root"]
        assert "out" in safeio.decode_output(blob)
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
    with pytest.raises(safeio.UnsafeContent):  # deeply nested header: refused, no crash
        safeio.decode_output(_frame(b"[" * 100000 + b"]" * 100000))
    with pytest.raises(safeio.UnsafeContent, match="nesting"):  # nested within the recursion limit
        safeio.decode_output(_frame({"v": 1, "data_bytes": 0, "root": _nested(200)}))


def test_unblinded_cache_purged_by_blinded_rerun(synth_campaign, tmp_path):
    out = tmp_path / "out"
    assert _run(synth_campaign.datasets, out, "--unblind") == 0
    assert list((out / ".cache" / "unblinded").rglob("*.chunk"))
    assert _run(synth_campaign.datasets, out) == 0
    assert not (out / ".cache" / "unblinded").exists()
    assert list((out / ".cache" / "blinded").rglob("*.chunk"))
    assert [p.name for p in (out / ".cache").iterdir()] == ["blinded"]


# ------------------------------------------------------------------------------------------------------
# The binary chunk-output format (safeio.encode_output): hostile headers and array references. The layout
# is written here independently of the encoder: magic, header length (8 bytes LE), JSON header, zero
# padding to 8, array bytes.


def _frame(header: dict | bytes, data: bytes = b"") -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    pad = bytes(-(16 + len(h)) % 8)
    return safeio.OUTPUT_MAGIC + len(h).to_bytes(8, "little") + h + pad + data


def _nested(depth: int) -> list:
    x: list = []
    for _ in range(depth):
        x = [x]
    return x


def _tagged(x):
    """A plain JSON structure in the header's tagged form (str-keyed dicts as {"__d__": ...}); array
    references pass through."""
    if isinstance(x, dict) and "__nd__" not in x:
        return {"__d__": {k: _tagged(v) for k, v in x.items()}}
    if isinstance(x, list):
        return [_tagged(v) for v in x]
    return x


def _array(dtype: str = "<f8", shape: list | None = None, offset: int = 0, nbytes: int = 24) -> dict:
    return {"__nd__": {"dtype": dtype, "shape": [3] if shape is None else shape, "offset": offset,
                       "nbytes": nbytes}}


def _one_array(ref: dict, data: bytes) -> bytes:
    return _frame({"v": 1, "data_bytes": len(data), "root": {"__d__": {"out": ref}}}, data)


def _hist_output(**storage_values) -> bytes:
    """An output holding one uhi histogram with a 10^12-bin regular axis and the given stored values."""
    axis = {"type": "regular", "lower": 0.0, "upper": 1.0, "bins": 10**12, "underflow": True,
            "overflow": True, "circular": False}
    uhi = {"uhi_schema": 1, "axes": [axis], "storage": {"type": "double", **storage_values}}
    root = {"__d__": {"out": {"__hist__": _tagged(uhi)}}}
    return _frame({"v": 1, "data_bytes": 24, "root": root}, bytes(24))


def test_valid_frame_is_read():
    # the hand-written layout is the encoder's: a valid reference reads back (so the attacks below test
    # the check they name, not a layout mismatch)
    data = np.array([1.5, 2.5, 3.5]).tobytes()
    assert safeio.decode_output(_one_array(_array(), data))["out"].tolist() == [1.5, 2.5, 3.5]
    assert safeio.decode_output(safeio.encode_output({"a": np.arange(3.0)}))["a"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(("attack", "message"), [
    ("truncated", "array bytes"),
    ("offset_beyond_end", "beyond the end"),
    ("huge_shape", "does not match its size"),
    ("negative_shape", "non-negative"),
    ("object_dtype", "dtype"),
    ("big_endian_dtype", "dtype"),
    ("structured_dtype", "dtype"),
    ("header_not_json", "not JSON"),
    ("header_length_beyond_end", "header beyond the end"),
    ("not_this_format", "not an encoded chunk output"),
    ("unknown_tag", "unknown tag"),
    ("histogram_of_1e12_bins", "bins"),
    ("histogram_without_contents", "without axes or contents"),
])
def test_hostile_chunk_output_is_refused(attack, message):
    data = np.array([1.0, 2.0, 3.0]).tobytes()
    match attack:
        case "truncated":
            blob = safeio.encode_output({"out": np.arange(1000.0)})
            blob = blob[: len(blob) - 8]
        case "offset_beyond_end":
            blob = _one_array(_array(offset=16), data)
        case "huge_shape":  # 10^18 doubles claimed, 24 bytes present
            blob = _one_array(_array(shape=[10**9, 10**9]), data)
        case "negative_shape":
            blob = _one_array(_array(shape=[-3], nbytes=-24), data)
        case "object_dtype":
            blob = _one_array(_array(dtype="O", nbytes=24), data)
        case "big_endian_dtype":
            blob = _one_array(_array(dtype=">f8"), data)
        case "structured_dtype":
            blob = _one_array(_array(dtype="[('a', 'O')]"), data)
        case "header_not_json":
            blob = _frame(b"\x80\x04not json at all", data)
        case "header_length_beyond_end":
            blob = safeio.OUTPUT_MAGIC + (10**6).to_bytes(8, "little") + b"{}"
        case "not_this_format":
            blob = b'{"__d__": {"out": 1}}'
        case "unknown_tag":
            blob = _frame({"v": 1, "data_bytes": 0, "root": {"__pickle__": "gASV"}})
        case "histogram_of_1e12_bins":  # from_uhi would allocate 8 TB before filling 3 values
            blob = _hist_output(values=_array())
        case "histogram_without_contents":  # a structure-only uhi histogram allocates its bins too
            blob = _hist_output()
    with pytest.raises(safeio.UnsafeContent, match=message):
        safeio.decode_output(blob)


def test_unstorable_arrays_are_refused_when_encoding():
    with pytest.raises(safeio.UnsafeContent, match="dtype"):
        safeio.encode_output({"a": np.array([object()], dtype=object)})
    with pytest.raises(safeio.UnsafeContent, match="dtype"):
        safeio.encode_output({"a": np.zeros(3, dtype=[("x", "<f8")])})
    big = np.arange(3, dtype=">f8")  # stored little-endian, same values
    assert safeio.decode_output(safeio.encode_output({"a": big}))["a"].tolist() == [0.0, 1.0, 2.0]


class _Proc:
    selections: dict = {}
    unblind = False


@pytest.mark.parametrize("attack", ["truncated_blob", "offset_beyond_end", "huge_shape", "object_dtype",
                                    "header_not_json", "lz4_bomb"])
def test_planted_binary_entry_is_a_logged_miss(tmp_path, caplog, monkeypatch, attack):
    """An entry under the right key with a valid sha256 but a hostile payload: ChunkCache.load answers
    None (a miss, logged), and never raises."""
    cc = cache.ChunkCache(tmp_path, {"f.root": "0" * 64}, "c" * 64)
    md = {"filename": "f.root", "key": "A", "dataset": "d", "treename": "events", "entrystart": 0,
          "entrystop": 10}
    key = cc.key(md, _Proc())
    good = {"out": {"x": np.arange(3.0)}, "metrics": {}}
    data = np.arange(3.0).tobytes()
    match attack:
        case "truncated_blob":
            inner = safeio.encode_output(good)[:-5]
        case "offset_beyond_end":
            inner = _one_array(_array(offset=8), data)
        case "huge_shape":
            inner = _one_array(_array(shape=[2**62]), data)
        case "object_dtype":
            inner = _one_array(_array(dtype="|O", nbytes=24), data)
        case "header_not_json":
            inner = _frame(b"{not json", data)
        case "lz4_bomb":  # expands beyond the limit (lowered here so the test stays small)
            monkeypatch.setattr(safeio, "MAX_BYTES", 10_000)
            inner = safeio.encode_output({"out": {"x": np.zeros(100_000)}, "metrics": {}})
    payload = lz4.frame.compress(inner, content_checksum=True)
    path = cc.path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(cache.MAGIC + key.encode() + b"\n" + safeio.sha256(payload).encode() + b"\n" + payload)
    with caplog.at_level(logging.WARNING, logger="na64ana.processing.cache"):
        assert cc.load(md, _Proc()) is None
    assert any("corrupt" in r.getMessage() and path.name in r.getMessage() for r in caplog.records)
    cc.save(good, md, _Proc())  # the miss is rewritten and then read back
    assert cc.load(md, _Proc())["out"]["x"].tolist() == [0.0, 1.0, 2.0]
