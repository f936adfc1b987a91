"""Write contract arrays as a ROOT TTree with uproot (``mktree`` + ``extend``; never RNTuple), atomically.

Files are byte-reproducible: the same arrays, file name, tree, compression and chunk give the same bytes
(with the same uproot/lz4/zstd versions), so the sha256 values in datasets.json can be re-derived later.
uproot would otherwise write three varying things: the temporary file name (TFile fName), a ``uuid1``
(time + MAC address) as fUUID, and ``datetime.now()`` in every key and directory header (fDatime).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import sys
import threading
import types
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import uproot

from ..contract import BRANCHES, DEFAULT_TREE
from ..errors import InputError, OutputError

COMPRESSIONS = ("lz4", "zstd", "zlib", "none")
DEFAULT_CHUNK = 1_000_000
#: fDatime of every key/directory written: ROOT's TDatime epoch, i.e. visibly "no time" (the real time of a
#: simulation is in provenance.json). A constant keeps the bytes a function of the content only.
FILE_TIMESTAMP = datetime.datetime(1995, 1, 1)
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "na64ana.simulation.writer")
# uproot modules that call ``datetime.datetime.now()`` for fDatime (uproot 5.7; no public option for it).
_DATETIME_USERS = ("uproot.writing._cascade", "uproot.writing._cascadetree", "uproot.writing.writable")
_CLOCK_LOCK = threading.Lock()


def compression_codec(name: str, level: int = 1):
    """uproot codec for a name; lz4/zstd read 2-4x faster than zlib (lessons.md)."""
    codecs = {"lz4": uproot.LZ4, "zstd": uproot.ZSTD, "zlib": uproot.ZLIB}
    if name == "none":
        return None
    if name not in codecs:
        raise InputError(f"unknown compression '{name}' (choose {', '.join(COMPRESSIONS)})",
                         field="compression")
    return codecs[name](level)


def _big_endian(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """ROOT stores big-endian: byteswap() is ~4x faster than the astype(">f4") uproot would do itself."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.dtype.itemsize == 1 or a.dtype.byteorder == ">" or \
            (a.dtype.byteorder == "=" and not np.little_endian):
        return a
    return a.byteswap().view(a.dtype.newbyteorder(">"))


def content_uuid(name: str, arrays: dict[str, np.ndarray], names: Sequence[str], types: dict[str, np.dtype],
                 *, tree: str, compression: str, chunk: int) -> uuid.UUID:
    """fUUID of a file: a name-based UUID (v5) of the file name, layout options and a digest of the arrays.

    Same inputs -> same UUID (reproducible bytes); any different content or layout -> a different UUID,
    so the UUID still identifies a file, as ROOT expects (uproot's default ``uuid1`` would make the bytes
    depend on the time and the host's MAC address). Costs ~0.16 s per 1e6 events (sha256).
    """
    h = hashlib.sha256()
    for k in names:
        h.update(f"{k}:{types[k].str}:".encode())
        h.update(memoryview(np.ascontiguousarray(arrays[k], dtype=types[k])).cast("B"))  # type: ignore[arg-type]
    return uuid.uuid5(_UUID_NAMESPACE, f"{name}|{tree}|{compression}|{chunk}|{h.hexdigest()}")


class _FixedClock(datetime.datetime):
    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
        return FILE_TIMESTAMP


@contextmanager
def fixed_root_timestamps() -> Iterator[None]:
    """While active, uproot writes :data:`FILE_TIMESTAMP` instead of the current time as fDatime.

    uproot takes the time from ``datetime.datetime.now()`` inside its writing modules and offers no option,
    so their module attribute ``datetime`` is swapped for a copy whose ``datetime.now()`` is constant, and
    restored afterwards (under a lock: concurrent writers in other threads of this process would also get
    the constant while it is active, which is harmless). If a future uproot takes the time differently, the
    patch silently does nothing; tests/test_determinism.py checks the written fDatime values to catch that.
    """
    shim = types.ModuleType("datetime")
    shim.__dict__.update(datetime.__dict__)
    setattr(shim, "datetime", _FixedClock)  # noqa: B010 (a module attribute mypy cannot see)
    with _CLOCK_LOCK:
        mods = [m for m in (sys.modules.get(name) for name in _DATETIME_USERS)
                if m is not None and getattr(m, "datetime", None) is datetime]
        try:
            for m in mods:
                setattr(m, "datetime", shim)  # noqa: B010
            yield
        finally:
            for m in mods:
                setattr(m, "datetime", datetime)  # noqa: B010


def write_tree(path: str | Path, arrays: dict[str, np.ndarray], *, compression: str = "lz4",
               tree: str = DEFAULT_TREE, chunk: int = DEFAULT_CHUNK) -> int:
    """Write ``arrays`` (contract branches, in contract order) to ``path``; returns the number of entries.

    The file is written into a temporary folder under its final name (ROOT stores the file name inside
    the file) and moved to ``path`` at the end, so a crash or bad input never leaves a partial ROOT file
    at ``path``. The bytes depend only on the arguments (see the module docstring); ``chunk`` sets the
    basket size, so different chunks give different bytes but the same arrays when read back.
    """
    path = Path(path)
    codec = compression_codec(compression)
    names = [b.name for b in BRANCHES if b.name in arrays]
    missing = [b.name for b in BRANCHES if b.name not in arrays and not b.mc_only]
    if missing:
        raise InputError(f"missing contract branches {missing}", field="arrays")
    n = len(arrays[names[0]]) if names else 0
    bad = [k for k in names if len(arrays[k]) != n]
    if bad:
        raise InputError(f"branches {bad} have a length different from {n}", field="arrays")
    types = {k: np.dtype(next(b.dtype for b in BRANCHES if b.name == k)) for k in names}
    if not path.parent.is_dir():
        raise OutputError("output folder does not exist", file=str(path.parent))
    if int(chunk) != chunk or chunk <= 0:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}", field="chunk")
    chunk = int(chunk)
    # one UUID for the file header and its top directory: ROOT writes the TFile's own fUUID in both places
    file_id = content_uuid(path.name, arrays, names, types, tree=tree, compression=compression, chunk=chunk)
    tmp_dir = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp = tmp_dir / path.name
    try:
        tmp_dir.mkdir(exist_ok=True)
        with fixed_root_timestamps(), \
                uproot.recreate(tmp, compression=codec, uuid_function=lambda: file_id) as f:
            t = f.mktree(tree, types)
            for start in range(0, max(n, 1), chunk):
                stop = start + chunk
                t.extend({k: _big_endian(arrays[k][start:stop], types[k]) for k in names})
        tmp.replace(path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return n
