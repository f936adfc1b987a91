"""Provenance and output folders: every output folder says what made it, and foreign folders are refused.

A folder written by na64ana carries a ``.na64ana`` marker. Writing into an existing folder is allowed
only when it is empty or carries the marker (our own earlier output); anything else is an
:class:`OutputError`, so na64ana never mixes its files into someone else's folder.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import OutputError

MARKER = ".na64ana"
_PACKAGES = ("na64ana", "coffea", "awkward", "uproot", "hist", "numpy", "pyhf", "scipy", "iminuit", "dask")


def prepare_outdir(path: str | Path, *, stage: str) -> Path:
    """Create ``path`` (or reuse our own) and mark it. Raises OutputError for a foreign, non-empty folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError("exists and is not a folder", file=str(path))
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).exists():
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


def versions() -> dict[str, str]:
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


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


def record(stage: str, **info: Any) -> dict[str, Any]:
    """A provenance record for one stage: what ran, with which inputs, code and environment."""
    return {
        "stage": stage,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host_cpus": os.cpu_count(),
        "versions": versions(),
        **info,
    }


def write(outdir: str | Path, stage: str, **info: Any) -> Path:
    """Merge a stage record into ``outdir/provenance.json`` (one entry per stage, latest wins)."""
    path = Path(outdir) / "provenance.json"
    data = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    data["stages"][stage] = record(stage, **info)
    write_json(path, data)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (tmp + rename): a crash never leaves a half-written file behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_default) + "\n")
    tmp.replace(path)
    return path


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
