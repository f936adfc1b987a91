"""An uproot source that keeps each input file mapped across the chunks of a run (issue 19).

coffea's ``Runner`` opens the input file again for every chunk (``uproot.open`` in
``Runner._work_function``). With uproot's ``MemmapSource`` every open creates a new memory map, and the
pages of the new map are faulted in again, while ``uproot.iterate`` maps each file once. Measured on 2e7
warm lz4 events in 2M-event chunks (benchmarks/RESULTS.md, docs/performance.md): reading the processor's
20 columns took 0.83-0.95 CPU-s with a new map per chunk against 0.55-0.60 s with one map per file.

:class:`KeptOpenSource` is a ``MemmapSource`` whose map is shared by every open of the same *unchanged*
file in the process (same device, inode, size, mtime_ns, ctime_ns: a rewritten or replaced file gets a new
map). Closing a file that was opened through it leaves the shared map open; maps are closed when more than
:data:`KEEP` files are mapped (least recently used first) and by :func:`release`. Each new open first drops
the pages of the kept maps from the process (``madvise(MADV_DONTNEED)``: the page cache keeps them), so the
resident memory holds one chunk's pages, as with a map per chunk, not a growing part of every file.

Pass it as ``handler`` in the uproot options (``execute.UPROOT_OPTIONS``); it is picked by class, so it
reaches dask workers like any module of the installed package. Anything it cannot map (e.g. an empty
file) is opened exactly as ``MemmapSource`` would, with the same errors.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import threading
from collections import OrderedDict
from types import FrameType
from typing import Any

import numpy as np
import uproot
import uproot.cache
import uproot.reading
import uproot.source.file

#: files kept mapped per process (a worker may interleave the chunks of a few files)
KEEP = 4

_LOCK = threading.Lock()


class _Mapped:
    """One kept file: its stat key, its map and the uproot objects (TTree metadata) read from it."""

    __slots__ = ("key", "map", "objects")

    def __init__(self, key: tuple[int, ...], m: np.memmap):
        self.key = key
        self.map = m
        self.objects = uproot.cache.LRUCache(OBJECTS)


#: uproot objects (TTree, TBranch metadata, streamers) kept per mapped file
OBJECTS = 100
_MAPS: OrderedDict[str, _Mapped] = OrderedDict()


def _stat_key(path: str) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _close(entry: _Mapped) -> None:
    entry.objects.clear()
    with contextlib.suppress(Exception):
        entry.map._mmap.close()  # type: ignore[attr-defined]  # numpy stubs omit memmap._mmap


def _drop_pages() -> None:
    for entry in _MAPS.values():
        mm = getattr(entry.map, "_mmap", None)
        if mm is not None and not mm.closed and hasattr(mm, "madvise"):
            with contextlib.suppress(OSError, ValueError):
                mm.madvise(mmap.MADV_DONTNEED)


def shared_map(path: str, dtype: Any) -> _Mapped | None:
    """The process's map of ``path`` (created if new or changed), or None if it cannot be mapped."""
    try:
        real = os.path.realpath(path)
        key = _stat_key(real)
    except OSError:
        return None
    with _LOCK:
        _drop_pages()
        hit = _MAPS.get(real)
        if hit is not None and hit.key == key and not hit.map._mmap.closed:  # type: ignore[attr-defined]
            _MAPS.move_to_end(real)
            return hit
        if hit is not None:
            del _MAPS[real]
            _close(hit)
        try:
            m = np.memmap(real, dtype=dtype, mode="r")
        except (OSError, ValueError):
            return None
        entry = _MAPS[real] = _Mapped(key, m)
        while len(_MAPS) > KEEP:
            _, old = _MAPS.popitem(last=False)
            _close(old)
        return entry


# --- decompression threads (iterative executor only) -----------------------------------------------------
# The chunk of the iterative executor is read and processed by one thread, and the cores beside it idle.
# Decompressing the baskets of one ``TTree.arrays`` call on a small thread pool (lz4/zstd/zlib release
# the GIL; the page faults of the map happen in those threads too) lets the read use them: plain
# ``uproot.iterate`` (the benchmark floor) likewise reads its byte ranges on fsspec's threads. Off in pool
# and dask workers, which have a core each already (``execute.run`` turns it on for the iterative executor).
_READ_POOL: Any = None


@contextlib.contextmanager
def decompression_threads(n: int) -> Any:
    """Within the block, :func:`decompression_executor` is a pool of ``n`` threads (none if ``n`` < 2)."""
    global _READ_POOL
    if n < 2:
        yield
        return
    import uproot.source.futures

    previous, _READ_POOL = _READ_POOL, uproot.source.futures.ThreadPoolExecutor(max_workers=n)
    try:
        yield
    finally:
        pool, _READ_POOL = _READ_POOL, previous
        pool.shutdown()


def decompression_executor() -> Any:
    """The executor for ``TTree.arrays(decompression_executor=...)`` of this process, or None (uproot's
    default: decompress in the calling thread)."""
    return _READ_POOL


def release() -> int:
    """Close every kept map of this process (after a run); returns how many were open."""
    with _LOCK:
        n = len(_MAPS)
        while _MAPS:
            _, old = _MAPS.popitem(last=False)
            _close(old)
        return n


def _opening_file() -> Any:
    """The ``uproot.ReadOnlyFile`` whose ``__init__`` is creating this source (None if not found).

    uproot's object cache is keyed by the ROOT file UUID and the object's seek position, not by the path:
    one cache shared by all opens would hand the TTree of a file to a copy of it with other contents
    (same UUID). So each ReadOnlyFile opened through KeptOpenSource gets the object cache *of its mapped
    file* (same path and stat key), installed here because uproot has no hook for it (docs/performance.md).
    """
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return None
        obj = frame.f_locals.get("self")
        if isinstance(obj, uproot.reading.ReadOnlyFile):
            return obj
        frame = frame.f_back
    return None


def kept() -> list[str]:
    """Paths of the files this process keeps mapped (for tests and diagnostics)."""
    with _LOCK:
        return list(_MAPS)


class KeptOpenSource(uproot.source.file.MemmapSource):
    """``MemmapSource`` sharing one map per unchanged file and process (see the module docstring)."""

    def _open(self) -> None:
        entry = shared_map(self._file_path, self._dtype)
        if entry is None:  # not mappable: exactly MemmapSource's behaviour (fallback or error)
            self._shared = False
            super()._open()
            return
        self._shared = True
        self._file = entry.map
        self._fallback = None
        opening = _opening_file()
        if opening is not None:
            # TTree metadata read once per file and process, not once per chunk (~10-30 ms each).
            opening._object_cache = entry.objects

    def __exit__(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        if getattr(self, "_shared", False):
            return  # the shared map stays open for the next chunk; see release()
        super().__exit__(exception_type, exception_value, traceback)
