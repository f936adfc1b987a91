"""Content-keyed chunk cache, plugged into coffea's ``Runner`` as its checkpointer.

Why: a run over a full campaign is long; an interrupted ``na64ana run`` must resume where it stopped, and
re-running after a change must only redo the chunks the change affects. coffea calls ``load`` before and
``save`` after each chunk (``Runner._work_function``), in the worker that processes it; this class only
decides the key and makes the storage safe.

Key = sha256 of everything that determines a chunk's output (:meth:`ChunkCache.key_fields`): the input
file's *content* (sha256 from :func:`~.inputs.check_inputs`, not its path or mtime), tree, entry
range, dataset and the metadata the processor reads, the processor class, the unblind flag, the resolved
selection's hash for that dataset key, and :func:`code_version`. Not in the key, on purpose: EOT and other
normalisation (applied after processing), the chunk size as such (only the entry range it yields), paths.

Safety: entries are written to a temporary file and renamed (a kill never leaves a half-written entry);
each carries the key and the sha256 of its payload, checked before anything is decoded, and the payload is
a tagged JSON header with the raw bytes of its numpy arrays and uhi histograms (:mod:`.safeio`, decompressed
to at most ``safeio.MAX_BYTES``), never a pickle: an entry planted by
anyone who can write the cache folder can at worst be a miss. Anything that does not read back as a valid
entry with that key is a miss (logged), never an error or a silently wrong result. Blinded and unblinded
entries live in separate namespaces (``blinded/``, ``unblinded/``); a blinded run deletes the unblinded
one (:meth:`ChunkCache.purge_unblinded`), so no opened-box chunk outputs stay in a blinded folder.
A chunk is stored only if its
input file still has the identity (inode, size, mtime_ns) it had when it was hashed
(:meth:`ChunkCache.unchanged`), so an input edited during a run never leaves an entry under the old
content's key. The cache is pure acceleration: deleting the folder at any time is safe.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, cast

import lz4.frame
from coffea.processor import CheckpointerABC

import na64ana
import na64ana.processors

from . import safeio

log = logging.getLogger(__name__)

#: bump when the entry layout or the key fields change (old entries then simply stop matching)
CACHE_FORMAT = 3
MAGIC = b"na64ana-chunk-bin\n"
#: na64ana modules whose source determines a chunk's output (plus every processors/*.py)
CODE_MODULES = ("selection.py", "blinding.py", "contract.py")
#: libraries that read the files, compute, fill and serialise: a new version may change the output
LIBRARIES = ("coffea", "awkward", "uproot", "hist", "boost-histogram", "numpy")
#: chunk metadata (coffea's + the dataset's, see ``execute.Job.metadata``) that the processors read.
#: ``eot`` is deliberately absent: it is normalisation, applied after processing.
KEY_METADATA = ("dataset", "treename", "entrystart", "entrystop", "key", "kind", "hcal0", "branch_map",
                "selection_hash")
TMP_SUFFIX = ".tmp"


def _decompress(payload: bytes) -> bytes:
    """One whole lz4 frame (content checksum verified), refused if it expands beyond ``safeio.MAX_BYTES``
    (a small planted entry must not make the reader allocate gigabytes)."""
    dec = lz4.frame.LZ4FrameDecompressor()
    out = dec.decompress(payload, max_length=safeio.MAX_BYTES + 1)
    if len(out) > safeio.MAX_BYTES:
        raise safeio.UnsafeContent("entry expands beyond the size limit")
    if not dec.eof or dec.unused_data:
        raise safeio.UnsafeContent("entry is not one whole lz4 frame")
    return out


def code_files() -> list[Path]:
    """The source files :func:`code_version` hashes: processors/*.py and the selection/blinding/contract
    modules. Report, plotting and output code are not among them, so editing those keeps the cache."""
    pkg = Path(na64ana.__file__).resolve().parent
    procs = Path(na64ana.processors.__file__).resolve().parent
    return sorted(procs.glob("*.py")) + [pkg / name for name in CODE_MODULES]


def code_version() -> str:
    """sha256 over the cache format, the :func:`code_files` contents, the :data:`LIBRARIES` versions and
    the Python version."""
    h = hashlib.sha256(f"format {CACHE_FORMAT}\npython {sys.version_info[:2]}\n".encode())
    for path in code_files():
        h.update(f"{path.parent.name}/{path.name}\n".encode())
        h.update(path.read_bytes())
    for lib, v in _library_versions():
        h.update(f"{lib} {v}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _library_versions() -> tuple[tuple[str, str], ...]:
    """The :data:`LIBRARIES` versions, read once per process (importlib.metadata scans the installed
    distributions on every call)."""
    out = []
    for lib in LIBRARIES:
        try:
            out.append((lib, importlib_metadata.version(lib)))
        except importlib_metadata.PackageNotFoundError:
            out.append((lib, "-"))
    return tuple(out)


def file_hashes(records: Iterable[Any]) -> dict[str, str]:
    """``{path: sha256}`` of the usable input files (``inputs.InputFile`` records)."""
    return {r.path: r.sha256 for r in records if r.status == "ok" and r.sha256}


def file_identities(records: Iterable[Any]) -> dict[str, tuple[int, int, int]]:
    """``{path: (inode, size, mtime_ns)}`` of the usable input files when they were hashed."""
    return {r.path: r.identity.content_key for r in records
            if r.status == "ok" and getattr(r, "identity", None) is not None}


class ChunkCache(CheckpointerABC):
    """coffea checkpointer storing each chunk's output under a content key in ``directory``.

    It is pickled to the workers with the runner's work function, so it holds only plain data: the
    folder, ``{path: sha256}`` of the inputs (hashed once, in the main process) and the code version.
    Workers must see ``directory`` at the same path (shared file system) for entries to be shared; if
    they cannot write it, saving fails with a logged warning and the run proceeds uncached.

    Hits are counted on the result side: a loaded output carries ``metrics["cache_hits"] = 1`` and a
    stored one ``metrics["cache_stored"] = 1``, which coffea sums with the other chunk metrics (also
    across dask workers); misses = chunks - hits.
    """

    def __init__(self, directory: str | Path, sha256: Mapping[str, str], code_version: str, *,
                 identities: Mapping[str, tuple[int, int, int]] | None = None, unblind: bool = False):
        self.directory = Path(directory)
        #: namespace of the entries: an unblinded run never shares (or leaves) entries with a blinded one
        self.unblind = bool(unblind)
        self.sha256 = dict(sha256)
        self.code_version = code_version
        #: ``{path: (inode, size, mtime_ns)}`` when hashed: a chunk is stored only if its file still has it
        self.identities = {k: tuple(v) for k, v in (identities or {}).items()}

    def unchanged(self, path: str | None) -> bool:
        """Whether ``path`` still has the identity it had when its sha256 was taken (True if unknown).

        Checked after the chunk was read and processed: an unchanged identity then means the chunk came
        from the hashed content, so its output may be stored under that content's key."""
        was = self.identities.get(path) if path is not None else None
        if was is None or path is None:
            return True
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_ino, st.st_size, st.st_mtime_ns) == was

    # -- keys and paths ------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """Entries of this code version (older versions sit beside it and can be deleted)."""
        ns = "unblinded" if self.unblind else "blinded"
        return self.directory / ns / f"v{CACHE_FORMAT}-{self.code_version[:16]}"

    def purge_unblinded(self) -> int:
        """Delete every unblinded entry (and pre-namespace entries of older formats). Called by a blinded
        run: a folder whose current state is blinded keeps no chunk output of an opened box. Returns the
        number of top-level items removed."""
        n = 0
        if not self.directory.is_dir():
            return 0
        for child in self.directory.iterdir():
            if child.name == "blinded":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
            n += 1
        return n

    def key_fields(self, metadata: Mapping[str, Any], processor_instance: Any) -> dict[str, Any] | None:
        """Everything the key hashes, or None (not cacheable) for a file without a known sha256."""
        sha = self.sha256.get(cast(str, metadata.get("filename")))
        if sha is None:
            return None
        proc = processor_instance
        sel = getattr(proc, "selections", {}).get(metadata.get("key"))
        return {
            "format": CACHE_FORMAT,
            "code_version": self.code_version,
            "file_sha256": sha,
            **{k: metadata.get(k) for k in KEY_METADATA},
            "processor": f"{type(proc).__module__}.{type(proc).__qualname__}",
            "unblind": getattr(proc, "unblind", None),
            "selection": sel.hash if sel is not None else None,
        }

    def key(self, metadata: Mapping[str, Any], processor_instance: Any) -> str | None:
        fields = self.key_fields(metadata, processor_instance)
        if fields is None:
            return None
        blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.chunk"

    def entries(self) -> list[Path]:
        """The complete entries of this code version."""
        return sorted(self.root.glob("*/*.chunk"))

    # -- coffea's interface --------------------------------------------------------------------------
    def load(self, metadata: Any, processor_instance: Any) -> Any | None:
        key = self.key(metadata, processor_instance)
        if key is None:
            return None
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s unreadable (%s): treated as a miss", path, exc)
            return None
        try:
            out = self._decode(blob, key)
        except Exception as exc:  # truncated, bit-flipped, foreign: a miss, never a wrong result
            log.warning("cache entry %s is corrupt (%s: %s): treated as a miss and rewritten", path,
                        type(exc).__name__, exc)
            return None
        metrics = dict(out.get("metrics") or {})
        # Nothing was read or processed for this chunk in this run.
        metrics.update(cache_hits=1, processtime=0.0, bytesread=0)
        out["metrics"] = metrics
        return out

    def save(self, output: Any, metadata: Any, processor_instance: Any) -> None:
        key = self.key(metadata, processor_instance)
        if key is None:
            return
        if not self.unchanged(metadata.get("filename")):
            log.warning("input %s changed while it was processed: chunk %s-%s not stored",
                        metadata.get("filename"), metadata.get("entrystart"), metadata.get("entrystop"))
            return
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}{TMP_SUFFIX}")
        try:
            blob = self._encode(output, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)  # atomic: readers see the old entry, no entry, or the whole new one
        except Exception as exc:
            log.warning("could not write cache entry %s (%s: %s); continuing uncached", path,
                        type(exc).__name__, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return
        if isinstance(output, dict):
            output.setdefault("metrics", {})["cache_stored"] = 1

    # -- storage format ------------------------------------------------------------------------------
    @staticmethod
    def _encode(output: Any, key: str) -> bytes:
        payload = lz4.frame.compress(safeio.encode_output(output), content_checksum=True)
        return MAGIC + key.encode() + b"\n" + safeio.sha256(payload).encode() + b"\n" + payload

    @staticmethod
    def _decode(blob: bytes, key: str) -> dict[str, Any]:
        head = MAGIC + key.encode() + b"\n"
        if not blob.startswith(head):
            raise ValueError("wrong header or key")
        digest, sep, payload = blob[len(head):].partition(b"\n")
        if not sep or digest.decode("ascii", "replace") != safeio.sha256(payload):
            raise ValueError("content sha256 mismatch")  # checked before anything is decoded
        out = safeio.decode_output(_decompress(payload))
        if not isinstance(out, dict) or "out" not in out:
            raise ValueError(f"unexpected content {type(out).__name__}")
        return out

    def remove_stale_tmp(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary files left by killed writers (older than ``max_age_s``: a concurrent run
        may be writing the recent ones). Returns how many were removed."""
        if not self.directory.is_dir():
            return 0
        now, n = time.time(), 0
        for tmp in self.directory.glob(f"*/*/*/.*{TMP_SUFFIX}"):
            try:
                if now - tmp.stat().st_mtime > max_age_s:
                    tmp.unlink()
                    n += 1
            except OSError:
                continue
        return n
