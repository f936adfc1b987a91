"""The unblinding log of an output folder: every opening of the box, appended, hash-chained (#13 item 5).

``OUT/unblinding.log`` holds one JSON line per unblinded run: time, keys, pid, the sha256 of the previous
line (``prev``) and of its own content (``hash``). No run ever removes or rewrites it; the provenance of
every later run records the chain head (``unblinding_log_head``), and a run refuses to start when the log
no longer contains the head recorded in the folder (deleted or truncated), so erasing it is never silent.
``na64ana verify`` checks the chain and the recorded head and reports every unblinding.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import OutputError

LOG = "unblinding.log"
GENESIS = "0" * 64


def _hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read(outdir: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """``(entries, problem)``: the entries of the log and the first broken link (None when intact)."""
    path = Path(outdir) / LOG
    if not path.exists():
        return [], None
    entries: list[dict[str, Any]] = []
    prev = GENESIS
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            e = json.loads(line)
        except ValueError:
            return entries, f"line {i} is not JSON"
        if not isinstance(e, dict) or e.get("prev") != prev or e.get("hash") != _hash(e):
            return entries, f"line {i} breaks the hash chain (edited, reordered or inserted)"
        entries.append(e)
        prev = e["hash"]
    return entries, None


def head(outdir: str | Path) -> str | None:
    entries, _ = read(outdir)
    return entries[-1]["hash"] if entries else None


def append(outdir: str | Path, keys: Iterable[str], *, stage: str = "run") -> str:
    """Record one unblinding of ``keys``; returns the new head."""
    outdir = Path(outdir)
    entries, problem = read(outdir)
    if problem:
        raise OutputError(f"the unblinding log is damaged ({problem}); it is never rewritten: restore it",
                          file=str(outdir / LOG))
    e: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stage": stage,
                         "keys": sorted(keys), "pid": os.getpid(),
                         "prev": entries[-1]["hash"] if entries else GENESIS}
    e["hash"] = _hash(e)
    with open(outdir / LOG, "a") as f:
        f.write(json.dumps(e, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return e["hash"]


def recorded_heads(outdir: str | Path) -> set[str]:
    """The chain heads recorded by the provenance of ``outdir`` (every stage)."""
    p = Path(outdir) / "provenance.json"
    try:
        stages = json.loads(p.read_text()).get("stages", {})
    except (OSError, ValueError, AttributeError):
        return set()
    return {str(r["unblinding_log_head"]) for r in stages.values()
            if isinstance(r, dict) and r.get("unblinding_log_head")}


def check(outdir: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """Entries, and a problem when the chain is broken or a head recorded in provenance is missing."""
    entries, problem = read(outdir)
    if problem:
        return entries, problem
    have = {e["hash"] for e in entries}
    missing = sorted(recorded_heads(outdir) - have)
    if missing:
        return entries, (f"provenance records unblinding {missing[0][:12]}... that the log no longer holds "
                         "(log deleted or truncated)")
    return entries, None
