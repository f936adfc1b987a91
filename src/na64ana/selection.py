"""Declarative selections: TOML files in ``na64ana.selections`` -> a validated, resolved, hashed cut list.

Why data and not code: every output must say exactly which cut values made it (the stable hash of the
resolved selection is written with every output) and a cut value must be traceable to its source
(values are numbers with a cited ``source`` or references ``"@section.key[i]"`` into published.toml).

A requirement passes when ``min <= x < max`` (either side optional) or ``x == equals``; NaN and +-inf
always fail, so no event silently disappears from the accounting. Cut variables are canonical contract
branches or derived variables of the registry :data:`VARIABLES` (each knows the branches it reads, its
unit and its N-1 histogram binning).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import contract, published
from .errors import InputError, from_validation

# ------------------------------------------------------------------------------------------------------
# Variable registry


@dataclass(frozen=True)
class Variable:
    """A cut variable: the canonical branches it needs, how to compute it, its unit and N-1 binning."""

    name: str
    branches: tuple[str, ...]
    unit: str
    bins: tuple[int, float, float]
    compute: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None  # None: the branch itself

    def __call__(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        return cols[self.name] if self.compute is None else self.compute(cols)


def _stack(cols: Mapping[str, np.ndarray], names: Iterable[str],
           dtype: type | None = None) -> list[np.ndarray]:
    return [np.asarray(cols[n], dtype=dtype) for n in names]


_HCAL = ("hcal_e0", "hcal_e1", "hcal_e2", "hcal_e3")
_VETO = ("veto_e0", "veto_e1", "veto_e2")
_SRD_E = ("srd_e0", "srd_e1", "srd_e2")
_SRD_T = ("srd_t0", "srd_t1", "srd_t2")


def _hcal_e(c: Mapping[str, np.ndarray]) -> np.ndarray:
    # Sum in double, ((e0 + e1) + e2) + e3: threshold decisions independent of the modules' order. The
    # float32 modules are widened inside the add loop (exact), not into three temporary float64 copies.
    a, b, d, e = _stack(c, _HCAL)
    out = np.array(a, dtype=np.float64)
    for x in (b, d, e):
        np.add(out, x, out=out, dtype=np.float64)
    return out


def _fold(fn: Any, arrays: list[np.ndarray]) -> np.ndarray:
    """``fn(fn(a, b), c)...`` (same order, same result dtype), written into the first result when that
    keeps its dtype instead of allocating a temporary per step."""
    out = fn(arrays[0], arrays[1])
    for x in arrays[2:]:
        if np.result_type(out, x) == out.dtype:
            fn(out, x, out=out)
        else:
            out = fn(out, x)
    return out


def _veto_e_max(c: Mapping[str, np.ndarray]) -> np.ndarray:
    # np.maximum propagates NaN, so a NaN counter makes the event fail (never pass) the VETO cut.
    return _fold(np.maximum, _stack(c, _VETO))


def _srd_e_min(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return _fold(np.minimum, _stack(c, _SRD_E))


def _srd_e_max(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return _fold(np.maximum, _stack(c, _SRD_E))


def _srd_t_absmax(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return _fold(np.maximum, [np.abs(x) for x in _stack(c, _SRD_T)])


_DERIVED = (
    Variable("hcal_e", _HCAL, "GeV", (240, 0.0, 120.0), _hcal_e),
    Variable("veto_e_max", _VETO, "MeV", (100, 0.0, 100.0), _veto_e_max),
    Variable("srd_e_min", _SRD_E, "MeV", (100, 0.0, 200.0), _srd_e_min),
    Variable("srd_e_max", _SRD_E, "MeV", (100, 0.0, 200.0), _srd_e_max),
    Variable("srd_t_absmax", _SRD_T, "ns", (100, 0.0, 10.0), _srd_t_absmax),
)

# N-1 binning of the canonical branches (those not listed get _DEFAULT_BINS).
_BRANCH_BINS: dict[str, tuple[int, float, float]] = {
    "track_n": (6, -0.5, 5.5),
    "track_p": (100, 50.0, 150.0),
    "track_theta": (100, 0.0, 20.0),
    "straw_nhits": (30, -0.5, 29.5),
    "ecal_e": (240, 0.0, 120.0),
    "ecal_ps_e": (100, 0.0, 10.0),
    "ecal_chi2": (100, 0.0, 20.0),
    "ecal_pileup": (2, -0.5, 1.5),
    "hcal0_e": (100, 0.0, 20.0),
    **{n: (120, 0.0, 30.0) for n in _HCAL},
    **{n: (100, 0.0, 100.0) for n in _VETO},
    **{n: (100, 0.0, 200.0) for n in _SRD_E},
    **{n: (100, -10.0, 10.0) for n in _SRD_T},
}
_DEFAULT_BINS = (100, 0.0, 100.0)

VARIABLES: dict[str, Variable] = {
    **{
        b.name: Variable(b.name, (b.name,), b.unit, _BRANCH_BINS.get(b.name, _DEFAULT_BINS))
        for b in contract.BRANCHES
    },
    **{v.name: v for v in _DERIVED},
}


def branches_for(variables: Iterable[str]) -> list[str]:
    """Canonical branches needed to compute ``variables`` (sorted, unique)."""
    return sorted({b for v in variables for b in VARIABLES[v].branches})


# ------------------------------------------------------------------------------------------------------
# The TOML schema

Value = float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Requirement(_Strict):
    variable: str
    min: Value | None = None
    max: Value | None = None
    equals: Value | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Requirement:
        if self.variable not in VARIABLES:
            raise ValueError(f"unknown variable '{self.variable}' (known: see na64ana.selection.VARIABLES)")
        if self.equals is not None and (self.min is not None or self.max is not None):
            raise ValueError("use either equals or min/max, not both")
        if self.equals is None and self.min is None and self.max is None:
            raise ValueError("a requirement needs min, max or equals")
        return self


class Cut(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    source: str = Field(min_length=1)
    when: Literal["hcal0"] | None = None
    requires: list[Requirement] = Field(min_length=1)


class Box(_Strict):
    ecal_max: Value
    hcal_max: Value
    source: str = Field(min_length=1)


class Planes(_Strict):
    i_iv: str
    final: str


class Override(_Strict):
    campaign: str
    runs: list[str] | None = None
    target: str
    min: Value | None = None
    max: Value | None = None
    equals: Value | None = None
    value: Value | None = None
    label: str | None = Field(None, description="new label of the overridden cut (so tables say what ran)")
    source: str = Field(min_length=1)


class SelectionFile(_Strict):
    name: str
    description: str
    source: str
    box: Box
    planes: Planes
    cuts: list[Cut] = Field(min_length=1)
    regions: dict[str, list[Requirement]] = Field(default_factory=dict)
    override: list[Override] = Field(default_factory=list)


# ------------------------------------------------------------------------------------------------------
# Resolved selection (numbers only): what the processor applies and what the hash covers


def _finite_in(v: float, dtype: np.dtype) -> bool:
    """Whether the bound ``v`` stays finite when numpy compares it on ``dtype`` (1e39 is inf in float32)."""
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.asarray(v).astype(dtype)))


@dataclass(frozen=True)
class Req:
    variable: str
    min: float | None = None
    max: float | None = None
    equals: float | None = None

    def mask(self, x: np.ndarray) -> np.ndarray:
        """Pass mask; non-finite values fail.

        Compared on the column's own dtype (numpy's weak-scalar rule: a float32 column is compared in
        float32, as always). The explicit finiteness test is skipped when the comparisons already fail
        NaN and both infinities: ``x == e`` and ``lo <= x < hi`` with bounds finite in that dtype (NaN
        fails every comparison). A one-sided window keeps it (``x >= lo`` passes +inf). Same masks, 2-3
        passes over the column instead of 3-5.
        """
        x = np.asarray(x)
        floating = x.dtype.kind == "f"
        if self.equals is not None:
            if floating and not _finite_in(self.equals, x.dtype):
                return np.isfinite(x) & (x == self.equals)
            return x == self.equals
        lo, hi = self.min, self.max
        if floating and not (lo is not None and hi is not None and _finite_in(lo, x.dtype)
                             and _finite_in(hi, x.dtype)):
            ok = np.isfinite(x)
            if lo is not None:
                ok &= x >= lo
            if hi is not None:
                ok &= x < hi
            return ok
        if lo is None and hi is None:  # (not constructible from a file: a requirement needs a bound)
            return np.ones(x.shape, dtype=bool)
        if lo is None:
            return x < hi
        ok = x >= lo
        if hi is not None:
            np.logical_and(ok, x < hi, out=ok)
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("variable", self.variable), ("min", self.min), ("max", self.max),
                                   ("equals", self.equals)) if v is not None}


@dataclass(frozen=True)
class ResolvedCut:
    name: str
    label: str
    source: str
    requires: tuple[Req, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.variable for r in self.requires))


#: the cuts of the beam preselection: the loose plane of data is filled after the last of them present
PRESELECTION = ("track", "srd")


@dataclass(frozen=True)
class Resolved:
    """A selection resolved for one campaign + run: plain numbers, ready to apply and to hash."""

    name: str
    campaign: str
    run: str
    cuts: tuple[ResolvedCut, ...]
    box_ecal_max: float
    box_hcal_max: float
    plane_i_iv: tuple[str, ...]  # cuts defining plane_i_iv
    plane_final: tuple[str, ...]  # cuts defining plane_final and the regions
    regions: tuple[tuple[str, tuple[Req, ...]], ...]
    sources: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "campaign": self.campaign,
            "run": self.run,
            "box": {"ecal_max": self.box_ecal_max, "hcal_max": self.box_hcal_max},
            "cuts": [{"name": c.name, "label": c.label, "source": c.source,
                      "requires": [r.as_dict() for r in c.requires]} for c in self.cuts],
            "planes": {"i_iv": list(self.plane_i_iv), "final": list(self.plane_final)},
            "regions": {n: [r.as_dict() for r in reqs] for n, reqs in self.regions},
            "sources": dict(self.sources),
        }

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the resolved selection (stable across runs and machines)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def variables(self) -> tuple[str, ...]:
        names = [v for c in self.cuts for v in c.variables]
        names += [r.variable for _, reqs in self.regions for r in reqs]
        return tuple(dict.fromkeys([*names, "ecal_e", "hcal_e"]))

    @property
    def branches(self) -> list[str]:
        return branches_for(self.variables)

    @property
    def preselection_rows(self) -> int:
        """How many leading cuts form the beam preselection (:data:`PRESELECTION`; at least the first cut)."""
        names = [c.name for c in self.cuts]
        k = max((names.index(c) + 1 for c in PRESELECTION if c in names), default=1)
        return min(k, len(names))


# ------------------------------------------------------------------------------------------------------
# Loading


def selection_path(name_or_path: str | Path) -> Path:
    """A selection file: a path to a .toml, or the name of one shipped in na64ana.selections."""
    p = Path(name_or_path)
    if p.suffix == ".toml":
        return p
    return Path(str(resources.files("na64ana.selections").joinpath(f"{name_or_path}.toml")))


def load(name_or_path: str | Path) -> SelectionFile:
    """Read and validate a selection file. Any problem -> InputError naming the file and the field."""
    path = selection_path(name_or_path)
    if not path.exists():
        raise InputError("selection file not found", file=str(path))
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", file=str(path)) from None
    try:
        sel = SelectionFile.model_validate(raw)
    except ValidationError as err:
        raise from_validation(err, file=str(path)) from None
    _check_values(sel, str(path))
    return sel


_REF = re.compile(r"^@([A-Za-z0-9_.]+?)(?:\[(\d+)\])?$")


def _value(v: Value | None, box: dict[str, float] | None, *, file: str, field: str) -> float | None:
    if v is None or isinstance(v, int | float):
        return None if v is None else float(v)
    if v in ("box.ecal_max", "box.hcal_max"):
        if box is None:
            raise InputError(f"'{v}' cannot be used inside [box]", file=file, field=field)
        return box[v.split(".")[1]]
    m = _REF.match(v)
    if not m:
        raise InputError(f"value '{v}' is neither a number, '@section.key[i]' nor 'box.*'", file=file,
                         field=field)
    try:
        got = published.get(m.group(1))
        if m.group(2) is not None:
            got = got[int(m.group(2))]
        return float(got)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"bad reference '{v}': {exc}", file=file, field=field) from None


def _resolve_req(r: Requirement | Override, box: dict[str, float] | None, variable: str, *, file: str,
                 field: str) -> Req:
    lo = _value(r.min, box, file=file, field=f"{field}.min")
    hi = _value(r.max, box, file=file, field=f"{field}.max")
    eq = _value(r.equals, box, file=file, field=f"{field}.equals")
    if lo is not None and hi is not None and lo >= hi:
        raise InputError(f"inverted window: min {lo} >= max {hi}", file=file, field=field)
    return Req(variable, lo, hi, eq)


def _box(sel: SelectionFile, file: str) -> dict[str, float]:
    return {k: cast(float, _value(getattr(sel.box, k), None, file=file, field=f"box.{k}"))  # required
            for k in ("ecal_max", "hcal_max")}


def _check_names(sel: SelectionFile, file: str) -> None:
    """Cut names are unique and the planes name cuts, reported at the field (``cuts.<i>.name``).

    Why unique: cut-flow rows, N-1 histograms and overrides are keyed by cut name; a second cut of the
    same name would silently share (and overwrite) the first one's row and histograms."""
    seen: dict[str, int] = {}
    for i, c in enumerate(sel.cuts):
        if c.name in seen:
            raise InputError(f"duplicate cut name '{c.name}' (also cuts.{seen[c.name]}.name)", file=file,
                             field=f"cuts.{i}.name")
        seen[c.name] = i
    for field in ("i_iv", "final"):
        if getattr(sel.planes, field) not in seen:
            raise InputError(f"'{getattr(sel.planes, field)}' is not a cut", file=file,
                             field=f"planes.{field}")


def _check_values(sel: SelectionFile, file: str) -> None:
    """Resolve every value once with the nominal box so that bad references/windows fail at load time."""
    _check_names(sel, file)
    box = _box(sel, file)
    for i, c in enumerate(sel.cuts):
        for j, r in enumerate(c.requires):
            _resolve_req(r, box, r.variable, file=file, field=f"cuts.{i}.requires.{j}")
    for name, reqs in sel.regions.items():
        for j, r in enumerate(reqs):
            _resolve_req(r, box, r.variable, file=file, field=f"regions.{name}.{j}")
    cut_vars = {(c.name, r.variable) for c in sel.cuts for r in c.requires}
    for i, o in enumerate(sel.override):
        parts = o.target.split(".")
        ok = (parts[0] == "box" and len(parts) == 2 and parts[1] in ("ecal_max", "hcal_max")) or (
            parts[0] == "cuts" and len(parts) == 3 and (parts[1], parts[2]) in cut_vars)
        if not ok:
            raise InputError(f"unknown target '{o.target}' (use box.ecal_max, box.hcal_max or "
                             "cuts.<cut>.<variable>)", file=file, field=f"override.{i}.target")
        if parts[0] == "box" and o.value is None:
            raise InputError("a box override needs 'value'", file=file, field=f"override.{i}.value")
        if parts[0] == "cuts":
            _resolve_req(o, box, parts[2], file=file, field=f"override.{i}")


def resolve(sel: SelectionFile | str | Path, *, campaign: str, run: str, hcal0: bool,
            file: str | None = None) -> Resolved:
    """The selection for one campaign + run: overrides applied, references replaced by numbers."""
    if not isinstance(sel, SelectionFile):
        file = file or str(selection_path(sel))
        sel = load(sel)
    file = file or sel.name
    active = [o for o in sel.override if o.campaign == campaign and (o.runs is None or run in o.runs)]
    box = _box(sel, file)
    sources = {"box": sel.box.source}
    for o in active:
        parts = o.target.split(".")
        if parts[0] == "box":
            # a box override has a value (_check_overrides)
            box[parts[1]] = cast(float, _value(o.value, None, file=file, field=f"override[{o.target}]"))
            sources[o.target] = o.source
    by_target = {o.target: o for o in active if o.target.startswith("cuts.")}
    cuts = []
    for i, c in enumerate(sel.cuts):
        if c.when == "hcal0" and not hcal0:
            continue
        reqs, label = [], c.label
        for j, r in enumerate(c.requires):
            ov = by_target.get(f"cuts.{c.name}.{r.variable}")
            if ov is not None:
                sources[ov.target] = ov.source
                label = ov.label or label
            reqs.append(_resolve_req(ov or r, box, r.variable, file=file, field=f"cuts.{i}.requires.{j}"))
        cuts.append(ResolvedCut(c.name, label, c.source, tuple(reqs)))
    names = [c.name for c in sel.cuts]

    def before(cut: str) -> tuple[str, ...]:
        upto = set(names[: names.index(cut)])
        return tuple(c.name for c in cuts if c.name in upto)

    regions = tuple(
        (n, tuple(_resolve_req(r, box, r.variable, file=file, field=f"regions.{n}.{j}")
                  for j, r in enumerate(rs)))
        for n, rs in sel.regions.items()
    )
    return Resolved(sel.name, campaign, run, tuple(cuts), box["ecal_max"], box["hcal_max"],
                    before(sel.planes.i_iv), before(sel.planes.final), regions,
                    tuple(sorted(sources.items())))


# ------------------------------------------------------------------------------------------------------
# Applying


def compute(cols: Mapping[str, np.ndarray], names: Iterable[str]) -> dict[str, np.ndarray]:
    """``{variable: values}`` from canonical branch columns."""
    return {n: VARIABLES[n](cols) for n in names}


def cut_masks(sel: Resolved, values: Mapping[str, np.ndarray],
              memo: dict[Req, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{cut: pass mask}`` in cut-flow order.

    ``memo`` (one dict per chunk, shared with :func:`region_masks`): each distinct requirement is
    evaluated once, e.g. the box edges used by a cut and by the regions. The masks may then be shared
    objects: do not modify them in place."""
    memo = {} if memo is None else memo
    return {c.name: _all(c.requires, values, memo) for c in sel.cuts}


def region_masks(sel: Resolved, values: Mapping[str, np.ndarray],
                 memo: dict[Req, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{region: mask}`` in the (E_ECAL, E_HCAL) plane (not yet combined with the cuts); ``memo`` as for
    :func:`cut_masks`."""
    memo = {} if memo is None else memo
    return {n: _all(reqs, values, memo) for n, reqs in sel.regions}


def _all(reqs: Iterable[Req], values: Mapping[str, np.ndarray], memo: dict[Req, np.ndarray]) -> np.ndarray:
    out = None
    for r in reqs:
        m = memo.get(r)
        if m is None:
            m = memo[r] = r.mask(values[r.variable])
        if out is None:
            out = m
        else:
            if any(out is v for v in memo.values()):
                out = out.copy()  # never AND into a memoised mask
            np.logical_and(out, m, out=out)
    assert out is not None
    return out
