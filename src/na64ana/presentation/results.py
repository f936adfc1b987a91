"""Read a results folder for the plots, the report and the HEPData export.

The producing stages write the formats of ``docs/interfaces.md``. Everything the consumers need from
them goes through this module, so that a renamed key is fixed here once. Files are looked up in the
results folder itself and one level below (``DIR/limits/limits.json`` as well as ``DIR/limits.json``),
because ``na64ana demo`` nests the stage outputs. A missing file is ``None``, never an exception: the
report says "not available" instead of crashing.

Blinding: :attr:`Results.blinded` is True as soon as *any* input says so. Consumers then drop every
observed signal-box quantity (box counts, observed limits) even if a file carries one.

Provenance: :attr:`Results.read` collects every file the view read, so the plots, the report and the
HEPData export record exactly their inputs (:meth:`Results.inputs`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from ..blinding import SignalBox
from ..errors import InputError
from ..processing import safeio
from ..records import (
    AlphaDLimits,
    BackgroundTable,
    EfficiencyTable,
    LimitsRecord,
    Record,
    Regions,
    YLimits,
)

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Record)

# The statistical-model description of limits.json shown by the report (LimitsRecord fields).
MODEL_KEYS = ("method", "cl", "poi", "normsys", "analysis", "cross_section", "beam_energy_GeV",
              "emiss_min_GeV", "n_failed")
# optimisation.json (studies.optimise, not a typed record): {"optimisation": {"<mass>": {...}}}
OPT_KEYS = {"opt": "optimisation", "opt_cut": "cut_GeV", "opt_eps": "eps_exp", "opt_best": "optimum_GeV"}
# File names written by the stages (interfaces.md); the optimisation scan may also be its own file.
FILES = {
    "regions": "regions.json",
    "background": "background.json",
    "efficiency": "efficiency.json",
    "limits": "limits.json",
    "optimisation": "optimisation.json",
    "summary": "summary.json",
    "provenance": "provenance.json",
    "datasets": "datasets.json",
    "metrics": "metrics.json",
}
BENCHMARK_MASSES_GEV = (0.001, 0.01, 0.1, 1.0)
Box = SignalBox  # the one signal-box type (na64ana.blinding); this name is kept for notebooks


@dataclass(frozen=True)
class EpsLimits:
    mass: np.ndarray
    exp: np.ndarray
    obs: np.ndarray | None = None
    band: dict[str, np.ndarray] | None = None  # keys m2, m1, p1, p2 (expected quantiles)


@dataclass(frozen=True)
class Curve:
    """A limit curve: x, observed y (None when blinded/absent), expected y (optional)."""

    x: np.ndarray
    y: np.ndarray | None
    y_exp: np.ndarray | None = None


def _arr(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    a = np.asarray([np.nan if x is None else x for x in v], dtype=float)
    return a if a.size and np.isfinite(a).any() else None


class Results:
    """Lazy view of one results folder; every accessor returns None/empty when the stage did not run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.read: set[Path] = set()  # every file read through this view (provenance inputs)
        # every file is read and validated once per view (the report asks for limits.json ~20 times)
        self._parsed: dict[tuple[str, Path], Any] = {}

    def inputs(self) -> list[Path]:
        """The files read so far, for provenance. provenance.json files are left out: they are rewritten
        when a later stage records itself into the same folder, and the outputs they describe are listed."""
        return sorted(p for p in self.read if p.name != FILES["provenance"])

    # -- files -------------------------------------------------------------------------------------
    def find(self, name: str) -> Path | None:
        """``root/name`` or the first ``root/*/name`` (nested stage folders), else None (counted as read:
        the callers read what they find)."""
        direct = self.root / name
        if direct.exists():
            self.read.add(direct)
            return direct
        nested = sorted(p for p in self.root.glob(f"*/{name}") if p.parent.name != "plots")
        if nested:
            self.read.add(nested[0])
        return nested[0] if nested else None

    def json(self, key: str) -> Any:
        path = self.find(FILES.get(key, key))
        if path is None:
            return None
        if ("json", path) not in self._parsed:
            try:
                self._parsed["json", path] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                self._parsed["json", path] = None
        return self._parsed["json", path]  # shared: callers read it (never edit)

    def record(self, cls: type[R], name: str | None = None) -> R | None:
        """A stage record read and validated (None when absent; an invalid file is logged and skipped, so
        the report says "not available" instead of crashing)."""
        path = self.find(name or cls.file_name)
        if path is None:
            return None
        key = (cls.__name__, path)
        if key not in self._parsed:
            try:
                self._parsed[key] = cls.load(path)
            except InputError as exc:
                log.warning("ignoring %s: %s", path, exc)
                self._parsed[key] = None
        return cast(R | None, self._parsed[key])

    def background(self) -> BackgroundTable | None:
        return self.record(BackgroundTable)

    def efficiency(self) -> EfficiencyTable | None:
        return self.record(EfficiencyTable)

    def limits(self) -> LimitsRecord | None:
        return self.record(LimitsRecord)

    def regions(self, name: str = "regions.json") -> Regions | None:
        return self.record(Regions, name)

    def _dirs(self, name: str) -> list[Path]:
        """``root/name`` and every ``root/*/name`` folder (run outputs of several processors), the run
        outputs of the campaign sample first: a hist name present in several (e.g. ``plane_final`` of the
        signal MC in the efficiency output) is then read from the campaign run. Looked up once per view."""
        if ("dirs", Path(name)) not in self._parsed:
            dirs = [d for d in [self.root / name, *sorted(self.root.glob(f"*/{name}"))] if d.is_dir()]
            self._parsed["dirs", Path(name)] = sorted(
                dirs, key=lambda d: (d.parent != self.root, not _has_campaign_sample(d.parent),
                                     _processor(d.parent) != "invisible"))
        return list(self._parsed["dirs", Path(name)])

    @cached_property
    def cutflows(self) -> dict[str, dict]:
        """``{dataset key: cut-flow record}`` over all run outputs (a repeated key gets its selection)."""
        out: dict[str, dict] = {}
        for folder in self._dirs("cutflows"):
            for p in sorted(folder.glob("*.json")):
                self.read.add(p)
                try:
                    cf = json.loads(p.read_text())
                except json.JSONDecodeError:
                    continue
                key = str(cf.get("key") or cf.get("run") or p.stem)
                out[key if key not in out else f"{key} [{cf.get('selection')}]"] = cf
        return out

    def keys(self, *, kind: str | None = None, campaign_sample: bool | None = None) -> list[str]:
        """Dataset keys of the cut flows, filtered by kind ("data"/"mc") or being the campaign sample."""
        out = []
        for key, cf in self.cutflows.items():
            if kind is not None and cf.get("kind") != kind:
                continue
            if (
                campaign_sample is not None
                and (cf.get("sample", "campaign") == "campaign") != campaign_sample
            ):
                continue
            out.append(str(cf.get("key") or cf.get("run") or key))
        return out

    def hist_names(self) -> list[str]:
        return sorted({p.stem for d in self._dirs("hists") for p in d.glob(f"*{safeio.HIST_SUFFIX}")})

    def hist(self, name: str) -> Any:
        """One ``hist.Hist`` (uhi JSON, read alone, as outputs.load_hist does), or None. A folder of
        pickled histograms (written before the safe format) is refused, never unpickled."""
        for folder in self._dirs("hists"):
            if any(folder.glob(f"*{safeio.LEGACY_HIST_SUFFIX}")):
                raise InputError(safeio.LEGACY_MESSAGE, file=str(folder))
            path = folder / f"{name}{safeio.HIST_SUFFIX}"
            if path.exists():
                self.read.add(path)
                if ("hist", path) not in self._parsed:
                    try:
                        self._parsed["hist", path] = safeio.read_hist(path)
                    except (safeio.UnsafeContent, OSError) as exc:
                        raise InputError(f"not a histogram in the safe format ({exc})",
                                         file=str(path)) from None
                return self._parsed["hist", path].copy()  # callers may fill or slice their copy
        return None

    def selections(self) -> dict[str, dict]:
        """Resolved selections per dataset key, as the run stage recorded them in provenance.json (read
        once per view)."""
        if ("selections", self.root) in self._parsed:
            return cast(dict[str, dict], self._parsed["selections", self.root])
        out: dict[str, dict] = {}
        for p in [self.root / "provenance.json", *sorted(self.root.glob("*/provenance.json"))]:
            try:
                stage = json.loads(p.read_text()).get("stages", {}).get("run", {})
            except (OSError, json.JSONDecodeError):
                continue
            for key, sel in (stage.get("selections") or {}).items():
                out.setdefault(key, sel)
        self._parsed["selections", self.root] = out
        return out

    def workspaces(self) -> list[Path]:
        """pyhf workspace JSON files of the limits stage (``[*/]workspaces/*.json``)."""
        found = set(self.root.glob("workspaces/*.json")) | set(self.root.glob("*/workspaces/*.json"))
        self.read |= found
        return sorted(found)

    # -- blinding ----------------------------------------------------------------------------------
    @cached_property
    def blinded(self) -> bool:
        """True if any input says blinded (conservative: one blinded stage blinds the whole report)."""
        if any(cf.get("blinded") for cf in self.cutflows.values()):
            return True
        regions = self.json("regions") or {}
        if any(
            isinstance(v, dict) and "signal_box" in v and v["signal_box"] is None for v in regions.values()
        ):
            return True
        for rec in (self.background(), self.limits()):
            if rec is not None and rec.blinding == "blinded":
                return True
        summ = self.json("summary")
        if isinstance(summ, dict) and any(r.get("observed", 0) is None for r in summ.get("runs") or []):
            return True
        plane = self.hist("plane_final")
        return bool(plane is not None and hist_blinded(plane))

    # -- adapters ----------------------------------------------------------------------------------
    def eps_limits(self) -> EpsLimits | None:
        return eps_limits(self.limits(), blinded=self.blinded)

    def y_limits(self) -> dict[str, Curve]:
        return y_limits(self.limits(), blinded=self.blinded)

    def alpha_d_limits(self) -> dict[str, Curve]:
        return alpha_d_limits(self.limits(), blinded=self.blinded)

    def optimisation(self) -> dict[str, dict[str, Any]]:
        return optimisation(self.json("optimisation"))

    def campaign(self) -> str | None:
        for cf in self.cutflows.values():
            if cf.get("campaign"):
                return str(cf["campaign"])
        for rec in (self.background(), self.efficiency()):
            if rec is not None and rec.campaign:
                return str(rec.campaign)
        return None


def _processor(run_dir: Path) -> str | None:
    """The processor that wrote a run output (its provenance), so the search's outputs come before the
    dimuon benchmark's when both hold the campaign sample."""
    try:
        prov = json.loads((run_dir / "provenance.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return prov.get("stages", {}).get("run", {}).get("processor")


def _has_campaign_sample(run_dir: Path) -> bool:
    for p in (run_dir / "cutflows").glob("*.json"):
        try:
            cf = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if cf.get("sample", "campaign") == "campaign" and cf.get("kind", "data") == "data":
            return True
    return False


# --- adapters (pure functions on the parsed JSON) ----------------------------------------------------
def hist_blinded(h: Any) -> bool:
    meta = safeio.hist_meta(h)
    return bool(isinstance(meta, dict) and meta.get("blinded"))


def _limits(limits: LimitsRecord | Mapping[str, Any] | None) -> LimitsRecord | None:
    """A limits record from the record or its JSON (e.g. ``stats.limits.scan`` + interpretation)."""
    if limits is None or isinstance(limits, LimitsRecord):
        return limits
    return LimitsRecord.validate_data(limits)


def eps_limits(limits: LimitsRecord | Mapping[str, Any] | None, *, blinded: bool) -> EpsLimits | None:
    """eps(m_A') curves from the per-mass points (failed masses skipped); no observed one when blinded."""
    rec = _limits(limits)
    if rec is None:
        return None
    pts = sorted((p for p in rec.points if p.error is None and p.eps_exp is not None),
                 key=lambda p: p.mass_GeV)
    if not pts:
        return None

    def col(k: str) -> np.ndarray | None:
        return _arr([getattr(p, k) for p in pts])

    mass, exp = col("mass_GeV"), col("eps_exp")
    assert mass is not None and exp is not None  # every point has both
    obs = None if blinded else col("eps_obs")
    band = {k: col(f"eps_exp_{k}") for k in ("m2", "m1", "p1", "p2")}
    full = {k: v for k, v in band.items() if v is not None}
    return EpsLimits(mass, exp, obs, full if len(full) == len(band) else None)


def _curve(x: list[float], obs: list[float | None] | None, exp: list[float | None] | None, *,
           blinded: bool) -> Curve | None:
    xs, o, e = _arr(x), None if blinded or obs is None else _arr(obs), None if exp is None else _arr(exp)
    return Curve(xs, o, e) if xs is not None and (o is not None or e is not None) else None


def y_limits(limits: LimitsRecord | Mapping[str, Any] | None, *, blinded: bool) -> dict[str, Curve]:
    """``{"alpha_d=0.5": Curve(m_chi, y_obs, y_exp)}``."""
    rec = _limits(limits)
    sec: YLimits | None = rec.y_limits if rec is not None else None
    if sec is None:
        return {}
    out = {label: _curve(sec.m_chi_GeV, b.y_obs, b.y_exp, blinded=blinded) for label, b in sec.bands.items()}
    return {k: c for k, c in out.items() if c is not None}


def alpha_d_limits(limits: LimitsRecord | Mapping[str, Any] | None, *, blinded: bool) -> dict[str, Curve]:
    """``{"pseudodirac": Curve(m_chi, alpha_d_min_obs, alpha_d_min_exp)}``."""
    rec = _limits(limits)
    sec: AlphaDLimits | None = rec.alpha_d_limits if rec is not None else None
    if sec is None:
        return {}
    out = {kind: _curve(sec.m_chi_GeV, e.alpha_d_min_obs, e.alpha_d_min_exp, blinded=blinded)
           for kind, e in (("pseudodirac", sec.pseudodirac), ("majorana", sec.majorana))}
    return {k: c for k, c in out.items() if c is not None}


def optimisation(doc: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{"<mass GeV>": {"cut": array, "eps": array, "best": float}}`` from optimisation.json (expected
    limits only: never blinded)."""
    sec = doc.get(OPT_KEYS["opt"], doc) if isinstance(doc, Mapping) else None
    out = {}
    for mass, d in (sec or {}).items():
        if not isinstance(d, dict):
            continue
        cut, eps = _arr(d.get(OPT_KEYS["opt_cut"])), _arr(d.get(OPT_KEYS["opt_eps"]))
        if cut is None or eps is None:
            continue
        best = d.get(OPT_KEYS["opt_best"])
        out[str(mass)] = {"cut": cut, "eps": eps,
                          "best": float(best if best is not None else cut[np.nanargmin(eps)])}
    return out


def model_info(limits: LimitsRecord | None) -> dict[str, Any]:
    """The statistical-model description of limits.json."""
    if limits is None:
        return {}
    return {k: getattr(limits, k) for k in MODEL_KEYS}


def workspace_modifiers(path: Path) -> dict[str, str]:
    """``{modifier name: type}`` of a pyhf workspace: the nuisances as the model actually has them."""
    try:
        ws = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    mods: dict[str, str] = {}
    for ch in ws.get("channels", []):
        for s in ch.get("samples", []):
            for m in s.get("modifiers", []):
                mods.setdefault(m["name"], m["type"])
    return mods


def interp_loglog(x: np.ndarray, y: np.ndarray, at: float) -> float | None:
    """log-log interpolation; None outside the scanned range (a limit is never extrapolated)."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    if x.size == 0 or at < x.min() or at > x.max():
        return None
    order = np.argsort(x)
    return float(math.exp(np.interp(math.log(at), np.log(x[order]), np.log(y[order]))))


def relic_targets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Thermal relic targets y(m_chi) (ESPP curves by P. Crivelli) from ``data/relic_target_*.csv``."""
    out = {}
    for model in ("scalar", "pseudodirac", "majorana"):
        text = resources.files("na64ana").joinpath(f"data/relic_target_{model}.csv").read_text()
        rows = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")][1:]
        data = np.array([[float(v) for v in ln.split(",")[:2]] for ln in rows])
        out[model] = (data[:, 0], data[:, 1])
    return out
