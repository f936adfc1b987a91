"""Run outputs (layout in docs/interfaces.md): write them atomically, read them back one piece at a time.

``DIR/cutflows/<key>.json|.md``, ``DIR/hists/<name>.json`` (one ``hist.Hist`` per file in the uhi JSON
serialization, readable alone; never a pickle, see :mod:`.safeio`), ``DIR/regions.json``,
``DIR/metrics.json``, ``DIR/provenance.json``, ``DIR/logs/``.

Completeness: a run first removes ``DIR/run.complete``, writes everything into ``DIR/.run-staging/``,
moves it into place, writes ``provenance.json`` (whose manifest hashes all of them and the flag to come),
then ``run.complete`` last. Readers refuse a folder without the flag, so a failed or interrupted run
(disk full while writing the provenance included) is never presented as complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import hist

from .. import blinding
from .. import datasets as ds
from ..bookkeeping import provenance, unblinding
from ..errors import OutputError
from ..records import Cutflow, RunOutput
from . import safeio
from .execute import Job, RunResult

COMPLETE = "run.complete"
STAGING = ".run-staging"
ITEMS = ("cutflows", "hists", "regions.json", "metrics.json")


# ------------------------------------------------------------------------------------------------------
# Records (pure functions of the processor output)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def cutflow_record(job: Job, output: Mapping[str, Any], *, blinded: bool,
                   rule: blinding.Rule = "invisible") -> dict[str, Any]:
    """The cut-flow JSON of one dataset key (rows: all events read, then one per cut); the rows the
    blinding ``rule`` places in the blinded region are null when ``blinded``."""
    sel = job.selection
    counts = output["cutflow"][job.key]
    events = [int(x) for x in counts["events"]]
    weighted = [float(x) for x in counts["weighted"]]
    hidden = blinding.hidden_cuts(sel, rule) if blinded else set()
    mc = job.kind == "mc"
    rows: list[dict[str, Any]] = []
    names = ["all", *(c.name for c in sel.cuts)]
    labels = ["all events read", *(c.label for c in sel.cuts)]
    prev = None
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        if name in hidden:
            rows.append({"cut": name, "label": label, "events": None, "weighted": None, "eff_abs": None,
                         "eff_rel": None, "blinded": True})
            prev = None
            continue
        ref = weighted[i] if mc else float(events[i])
        first = weighted[0] if mc else float(events[0])
        rows.append({"cut": name, "label": label, "events": events[i], "weighted": weighted[i],
                     "eff_abs": _ratio(ref, first), "eff_rel": _ratio(ref, prev) if i else 1.0,
                     "blinded": False})
        prev = ref
    rec = {"campaign": job.campaign, "run": job.run, "key": job.key, "sample": job.sample,
           "selection": sel.name, "selection_hash": sel.hash, "blinded": blinded, "kind": job.kind,
           "eot": job.eot, "rows": rows}
    if blinded:
        rec["note"] = blinding.note(sel, rule)
        rec["blinded_region"] = blinding.SignalBox(sel.box_ecal_max, sel.box_hcal_max).as_dict()
    return Cutflow.model_validate(rec).to_json()  # the documented record, checked as it is written


def regions_record(job: Job, output: Mapping[str, Any], *, blinded: bool,
                   rule: blinding.Rule = "invisible") -> dict[str, Any]:
    """Region counts of one key (the selection's regions, then those the processor derives); regions
    inside the blinded region of ``rule`` are null when blinded."""
    got = output["regions"][job.key]
    hidden = blinding.hidden_regions(job.selection, rule) if blinded else set()
    names = [n for n, _ in job.selection.regions]
    names += [n for n in got if n not in names]
    rec: dict[str, Any] = {n: (None if n in hidden else int(round(got[n][0]))) for n in names}
    if job.kind == "mc":
        rec["weighted"] = {n: (None if n in hidden else float(got[n][1])) for n in names}
    if job.selection.name == "dimuon" and job.eot > 0:
        rec["eot"] = job.eot
        rec["rate_per_eot"] = {n: _ratio(float(got[n][1]), job.eot) for n in names}
    return rec


def _fmt(x: float | int | None, kind: str = "n") -> str:
    if x is None:
        return "blinded"
    if kind == "eff":
        return f"{x:.4g}"
    if kind == "w":
        return f"{x:.6g}"
    return str(x)


def cutflow_markdown(rec: Mapping[str, Any]) -> str:
    """A cut-flow record as a markdown table (also what ``na64ana run`` prints)."""
    mc = rec["kind"] == "mc"
    head = f"### {rec['campaign']} / {rec['key']} ({rec['kind']}, selection {rec['selection']} " \
           f"{rec['selection_hash'][:12]})"
    cols = ["#", "cut", "label", "events", *(["weighted"] if mc else []), "eff abs", "eff rel"]
    lines = [head, ""]
    if rec.get("blinded"):
        lines += [f"*{rec['note']}*", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, r in enumerate(rec["rows"]):
        label = r["label"].replace("|", "\\|")  # e.g. "|t| < 2 ns" must not split the row
        cells = [str(i), r["cut"], label, _fmt(r["events"]), *([_fmt(r["weighted"], "w")] if mc else []),
                 _fmt(r["eff_abs"], "eff"), _fmt(r["eff_rel"], "eff")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------
# Writing


def begin(outdir: str | Path) -> Path:
    """Mark ``outdir`` as not complete before a run starts (and drop a stale staging folder)."""
    outdir = Path(outdir)
    (outdir / COMPLETE).unlink(missing_ok=True)
    shutil.rmtree(outdir / STAGING, ignore_errors=True)
    return outdir




def write_run(outdir: str | Path, result: RunResult, *, processor: str, unblind: bool,
              datasets_file: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Write all outputs of a run; return ``{key: cut-flow record}``. ``run.complete`` is written last."""
    _, problem = unblinding.check(outdir)  # before anything is touched: never erase an unblinding silently
    if problem:
        raise OutputError(f"unblinding log: {problem}; an opened box stays on record", file=str(outdir))
    outdir = begin(outdir)
    stage = outdir / STAGING
    (stage / "cutflows").mkdir(parents=True)
    (stage / "hists").mkdir()
    out = result.output
    rule = blinding.rule_of(processor)
    blinded_keys = set(out["blinded"])
    records, regions = {}, {}
    for job in result.jobs:
        blinded = job.key in blinded_keys
        if blinded != blinding.is_blinded(job.kind, unblind):
            raise RuntimeError(f"{job.key}: blinding state of the processor output is inconsistent")
        rec = records[job.key] = cutflow_record(job, out, blinded=blinded, rule=rule)
        provenance.write_json(stage / "cutflows" / f"{job.key}.json", rec)
        (stage / "cutflows" / f"{job.key}.md").write_text(cutflow_markdown(rec))
        regions[job.key] = regions_record(job, out, blinded=blinded, rule=rule)
    provenance.write_json(stage / "regions.json", regions)
    meta = blinding.hist_metadata({j.key: j.selection for j in result.jobs if j.key in blinded_keys}, rule)
    for name, h in sorted(out["hists"].items()):
        h.metadata = {"name": name, "processor": processor, **meta}
        safeio.write_hist(stage / "hists" / f"{name}{safeio.HIST_SUFFIX}", h)
    per_key = {k: int(v) for k, v in out["nevents"].items()}
    provenance.write_json(stage / "metrics.json", {**result.metrics, "events_per_key": per_key})
    for item in ITEMS:
        target = outdir / item
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(stage / item, target)
    shutil.rmtree(stage, ignore_errors=True)
    complete = provenance.json_bytes({"stage": "run", "keys": sorted(records)})
    dsha = ds.sha256sum(datasets_file) if datasets_file and Path(datasets_file).exists() else None
    hashes = {j.key: j.selection.hash for j in result.jobs}
    data = [j.key for j in result.jobs if j.kind == "data"]
    m = result.metrics
    opened = [j.key for j in result.jobs if j.kind == "data" and j.key not in blinded_keys]
    log_head = unblinding.append(outdir, opened) if opened else unblinding.head(outdir)
    # The manifest of provenance.json covers everything above and the run.complete written after it:
    # a folder is complete only once its provenance is written (#13: never run.complete without it).
    provenance.write(
        outdir, "run", inputs=run_inputs(result, datasets_file), outputs=[*ITEMS, COMPLETE],
        pending={COMPLETE: complete},
        blinding=blinding.state(all(k in blinded_keys for k in data) if data else None),
        **provenance.executor_info(m),
        metrics={k: v for k, v in m.items() if k not in ("executor", "workers", "chunksize", "scheduler")},
        processor=processor, blinding_rule=rule, blinded_keys=sorted(blinded_keys),
        selection=sorted({j.selection.name for j in result.jobs}), selection_hashes=hashes,
        selections={j.key: j.selection.as_dict() for j in result.jobs},
        datasets_file=str(datasets_file) if datasets_file else None, datasets_sha256=dsha,
        unblinding_log_head=log_head,
    )
    provenance.write_bytes(outdir / COMPLETE, complete)  # last
    return records


def run_inputs(result: RunResult, datasets_file: str | Path | None = None) -> list[dict[str, Any]]:
    """The inputs of a run for provenance: the datasets file, then one record per event file (key, path,
    tree, EOT, entries, sha256, status) as the input checks found it."""
    out: list[dict[str, Any]] = []
    if datasets_file and Path(datasets_file).exists():
        out.append({"path": str(datasets_file), "role": "datasets"})
    files = [f.as_dict() for f in result.inputs] or [
        {"key": j.key, "path": str(p), "tree": j.tree, "eot": eot}
        for j in result.jobs
        for p, eot in zip(j.files, j.file_eot or [cast(float, None)] * len(j.files), strict=True)]
    return out + [{**f, "role": "events"} for f in files]


# ------------------------------------------------------------------------------------------------------
# Reading


def is_complete(outdir: str | Path) -> bool:
    return (Path(outdir) / COMPLETE).exists()


def _require_complete(outdir: Path) -> None:
    if not is_complete(outdir):
        raise OutputError(f"not a complete run output (no {COMPLETE}: the run failed or is running)",
                          file=str(outdir))


def load_hist(outdir: str | Path, name: str) -> hist.Hist:
    """One histogram of a run output, without reading any other."""
    outdir = Path(outdir)
    _require_complete(outdir)
    refuse_legacy(outdir)
    path = outdir / "hists" / f"{name}{safeio.HIST_SUFFIX}"
    if not path.exists():
        raise OutputError(f"no histogram '{name}' (have: {', '.join(list_hists(outdir))})", file=str(path))
    try:
        return safeio.read_hist(path)
    except safeio.UnsafeContent as exc:
        raise OutputError(f"not a histogram in the safe format ({exc})", file=str(path)) from None


def refuse_legacy(outdir: str | Path) -> None:
    """OutputError if ``outdir`` holds pickled histograms (written before the safe format): never read."""
    legacy = sorted((Path(outdir) / "hists").glob(f"*{safeio.LEGACY_HIST_SUFFIX}"))
    if legacy:
        raise OutputError(safeio.LEGACY_MESSAGE, file=str(legacy[0]))


def list_hists(outdir: str | Path) -> list[str]:
    return sorted(p.stem for p in (Path(outdir) / "hists").glob(f"*{safeio.HIST_SUFFIX}"))


def load_cutflow(outdir: str | Path, key: str) -> dict[str, Any]:
    outdir = Path(outdir)
    _require_complete(outdir)
    path = outdir / "cutflows" / f"{key}.json"
    if not path.exists():
        raise OutputError("no such cut flow", file=str(path))
    return json.loads(path.read_text())


def load_regions(outdir: str | Path) -> dict[str, Any]:
    outdir = Path(outdir)
    _require_complete(outdir)
    return json.loads((outdir / "regions.json").read_text())


def load_run(outdir: str | Path) -> RunOutput:
    """A complete run output as typed records (cut flows and region counts of every key)."""
    return RunOutput.load(outdir)
