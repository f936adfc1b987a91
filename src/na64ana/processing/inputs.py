"""Input files before processing: is each one usable, what is it (sha256, entries, EOT)?

A bad file must be a :class:`DataError` naming the file (and the branch or tree) before any processing
starts, not a failure deep inside a worker after minutes of work. The records returned by
:func:`check_inputs` are the one description of the inputs of a run: the chunk cache keys on their sha256
and provenance.json lists them (path, sha256, entries, EOT, status). The sha256 comes from the identity
store (:mod:`.identity`: hashed once per file identity); two listed files with the same content are an
InputError even when datasets.json records no sha256; :func:`confirm_unchanged` re-checks the identities
after processing.

Branch types: every branch a run reads must be a flat numeric scalar of the contract's *kind*
(:func:`na64ana.contract.branch_types`): any float width for a float branch (float32 and float64 are both
fine: the cuts compare in the file's precision), any signed or unsigned integer width for an integer
branch. Integer-for-float (an energy stored as int32 is ADC counts or a rounded unit, not GeV),
float-for-integer, bool, fixed-size arrays, jagged, string and object branches are refused. With a branch
map the check applies to the mapped branch in the file.

Bad files (``on_bad="skip"``): see :func:`check_inputs`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import uproot

from .. import contract
from .. import selection as selmod
from ..errors import DataError, InputError
from .identity import Identity, IdentityStore, confirm

if TYPE_CHECKING:
    from .execute import Job

log = logging.getLogger(__name__)


@dataclass
class InputFile:
    """One listed input file of a run and what the checks found."""

    key: str  # dataset key (run, or run-sample[-mass]) the file belongs to
    path: str
    tree: str
    eot: float
    nevents: int = 0  # entries found in the file (0 when skipped)
    sha256: str | None = None
    status: str = "ok"  # "ok" or "skipped"
    reason: str | None = None  # why it was skipped
    kind: str = "data"  # the dataset kind datasets.json declares ("data" or "mc")
    #: what the file is by content: "mc" when it carries the simulation truth branches (MC_TRUTH), else "data"
    content: str | None = None
    #: what os.stat said when the file was checked and hashed (not part of the record: see identity.py)
    identity: Identity | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("identity")
        return d


def _kind(dtype: np.dtype) -> str:
    return "float" if dtype.kind == "f" else "integer" if dtype.kind in "iu" else dtype.name


def check_branch_type(branch: Any, canonical: str) -> str | None:
    """Why ``branch`` cannot be read as contract branch ``canonical`` (None when it can; rule in the module
    docstring)."""
    want = contract.BY_NAME[canonical].dtype if canonical in contract.BY_NAME else None
    if want is None:
        return None
    interp = branch.interpretation
    have = getattr(interp, "to_dtype", None) if isinstance(interp, uproot.AsDtype) else None
    typename = getattr(branch, "typename", type(interp).__name__)
    if have is None or have.shape != () or have.fields is not None:
        return f"'{typename}' is not a flat numeric branch (contract: {want} scalar)"
    if _kind(have) != _kind(np.dtype(want)):
        return f"dtype {have.name} is not of {_kind(np.dtype(want))} kind (contract {want})"
    return None


class MissingBranches(DataError):
    """Branches missing from one file (all of them, not only the first): ``missing`` lists the names."""

    def __init__(self, missing: list[str], message: str, *, file: str | None = None):
        self.missing = missing
        super().__init__(message, file=file, field=missing[0])


def check_file(path: str | Path, tree: str, branches: Iterable[str],
               branch_map: dict[str, str] | None = None) -> int:
    """Number of entries of ``tree`` in ``path``; DataError naming the file (and branch) if unusable.

    ``branches`` are canonical names: each must exist (after the branch map) with a contract-compatible type.
    Every missing branch of the file is named at once (:class:`MissingBranches`).
    """
    return _open_checked(path, tree, branches, branch_map)[0]


def _open_checked(path: str | Path, tree: str, branches: Iterable[str],
                  branch_map: dict[str, str] | None = None) -> tuple[int, set[str]]:
    """:func:`check_file`, also returning the branch names the tree has."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises many types for non-ROOT input
        why = " ".join(str(exc).split())  # uproot's messages span lines; errors are one line
        raise DataError(f"not a readable ROOT file ({type(exc).__name__}: {why})", file=str(path)) from None
    with f:
        size = os.path.getsize(path)
        if f.file.fEND > size:
            raise DataError(f"truncated ROOT file ({size} of {f.file.fEND} bytes)", file=str(path))
        try:
            t = f[tree]
        except Exception:
            raise DataError(f"no tree '{tree}' (keys: {f.keys(cycle=False)})", file=str(path),
                            field=tree) from None
        if not isinstance(t, uproot.TTree):
            raise DataError(f"'{tree}' is not a TTree", file=str(path), field=tree)
        have = set(t.keys())
        branches = list(branches)
        missing = [(contract.resolve(b, branch_map), b) for b in branches]
        missing = [(name, b) for name, b in missing if name not in have]
        if missing:
            shown = ", ".join(f"'{name}'" + (f" (canonical '{b}')" if name != b else "")
                              for name, b in missing)
            raise MissingBranches([name for name, _ in missing],
                                  f"missing branch{'es' if len(missing) > 1 else ''} {shown}", file=str(path))
        for b in branches:
            name = contract.resolve(b, branch_map)
            canon = f" (canonical '{b}')" if name != b else ""
            bad = check_branch_type(t[name], b)
            if bad:
                raise DataError(f"branch '{name}'{canon}: {bad}", file=str(path), field=name)
        if t.num_entries == 0:
            raise DataError(f"empty tree '{tree}'", file=str(path), field=tree)
        return int(t.num_entries), have


ON_BAD = ("fail", "skip")


def check_inputs(jobs: Iterable[Job], extra_variables: Iterable[str] = (), *,
                 on_bad: str = "fail") -> list[InputFile]:
    """Check every file of every job; one record per file (entries and sha256 filled in).

    ``on_bad="fail"`` raises the first bad file's DataError. ``on_bad="skip"`` leaves a bad file out: its
    record gets status "skipped" and the one-line reason, a WARNING is logged, and the file is removed from
    its job together with its EOT (``job.eot``, the normalisation every output carries, and
    ``job.file_eot``), so nothing downstream normalises skipped events. Refused (DataError): skipping a
    file whose EOT is 0/unknown (the normalisation could not be corrected: a data file without EOT, or MC
    normalised by its weights), and a job whose every file is bad (nothing left to process).
    """
    if on_bad not in ON_BAD:
        raise InputError(f"unknown policy '{on_bad}' (choose from {', '.join(ON_BAD)})",
                         field="--on-bad-file")
    store = IdentityStore()
    try:
        return _check_all(jobs, tuple(extra_variables), on_bad, store)
    finally:
        store.flush()  # hashes taken before a failure are kept too


#: branches every simulated file carries (contract, mc_only): a file without them is data
MC_TRUTH = ("truth_process", "truth_e0")


def _identity_or_none(path: str | Path) -> Identity | None:
    try:
        return Identity.of(path)
    except OSError:
        return None  # check_file reports it (file not found, ...)


def _check_all(jobs: Iterable[Job], extra: tuple[str, ...], on_bad: str,
               store: IdentityStore) -> list[InputFile]:
    records: list[InputFile] = []
    by_sha: dict[tuple[str, str], InputFile] = {}  # (campaign, sha256) -> first file with that content
    missing: list[MissingBranches] = []  # fail mode: every file's missing branches, reported together
    for j in jobs:
        needed = selmod.branches_for((*j.selection.variables, *extra))
        if j.kind == "mc":  # data is data by content (#13 item 4): a simulated file carries its truth
            needed += ["weight", *MC_TRUTH]
            moved = sorted(b for b in ("weight", *MC_TRUTH) if j.branch_map.get(b, b) != b)
            if moved:
                raise InputError(f"'{j.key}' is declared simulation (kind \"mc\") but the branch map "
                                 f"supplies its simulation-only branch '{moved[0]}' from "
                                 f"'{j.branch_map[moved[0]]}': a "
                                 "file is simulation only if it carries the truth branches itself",
                                 field=f"branch_map.{moved[0]}")
        kept: list[tuple[Path, float]] = []
        mine: list[InputFile] = []
        for p, eot in zip(j.files, j.file_eot, strict=True):
            try:
                before = _identity_or_none(p)
                n, have = _open_checked(p, j.tree, needed, j.branch_map)
                sha, ident = store.hash_file(p, expect=before)
            except DataError as exc:
                if on_bad == "fail" and isinstance(exc, MissingBranches):
                    missing.append(exc)  # go on: name the missing branches of every file in one error
                    continue
                if on_bad == "fail":
                    raise
                if not eot > 0:
                    raise DataError(f"cannot be skipped: its EOT is {eot:g} in datasets.json, so the "
                                    f"normalisation of '{j.key}' could not be corrected ({exc.message})",
                                    file=exc.file or str(p), field=exc.field) from None
                mine.append(InputFile(j.key, str(p), j.tree, eot, 0, None, "skipped", str(exc), kind=j.kind))
                continue
            first = by_sha.get((j.campaign, sha))
            if first is not None:
                # datasets.check_files catches the same path and a recorded sha256; this is a copy under
                # another name without one (hashed on first sight).
                raise InputError(f"same content (sha256 {sha[:12]}...) as {first.path} (dataset "
                                 f"'{first.key}'): a file listed twice would count its events and EOT twice",
                                 file=str(p), field=j.key)
            kept.append((Path(p), eot))
            content = "mc" if all(contract.resolve(b, j.branch_map) in have for b in MC_TRUTH) else "data"
            rec = InputFile(j.key, str(p), j.tree, eot, n, sha, kind=j.kind, content=content, identity=ident)
            by_sha[(j.campaign, sha)] = rec
            mine.append(rec)
        skipped = [r for r in mine if r.status == "skipped"]
        if missing and on_bad == "fail":
            records.extend(mine)
            continue
        if not kept:
            raise DataError(f"every input file of run '{j.run}' (dataset '{j.key}') is bad, nothing to "
                            f"process; first: {skipped[0].reason}", field=j.key)
        if skipped:
            j.files = [p for p, _ in kept]
            j.file_eot = [e for _, e in kept]
            j.eot -= sum(r.eot for r in skipped)
            for r in skipped:
                log.warning("skipped %s (%s: %.4g EOT subtracted, %.4g EOT left): %s", r.path, j.key, r.eot,
                            j.eot, r.reason)
        records.extend(mine)
    if missing:
        raise missing_branches_error(missing)
    return records


def missing_branches_error(missing: list[MissingBranches]) -> DataError:
    """One DataError listing every file with its missing branches: ``file -> a, b; file2 -> c``."""
    listing = "; ".join(f"{m.file} -> {', '.join(m.missing)}" for m in missing)
    if len(missing) == 1:
        return DataError(missing[0].message, file=missing[0].file, field=missing[0].field)
    return DataError(f"missing branches in {len(missing)} files: {listing}", file=missing[0].file,
                     field=missing[0].field)


def confirm_unchanged(records: Iterable[InputFile]) -> None:
    """After processing: DataError naming the first usable input whose identity (inode, size, mtime)
    changed since it was checked and hashed (see :mod:`.identity`): its events may not be the hashed ones."""
    confirm((r.path, r.identity) for r in records if r.status == "ok" and r.identity is not None)


def skip_report(records: Iterable[InputFile]) -> dict[str, Any]:
    """What the run metrics say about skipped files: ``skipped_files`` (their records) and ``eot_skipped``
    (EOT subtracted per dataset key). Both empty when nothing was skipped, so readers need no special case.
    """
    skipped = [r for r in records if r.status == "skipped"]
    eot: dict[str, float] = {}
    for r in skipped:
        eot[r.key] = eot.get(r.key, 0.0) + r.eot
    return {"skipped_files": [r.as_dict() for r in skipped], "eot_skipped": eot}
