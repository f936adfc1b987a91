"""na64ana verify RESULTS: check a results folder against what it was made from.

Walks every provenance.json under RESULTS and re-hashes (sha256) every recorded input that still exists
and every file of every outputs manifest. Errors: an input missing or changed, an output missing or
modified, a file no manifest lists (--allow-extra makes those warnings). The code version now vs the
recorded one is shown as information. --fast checks by file identity instead of re-reading: a file
whose identity (inode, size, mtime, ctime) your identity store already vouches for is not hashed again
(the others are, and are remembered); the default full mode re-hashes everything.
Then the blinding audit (na64ana.bookkeeping.audit): in a blinded
folder any signal-box content in an output (histogram box bins, cut-flow rows, observed counts, report
tables, logs, HEPData, figure metadata) or a stage record that does not say whether the box was opened is
an error; an explicitly unblinded folder is shown as information. Exit 0 when everything matches, 3
otherwise. Nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a results folder against its recorded inputs and outputs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="?", default=None,
                   help="results folder (any folder holding provenance.json files)")
    p.add_argument("--results", dest="results_opt", metavar="DIR", default=None,
                   help="the results folder, as an option (same as the positional argument)")
    p.add_argument("--fast", action="store_true",
                   help="identity-based check: do not re-hash files whose identity (inode, size, mtime, "
                        "ctime) the identity store already vouches for (default: re-hash everything)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print only errors and warnings (nothing when everything matches)")
    p.add_argument("--allow-extra", action="store_true",
                   help="files listed in no manifest are warnings instead of errors")
    p.add_argument("--no-blinding-scan", action="store_true",
                   help="skip the signal-box audit of the outputs (provenance checks only)")
    p.set_defaults(func=run)


def table(problems: list) -> str:
    """The problems as a fixed-width table: level, folder, file (long paths cut from the left), what."""
    rows = [(p.level.upper(), p.folder, p.file or "-", p.detail) for p in problems]
    head = ("level", "folder", "file", "what")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    w[2] = min(w[2], 48)
    lines = []
    for r in [head, *rows]:
        f = r[2] if len(r[2]) <= w[2] else "..." + r[2][-(w[2] - 3):]
        lines.append(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {f:<{w[2]}}  {r[3]}")
    return "\n".join(lines)


def blinding_problems(results: str) -> tuple[list, int]:
    """The blinding audit's findings as verify problems, and the number of files it scanned.

    A leak is an error; a record that does not state the blinding, or a folder mixing blinded and
    unblinded stages, is a warning (shown, not failing: e.g. limits from a published summary beside a
    blinded run); an explicitly unblinded folder is information."""
    from ..bookkeeping import audit
    from ..bookkeeping.provenance import Problem

    res = audit.scan(results)
    level = {"leak": "error", "unsafe": "error", "provenance": "warning", "unblinded": "info"}
    return [Problem(level.get(f.kind, "error"), "blinding", f.file, f"{f.kind} [{f.where}]: {f.what}",
                    kind="provenance" if f.kind != "leak" else "output")
            for f in res.findings], len(res.scanned)


def run(args: argparse.Namespace) -> int:
    from ..bookkeeping import provenance
    from ..errors import InputError

    if args.results and args.results_opt and args.results != args.results_opt:
        raise InputError("give the results folder once (positional or --results)", field="--results")
    args.results = args.results or args.results_opt
    if not args.results:
        raise InputError("which results folder? (na64ana verify DIR or --results DIR)", field="--results")
    v = provenance.check(args.results, allow_extra=args.allow_extra, fast=args.fast)
    problems = list(v.problems)
    scanned = 0
    if not args.no_blinding_scan:
        found, scanned = blinding_problems(args.results)
        problems += found
    shown = [p for p in problems if not (args.quiet and p.level == "info")]
    if not args.quiet:
        audit = f", {scanned} outputs audited for signal-box content" if not args.no_blinding_scan else ""
        how = (f"fast: {v.hashed} file(s) hashed, {v.trusted} unchanged by identity" if v.fast
               else f"{v.hashed} file(s) re-hashed")
        print(f"verify {args.results}: {v.folders} provenance.json, {v.inputs} inputs, {v.outputs} outputs "
              f"checked ({how}){audit}")
    if shown:
        print(table(shown))
    errors = [p for p in problems if p.level == "error"]
    if errors:
        sys.stdout.flush()
        first = errors[0]
        raise DataError(f"{len(errors)} error(s), first: {first}", file=str(args.results))
    if not args.quiet:
        warn = sum(p.level == "warning" for p in problems)
        blind = "" if args.no_blinding_scan else "; no signal-box content found"
        print("OK: every input and output matches its record" + blind
              + (f" ({warn} warning(s))" if warn else ""))
    return 0
