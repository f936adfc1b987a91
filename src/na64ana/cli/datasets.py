"""'na64ana datasets add': list real ntuples in a datasets file, with their event counts and checksums.

  na64ana datasets add FILE [FILE ...] --campaign C --run R [--datasets datasets.json]

Each file is opened (the campaign's tree, or --tree), its number of entries and its sha256 are filled in,
and its path is written relative to the datasets file. The EOT of the run is shared among the run's
campaign-sample data files in proportion to their events (or give --eot per file). Every unreadable file
is reported in one error; nothing is written unless every file is good.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Literal, cast


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="edit a datasets file (add real ntuples)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="<action>", required=True)
    a = actions.add_parser("add", help="add ntuples to a run, with event counts and sha256 filled in",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("files", nargs="+", metavar="FILE", help="ROOT ntuples to add")
    a.add_argument("--datasets", default="datasets.json", help="datasets file to edit (default: %(default)s)")
    a.add_argument("--campaign", required=True, help="campaign the files belong to")
    a.add_argument("--run", required=True, help="run the files belong to")
    a.add_argument("--tree", default=None, help="tree name in the files (default: the campaign's tree)")
    a.add_argument("--kind", choices=("data", "mc"), default="data",
                   help="data or simulation (default: data)")
    a.add_argument("--sample", default="campaign",
                   help="sample of the files: campaign (the skim the result is about), trigger, signal, "
                   "dimuon_mc, ... (default: %(default)s)")
    a.add_argument("--eot", type=float, default=None, metavar="N",
                   help="EOT each file represents (default: the run's EOT shared by events among its "
                   "campaign-sample data files; 0 for MC)")
    a.set_defaults(func=run_add)


def run_add(args: argparse.Namespace) -> int:
    added = add(args.files, args.datasets, campaign=args.campaign, run=args.run, tree=args.tree,
                kind=args.kind, sample=args.sample, eot=args.eot)
    print(f"added {len(added)} file(s) to {args.datasets} ({args.campaign}, run {args.run})")
    return 0


def add(files: list[str], datasets_file: str | Path, *, campaign: str, run: str, tree: str | None = None,
        kind: str = "data", sample: str = "campaign", eot: float | None = None) -> list[str]:
    """Add ``files`` to ``campaign``/``run`` of ``datasets_file`` (rewritten in place); returns their paths
    as written. InputError for a bad campaign/run/option, DataError listing every unreadable file."""
    import uproot

    from .. import datasets as ds
    from ..errors import DataError, InputError

    if eot is not None and eot < 0:
        raise InputError("must be >= 0", field="--eot")
    doc = ds.load(datasets_file)
    camp = doc.campaigns.get(campaign)
    if camp is None:
        raise InputError(f"no campaign {campaign!r} (have: {', '.join(doc.campaigns)})",
                         file=str(datasets_file), field="--campaign")
    entry = camp.runs.get(run)
    if entry is None:
        raise InputError(f"no run {run!r} in campaign {campaign} (have: {', '.join(camp.runs)})",
                         file=str(datasets_file), field="--run")
    tree = tree or camp.tree
    base = Path(datasets_file).resolve().parent
    known = {(ds.resolve_path(f, datasets_file)).resolve() for f in entry.files}
    new, problems = [], []
    for name in files:
        path = Path(name).resolve()
        if path in known:
            problems.append(f"{name}: already listed in run {run}")
            continue
        try:
            with uproot.open(path) as fh:
                if tree not in fh:
                    have = ", ".join(k.split(";")[0] for k in fh.keys()) or "nothing"
                    problems.append(f"{name}: no tree {tree!r} (has: {have})")
                    continue
                nevents = int(fh[tree].num_entries)
        except Exception as exc:  # noqa: BLE001 - every bad file goes into the one error below
            why = " ".join(str(exc).split())[:120]
            problems.append(f"{name}: not a readable ROOT file ({type(exc).__name__}: {why})")
            continue
        rel = os.path.relpath(path, base)
        new.append(ds.FileEntry(path=rel if not rel.startswith("..") else str(path), tree=tree,
                                nevents=nevents, eot=eot if eot is not None else 0.0,
                                sha256=ds.sha256sum(path), kind=cast(Literal["data", "mc"], kind),
                                sample=sample))
    if problems:
        raise DataError(f"{len(problems)} file(s) not added: " + "; ".join(problems))
    entry.files.extend(new)
    if eot is None and kind == "data" and sample == "campaign":
        shared = [f for f in entry.files if f.kind == "data" and f.sample == "campaign"]
        total = sum(f.nevents for f in shared)
        for f in shared:
            f.eot = entry.eot * f.nevents / total if total else entry.eot / len(shared)
    doc = ds.validate(doc.model_dump(mode="json"), file=str(datasets_file))
    ds.dump(doc, datasets_file)
    return [f.path for f in new]
