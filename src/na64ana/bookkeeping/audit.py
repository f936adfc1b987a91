"""Audit a results folder for signal-box leaks: blinding checked on what was written, file by file.

The processors remove the box before anything is filled (:mod:`na64ana.blinding`); this module checks the
*outputs* of a whole results folder (``na64ana demo``, or any stage folder) structurally, so a later change
that lets box content through is caught where it shows, whatever code wrote it. ``tests/test_blinding_audit``
proves the complementary, differential property (data differing only inside the box give identical
blinded outputs); this scan is the check a collaborator can run on a folder before sharing it.

Checked (a :class:`Finding` per problem; ``kind`` "leak", "provenance" or "unblinded"):

- provenance: every stage record of an output folder says whether the box was opened (its ``blinding``:
  "blinded", "unblinded", or "no-data" for simulation only), consistently; the folder's state is
  *blinded* unless every record touching data says "unblinded". Which cut-flow rows and regions lie in
  the box is :mod:`na64ana.blinding`'s rule (the one the run outputs apply). An unblinded folder gives one
  "unblinded" finding (box content there is expected) and only the self-describing checks below; mixed
  states are a "provenance" finding.
- histograms (``hists/*.json``, the uhi serialization of a ``hist.Hist``): for every run key in
  ``metadata["blinded_region"]``, with
  that run's own box edges, every bin that lies inside the box is empty. A bin counts as inside when its
  E_ECAL/E_HCAL edges are within the box, or when the histogram's fill selection (N-1 and plane histograms,
  from the run's resolved selection in provenance.json) already implies E_ECAL or E_HCAL below the edge.
  Data keys not flagged blinded in a blinded folder are leaks.
- JSON: blinded cut flows have every row at and after the first box cut flagged and null; regions inside
  the box are null for blinded keys; in a blinded folder every observed quantity (``observed``,
  ``eps_obs``, ``y_obs``, ``mu_obs``, the runs-merged cross-check...) is null, ``signal_box`` holds no
  number, limits say ``blinded``, and pyhf workspaces carry only the placeholder observation 0.
- markdown/HTML (report, cut-flow tables) and notebooks: table columns about observed/box counts read
  "blinded" (or "-"), rows of hidden cuts in tables of blinded cut flows read "blinded", and no text states
  an observed or box quantity as ``name: number``. Logs: the same text rule.
- HEPData (``*.yaml`` and the members of ``*.tar.gz``): no observed variable, no hidden cut row in a data
  cut-flow table, no pyhf workspace attached.
- PNG/PDF: the file metadata holds only the software entries (no title/keywords/... that could carry
  numbers); the pixels themselves are covered by the differential test, not here.

Skipped, and why: the input folders (provenance stages only ``simulate*`` or ``data``: ``data/``,
``signal_mc/``, ``dimuon_mc/``) and every ``*.root`` file -- raw ntuples and MC contain box events by
nature; they are inputs, not outputs. Also dot-folders (the chunk cache ``.cache/`` holds per-chunk
processor outputs, blinded like the run that made them; staging folders) and file types not listed
above. Nothing is ever unpickled: a pickle (``*.pkl``, ``*.pickle``) anywhere in the folder is an
"unsafe" finding (an error for ``verify``): it predates the safe format or was planted.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import struct
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import blinding
from ..processing import safeio

PROVENANCE = "provenance.json"
INPUT_STAGES = frozenset({"simulate", "simulate_signal", "simulate_dimuon", "data"})
ECAL_AXES = frozenset({"ecal", "ecal_e"})
HCAL_AXES = frozenset({"hcal", "hcal_e"})
# Keys whose value is observed box content (stats.limits, stats.interpret, summary): null when blinded.
OBSERVED_KEYS = frozenset({"observed", "n_obs", "mu_obs", "signal_events_limit", "eps_simple", "n90_simple",
                           "simple_rel_diff", "max_abs_rel_diff"})
_OBS_KEY = re.compile(r"(^|_)obs(_|$)")
_OBS_HEADER = re.compile(r"observ|signal[ _-]?box|\bn_?obs\b", re.I)
_TEXT_LEAK = re.compile(r"\b(observed|n_obs|eps_obs|mu_obs|y_obs|signal_box)\b['\"]?\s*[:=]\s*[-+]?\.?\d",
                        re.I)
LABEL_HEADERS = frozenset({"#", "cut", "label"})  # table columns naming a cut-flow row, not counting it
BLINDED_CELLS = frozenset({"blinded", "-", "\u2014", "", "n/a", "null", "none", "nan"})
COUNT_FIELDS = ("events", "weighted", "eff_abs", "eff_rel")  # cut-flow row fields, null when hidden
META_KEYS = frozenset({"Software", "Creator", "Producer", "CreationDate", "ModDate"})
TEXT_SUFFIXES = frozenset({".log", ".txt"})


@dataclass(frozen=True)
class Finding:
    """One problem: ``file`` (relative to the scanned folder), ``where`` in it, ``what`` is wrong.

    ``kind``: "leak" (box content, or something derived from it, in a blinded output), "provenance" (the
    folder does not say consistently whether the box was opened) or "unblinded" (informational: the box
    was opened explicitly, so box content is expected there)."""

    file: str
    where: str
    what: str
    kind: str = "leak"

    def __str__(self) -> str:
        return f"{self.kind}: {self.file} [{self.where}]: {self.what}"


@dataclass
class Audit:
    """Everything :func:`scan` found: findings, the files it inspected and those it skipped."""

    folder: Path
    blinded: bool | None = None
    findings: list[Finding] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def scan_blinding(folder: str | Path) -> list[Finding]:
    """Findings of :func:`scan` (empty: nothing in the folder carries signal-box information)."""
    return scan(folder).findings


# ------------------------------------------------------------------------------------------------------
# The folder: output vs input folders, provenance records, blinding state


@dataclass
class _Ctx:
    root: Path
    blinded: bool = True
    hidden: set[str] = field(default_factory=set)  # names and labels of hidden cut-flow rows
    selections: dict[Path, dict[str, dict]] = field(default_factory=dict)  # run folder -> key -> selection
    rules: dict[Path, blinding.Rule] = field(default_factory=dict)  # run folder -> its blinding rule
    cutflows: dict[Path, dict[str, dict]] = field(default_factory=dict)  # run folder -> key -> record
    findings: list[Finding] = field(default_factory=list)

    def rel(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix()

    def add(self, p: Path, where: str, what: str, kind: str = "leak") -> None:
        self.findings.append(Finding(self.rel(p), where, what, kind))


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _stages(prov: Path) -> dict[str, dict]:
    doc = _read_json(prov)
    stages = doc.get("stages") if isinstance(doc, dict) else None
    return {k: v for k, v in stages.items() if isinstance(v, dict)} if isinstance(stages, dict) else {}


def _owner(p: Path, root: Path) -> Path:
    """The folder whose provenance.json describes ``p`` (nearest one up to ``root``), else ``root``."""
    for d in [p.parent, *p.parent.parents]:
        if (d / PROVENANCE).exists():
            return d
        if d == root:
            break
    return root


def _walk(root: Path) -> Iterator[Path]:
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if p.is_file() and not any(part.startswith(".") for part in rel[:-1]) and not rel[-1].startswith("."):
            yield p


def _rule(rec: Mapping[str, Any]) -> blinding.Rule:
    """The blinding rule a run record applied (recorded, else that of its processor; default invisible)."""
    rule = rec.get("blinding_rule")
    return rule if rule in blinding.RULES else blinding.rule_of(rec.get("processor"))


def _state(rec: Mapping[str, Any]) -> bool | None:
    """True: unblinded, False: blinded, None: not recorded ("no-data" is handled by the caller).

    The record's one ``blinding`` field; folders written before it existed said ``unblind`` or
    ``blinded`` (opposite polarity), still read here."""
    if rec.get("blinding") in ("blinded", "unblinded"):
        return rec["blinding"] == "unblinded"
    if isinstance(rec.get("unblind"), bool):
        return rec["unblind"]
    if isinstance(rec.get("blinded"), bool):
        return not rec["blinded"]
    return None


def _no_data(rec: Mapping[str, Any]) -> bool:
    """The record says no data were read (simulation, signal MC): blinding does not apply."""
    return rec.get("blinding") == "no-data" or ("blinding" not in rec and "blinded" in rec
                                                 and rec["blinded"] is None)


def scan(folder: str | Path) -> Audit:
    """Scan a results folder (rules in the module docstring)."""
    root = Path(folder).resolve()
    ctx = _Ctx(root)
    res = Audit(root)
    files = list(_walk(root))
    inputs = {d for d in {_owner(p, root) for p in files}
              if (st := _stages(d / PROVENANCE)) and set(st) <= INPUT_STAGES}
    mine = [p for p in files if _owner(p, root) not in inputs and p.suffix != ".root"]
    kept = set(mine)
    res.skipped = [ctx.rel(p) for p in files if p not in kept]

    # cut flows and selections of every run-output folder
    for p in mine:
        if p.parent.name == "cutflows" and p.suffix == ".json":
            cf = _read_json(p)
            if isinstance(cf, dict) and isinstance(cf.get("rows"), list):
                ctx.cutflows.setdefault(p.parent.parent, {})[str(cf.get("key") or p.stem)] = cf
        if p.name == PROVENANCE:
            for rec in _stages(p).values():
                if isinstance(rec.get("selections"), dict):
                    ctx.selections.setdefault(p.parent, {}).update(rec["selections"])
                if "processor" in rec or "blinding_rule" in rec:
                    ctx.rules[p.parent] = _rule(rec)
    for folder, folder_cfs in ctx.cutflows.items():
        for key, cf in folder_cfs.items():
            if cf.get("blinded"):  # rows flagged hidden, and those the selection says must be
                must = blinding.hidden_cuts(ctx.selections.get(folder, {}).get(key) or {},
                                            ctx.rules.get(folder, "invisible"))
                rows = [r for r in cf["rows"] if r.get("blinded") or r.get("cut") in must]
                ctx.hidden |= {str(r.get(k)) for r in rows for k in ("cut", "label")}

    _provenance(ctx, [p for p in mine if p.name == PROVENANCE], res)
    checks = {".json": _check_json, ".pkl": _check_pickle, ".pickle": _check_pickle,
              ".md": _check_markdown, ".html": _check_html,
              ".png": _check_png, ".pdf": _check_pdf, ".yaml": _check_yaml, ".yml": _check_yaml,
              ".gz": _check_tar, ".ipynb": _check_notebook, **{s: _check_text for s in TEXT_SUFFIXES}}
    for p in mine:
        check = checks.get(p.suffix)
        if check is None:
            res.skipped.append(ctx.rel(p))
            continue
        res.scanned.append(ctx.rel(p))
        check(ctx, p)
    res.skipped.sort()
    res.findings = ctx.findings
    return res


def _provenance(ctx: _Ctx, provs: list[Path], res: Audit) -> None:
    data_folders = {f for f, cfs in ctx.cutflows.items()
                    if any(cf.get("kind") == "data" for cf in cfs.values())}
    states: dict[tuple[Path, str], bool] = {}
    for prov in provs:
        for stage, rec in _stages(prov).items():
            state = _state(rec)
            if state is None and _no_data(rec):
                continue  # no data read (simulation, signal MC): blinding does not apply
            if state is None:
                ctx.add(prov, f"stages.{stage}", "the record does not say whether the box was opened "
                        "(no 'blinding')", "provenance")
                continue
            if isinstance(rec.get("unblind"), bool) and isinstance(rec.get("blinded"), bool) \
                    and rec["unblind"] == rec["blinded"]:
                ctx.add(prov, f"stages.{stage}", "'unblind' and 'blinded' contradict each other",
                        "provenance")
            if stage == "run" and prov.parent not in data_folders:
                continue  # MC only: nothing to blind, the flag says nothing about the box
            states[(prov, stage)] = state
    for folder in data_folders:  # the data cut flows themselves say whether they are blinded
        for key, cf in ctx.cutflows[folder].items():
            if cf.get("kind") == "data" and isinstance(cf.get("blinded"), bool):
                states[(folder / "cutflows" / f"{key}.json", "cutflow")] = not cf["blinded"]
    opened = {k for k, v in states.items() if v}
    closed = {k for k, v in states.items() if not v}
    ctx.blinded = bool(closed) or not opened
    res.blinded = ctx.blinded
    if opened and closed:
        names = ", ".join(sorted(f"{ctx.rel(p)}:{s}" for p, s in opened))
        ctx.findings.append(Finding(ctx.rel(sorted(closed)[0][0]), "blinding state", "mixed: the box is "
                                    f"opened in {names} but closed elsewhere", "provenance"))
    elif opened:
        prov, stage = sorted(opened, key=lambda k: (len(k[0].relative_to(ctx.root).parts), str(k[0])))[0]
        ctx.add(prov, f"stages.{stage}.blinding", "unblinded explicitly: box content is expected in this "
                "folder and not checked", "unblinded")


# ------------------------------------------------------------------------------------------------------
# JSON


def _null(v: Any) -> bool:
    if isinstance(v, list):
        return all(_null(x) for x in v)
    if isinstance(v, dict):
        return all(_null(x) for x in v.values())
    return v is None


def _walk_json(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}" if path else str(k), str(k), v
            yield from _walk_json(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk_json(v, f"{path}[{i}]")


def _check_json(ctx: _Ctx, p: Path) -> None:
    if p.parent.name == "hists":
        _check_hist(ctx, p)
        return
    doc = _read_json(p)
    if doc is None:
        return
    if p.parent.name == "cutflows" and isinstance(doc, dict) and "rows" in doc:
        _check_cutflow(ctx, p, doc)
    if p.name == "regions.json" and isinstance(doc, dict):
        _check_regions(ctx, p, doc)
    if not ctx.blinded:
        return
    for where, key, v in _walk_json(doc):
        if (key in OBSERVED_KEYS or _OBS_KEY.search(key)) and not _null(v):
            ctx.add(p, where, f"observed quantity {key} = {_short(v)} in a blinded folder")
    if p.name == "limits.json" and isinstance(doc, dict) and doc.get("blinded") is not True:
        ctx.add(p, "blinded", "limits of a blinded folder are not marked blinded")
    if isinstance(doc, dict) and isinstance(doc.get("observations"), list):
        for i, obs in enumerate(doc["observations"]):
            if any(x != 0 for x in (obs.get("data") or [])):
                ctx.add(p, f"observations[{i}]", "a blinded workspace observes box events "
                        f"{obs.get('data')} (only the placeholder 0 is allowed)")


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _check_cutflow(ctx: _Ctx, p: Path, cf: Mapping[str, Any]) -> None:
    key = str(cf.get("key") or p.stem)
    if cf.get("kind") == "data" and not cf.get("blinded") and ctx.blinded:
        ctx.add(p, "blinded", f"data cut flow '{key}' is not blinded in a blinded folder")
    if not cf.get("blinded"):
        return
    sel = ctx.selections.get(p.parent.parent, {}).get(key)
    must_hide = blinding.hidden_cuts(sel, ctx.rules.get(p.parent.parent, "invisible")) if sel else set()
    for i, row in enumerate(cf["rows"]):
        name = row.get("cut")
        if name in must_hide and not row.get("blinded"):
            ctx.add(p, f"rows[{i}]", f"row '{name}' lies inside the box but is not flagged blinded")
        if row.get("blinded") or name in must_hide:
            shown = {k: row[k] for k in COUNT_FIELDS if row.get(k) is not None}
            if shown:
                ctx.add(p, f"rows[{i}]", f"hidden row '{name}' shows {shown}")


def _check_regions(ctx: _Ctx, p: Path, doc: Mapping[str, Any]) -> None:
    cfs = ctx.cutflows.get(p.parent, {})
    sels = ctx.selections.get(p.parent, {})
    for key, rec in doc.items():
        cf = cfs.get(key)
        if not isinstance(rec, dict) or not (cf and cf.get("blinded")):
            continue
        rule = ctx.rules.get(p.parent, "invisible")
        boxed = (blinding.hidden_regions(sels[key], rule) if key in sels
                 else blinding.hidden_regions({}, rule) | {"signal_box"})
        for name in boxed:
            for where, v in ((f"{key}.{name}", rec.get(name)),
                             (f"{key}.weighted.{name}", (rec.get("weighted") or {}).get(name))):
                if v is not None:
                    ctx.add(p, where, f"region '{name}' lies inside the box but holds {v} for blinded "
                            f"'{key}'")


# ------------------------------------------------------------------------------------------------------
# Histograms


def _implied_max(name: str, sel: Mapping[str, Any] | None) -> tuple[float, float]:
    """Upper bounds on (E_ECAL, E_HCAL) that the fill selection of histogram ``name`` implies."""
    if not sel:
        return math.inf, math.inf
    cuts = {c["name"]: c.get("requires", []) for c in sel.get("cuts", [])}
    used: list[str] = []
    if name.startswith("nminus1_"):
        longest_first = sorted(cuts, key=len, reverse=True)
        skip = next((c for c in longest_first if name.startswith(f"nminus1_{c}_")), None)
        if skip is None:
            return math.inf, math.inf
        used = [c for c in cuts if c != skip]
    elif name in ("plane_i_iv", "plane_final", "ecal_sideband_c"):
        used = list((sel.get("planes") or {}).get("final" if name != "plane_i_iv" else "i_iv", []))
    reqs = [r for c in used for r in cuts.get(c, [])]

    def bound(var: str) -> float:
        return min([r["max"] for r in reqs if r.get("variable") == var and r.get("max") is not None],
                   default=math.inf)

    ecal, hcal = bound("ecal_e"), bound("hcal_e")
    if name == "ecal_sideband_c":  # E_ECAL of plane_final events below the HCAL threshold (interfaces.md)
        hcal = min(hcal, (sel.get("box") or {}).get("hcal_max", math.inf))
    return ecal, hcal


def _upper_edges(ax: Any, n: int) -> np.ndarray:
    """Upper edge of every bin of a regular/variable axis including its flow bins (``n`` entries)."""
    edges = np.asarray(ax.edges, dtype=float)
    up = list(edges[1:])
    if n > len(up) and ax.traits.underflow:
        up = [edges[0], *up]
    if n > len(up):
        up.append(math.inf)
    return np.asarray(up)


def _box_content(h: Any, key: str, box: Mapping[str, float], sel: Mapping[str, Any] | None,
                 name: str) -> float:
    """Sum of the bins of run ``key`` that lie inside the box (0 when the box is empty)."""
    names = [a.name for a in h.axes]
    if "run" in names:
        if key not in list(h.axes["run"]):
            return 0.0
        h = h[{"run": key}]
    values = np.asarray(h.values(flow=True), dtype=float)
    ecal_max, hcal_max = _implied_max(name, sel)
    inside = np.ones(values.shape, dtype=bool)
    have = {a.name for a in h.axes}
    for i, ax in enumerate(h.axes):
        if ax.name in ECAL_AXES | HCAL_AXES:
            edge = box["ecal_max"] if ax.name in ECAL_AXES else box["hcal_max"]
            ok = _upper_edges(ax, values.shape[i]) <= edge
            inside &= ok.reshape([-1 if j == i else 1 for j in range(values.ndim)])
    if not have & ECAL_AXES and not ecal_max <= box["ecal_max"]:
        return 0.0
    if not have & HCAL_AXES and not hcal_max <= box["hcal_max"]:
        return 0.0
    return float(np.abs(values[inside]).sum())


ESUM_AXES = frozenset({"esum", "e_sum"})
WCAL_AXES = frozenset({"wcal", "wcal_e"})


def _window_content(h: Any, key: str, lo: float, hi: float, ecal_min: float | None = None) -> float:
    """Sum of the bins of run ``key`` lying inside the visible box lo <= E_WCAL + E_ECAL < hi (and E_ECAL >=
    ``ecal_min``): bins of an E_WCAL + E_ECAL axis within [lo, hi) (the E_WCAL + E_ECAL histograms are
    filled after the ``ecal_min`` cut), cells of an (E_WCAL, E_ECAL) plane whose every point has its sum in
    [lo, hi) and its E_ECAL >= ``ecal_min``. Other histograms cannot be decided from their bins (the
    differential test covers them)."""
    names = [a.name for a in h.axes]
    if "run" in names:
        if key not in list(h.axes["run"]):
            return 0.0
        h = h[{"run": key}]
    axes = list(h.axes)
    values = np.asarray(h.values(flow=True), dtype=float)

    def lower_upper(ax: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        up = _upper_edges(ax, n)
        edges = np.asarray(ax.edges, dtype=float)
        low = list(edges[:-1])
        if n > len(low) and ax.traits.underflow:
            low = [-math.inf, *low]
        if n > len(low):
            low.append(float(edges[-1]))
        return np.asarray(low), up

    kinds = [("esum" if a.name in ESUM_AXES else "wcal" if a.name in WCAL_AXES
              else "ecal" if a.name in ECAL_AXES else None) for a in axes]
    if kinds.count("esum") == 1 and len(axes) == 1:
        low, up = lower_upper(axes[0], values.shape[0])
        return float(np.abs(values[(low >= lo) & (up <= hi)]).sum())
    if sorted(k for k in kinds if k) == ["ecal", "wcal"] and len(axes) == 2:
        (l0, u0), (l1, u1) = (lower_upper(a, values.shape[i]) for i, a in enumerate(axes))
        inside = ((l0[:, None] + l1[None, :]) >= lo) & ((u0[:, None] + u1[None, :]) <= hi)
        if ecal_min is not None:
            low_ecal = l0[:, None] if kinds[0] == "ecal" else l1[None, :]
            inside &= low_ecal >= ecal_min
        return float(np.abs(values[inside]).sum())
    return 0.0


def _check_pickle(ctx: _Ctx, p: Path) -> None:
    """Never unpickled (reading a pickle can execute code): its presence is the finding."""
    ctx.add(p, "file", f"pickle not read: {safeio.LEGACY_MESSAGE}", kind="unsafe")


def _check_hist(ctx: _Ctx, p: Path) -> None:
    try:
        h = safeio.read_hist(p)
    except (safeio.UnsafeContent, OSError) as exc:
        ctx.add(p, "file", f"not a histogram in the safe format ({exc})", kind="unsafe")
        return
    meta = safeio.hist_meta(h)
    meta = meta if isinstance(meta, dict) else {}
    name = str(meta.get("name") or p.stem)
    regions = meta.get("blinded_region") or {}
    folder = p.parent.parent if p.parent.name == "hists" else p.parent
    sels = ctx.selections.get(folder, {})
    if ctx.blinded and "run" in [a.name for a in h.axes]:
        data_keys = {k for k, cf in ctx.cutflows.get(folder, {}).items() if cf.get("kind") == "data"}
        for key in sorted(data_keys & set(h.axes["run"]) - set(regions)):
            ctx.add(p, f"run={key}", "data not flagged blinded in a blinded folder")
    if not meta.get("blinded"):
        return
    for key, box in sorted(regions.items()):
        if not isinstance(box, Mapping):
            ctx.add(p, f"run={key}", "blinded region of a blinded run is not recorded", kind="unsafe")
            continue
        if "e_sum_min" in box:  # the visible rule: E_WCAL + E_ECAL in [lo, hi)
            ecal_min = box.get("ecal_min")
            content = _window_content(h, key, float(box["e_sum_min"]), float(box["e_sum_max"]),
                                      None if ecal_min is None else float(ecal_min))
            if content:
                ctx.add(p, f"run={key}", f"{content:g} entries inside the box {box['e_sum_min']:g} <= "
                        f"E_WCAL + E_ECAL < {box['e_sum_max']:g} of a blinded run")
            continue
        if "ecal_max" not in box or "hcal_max" not in box:
            ctx.add(p, f"run={key}", f"blinded region {box} of a blinded run is not understood",
                    kind="unsafe")
            continue
        content = _box_content(h, key, box, sels.get(key), name)
        if content:
            ctx.add(p, f"run={key}", f"{content:g} entries inside the box E_ECAL < {box['ecal_max']:g}, "
                    f"E_HCAL < {box['hcal_max']:g} of a blinded run")


# ------------------------------------------------------------------------------------------------------
# Text, tables, notebooks


def _check_text_body(ctx: _Ctx, p: Path, text: str, where: str = "line") -> None:
    for i, line in enumerate(text.splitlines(), 1):
        m = _TEXT_LEAK.search(line)
        if m:
            ctx.add(p, f"{where} {i}", f"states a box/observed quantity: {line.strip()[:100]!r}")


def _check_text(ctx: _Ctx, p: Path) -> None:
    if ctx.blinded:
        _check_text_body(ctx, p, p.read_text(errors="replace"))


def _check_table(ctx: _Ctx, p: Path, where: str, context: str, rows: list[list[str]]) -> None:
    if not rows:
        return
    header, body = rows[0], rows[1:]
    for j, head in enumerate(header):
        if _OBS_HEADER.search(head):
            for i, row in enumerate(body):
                if j < len(row) and row[j].strip().lower() not in BLINDED_CELLS:
                    ctx.add(p, f"{where} row {i + 1}", f"column '{head}' shows {row[j]!r} in a blinded "
                            "folder")
    if "blind" not in context.lower():
        return
    names = {j for j, h in enumerate(header) if h.strip().lower() in LABEL_HEADERS} or {0}
    for i, row in enumerate(body):
        hidden = [row[j] for j in sorted(names) if j < len(row) and row[j].strip() in ctx.hidden]
        if hidden:
            shown = [c for j, c in enumerate(row)
                     if j not in names and c.strip().lower() not in BLINDED_CELLS]
            if shown:
                ctx.add(p, f"{where} row {i + 1}", f"hidden cut-flow row '{hidden[0]}' shows {shown}")


def _md_tables(text: str) -> Iterator[tuple[int, str, list[list[str]]]]:
    """(first line, context line, rows without the separator) of every pipe table."""
    lines = text.splitlines()
    context, i = "", 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|"):
            start, rows = i, []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[i].strip().strip("|"))]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                    rows.append(cells)
                i += 1
            yield start + 1, context, rows
            continue
        if lines[i].strip():
            context = lines[i]
        i += 1


def _check_markdown_text(ctx: _Ctx, p: Path, text: str, where: str = "line") -> None:
    for line, context, rows in _md_tables(text):
        _check_table(ctx, p, f"{where} {line}", context, rows)
    prose = "\n".join("" if ln.lstrip().startswith("|") else ln for ln in text.splitlines())
    _check_text_body(ctx, p, prose, where)


def _check_markdown(ctx: _Ctx, p: Path) -> None:
    if ctx.blinded:
        _check_markdown_text(ctx, p, p.read_text(errors="replace"))


class _Tables(HTMLParser):
    """Tables of an HTML page as rows of cell texts, each with the text of the block before it."""

    BLOCKS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "li", "div", "pre", "blockquote"})

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.prose: list[str] = [""]  # text outside tables, one entry per block
        self._depth = 0
        self._row: list[str] | None = None
        self._cell: str | None = None

    def _context(self) -> str:
        return next((b for b in reversed(self.prose) if b.strip()), "")

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self._depth += 1
            if self._depth == 1:
                self.tables.append((self._context(), []))
        elif self._depth and tag == "tr":
            self._row = []
        elif self._depth and tag in ("td", "th"):
            self._cell = ""
        elif not self._depth and tag in self.BLOCKS:
            self.prose.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._depth = max(0, self._depth - 1)
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1][1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._depth:
            if self._cell is not None:
                self._cell += data
        else:
            self.prose[-1] += data


def _check_html_text(ctx: _Ctx, p: Path, text: str, where: str = "table") -> None:
    parser = _Tables()
    parser.feed(text)
    for i, (context, rows) in enumerate(parser.tables):
        _check_table(ctx, p, f"{where} {i + 1}", context, rows)
    _check_text_body(ctx, p, "\n".join(parser.prose), "block")


def _check_html(ctx: _Ctx, p: Path) -> None:
    if ctx.blinded:
        _check_html_text(ctx, p, p.read_text(errors="replace"))


def _check_notebook(ctx: _Ctx, p: Path) -> None:
    if ctx.blinded:
        doc = _read_json(p)
        if isinstance(doc, dict):
            _check_notebook_outputs(ctx, p, doc)


def _check_notebook_outputs(ctx: _Ctx, p: Path, nb: Mapping[str, Any]) -> None:
    """The text, markdown and HTML outputs of every code cell, with the text and table rules."""
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            texts = [("text", out.get("text"))] + [(m, (out.get("data") or {}).get(m))
                                                    for m in ("text/plain", "text/markdown", "text/html")]
            for mime, body in texts:
                if not body:
                    continue
                body = "".join(body) if isinstance(body, list) else str(body)
                if mime == "text/html":
                    _check_html_text(ctx, p, body, f"cell {i} html")
                else:
                    _check_markdown_text(ctx, p, body, f"cell {i} line")


def scan_notebook(nb: Mapping[str, Any], name: str = "notebook.ipynb",
                  hidden: Iterable[str] = ("signal_box",)) -> list[Finding]:
    """Findings in the outputs of an executed notebook, checked as a file of a blinded folder would be.

    ``hidden``: cut-flow rows that tables of blinded cut flows must show as "blinded"."""
    ctx = _Ctx(Path.cwd(), hidden=set(hidden))
    _check_notebook_outputs(ctx, Path.cwd() / name, nb)
    return ctx.findings


# ------------------------------------------------------------------------------------------------------
# HEPData


def _yaml_docs(text: str) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return []


def _check_hepdata(ctx: _Ctx, p: Path, members: Mapping[str, str]) -> None:
    """``members``: name -> YAML text of one submission (a folder or an archive)."""
    described: dict[str, str] = {}
    for name, text in members.items():
        if Path(name).name != "submission.yaml":
            continue
        for doc in _yaml_docs(text):
            if isinstance(doc, dict) and doc.get("data_file"):
                described[Path(str(doc["data_file"])).name] = str(doc.get("description", ""))
            for res in (doc.get("additional_resources") or []) if isinstance(doc, dict) else []:
                if "workspace" in str(res.get("description", "")).lower() or \
                        str(res.get("type", "")).lower() == "histfactory":
                    ctx.add(p, f"{name}: additional_resources", "a pyhf workspace is attached to a blinded "
                            f"submission ({res.get('location')})")
    for name, text in members.items():
        for doc in _yaml_docs(text):
            if not isinstance(doc, dict):
                continue
            for var in doc.get("dependent_variables") or []:
                head = str((var.get("header") or {}).get("name", ""))
                if _OBS_HEADER.search(head):
                    ctx.add(p, f"{name}: {head}", "observed variable in a blinded submission")
            data_table = "(data)" in described.get(Path(name).name, "")
            for var in doc.get("independent_variables") or []:
                cuts = [str(v.get("value")) for v in var.get("values") or []]
                leaked = sorted(set(cuts) & ctx.hidden) if data_table else []
                if leaked:
                    ctx.add(p, f"{name}: {(var.get('header') or {}).get('name')}",
                            f"hidden cut-flow row(s) {leaked} in a data table")


def _check_yaml(ctx: _Ctx, p: Path) -> None:
    if not ctx.blinded or p.name != "submission.yaml":
        return  # the tables are checked once, together with the submission that describes them
    members = {q.name: q.read_text(errors="replace") for q in sorted(p.parent.glob("*.yaml"))}
    _check_hepdata(ctx, p, members)


def _check_tar(ctx: _Ctx, p: Path) -> None:
    if not ctx.blinded or not p.name.endswith(".tar.gz"):
        return
    members: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(p.read_bytes()))) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m) if m.isfile() else None
                if f is None:
                    continue
                body = f.read()
                if m.name.endswith((".yaml", ".yml")):
                    members[m.name] = body.decode(errors="replace")
                elif m.name.endswith(".json"):
                    doc = json.loads(body) if body.strip().startswith(b"{") else None
                    if isinstance(doc, dict) and doc.get("observations"):
                        ctx.add(p, m.name, "a pyhf workspace is packed into a blinded submission")
    except (OSError, EOFError, tarfile.TarError, json.JSONDecodeError):
        return
    _check_hepdata(ctx, p, members)


# ------------------------------------------------------------------------------------------------------
# Figure metadata


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt/zTXt/iTXt entries of a PNG (keyword -> text)."""
    out: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            key, _, rest = body.partition(b"\0")
            if kind == b"zTXt":
                rest = zlib.decompress(rest[1:])
            elif kind == b"iTXt":
                flag, rest = rest[0], rest[2:]
                rest = rest.split(b"\0", 2)[-1]
                rest = zlib.decompress(rest) if flag else rest
            out[key.decode("latin-1")] = rest.decode("utf-8", errors="replace")
        if kind == b"IEND":
            break
    return out


_PDF_INFO_REF = re.compile(rb"/Info\s+(\d+)\s+0\s+R")
_PDF_ENTRY = re.compile(rb"/(\w+)\s*\(((?:\\.|[^\\)])*)\)")


def pdf_info(data: bytes) -> dict[str, str]:
    """The document information dictionary of a PDF (its ``/Info`` object; literal strings only)."""
    out: dict[str, str] = {}
    for ref in set(_PDF_INFO_REF.findall(data)):
        m = re.search(rb"\n" + ref + rb"\s+0\s+obj\s*<<(.*?)>>\s*endobj", data, re.S)
        if m:
            out.update({k.decode(): v.decode("latin-1") for k, v in _PDF_ENTRY.findall(m.group(1))})
    return out


def _check_meta(ctx: _Ctx, p: Path, meta: Mapping[str, str]) -> None:
    for key, value in meta.items():
        if key not in META_KEYS:
            ctx.add(p, f"metadata {key}", f"unexpected figure metadata {value[:60]!r} (only software "
                    "entries are written)")
        elif _TEXT_LEAK.search(value):
            ctx.add(p, f"metadata {key}", f"states a box/observed quantity: {value[:60]!r}")


def _check_png(ctx: _Ctx, p: Path) -> None:
    if ctx.blinded:
        _check_meta(ctx, p, png_text(p.read_bytes()))


def _check_pdf(ctx: _Ctx, p: Path) -> None:
    if not ctx.blinded:
        return
    data = p.read_bytes()
    _check_meta(ctx, p, pdf_info(data))
    if b"/Metadata" in data:
        ctx.add(p, "XMP metadata", "an XMP metadata stream is present (not written by na64ana)")


def summarise(findings: Iterable[Finding]) -> dict[str, int]:
    """Number of findings per kind (for a one-line verdict)."""
    out: dict[str, int] = {}
    for f in findings:
        out[f.kind] = out.get(f.kind, 0) + 1
    return out
