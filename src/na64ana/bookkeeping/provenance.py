"""Provenance and output folders: every output folder says what made it, from what, and what it holds.

A folder written by na64ana carries a ``.na64ana`` marker. Writing into an existing folder is allowed
only when it is empty or carries the marker (our own earlier output); anything else is an
:class:`OutputError`, so na64ana never mixes its files into someone else's folder.

``DIR/provenance.json`` (layout in docs/interfaces.md) holds one record per stage that wrote into ``DIR``
(code version, dependency versions, inputs with sha256, blinding, executor, seeds, timings) and, written
last, the *manifest*: sha256 and size of every file of the folder. :func:`verify` re-hashes both, so a
results folder can be checked against what it was made from (``na64ana verify``).

What belongs to a folder (:func:`folder_files`): every file below it except ``provenance.json``, the
marker, ``logs/``, the chunk cache ``.cache/``, and subfolders with their own ``provenance.json`` (another
stage's folder, with its own manifest). So ``run/cutflows/`` belongs to ``run/``; ``results/run/`` does
not belong to ``results/``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..blinding import BLINDING_STATES, Blinding
from ..errors import OutputError
from ..processing.identity import IdentityStore
from . import unblinding

MARKER = ".na64ana"
PROVENANCE = "provenance.json"
FORMAT = 3  # provenance.json layout version (2: inputs as records, outputs manifest; 3: one "blinding")
EXCLUDED_DIRS = frozenset({"logs", ".cache"})  # per-invocation logs and the chunk cache are not outputs
LOCK = ".na64ana.lock"  # held by the run writing the folder (processing.stage.folder_lock)
EXCLUDED_FILES = frozenset({PROVENANCE, MARKER, LOCK})
_PACKAGES = ("na64ana", "coffea", "awkward", "uproot", "hist", "numpy", "pyhf", "scipy", "iminuit", "dask")
# One id per process: a stage recorded twice by one process (the library function, then its CLI adding
# fields) is merged into one record; a later process replaces it.
INVOCATION = uuid.uuid4().hex[:16]


def prepare_outdir(path: str | Path, *, stage: str) -> Path:
    """Create ``path`` (or reuse our own) and mark it. Raises OutputError for a foreign, non-empty folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError("exists and is not a folder", file=str(path))
    # logs/ alone does not make a folder foreign: the CLI opens its log before the stage claims the folder
    if path.is_dir() and any(p.name != "logs" for p in path.iterdir()) and not (path / MARKER).exists():
        raise OutputError(
            "folder exists with other content (not an na64ana output); choose another --out or empty it",
            file=str(path),
        )
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    stages = json.loads(marker.read_text()).get("stages", []) if marker.exists() else []
    if stage not in stages:
        stages.append(stage)
    marker.write_text(json.dumps({"tool": "na64ana", "stages": stages}) + "\n")
    return path


def prepare_results_dir(path: str | Path, *, stage: str) -> Path:
    """:func:`prepare_outdir` for a stage writing into a *results* folder (summary, report): a folder
    without our marker is accepted when stage outputs inside it carry theirs (a folder assembled from
    na64ana outputs, e.g. ``OUT/run``, ``OUT/background`` made stage by stage); else OutputError."""
    path = Path(path)
    if path.is_dir() and not (path / MARKER).exists() and any(path.glob(f"*/{MARKER}")):
        (path / MARKER).write_text('{"tool": "na64ana", "stages": []}\n')
    return prepare_outdir(path, stage=stage)


# ------------------------------------------------------------------------------------------------------
# Code and environment


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple[tuple[str, str], ...]:
    """The installed versions, read once per process (importlib.metadata scans every distribution on each
    call: ~0.5 ms a package, paid for every record otherwise)."""
    out = []
    for pkg in _PACKAGES:
        try:
            out.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            out.append((pkg, "not installed"))
    return tuple(out)


def versions() -> dict[str, str]:
    return dict(_installed_versions())


def package_version() -> str:
    try:
        return metadata.version("na64ana")
    except metadata.PackageNotFoundError:
        return __version__


@functools.cache  # once per process: the revision of the code this process loaded
def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished children, in MB (Linux: ru_maxrss kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


class Clock:
    """Wall time of one stage (started at construction) and the peak memory, for its ``metrics``."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def metrics(self, events: int | None = None, **extra: Any) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        out: dict[str, Any] = {"wall_time_s": round(wall, 3)}
        if events is not None:
            out["events"] = int(events)
            out["events_per_s"] = events / wall if wall > 0 else None
        out["peak_rss_MB"] = round(peak_rss_mb(), 1)
        return {**out, **extra}


def executor_info(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The executor fields of a record from a run's metrics (``execute.run``)."""
    return {k: metrics.get(k) for k in ("executor", "workers", "chunksize", "scheduler")}


# ------------------------------------------------------------------------------------------------------
# Hashing and folder contents

_HASHES: dict[tuple, str] = {}  # write-time cache (path, size, mtime, inode) -> sha256; never used by verify


def file_sha256(path: str | Path, *, cached: bool = True) -> str:
    """sha256 of a file. ``cached``: reuse a hash this process computed for the unchanged file (a stage
    hashes what it just wrote once, for its records and for the manifest); :func:`verify` never does."""
    path = Path(path)
    key = None
    if cached:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        if key in _HASHES:
            return _HASHES[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    digest = h.hexdigest()
    if key is not None:
        _HASHES[key] = digest
    return digest


def folder_files(folder: str | Path) -> list[str]:
    """Relative POSIX paths of the files belonging to ``folder`` (rule in the module docstring)."""
    folder = Path(folder)
    out: list[str] = []

    def walk(d: Path, top: bool) -> None:
        if not top and (d / PROVENANCE).exists():
            return  # another stage's folder: it has its own manifest
        for p in sorted(d.iterdir()):
            if p.is_dir():
                if p.name not in EXCLUDED_DIRS and not p.is_symlink():  # a linked folder is not ours
                    walk(p, False)
            elif p.name not in EXCLUDED_FILES:
                out.append(p.relative_to(folder).as_posix())

    if folder.is_dir():
        walk(folder, True)
    return out


def manifest(folder: str | Path, *, cached: bool = True) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "size"}}`` of every file belonging to ``folder``."""
    folder = Path(folder)
    return {rel: {"sha256": file_sha256(folder / rel, cached=cached), "size": (folder / rel).stat().st_size}
            for rel in folder_files(folder)}


def _digest(files: Mapping[str, Mapping[str, Any]]) -> str:
    canon = json.dumps({k: v["sha256"] for k, v in sorted(files.items())}, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def _relpath(p: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(p, base)).as_posix()
    except ValueError:  # another drive (Windows)
        return p.as_posix()


def describe_input(item: Any, base: str | Path) -> dict[str, Any]:
    """One input record: ``path`` (absolute), ``rel`` (from the provenance folder ``base``), ``sha256``,
    ``size`` and any fields the item brings (an :class:`~na64ana.processing.inputs.InputFile`:
    key, tree, eot, nevents,
    status, reason). A folder input (a run output read as a whole) gets ``type: "folder"``, its ``files``
    ``{rel: sha256}`` and ``sha256`` = digest of that list."""
    base = Path(base).resolve()
    if hasattr(item, "as_dict"):
        item = item.as_dict()
    rec: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {"path": str(item)}
    p = Path(rec["path"]).resolve()
    rec["path"] = str(p)
    rec["rel"] = _relpath(p, base)
    if p.is_dir():
        files = manifest(p)
        rec.update(type="folder", sha256=_digest(files), files={k: v["sha256"] for k, v in files.items()})
    elif p.is_file():
        rec.setdefault("type", "file")
        rec["size"] = p.stat().st_size
        if not rec.get("sha256") and rec.get("status", "ok") == "ok":
            rec["sha256"] = file_sha256(p)
    else:
        rec.setdefault("type", "file")
        rec.setdefault("sha256", None)
    return rec


# ------------------------------------------------------------------------------------------------------
# Records


def record(stage: str, **info: Any) -> dict[str, Any]:
    """A provenance record for one stage: what ran, with which code and environment (+ ``info``)."""
    return {
        "stage": stage,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "invocation": INVOCATION,
        "package": "na64ana",
        "package_version": package_version(),
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host_cpus": os.cpu_count(),
        "versions": versions(),
        **info,
    }


# Every record has these keys (null = not applicable, e.g. no executor for the limits stage).
STANDARD: dict[str, Any] = {"inputs": [], "blinding": None, "executor": None, "seeds": None, "metrics": {}}


def write(outdir: str | Path, stage: str, *, inputs: Iterable[Any] | Mapping[str, Any] | None = None,
          outputs: Iterable[str] | None = None, blinding: Blinding | None = None, executor: str | None = None,
          seeds: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
          pending: Mapping[str, bytes] | None = None, **info: Any) -> Path:
    """Record ``stage`` in ``outdir/provenance.json`` and refresh the folder's outputs manifest.

    Call it after the stage has written all its files: the manifest (sha256 + size of every file of the
    folder) is computed now, so it is the last thing written.

    - ``inputs``: files or folders read (paths), :class:`~na64ana.processing.inputs.InputFile`
      records or dicts with a
      ``path``; each is recorded by :func:`describe_input`. A mapping is recorded as given (parameters,
      not files; not verified).
    - ``outputs``: files (or folders) of ``outdir`` this stage wrote; default: the files added or changed
      since the folder's previous manifest.
    - ``blinding``: the one blinding field (:data:`na64ana.blinding.Blinding`): "blinded" (data read, no
      signal-box content in the outputs), "unblinded" (the box was opened) or "no-data" (simulation only).
      Not given: null, which the blinding audit reports as a record that does not say.
    - ``executor`` (+ ``workers``, ``chunksize``, ``scheduler`` in ``info``), ``seeds``, ``metrics``
      (``wall_time_s``, ``events``, ``events_per_s``, ``peak_rss_MB``; see :class:`Clock`).
    - ``pending``: ``{relative path: content}`` of files the caller writes right *after* this record (a
      completion flag such as ``run.complete``): listed in the manifest with the hash of that content, so
      the flag can come last and still be verified (missing flag = the run did not complete).

    One record per stage, the latest wins; a stage written twice by the same process is merged.
    """
    if blinding is not None and blinding not in BLINDING_STATES:
        raise ValueError(f"blinding must be one of {BLINDING_STATES}, got {blinding!r}")
    if "unblind" in info or "blinded" in info:
        raise TypeError("record the blinding as blinding='blinded'|'unblinded'|'no-data' (one field)")
    outdir = Path(outdir)
    path = outdir / PROVENANCE
    data = _read(path)
    fields: dict[str, Any] = {"blinding": blinding, "executor": executor,
                              "seeds": dict(seeds) if seeds is not None else None,
                              "metrics": dict(metrics) if metrics is not None else None}
    if fields["seeds"] is None and isinstance(info.get("seed"), int):
        fields["seeds"] = {"seed": info["seed"]}
    if inputs is not None:
        fields["inputs"] = (dict(inputs) if isinstance(inputs, Mapping)
                            else [describe_input(i, outdir) for i in inputs if i is not None])
    new = record(stage, **info, **{k: v for k, v in fields.items() if v is not None})
    old = data["stages"].get(stage)
    merged = isinstance(old, dict) and old.get("invocation") == INVOCATION
    rec = {**old, **new} if merged else new
    for k, default in STANDARD.items():
        rec.setdefault(k, default)
    previous = data.get("manifest", {}).get("files", {})
    files = manifest(outdir)
    if pending:
        for rel, content in pending.items():
            files[rel] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
        files = dict(sorted(files.items()))
    if outputs is not None:
        written = _expand(outputs, files)
    else:
        written = [k for k, v in files.items() if (previous.get(k) or {}).get("sha256") != v["sha256"]]
    rec["outputs"] = sorted(set(written) | (set(old.get("outputs") or []) & set(files) if merged else set()))
    data["stages"][stage] = rec
    data["format"] = FORMAT
    data["manifest"] = {"written_utc": rec["time_utc"], "stage": stage, "files": files}
    write_json(path, data)
    return path


def _expand(names: Iterable[str], files: Mapping[str, Any]) -> list[str]:
    out = []
    for n in names:
        n = str(n).rstrip("/")
        out += [k for k in files if k == n or k.startswith(n + "/")]
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"stages": {}}
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        return {"stages": {}}
    return data


def json_bytes(obj: Any) -> bytes:
    """The bytes :func:`write_json` writes for ``obj``."""
    return (json.dumps(obj, indent=1, default=_default) + "\n").encode()


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (tmp + rename): a crash never leaves a half-written file behind."""
    return write_bytes(path, json_bytes(obj))


def write_bytes(path: str | Path, content: bytes) -> Path:
    """Write a file atomically (tmp + rename); a failed write (disk full) leaves no tmp file behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(content)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ------------------------------------------------------------------------------------------------------
# Verification


@dataclass
class Problem:
    """One finding of :func:`verify`. ``level``: "error" (fails verify), "warning" or "info"."""

    level: str
    folder: str  # the provenance folder, relative to the verified root ("." = the root)
    file: str | None  # an output (relative to ``folder``) or an input as recorded (``rel``)
    message: str
    recorded: str | None = None
    actual: str | None = None
    kind: str = "output"  # output | input | provenance | code: sorts the root causes (outputs) first

    @property
    def detail(self) -> str:
        """The message with the recorded and actual values (hashes shortened to 12 characters)."""
        if not (self.recorded or self.actual):
            return self.message
        return f"{self.message} (recorded {_short(self.recorded)}, now {_short(self.actual)})"

    def __str__(self) -> str:
        if self.kind == "input":
            return f"{self.folder}: {self.file}: {self.detail}"
        where = "/".join(p for p in (self.folder if self.folder != "." else None, self.file) if p) or "."
        return f"{where}: {self.detail}"


def _short(s: str | None) -> str:
    return "-" if s is None else s[:12] if len(s) == 64 else s


@dataclass
class Verification:
    """What :func:`check` looked at and found."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    folders: int = 0
    inputs: int = 0
    outputs: int = 0
    fast: bool = False
    hashed: int = 0  # files read and hashed (all of them in the full mode)
    trusted: int = 0  # fast mode: files whose identity the identity store vouches for (not re-read)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


LEVELS = ("error", "warning", "info")
KINDS = ("provenance", "output", "input", "code")


def verify(folder: str | Path, *, allow_extra: bool = False, fast: bool = False) -> list[Problem]:
    """Check every provenance.json under ``folder`` against the files; see :func:`check`."""
    return check(folder, allow_extra=allow_extra, fast=fast).problems


def check(folder: str | Path, *, allow_extra: bool = False, fast: bool = False,
          store_dir: str | Path | None = None) -> Verification:
    """Re-hash every recorded input and every manifest output of every provenance.json under ``folder``.

    ``fast``: identity-based. A file whose identity (device, inode, size, mtime_ns, ctime_ns: any write,
    even one back-dating mtime, changes ctime) is the one the identity store
    (:mod:`na64ana.processing.identity`, ``store_dir`` or the user's cache) recorded with its sha256 is not
    read again; every other file is hashed and remembered, so the next fast check of an unchanged folder
    reads nothing. It trusts your identity store: check a folder or cache you do not control in full.

    Errors: an input missing or changed (sha256), an output missing or modified, a file in a stage folder
    that no manifest lists (a stray file: readers glob ``cutflows/*.json``, ``hists/*.json``,
    ``workspaces/*.json``, so it could enter plots, report and HEPData; ``allow_extra`` makes it a
    warning), an unreadable provenance.json. Warnings: a folder without manifest (older na64ana), a missing
    input that was skipped as bad. Info: the code version now differs from the recorded one.
    """
    root = Path(folder)
    v = Verification(root, fast=fast)
    if not root.is_dir():
        v.problems.append(Problem("error", ".", None, "not a folder", kind="provenance"))
        return v
    provs = [p for p in sorted(root.rglob(PROVENANCE))
             if not set(p.relative_to(root).parts[:-1]) & EXCLUDED_DIRS]
    if not provs:
        v.problems.append(Problem("error", ".", None, f"no {PROVENANCE} below this folder: nothing to check",
                                  kind="provenance"))
        return v
    hashes: dict[Path, str] = {}
    store = None
    if fast:
        store = IdentityStore(store_dir)

    def sha(p: Path) -> str:
        p = p.resolve()
        if p not in hashes:
            if store is not None:
                before = store.hashed
                hashes[p] = store.hash_file(p)[0]
                v.hashed += store.hashed - before
                v.trusted += store.hashed == before
            else:
                hashes[p] = file_sha256(p, cached=False)
                v.hashed += 1
        return hashes[p]

    code: dict[tuple[str | None, str | None], int] = {}
    for prov in provs:
        d = prov.parent
        name = _relpath(d, root) if d != root else "."
        try:
            data = json.loads(prov.read_text())
            stages = data["stages"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            v.problems.append(Problem("error", name, PROVENANCE, f"unreadable ({type(exc).__name__})",
                                      kind="provenance"))
            continue
        v.folders += 1
        for stage, rec in stages.items():
            ver = rec.get("package_version") or (rec.get("versions") or {}).get("na64ana")
            code[(ver, rec.get("git_commit"))] = code.get((ver, rec.get("git_commit")), 0) + 1
            if isinstance(rec.get("inputs"), list):
                for inp in rec["inputs"]:
                    v.inputs += 1
                    v.problems += _check_input(inp, d, name, stage, sha)
        man = data.get("manifest")
        if not isinstance(man, dict) or not isinstance(man.get("files"), dict):
            v.problems.append(Problem("warning", name, None, "no outputs manifest (written by an older "
                                      "na64ana): its outputs are not checked", kind="provenance"))
            continue
        for rel, m in man["files"].items():
            v.outputs += 1
            p = d / rel
            if not p.is_file():
                v.problems.append(Problem("error", name, rel, "output missing", recorded=m.get("sha256")))
            elif sha(p) != m.get("sha256"):
                v.problems.append(Problem("error", name, rel, "output modified", recorded=m.get("sha256"),
                                          actual=sha(p)))

        entries, broken = unblinding.check(d)
        if broken:
            v.problems.append(Problem("error", name, unblinding.LOG, broken, kind="provenance"))
        elif entries:
            v.problems.append(Problem("info", name, unblinding.LOG, f"the box was opened {len(entries)} "
                                      f"time(s) in this folder, last {entries[-1].get('time')} "
                                      f"({', '.join(entries[-1].get('keys') or [])})", kind="provenance"))
        for rel in folder_files(d):
            if rel == unblinding.LOG:
                continue
            if rel not in man["files"]:
                v.problems.append(Problem("warning" if allow_extra else "error", name, rel,
                                          "unexpected file (in no manifest)"))
    if store is not None:
        store.flush()
    v.problems += _code_info(code)
    v.problems.sort(key=lambda p: (LEVELS.index(p.level), KINDS.index(p.kind), p.folder, p.file or ""))
    return v


def _locate(inp: Mapping[str, Any], folder: Path) -> Path | None:
    """The recorded input now: relative to the provenance folder first (a moved or copied results folder
    still finds its own upstream files), else the absolute path."""
    rel, path = inp.get("rel"), inp.get("path")
    for cand in (folder / rel if rel else None, Path(path) if path else None):
        if cand is not None and cand.exists():
            return cand
    return None


def _check_input(inp: Any, folder: Path, name: str, stage: str, sha: Any) -> list[Problem]:
    if not isinstance(inp, Mapping):
        return []
    shown = inp.get("rel") or inp.get("path")
    p = _locate(inp, folder)
    if p is None:
        level = "error" if inp.get("sha256") else "warning"
        return [Problem(level, name, shown, f"input of stage '{stage}' missing", recorded=inp.get("sha256"),
                        kind="input")]
    if inp.get("type") == "folder":
        was = inp.get("files") or {}
        now = {rel: sha(p / rel) for rel in folder_files(p)}
        changed = [f"{r} modified" for r in was if r in now and now[r] != was[r]]
        changed += [f"{r} missing" for r in was if r not in now] + [f"{r} new" for r in now if r not in was]
        if not changed:
            return []
        more = f" (+{len(changed) - 1} more)" if len(changed) > 1 else ""
        digest = _digest({k: {"sha256": s} for k, s in now.items()})
        return [Problem("error", name, shown, f"input folder of stage '{stage}' changed: {changed[0]}{more}",
                        recorded=inp.get("sha256"), actual=digest, kind="input")]
    if not inp.get("sha256"):
        return []
    if p.is_dir():
        return [Problem("error", name, shown, f"input of stage '{stage}' is now a folder", kind="input")]
    now = sha(p)
    if now != inp["sha256"]:
        return [Problem("error", name, shown, f"input of stage '{stage}' changed", recorded=inp["sha256"],
                        actual=now, kind="input")]
    return []


def _code_info(code: Mapping[tuple[str | None, str | None], int]) -> list[Problem]:
    now = (package_version(), git_commit())
    out = []
    for (ver, commit), n in sorted(code.items(), key=lambda kv: str(kv[0])):
        if (ver, commit) != now:
            out.append(Problem("info", ".", None, f"{n} stage record(s) written by na64ana {ver} "
                               f"(git {commit}); now na64ana {now[0]} (git {now[1]})", kind="code"))
        if commit and commit.endswith("-dirty"):
            out.append(Problem("info", ".", None, f"{n} stage record(s) written from a modified checkout "
                               f"({commit}): the revision does not pin the code exactly", kind="code"))
    return out
