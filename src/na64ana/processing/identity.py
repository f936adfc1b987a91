"""Input identity: hash each input file once per file identity, and make sure no input changes under a run.

Why: the chunk cache keys on the *content* (sha256) of every input and provenance.json records it, but
re-hashing a campaign's files on every run cost ~30% of a run over warm lz4 files (1.4 of 4.8 s for 2e7
events, issue 19). A file's identity -- device, inode, size, mtime_ns and ctime_ns of ``os.stat`` -- does
not change unless the file is written, replaced, touched or re-linked, so its sha256 is computed once per
identity and remembered in a small JSON store:

* ``$NA64ANA_CACHE/identity.json`` (else ``$NA64ANA_CACHE_DIR``, ``$XDG_CACHE_HOME/na64ana``,
  ``~/.cache/na64ana``), written atomically (temporary file + rename, merged with what another process
  wrote meanwhile), at most :data:`MAX_ENTRIES` files (the oldest are dropped; files that no longer
  exist are dropped at every write). ``NA64ANA_IDENTITY_STORE=off``
  disables it (every run hashes every input).
* It is trusted for one thing only: skipping the re-hash of a file whose identity is exactly the stored
  one. ``ctime_ns`` is part of it because it cannot be set from user space: back-dating ``mtime`` with
  ``touch -d`` after an edit still changes the identity. Racy entries are not trusted: when the file was
  modified less than :data:`RACY_NS` before its hash was taken, a same-size rewrite within the file
  system's timestamp granularity could hide behind an unchanged identity (git's "racy clean" problem),
  so such a file is hashed again next time (and then remembered for good).
* ``na64ana verify`` never uses it (it re-hashes everything).

Inputs cannot change under a run: :func:`hash_file` fails (``DataError``) when the identity changed while
hashing, and :func:`confirm` re-checks every processed file after processing (inode, size, mtime_ns: the
fields that are the same for every client of a shared file system, unlike the device number) and fails
with a ``DataError`` naming the file when it changed. The chunk cache (:mod:`.cache`) stores a chunk only
if its file still has the identity it had when it was hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

log = logging.getLogger("na64ana.identity")

STORE_FORMAT = 1
STORE_NAME = "identity.json"
MAX_ENTRIES = 20_000
RACY_NS = 2_000_000_000  # a file modified < 2 s before it was hashed is hashed again next time
BLOCK = 1 << 22


@dataclass(frozen=True)
class Identity:
    """What ``os.stat`` says about a file; equal identities mean the file was not written in between."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Identity:
        st = os.stat(path)
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @property
    def content_key(self) -> tuple[int, int, int]:
        """(inode, size, mtime_ns): what :func:`confirm` and the chunk cache compare. The same on every
        client of a shared file system (the device number is not), and unchanged by chmod or a new link."""
        return (self.ino, self.size, self.mtime_ns)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def store_dir() -> Path | None:
    """The folder of the identity store, or None when disabled (``NA64ANA_IDENTITY_STORE=off``)."""
    if os.environ.get("NA64ANA_IDENTITY_STORE", "").lower() in ("off", "0", "no", "false"):
        return None
    for var in ("NA64ANA_CACHE", "NA64ANA_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "na64ana"


def _read_store(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # unreadable or half-foreign: start afresh (it is only a cache)
        log.debug("identity store %s unreadable (%s): ignored", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
        return {}
    if not isinstance(data.get("files"), dict):
        return {}
    return {k: v for k, v in data["files"].items() if isinstance(v, dict)}


def _write_store(path: Path, new: Mapping[str, dict[str, Any]]) -> None:
    """Merge ``new`` into the store at ``path`` atomically; failures are logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files = _read_store(path)  # what other processes stored since we read it
        files.update(new)
        # entries of files that are gone can never match again (a new file at the path has a new identity):
        # dropped, so the store holds the inputs that exist and its read/write cost stays that of them
        files = {k: v for k, v in files.items() if k in new or os.path.lexists(k)}
        if len(files) > MAX_ENTRIES:
            keep = sorted(files.items(), key=lambda kv: kv[1].get("hashed_ns", 0))[-MAX_ENTRIES:]
            files = dict(keep)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"format": STORE_FORMAT, "files": files}, f, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.debug("identity store %s not written (%s): inputs will be hashed again next time", path, exc)


def _sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def _trusted(entry: Mapping[str, Any] | None, ident: Identity) -> str | None:
    if not entry or not isinstance(entry.get("sha256"), str):
        return None
    if any(entry.get(k) != v for k, v in ident.as_dict().items()):
        return None
    if not isinstance(entry.get("hashed_ns"), int) or ident.mtime_ns >= entry["hashed_ns"] - RACY_NS:
        return None  # racy: modified too close to the moment it was hashed
    return entry["sha256"]


class IdentityStore:
    """The identity store of one process run: read once, hashes added, written once (:meth:`flush`)."""

    def __init__(self, directory: str | Path | None = None, *, enabled: bool = True):
        d = Path(directory) if directory is not None else store_dir()
        self.path = d / STORE_NAME if (d is not None and enabled) else None
        self._files = _read_store(self.path) if self.path is not None else {}
        self._new: dict[str, dict[str, Any]] = {}
        self.hashed = 0  # files hashed by this instance (the others came from the store)

    def hash_file(self, path: str | os.PathLike[str], expect: Identity | None = None) -> tuple[str, Identity]:
        """``(sha256, identity)`` of ``path``: from the store if the identity is unchanged, else hashed.

        ``expect``: the identity the caller saw before (e.g. before checking the file); DataError if the
        file is not that file any more, or if it changed while being hashed."""
        real = os.path.realpath(path)
        ident = Identity.of(path)
        if expect is not None and ident != expect:
            raise DataError("input changed while it was being checked (size, mtime or inode)", file=str(path))
        sha = _trusted(self._new.get(real) or self._files.get(real), ident)
        if sha is not None:
            return sha, ident
        t0 = time.time_ns()
        sha = _sha256(path)
        if Identity.of(path) != ident:
            raise DataError("input changed while it was being hashed (size, mtime or inode)", file=str(path))
        self.hashed += 1
        self._new[real] = {**ident.as_dict(), "sha256": sha, "hashed_ns": t0}
        return sha, ident

    def flush(self) -> None:
        if self.path is not None and self._new:
            _write_store(self.path, self._new)
            self._files.update(self._new)
            self._new = {}


def sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of one file through the identity store (hashed only when its identity is new)."""
    store = IdentityStore()
    sha, _ = store.hash_file(path)
    store.flush()
    return sha


def changed(path: str | os.PathLike[str], was: Identity) -> str | None:
    """Why ``path`` is no longer the file of identity ``was`` (None when it is: same inode, size, mtime)."""
    try:
        now = Identity.of(path)
    except FileNotFoundError:
        return "removed"
    except OSError as exc:
        return f"not readable any more ({exc.strerror or exc})"
    if now.content_key == was.content_key:
        return None
    what = [name for name, a, b in zip(("inode", "size", "mtime"), now.content_key, was.content_key,
                                       strict=True) if a != b]
    return f"{', '.join(what)} changed"


def confirm(files: Iterable[tuple[str, Identity]]) -> None:
    """DataError naming the first file that changed since its identity was taken (one line)."""
    for path, was in files:
        why = changed(path, was)
        if why is not None:
            raise DataError(f"input changed while the run processed it ({why}): outputs not written, "
                            "run again on a stable file", file=str(path))
