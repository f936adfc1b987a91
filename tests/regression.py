"""CI regression of the cut flows: a small seeded simulated sample -> processor -> compare to references.

The reference (``tests/references/cutflow_reference.json``) holds, per dataset key, the cut-flow rows
(events and weighted sums), the region counts and the selection hash, for ~1e5 simulated events of the
prl2019 runs I-III (skim level, fixed seeds, unblinded: it is simulation) plus a small MC sample with
random weights that exercises the weighted path. Counts must match exactly, weighted sums within a
relative tolerance; a mismatch is reported as a readable per-row diff.

After an *intended* change (selection, simulator, processor) regenerate and commit the reference::

    python tests/regression.py --write      # or: make regen-refs

``python tests/regression.py`` (no option) recomputes and compares, exit code 1 on differences.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from na64ana import datasets as ds
from na64ana.errors import InputError, from_validation
from na64ana.processing import execute, outputs
from na64ana.simulation import write_tree
from na64ana.simulation.generate import generate_events

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "references" / "cutflow_reference.json"
CAMPAIGN = "prl2019"
RUNS = ("I", "II", "III")
EOT_PER_RUN = 2.0e9  # ~3.7e4 skim events per run
MC_EVENTS = 20_000
SEED = 20190901
RTOL = 1e-9
CHUNKSIZE = 25_000  # several chunks per file: exercises the merge


def _write_tree(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_tree(path, arrays)


def build_sample(workdir: str | Path, datasets_file: str | Path = REPO / "datasets.json") -> Path:
    """Generate the seeded sample into ``workdir``; return the datasets.json that lists it."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    dsets = ds.load(datasets_file)
    camp = dsets.campaigns[CAMPAIGN]
    for i, name in enumerate(RUNS):
        run = camp.runs[name]
        rng = np.random.default_rng([SEED, i])
        arrays = generate_events(run, campaign=CAMPAIGN, run_name=name, level="skim", rng=rng,
                                 eot=EOT_PER_RUN)
        path = workdir / f"run{name}.root"
        _write_tree(path, arrays)
        files = [ds.FileEntry(path=path.name, nevents=len(arrays["ecal_e"]), eot=EOT_PER_RUN, seed=SEED + i)]
        if name == RUNS[-1]:
            mc = generate_events(run, campaign=CAMPAIGN, run_name=name, level="trigger", rng=rng,
                                 n_events=MC_EVENTS)
            mc["weight"] = rng.uniform(0.5, 1.5, MC_EVENTS).astype(np.float32)  # exercise weighted sums
            _write_tree(workdir / "mc_weighted.root", mc)
            files.append(ds.FileEntry(path="mc_weighted.root", nevents=MC_EVENTS, eot=0.0, kind="mc",
                                      sample="mc_weighted", seed=SEED + 100))
        camp.runs[name] = run.model_copy(update={"files": files})
    out = workdir / "datasets.json"
    ds.dump(dsets, out)
    return out


def summarise(result: execute.RunResult) -> dict[str, Any]:
    """What the reference holds: per key, cut-flow rows, region counts and the selection hash."""
    keys = {}
    for job in result.jobs:
        rec = outputs.cutflow_record(job, result.output, blinded=False)
        regs = outputs.regions_record(job, result.output, blinded=False)
        keys[job.key] = {
            "kind": job.kind,
            "selection_hash": job.selection.hash,
            "rows": [{k: r[k] for k in ("cut", "events", "weighted")} for r in rec["rows"]],
            "regions": {k: v for k, v in regs.items() if k != "weighted"},
            "regions_weighted": regs.get("weighted"),
        }
    return {"campaign": CAMPAIGN, "seed": SEED, "eot_per_run": EOT_PER_RUN, "keys": keys}


def compute(workdir: str | Path, *, executor: str = "iterative",
            chunksize: int = CHUNKSIZE) -> dict[str, Any]:
    """Build the sample in ``workdir`` and run the invisible processor over it (unblinded)."""
    dsets = build_sample(workdir)
    jobs = execute.plan(dsets, campaign=CAMPAIGN, samples=["campaign", "mc_weighted"])
    return summarise(execute.run(jobs, "invisible", executor=executor, chunksize=chunksize, unblind=True))


def _close(a: Any, b: Any, rtol: float) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.isclose(a, b, rtol=rtol, atol=0.0))


def compare(ref: dict[str, Any], got: dict[str, Any], *, rtol: float = RTOL) -> list[str]:
    """Readable differences (empty when equal): counts exact, weighted sums within ``rtol``."""
    diffs = []
    rk, gk = ref["keys"], got["keys"]
    for k in sorted(set(rk) ^ set(gk)):
        diffs.append(f"{k}: {'missing' if k in rk else 'unexpected'} dataset")
    for k in sorted(set(rk) & set(gk)):
        r, g = rk[k], gk[k]
        if r["selection_hash"] != g["selection_hash"]:
            old, new = r["selection_hash"][:12], g["selection_hash"][:12]
            diffs.append(f"{k}: selection changed (hash {old} -> {new})")
        rrows = {x["cut"]: x for x in r["rows"]}
        grows = {x["cut"]: x for x in g["rows"]}
        if list(rrows) != list(grows):
            diffs.append(f"{k}: cuts {list(rrows)} -> {list(grows)}")
        for cut in [c for c in rrows if c in grows]:
            a, b = rrows[cut], grows[cut]
            if a["events"] != b["events"]:
                diffs.append(f"{k}: row {cut!r}: events {a['events']} -> {b['events']}")
            if not _close(a["weighted"], b["weighted"], rtol):
                diffs.append(f"{k}: row {cut!r}: weighted {a['weighted']!r} -> {b['weighted']!r}")
        for reg in sorted(set(r["regions"]) | set(g["regions"])):
            a, b = r["regions"].get(reg), g["regions"].get(reg)
            if a != b:
                diffs.append(f"{k}: region {reg!r}: {a} -> {b}")
        rw, gw = r.get("regions_weighted") or {}, g.get("regions_weighted") or {}
        for reg in sorted(set(rw) | set(gw)):
            if not _close(rw.get(reg), gw.get(reg), rtol):
                diffs.append(f"{k}: region {reg!r} weighted: {rw.get(reg)!r} -> {gw.get(reg)!r}")
    return diffs


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cut: str = Field(min_length=1)
    events: StrictInt = Field(ge=0)
    weighted: float | None


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["data", "mc"]
    selection_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: list[_Row] = Field(min_length=1)
    regions: dict[str, StrictInt | None]
    regions_weighted: dict[str, float | None] | None = None


class _Reference(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str
    seed: int
    eot_per_run: float
    keys: dict[str, _Key] = Field(min_length=1)


def load_reference(path: str | Path = REFERENCE) -> dict[str, Any]:
    """The stored reference, checked against the layout :func:`summarise` writes.

    Why checked: a truncated or hand-broken reference must be an :class:`InputError` naming the file and
    the field -- not a KeyError traceback inside :func:`compare`, and never a silent pass (an empty
    ``keys`` would compare nothing)."""
    path = Path(path)
    if not path.exists():
        raise InputError("reference file not found (write it: python tests/regression.py --write)",
                         file=str(path))
    raw = ds.read_json(path)
    try:
        _Reference.model_validate(raw)
    except ValidationError as err:
        raise from_validation(err, file=str(path)) from None
    return raw


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tests/regression.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="regenerate the reference file")
    p.add_argument("--reference", default=str(REFERENCE), help="reference file (default: %(default)s)")
    args = p.parse_args(argv)
    ref = None
    if not args.write:
        try:  # before the (slow) recomputation: a broken reference fails at once
            ref = load_reference(args.reference)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return InputError.exit_code
    with tempfile.TemporaryDirectory(prefix="na64ana-regression-") as tmp:
        got = compute(tmp)
    if ref is None:
        Path(args.reference).parent.mkdir(parents=True, exist_ok=True)
        Path(args.reference).write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.reference} ({len(got['keys'])} datasets)")
        return 0
    diffs = compare(ref, got)
    for d in diffs:
        print(d)
    print("cut flows match the reference" if not diffs else f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
