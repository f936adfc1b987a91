"""The analysis report: every available figure, then ``report.md`` and ``report.html`` telling the story.

Order follows the analysis: data sets, selection, cut flows, (E_ECAL, E_HCAL) planes, N-1 plots, side-band
background, dimuon benchmark, signal, statistical model, limits, cut optimisation, provenance. A stage
that did not run gives a clearly marked "not available" section (never a crash, never a silent gap).

Blinding: when any input is blinded (see :class:`~na64ana.presentation.results.Results`) the report
shows only what
blinded outputs contain; box counts and observed limits are printed as "blinded" even if present.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import multiprocessing as mp
import re
import tomllib
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, cast

import hist
import markdown
import matplotlib.pyplot as plt
import numpy as np
from markdown.extensions.toc import slugify

from .. import blinding
from ..blinding import SignalBox
from ..bookkeeping import provenance
from ..errors import InputError
from ..processing import safeio
from ..records import BackgroundRun, SidebandFit, SimplifiedCheck
from . import plots, search_plots
from .results import (
    BENCHMARK_MASSES_GEV,
    Results,
    hist_blinded,
    interp_loglog,
    model_info,
    relic_targets,
    workspace_modifiers,
)

log = logging.getLogger(__name__)

PLANES = (
    ("plane_loose", "loose SRD-tagged"),
    ("plane_i_iv", "after cuts (i)-(iv)"),
    ("plane_final", "after all cuts"),
)
BLINDED = "blinded"


class Unavailable(Exception):
    """A figure or section whose input stage did not run; the message says which."""


@dataclass
class PlotSet:
    """What :func:`make_plots` drew (name -> PNG path) and what it could not (name -> reason)."""

    folder: Path
    made: dict[str, Path] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    pdf: bool = True  # PDFs next to the PNGs (the report itself shows the PNGs)


# --- context shared by plots and report ------------------------------------------------------------
def _campaign_doc(res: Results) -> dict[str, Any] | None:
    ds = res.json("datasets")
    if not isinstance(ds, dict) or "campaigns" not in ds:
        return None
    name = res.campaign() or ds.get("default_campaign")
    return ds["campaigns"].get(name)


def simulated(res: Results) -> bool | None:
    """True if the campaign sample (the data the result is about) was simulated; False for recorded data;
    None: unknown. MC benchmark and signal samples next to real data do not make the data "simulated"."""
    prov = _all_stages(res)
    if "simulate" in prov:
        return True
    camp = _campaign_doc(res)
    if camp:
        files = [f for r in camp.get("runs", {}).values() for f in r.get("files", [])]
        if files:
            return any(f.get("seed") is not None or f.get("kind") == "mc" for f in files)
    kinds = {cf.get("kind") for cf in res.cutflows.values() if cf.get("sample", "campaign") == "campaign"}
    if kinds:
        return kinds == {"mc"} or None if "data" not in kinds else False
    return None


def summary_doc(res: Results) -> dict[str, Any] | None:
    """The yields summary behind the limits: the folder's summary.json, else the file limits.json names."""
    summ = res.json("summary")
    if isinstance(summ, dict):
        return summ
    lim = res.limits()
    path = Path(lim.summary_file) if lim is not None and lim.summary_file else None
    where = res.find("limits.json")
    if path is not None and not path.is_absolute() and where is not None:
        path = where.parent / path  # recorded relative to the limits folder (a moved folder still works)
    try:
        doc = json.loads(path.read_text()) if path is not None and path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def hand_written(res: Results) -> str | None:
    """The source of a hand-written yields summary (a reinterpretation of published numbers), else None:
    limits from a summary that no ``na64ana summary`` stage wrote (no stage record "summary") and no
    run, background or efficiency output next to them. The summary is the folder's summary.json or the
    one limits.json names (``summary_file``)."""
    if res.cutflows or res.background() is not None or res.efficiency() is not None:
        return None
    if "summary" in _all_stages(res):
        return None
    summ = summary_doc(res)
    if summ is None:
        lim = res.limits()
        if lim is None or not lim.summary_file:
            return None
        return str(lim.analysis or Path(lim.summary_file).name)
    return str(summ.get("source") or summ.get("analysis") or "an unnamed yields summary")


def published_inputs(source: str) -> bool:
    """True for the package's summaries of NA64's own papers (``examples/summaries/*_published.json``,
    analysis label ``<name>_published (...)``): NA64 numbers, not another experiment's."""
    return source.split(" (")[0].endswith("_published")


def _search_experiment(res: Results) -> str:
    """The experiment label of the search figure: what every other figure says (Simulation, Internal, ...)."""
    ll = _llabel(res)
    return ll if ll.startswith("Reinterpretation") else f"NA64 {ll}"


def _llabel(res: Results) -> str:
    """The experiment label's text: "Simulation" only for simulated data; "published inputs" for NA64's
    own published yields; "Reinterpretation" (no NA64 claim, see :func:`plots.label`) for any other
    hand-written summary; "Internal" for recorded data."""
    src = hand_written(res)
    if src is not None and published_inputs(src):
        return "published inputs"
    if src is not None:
        src = src.split(" (")[0]  # the name, not its description
        return "Reinterpretation of " + (src if len(src) <= 32 else src[:31] + "...")
    return "Simulation" if simulated(res) is True else "Internal"


def _all_stages(res: Results) -> dict[str, dict[str, Any]]:
    """Every stage record of every provenance.json in the folder (root first, then ``*/``; a stage seen
    twice keeps its first record, with the folder in ``_where``)."""
    out: dict[str, dict[str, Any]] = {}
    for p in [res.root / "provenance.json", *sorted(res.root.glob("*/provenance.json"))]:
        try:
            stages = json.loads(p.read_text()).get("stages", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        where = p.parent.relative_to(res.root).as_posix() or "."
        for name, st in stages.items():
            if isinstance(st, dict):
                key = name if name not in out else f"{name} ({where})"
                out.setdefault(key, {**st, "_where": where})
    return out


def _eot(res: Results) -> float | None:
    camp = _campaign_doc(res)
    if not camp:
        return None
    runs = camp.get("runs", {})
    wanted = list(res.cutflows) or list(runs)
    tot = sum(float(runs[r]["eot"]) for r in wanted if r in runs)
    return tot or None


def _rlabel(res: Results) -> str | None:
    eot = _eot(res)
    if not eot:
        return None
    exp = math.floor(math.log10(eot))
    return rf"${eot / 10**exp:.2f}\times10^{{{exp}}}$ EOT"


def _box(res: Results) -> SignalBox:
    """Box edges as the run recorded them (cut-flow ``blinded_region``, provenance selection) or published."""
    for cf in res.cutflows.values():
        if isinstance(cf.get("blinded_region"), dict):
            b = cf["blinded_region"]
            return SignalBox(ecal_max=float(b["ecal_max"]), hcal_max=float(b["hcal_max"]))
    for sel in res.selections().values():
        box = SignalBox.of(sel) if sel.get("name") != "dimuon" else None
        if box is not None:
            return box
    return SignalBox()


def _only(h: Any, keys: list[str]) -> Any:
    """Sum of the ``run`` categories in ``keys`` (all when none of them is present)."""
    cats = plots.categories(h, "run")
    wanted = list(dict.fromkeys(k for k in keys if k in cats))  # keys repeat across run outputs
    if not cats or not wanted or len(wanted) == len(cats):
        return h
    return plots.sum_categories(h, wanted)


def _runs_only(h: Any, keys: list[str]) -> Any:
    """The ``run`` categories in ``keys`` kept apart (one line per run; all when none is present)."""
    cats = plots.categories(h, "run")
    wanted = list(dict.fromkeys(k for k in keys if k in cats))
    if not cats or not wanted or len(wanted) == len(cats):
        return h
    axis = h.axes["run"]
    with warnings.catch_warnings():  # hist calls list selection "experimental": removed bins are dropped
        warnings.simplefilter("ignore", UserWarning)
        return h[{"run": [axis.index(k) for k in wanted]}]


def _intensities(res: Results) -> dict[str, float] | None:
    camp = _campaign_doc(res)
    if not camp:
        return None
    out = {
        r: 0.5 * sum(d["intensity_e_per_spill"])
        for r, d in camp.get("runs", {}).items()
        if d.get("intensity_e_per_spill")
    }
    return out or None


def _cut_window(res: Results, cut: str, var: str, h: Any) -> tuple[float | None, float | None] | None:
    """Kept window of ``var`` in ``cut``: from the resolved selection in provenance (``requires`` min/max or
    equals) or hist metadata ``window``; None when unknown."""
    meta = safeio.hist_meta(h)
    if isinstance(meta, dict) and meta.get("window") is not None:
        lo, hi = meta["window"]
        return lo, hi
    for sel in res.selections().values():
        for c in sel.get("cuts", []):
            if c.get("name") != cut:
                continue
            for r in c.get("requires", []):
                if r.get("variable") == var:
                    if r.get("equals") is not None:
                        return float(r["equals"]) - 0.5, float(r["equals"]) + 0.5
                    return r.get("min"), r.get("max")
    return None


def _nminus1_parts(res: Results, name: str, h: Any) -> tuple[str, str]:
    """(cut, variable) of ``nminus1_<cut>_<variable>`` (the variable is the hist axis name)."""
    var = next(a.name for a in h.axes if a.name != "run")
    rest = name[len("nminus1_") :]
    cut = rest[: -len(var) - 1] if rest.endswith("_" + var) else rest
    return cut, var


def _dimuon_pairs(res: Results) -> dict[str, tuple[Any, Any]]:
    """``{variable: (data hist, MC hist)}`` from 1D ``dimuon_*`` hists whose ``run`` axis has data and MC
    dataset keys (kind from the cut flows, else an ``mc`` in the key)."""
    mc_keys = set(res.keys(kind="mc"))
    out = {}
    for n in res.hist_names():
        if not n.startswith("dimuon_"):
            continue
        h = res.hist(n)
        if len([a for a in h.axes if a.name != "run"]) != 1:
            continue
        cats = plots.categories(h, "run")
        mc = [c for c in cats if c in mc_keys or "mc" in c.lower()]
        data = [c for c in cats if c not in mc]
        if mc and data:
            out[n[len("dimuon_") :]] = (plots.sum_categories(h, data), plots.sum_categories(h, mc))
    return out


def _signal_spectra(res: Results) -> dict[str, Any]:
    """Signal E_ECAL hists by A' mass from ``signal_ecal`` (keys ``<run>-<sample>-m<mass GeV>``, summed over
    runs); 2, 20, 200 MeV when present."""
    h = res.hist("signal_ecal")
    if h is None:
        return {}
    by_mass: dict[float, list[str]] = {}
    for c in plots.categories(h, "run"):
        m = re.search(r"-m([0-9.eE+-]+)$", c)
        if m:
            by_mass.setdefault(float(m.group(1)), []).append(c)
    if not by_mass:
        return {"signal": h}
    out = {
        (f"{m * 1e3:g} MeV" if m < 1 else f"{m:g} GeV"): plots.sum_categories(h, keys)
        for m, keys in sorted(by_mass.items())
    }
    preferred = [k for k in out if k in ("2 MeV", "20 MeV", "200 MeV")]
    return {k: out[k] for k in preferred} if preferred else dict(list(out.items())[:4])


# --- first screen, references ---------------------------------------------------------------------------
def references(res: Results) -> dict[str, str]:
    """Source codes (``S000``, ``ARX2207``, ...) -> reference text: ``published.toml [sources]`` overlaid by
    the results folder's ``datasets.json`` ``sources``."""
    refs: dict[str, str] = {}
    try:
        text = resources.files("na64ana.data").joinpath("published.toml").read_text()
        refs.update({k: str(v) for k, v in tomllib.loads(text).get("sources", {}).items()})
    except (ModuleNotFoundError, FileNotFoundError, OSError, tomllib.TOMLDecodeError):
        pass
    ds = res.json("datasets")
    if isinstance(ds, dict) and isinstance(ds.get("sources"), dict):
        refs.update({k: str(v) for k, v in ds["sources"].items()})
    return refs


def cite(text: str, refs: dict[str, str], used: dict[str, str]) -> str:
    """``text`` with every known source code turned into a link to the references list (recorded in
    ``used``)."""
    if not refs:
        return text
    pat = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(refs, key=len, reverse=True)) + r")\b")

    def sub(m: re.Match) -> str:
        used[m.group(1)] = refs[m.group(1)]
        return f"[{m.group(1)}](#ref-{m.group(1).lower()})"

    return pat.sub(sub, text)


def key_numbers(res: Results) -> tuple[list[str], list[list[Any]]]:
    """Per-run key numbers of the result: EOT, signal efficiency (range over the mass scan), background
    with its uncertainty, observed events or "blinded"; plus the background validation verdict per run
    when background.json carries one. From summary.json, else the stage records."""
    header, rows = _key_numbers(res)
    bkg = res.background()
    verdicts = {r.run: v for r in (bkg.runs if bkg is not None else []) if (v := validation_verdict(r))}
    if verdicts and rows:
        header = [*header, "background validation"]
        rows = [[*row, verdicts[row[0]][0] if row[0] in verdicts else "-"] for row in rows]
    return header, rows


def _key_numbers(res: Results) -> tuple[list[str], list[list[Any]]]:
    header = ["run", "EOT", "signal efficiency", "background n_b", "observed"]
    rows: list[list[Any]] = []
    summ = summary_doc(res)
    if isinstance(summ, dict) and summ.get("runs"):
        for r in summ["runs"]:
            eff = r.get("efficiency")
            if isinstance(eff, dict):
                v = [float(x) for x in eff.get("value", [])]
                e = f"{min(v):.3f}-{max(v):.3f}" if v and min(v) != max(v) else (f"{v[0]:.3f}" if v else "-")
            else:
                e = _fmt(eff, 3)
            if r.get("efficiency_unc") is not None:
                e += f" (± {100 * float(r['efficiency_unc']):.0f}%)"
            b = _fmt(r.get("background"), 3)
            up, down, sym = r.get("background_unc_up"), r.get("background_unc_down"), r.get("background_unc")
            if up is not None or down is not None:
                b += f" +{_fmt(up or 0.0, 2)} -{_fmt(down or 0.0, 2)}"
            elif sym is not None:
                b += f" ± {_fmt(sym, 2)}"
            obs = r.get("observed")
            obs = BLINDED if obs is None or res.blinded else obs
            rows.append([r.get("name", "-"), _fmt(r.get("eot"), 3), e, b, obs])
        return header, rows
    camp = _campaign_doc(res) or {}
    runs = camp.get("runs", {})
    bkg_table = res.background()
    bkg = {r.run: r for r in (bkg_table.runs if bkg_table else [])}
    eff = res.efficiency()
    effs = eff.runs if eff is not None else {}
    regions = res.json("run/regions.json") or res.json("regions") or {}
    names = list(dict.fromkeys([*[k for k in res.keys(campaign_sample=True)], *bkg, *effs]))
    for n in names:
        eot = runs.get(n, {}).get("eot")
        er = effs.get(n)
        et = "-" if er is None or not er.efficiency else f"{min(er.efficiency):.3f}-{max(er.efficiency):.3f}"
        br = bkg.get(n)
        bt = "-" if br is None else f"{_fmt(br.total.value, 3)} ± {_fmt(br.total.unc, 2)}"
        reg = regions.get(n, {}) if isinstance(regions, dict) else {}
        obs = reg.get("signal_box") if isinstance(reg, dict) else None
        rows.append([n, _fmt(float(eot), 3) if eot else "-", et, bt, BLINDED if obs is None or res.blinded
                     else obs])
    return header, rows


SEARCH_TITLES = {"vector": "Search for a new vector boson Z' (invisible decays, missing energy)",
                 "alp": "Search for axion-like particles coupling to photons (a → γγ)",
                 "visible": "Search for A' → e+e- (visible mode)"}


def search_kind(res: Results) -> str | None:
    """The limits record's search when it is not the (invisible) dark photon: vector, alp or visible."""
    lim = res.limits()
    kind = str(lim.search) if lim is not None and lim.search else None
    return kind if kind in SEARCH_TITLES else None


def _sec_result(res: Results, ps: PlotSet) -> str:
    search = search_kind(res)
    lim = res.eps_limits() if search is None else None
    parts = []
    kind = "blinded: expected limits only" if res.blinded else "box opened: observed and expected limits"
    src = hand_written(res)
    if src is not None and published_inputs(src):
        what = f"from NA64's published inputs ({src})"
    elif src is not None:
        what = f"a reinterpretation of {src} (hand-written yields summary; not an NA64 result)"
    else:
        what = {True: "simulated data", False: "recorded data", None: "data of unknown kind"}[simulated(res)]
    title = SEARCH_TITLES.get(search or "", "Search for A' → invisible in the missing-energy signature")
    parts.append(f"{title}, {what}; {kind}.")
    search_figs = [n for n in ps.made if n.startswith("search_")]
    if search is not None:
        fig_at = len(parts)
        parts.append(_img(ps, search_figs[0], f"{100 * _cl(res):.0f}% CL limits of the search: observed "
                          "(solid) and expected median (dashed) with its ±1σ/±2σ ranges; numbers in the "
                          "search section below.") if search_figs
                     else unavailable("limits", "no search figure could be drawn"))
    elif lim is not None:
        m = 0.02
        exp = interp_loglog(lim.mass, lim.exp, m)
        if exp is not None:
            line = f"At m_A' = {m * 1e3:g} MeV the expected {100 * _cl(res):.0f}% CL limit is ε < {exp:.3g}"
            if lim.obs is not None and not res.blinded:
                obs = interp_loglog(lim.mass, lim.obs, m)
                line += f", the observed limit ε < {obs:.3g}" if obs is not None else ""
            parts.append(line + ".")
        fig_at = len(parts)
        parts.append(_img(ps, "eps_limits", f"{100 * _cl(res):.0f}% CL upper limit on ε(m_A'); the bands are "
                          "the ±1σ/±2σ ranges of the expected limit (one-sided at n = 0: with no events "
                          "observable below the median, the lower bands coincide with the median)."))
    else:
        fig_at = len(parts)
        parts.append(unavailable("limits", "limits.json not found"))
    header, rows = key_numbers(res)
    if rows:
        parts.insert(fig_at, "Key numbers per run (signal efficiency: range over the mass scan, as defined "
                     "in "
                     "[Signal](#signal-spectra-and-efficiency)):\n\n" + table(header, rows))
    bkg = res.background()
    failed = [r.run for r in (bkg.runs if bkg is not None else [])
              if (v := validation_verdict(r)) is not None and v[0] == "FAILED"]
    if failed:
        parts.insert(fig_at, f"> **Background validation FAILED** for run(s) {', '.join(failed)}: the "
                     "side-band shape does not describe its validation region (details in "
                     "[Background](#background-side-band-c-fit)); the background estimate of these runs is "
                     "not validated.")
    assumed = assumed_defaults(res)
    if assumed:
        parts.insert(fig_at + 1, "> **Assumed** (not given in the yields summary; the defaults of "
                     "docs/summary_contract.md): " + ", ".join(f"`{k}` = {v}" for k, v in assumed.items()))
    return "\n\n".join(parts) + "\n"


def assumed_defaults(res: Results) -> dict[str, Any]:
    """The contract defaults the (dark-photon) yields summary behind the limits relies on
    (:meth:`na64ana.summary.Summary.assumed_defaults`); {} when there is none or it is not readable, and
    for the chain's own summary (``na64ana summary`` writes every field)."""
    if hand_written(res) is None:
        return {}
    # local: na64ana.summary loads physics.yields and scipy (+0.3 s CPU), only hand-written summaries need it
    from ..summary import validate as validate_summary

    doc = summary_doc(res)
    model = doc.get("model") if doc is not None else None
    if doc is None or doc.get("signature") == "visible" or (isinstance(model, dict) and model.get("name")
                                                            not in (None, "dark_photon")):
        return {}  # the contract defaults are those of the dark-photon summary (stats.limits.summary_kind)
    try:
        return validate_summary(doc).assumed_defaults()
    except InputError:
        return {}


def _dimuon_ratio(res: Results) -> tuple[float, float, float, float] | None:
    """(data events, MC expectation, ratio, stat. error of the ratio) over the first dimuon variable."""
    pairs = _dimuon_pairs(res)
    if not pairs:
        return None
    hd, hm = next(iter(pairs.values()))
    nd, nm = float(hd.values(flow=True).sum()), float(hm.values(flow=True).sum())
    if nm <= 0:
        return None
    vm = hm.variances(flow=True)
    vm = float(vm.sum()) if vm is not None else nm
    r = nd / nm
    err = r * math.sqrt((1 / nd if nd > 0 else 0.0) + vm / nm**2)
    return nd, nm, r, err


# --- plots -------------------------------------------------------------------------------------------
def read_curve(spec: str) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    """``FILE[:label]`` -> (label, (mass GeV, eps)): a CSV of two columns (m_A' in GeV, eps limit), with
    '#' comments and an optional header line; the label defaults to the file name."""
    path, _, name = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    rows = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the curve: {exc.strerror}", file=path, field="--compare") from None
    for i, ln in enumerate(lines, 1):
        ln = ln.split("#", 1)[0].strip()
        if not ln:
            continue
        cells = [c for c in re.split(r"[,;\s]+", ln) if c]
        try:
            rows.append((float(cells[0]), float(cells[1])))
        except (ValueError, IndexError):
            if rows:
                raise InputError(f"line {i}: expected two numbers (mass GeV, eps)", file=path,
                                 field="--compare") from None
    if len(rows) < 2 or any(m <= 0 or e <= 0 for m, e in rows):
        raise InputError("need at least two rows of positive (mass GeV, eps)", file=path, field="--compare")
    a = np.array(sorted(rows))
    return name or Path(path).stem, (a[:, 0], a[:, 1])


def _plot_jobs(res: Results, compare: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
               ) -> list[tuple[str, str, Callable[[], Any]]]:
    """(figure name, stage that makes its input, builder) in report order; builders raise Unavailable."""
    ll, blinded, box = _llabel(res), res.blinded, _box(res)
    jobs: list[tuple[str, str, Callable[[], Any]]] = []

    def planes():
        data = res.keys(campaign_sample=True)
        titles = _plane_titles(res)
        panels = [(titles.get(n, t), _only(h, data)) for n, t in PLANES if (h := res.hist(n)) is not None]
        if not panels:
            raise Unavailable("hists plane_loose/plane_i_iv/plane_final not found")
        return plots.plot_planes(panels, box=box, blinded=blinded, llabel=ll, rlabel=_rlabel(res))

    def cutflow():
        if not res.cutflows:
            raise Unavailable("cutflows/*.json not found")
        main = {k: cf for k, cf in res.cutflows.items() if _main_cutflow(cf)} or res.cutflows
        sel = next(iter(main.values())).get("selection")
        main = {k: cf for k, cf in main.items() if cf.get("selection") == sel}
        kind = {cf.get("kind") for cf in main.values()}
        return plots.plot_cutflow(main, llabel=ll, title=f"{sel} selection, campaign sample",
                                  efficiency=kind == {"mc"} and ll != "Simulation")

    jobs += [("planes", "run", planes), ("cutflow", "run", cutflow)]
    # one figure per further (selection, sample kind): data on counts, MC as efficiencies
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for k, cf in res.cutflows.items():
        if not _main_cutflow(cf):
            groups.setdefault((str(cf.get("selection", "-")), str(cf.get("kind", "-"))), {})[k] = cf
    for (sel, kind), cfs in groups.items():
        def cf_group(sel=sel, kind=kind, cfs=cfs):
            return plots.plot_cutflow(cfs, llabel="Simulation" if kind == "mc" else ll,
                                      efficiency=kind == "mc",
                                      title=f"{sel} selection, "
                                      + ("simulated samples" if kind == "mc" else kind))

        jobs.append((f"cutflow_{sel}_{kind}", "run", cf_group))
    for name in [n for n in res.hist_names() if n.startswith("nminus1_")]:

        def nm1(name=name):
            h = res.hist(name)
            cut, var = _nminus1_parts(res, name, h)
            return plots.plot_nminus1(
                _runs_only(h, res.keys(campaign_sample=True)),
                var,
                window=_cut_window(res, cut, var, h),
                xlabel=_axis_label(h, var),
                llabel=ll,
                blinded=blinded,
                title=(f"{(safeio.hist_meta(h) or {}).get('processor', '')} selection, without the "
                       f"{cut.replace('_', ' ')} cut").strip(),
            )

        jobs.append((name, "run", nm1))
    for name, (xlabel, title, _) in SEARCH_HISTS.items():
        if name not in res.hist_names():
            continue

        def search_hist(name: str = name, xlabel: str = xlabel, title: str = title) -> Any:
            h = res.hist(name)
            var = next(a.name for a in h.axes if a.name != "run")
            return plots.plot_nminus1(_runs_only(h, res.keys(campaign_sample=True)), var, xlabel=xlabel,
                                      llabel=ll, blinded=blinded and hist_blinded(h), title=title)

        jobs.append((name, "run", search_hist))
    bkg = res.background()
    for entry in bkg.runs if bkg is not None else []:

        def sb(entry: BackgroundRun = entry) -> Any:
            h = res.hist("ecal_sideband_c")
            if h is None:
                h = _fit_hist(entry.fit)
            elif entry.run in plots.categories(h, "run"):
                h = h[{"run": entry.run}]
            return plots.plot_sideband_fit(h, entry.fit, prediction=entry.upstream, box=box, run=entry.run,
                                           llabel=ll)

        jobs.append((f"sideband_c_{entry.run}", "background", sb))
    for var, (hd, hm) in _dimuon_pairs(res).items():

        def dimuon(hd: Any = hd, hm: Any = hm) -> Any:
            return plots.plot_data_mc(hd, hm, xlabel=_axis_label(hd, None), llabel=ll)

        jobs.append((f"dimuon_{var}", "run (dimuon processor)", dimuon))

    def spectra():
        s = _signal_spectra(res)
        if not s:
            raise Unavailable("hist signal_ecal not found")
        return plots.plot_signal_spectra(s, llabel=ll)

    def efficiency():
        runs = efficiency_runs(res)
        if not runs:
            raise Unavailable("efficiency.json not found")
        invisible = search_kind(res) is None  # the PRL 2019 references are the invisible dark photon's
        return plots.plot_efficiency(runs, intensities=_intensities(res) if invisible else None,
                                     llabel=ll, published_range=invisible,
                                     mass_label=r"$m_a$ [GeV]" if search_kind(res) == "alp"
                                     else r"$m_{A'}$ [GeV]")

    def eps():
        lim = res.eps_limits()
        if lim is None:
            raise Unavailable("limits.json (eps scan) not found")
        if search_kind(res) is not None:
            raise Unavailable(f"limits.json is a {search_kind(res)} search: its figure is the search figure")
        return plots.plot_eps_limits(lim, llabel=ll, rlabel=_rlabel(res), cl=_cl(res), compare=compare)

    def ylim():
        y = res.y_limits()
        if not y:
            raise Unavailable("limits.json has no y limits")
        return plots.plot_y_limits(y, relic_targets(), llabel=ll, cl=_cl(res))

    def alpha():
        a = res.alpha_d_limits()
        if not a:
            raise Unavailable("limits.json has no alpha_D limits")
        return plots.plot_alpha_d(a, llabel=ll, cl=_cl(res))

    def opt():
        o = res.optimisation()
        if not o:
            raise Unavailable("no optimisation scan (limits.json 'optimisation' or optimisation.json)")
        return plots.plot_optimisation(o, llabel=ll)

    jobs += [
        ("signal_spectra", "simulate/run (signal MC)", spectra),
        ("efficiency", "efficiency", efficiency),
        ("eps_limits", "limits", eps),
        ("y_limits", "limits", ylim),
        ("alpha_d_limits", "limits", alpha),
        ("optimisation", "optimise", opt),
    ]
    # the search figure of another search (search_plots.search_sections shows it; drawn here with the rest)
    try:
        lim = res.limits()
        spec = (search_plots.search_figure_spec(lim, experiment=_search_experiment(res)) if lim is not None
                else None)
    except Exception as exc:  # noqa: BLE001 - search_sections reports the failure in its section
        log.debug("no search figure job: %s", exc)
        spec = None
    if spec is not None:
        jobs.append((spec[0], "limits", spec[1]))
    return jobs


def _fit_hist(fit: SidebandFit) -> Any:
    """The side-band counts stored with the fit (``edges``, ``counts``) as a hist, when no hist is around."""
    if not fit.edges or not fit.counts:
        raise Unavailable("hist ecal_sideband_c not found and the fit carries no counts")
    h: Any = hist.Hist(hist.axis.Variable(fit.edges, name="ecal"))
    h[...] = np.asarray(fit.counts, float)
    return h


def _axis_label(h: Any, var: str | None) -> str:
    ax = next(a for a in h.axes if a.name != "run") if var is None else h.axes[var]
    if ax.name.lower() in plots.PHYSICS_LABELS or not ax.label or ax.label.split(" [")[0] == ax.name:
        return plots.physics_label(ax.name)  # a raw branch name (with its unit) -> the physics label
    return ax.label


def _cl(res: Results) -> float:
    lim = res.limits()
    return float(lim.cl) if lim is not None else 0.9


PLOT_WORKERS = 2  # processes drawing the figures (this machine kind has 2 cores); 1 draws in-process
PlotJob = tuple[str, str, Callable[[], Any]]
# (name, PNG path or None, why not drawn or None, files read) of one figure
Drawn = tuple[str, Path | None, str | None, list[Path]]
_FORKED: dict[str, Any] = {}  # the jobs a forked drawing process inherits (closures are not picklable)


def _draw(job: PlotJob, folder: Path, *, pdf: bool) -> tuple[Path | None, str | None]:
    """Build and save one figure: (PNG path, None) or (None, why it was not drawn)."""
    name, stage, build = job
    try:
        fig = build()
    except Unavailable as exc:
        return None, f"stage {stage} not run: {exc}"
    except Exception as exc:  # a malformed input must not kill the report: say what failed
        log.warning("plot %s failed: %s", name, exc)
        return None, f"could not be drawn ({type(exc).__name__}: {exc})"
    paths = plots.save(fig, folder, name, pdf=pdf)
    plt.close(fig)  # a builder using pyplot leaves the figure registered
    return paths[0], None


def _draw_forked(index: int) -> Drawn:
    """One figure in a forked process (the jobs, the results view and its parsed files are inherited)."""
    jobs, folder, pdf, res = _FORKED["jobs"], _FORKED["folder"], _FORKED["pdf"], _FORKED["res"]
    png, why = _draw(jobs[index], folder, pdf=pdf)
    return jobs[index][0], png, why, sorted(res.read)


# Relative CPU cost of drawing a figure (by name prefix, measured on the demo; 1: an N-1 plot, ~0.15 s). The
# pool starts the costly figures first, so that its processes finish together (longest job first).
DRAW_COST = {"planes": 5.0, "y_limits": 2.5, "cutflow": 2.0, "optimisation": 2.0, "dimuon_": 2.0,
             "eps_limits": 2.0, "efficiency": 1.8, "sideband_c_": 1.5, "signal_spectra": 1.5,
             "search_": 2.0}


def draw_cost(name: str) -> float:
    """The relative drawing cost of figure ``name`` (:data:`DRAW_COST`, longest matching prefix; else 1)."""
    match = max((k for k in DRAW_COST if name.startswith(k)), key=len, default=None)
    return DRAW_COST[match] if match is not None else 1.0


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """The objects alive now (modules, parsed inputs) moved out of the garbage collector's reach while the
    figures are drawn: drawing leaves many reference cycles, and each full collection otherwise walks the
    whole heap again (~15% of the drawing time; in forked processes it also un-shares the pages). A caller
    that froze the heap itself keeps it as it was."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def draw_all(res: Results, jobs: list[PlotJob], folder: Path, *, pdf: bool, workers: int = PLOT_WORKERS
             ) -> list[Drawn]:
    """Draw ``jobs`` into ``folder``; returned in report order. With ``workers`` > 1 (and fork available)
    in a process pool that inherits the inputs already read (nothing is read twice), costliest figure
    first (:func:`draw_cost`), else in this process. The files each figure read come back for the
    provenance."""
    if workers > 1 and len(jobs) > 2 and "fork" in mp.get_all_start_methods():
        _ = res.cutflows, res.blinded, res.selections()  # read once here, inherited by the processes
        _FORKED.update(jobs=jobs, folder=folder, pdf=pdf, res=res)
        order = sorted(range(len(jobs)), key=lambda i: -draw_cost(jobs[i][0]))  # stable: ties in report order
        try:
            with _frozen_heap(), mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                drawn = dict(zip(order, pool.map(_draw_forked, order, chunksize=1), strict=True))
        finally:
            _FORKED.clear()
        return [drawn[i] for i in range(len(jobs))]
    with _frozen_heap():
        return [(job[0], *_draw(job, folder, pdf=pdf), []) for job in jobs]


def make_plots(results_dir: str | Path, *, compare: list[str] | None = None, pdf: bool = True,
               workers: int = PLOT_WORKERS) -> PlotSet:
    """Draw every figure whose inputs exist into ``results_dir/plots/`` (PNG, and PDF unless ``pdf`` is
    False), ``workers`` processes in parallel, recorded in ``plots/provenance.json`` (stage "plots": the
    files read, blinding, the figures)."""
    clock = provenance.Clock()
    res = Results(results_dir)
    out = PlotSet(Path(results_dir) / "plots", pdf=pdf)
    written: list[str] = []
    curves = dict(read_curve(c) for c in compare or [])
    for name, png, why, read in draw_all(res, _plot_jobs(res, curves), out.folder, pdf=pdf, workers=workers):
        res.read.update(read)
        if png is None:
            out.missing[name] = str(why)
            continue
        written += [png.name, *([png.with_suffix(".pdf").name] if pdf else [])]
        out.made[name] = png
    if out.folder.is_dir():
        state = blinding.state(res.blinded)  # before res.inputs(): the blinding decision reads files too
        provenance.write(out.folder, "plots", inputs=res.inputs(), outputs=written, blinding=state,
                         metrics=clock.metrics(), figures=sorted(out.made), missing=out.missing)
    return out


# --- markdown ------------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        return f"{v:.{digits}g}"
    return str(v)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table (cells formatted with :func:`_fmt`; a ``|`` in a cell, e.g. "|t| < 2 ns", escaped)."""
    def cell(c: Any) -> str:
        return (c if isinstance(c, str) else _fmt(c)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def unavailable(stage: str, what: str) -> str:
    return f"> **Not available** (stage {stage} not run: {what}).\n"


def _img(ps: PlotSet, name: str, caption: str) -> str:
    if name in ps.made:
        rel = ps.made[name].relative_to(ps.folder.parent).as_posix()
        pdf = f" ([PDF]({rel[:-4]}.pdf))" if ps.made[name].with_suffix(".pdf").is_file() else ""
        return f"![{caption}]({rel})\n\n*{caption}*{pdf}\n"
    return f"> **Figure not available** ({name}: {ps.missing.get(name, 'inputs missing')}).\n"


def _sec_datasets(res: Results, ps: PlotSet) -> str:
    camp_name = res.campaign()
    camp = _campaign_doc(res)
    sim = simulated(res)
    kind = {True: "simulated (na64ana simulate)", False: "recorded data", None: "unknown"}[sim]
    out = [f"- Campaign: **{camp_name or 'unknown'}**", f"- Sample: {kind}"]
    ds_path = res.find("datasets.json")
    out.append(
        f"- Data pointer: `{ds_path}`" if ds_path else "- Data pointer: no datasets.json in the results"
    )
    if camp:
        if camp.get("description"):
            out.append(f"- {camp['description']} ({camp.get('source', '')})")
        runs = camp.get("runs", {})
        rows = [
            [
                r,
                str(d.get("year", "-")),
                _fmt(float(d["eot"]), 3),
                "-".join(_fmt(float(x), 2) for x in d.get("intensity_e_per_spill", [])),
                len(d.get("files", [])),
            ]
            for r, d in runs.items()
            if not res.cutflows or r in res.cutflows
        ]
        out += ["", table(["run", "year", "EOT", "intensity [e-/spill]", "files"], rows)]
    elif res.cutflows:
        out += ["", table(["run", "kind"], [[r, cf.get("kind", "-")] for r, cf in res.cutflows.items()])]
    else:
        return "\n".join(out) + "\n\n" + unavailable("simulate/run", "no datasets.json and no cut flows")
    for other in [c for c in chain_campaigns(res) if c != camp_name]:  # a multi-campaign search chain
        doc = res.json(f"data_{other}/datasets.json")
        oc = doc.get("campaigns", {}).get(other) if isinstance(doc, dict) else None
        if not isinstance(oc, dict):
            continue
        out += ["", f"- Campaign: **{other}** (`data_{other}/datasets.json`)"]
        if oc.get("description"):
            out.append(f"- {oc['description']} ({oc.get('source', '')})")
        rows = [[r, str(d.get("year", "-")), _fmt(float(d["eot"]), 3),
                 "-".join(_fmt(float(x), 2) for x in d.get("intensity_e_per_spill", [])),
                 len(d.get("files", []))]
                for r, d in oc.get("runs", {}).items() if not res.cutflows or r in res.cutflows]
        out += ["", table(["run", "year", "EOT", "intensity [e-/spill]", "files"], rows)]
    return "\n".join(out) + "\n"


def _selection_sources(name: str) -> list[tuple[str, str]]:
    """(path, source) pairs of a selection TOML shipped in na64ana.selections (empty if not found)."""
    try:
        text = resources.files("na64ana.selections").joinpath(f"{name}.toml").read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return []
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "source" and isinstance(v, str):
                    found.append((path or "selection", v))
                else:
                    walk(v, f"{path}.{k}" if path else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(tomllib.loads(text), "")
    return found


def _sec_selection(res: Results, ps: PlotSet) -> str:
    if not res.cutflows:
        return unavailable("run", "cutflows/*.json not found")
    first = next(iter(res.cutflows.values()))
    # The hash is per (selection, campaign, run): runs differ legitimately (e.g. the HCAL0 cut only where
    # installed), so list it per dataset instead of warning.
    rows = [[key, cf.get("selection", "-"), cf.get("kind", "-"),
             f"`{str(cf.get('selection_hash', '-'))[:16]}`"] for key, cf in res.cutflows.items()]
    out = [f"- Selection: **{first.get('selection', '-')}**, resolved per run and data set (the selection "
           f"hash of each of the {len(rows)} data sets is in the [appendix](#appendix-selection-hashes))", ""]
    out.append(
        "- Cuts, in order: " + ", ".join(f"`{r.get('cut')}` ({r.get('label')})" for r in first["rows"])
    )
    src = _selection_sources(str(first.get("selection", "")))
    if src:
        refs, used = references(res), _USED_REFS
        out += ["", table(["item", "source"], [[p, cite(s, refs, used)] for p, s in src])]
    else:
        out.append("- Sources: see the selection file (not found in the installed package)")
    return "\n".join(out) + "\n"


def _sec_cutflows(res: Results, ps: PlotSet) -> str:
    if not res.cutflows:
        return unavailable("run", "cutflows/*.json not found")
    parts = [_img(ps, "cutflow", "Events after each cut, per run (log scale).")]
    parts.append(
        "Columns: *events* passing every cut up to this one; *weighted* the same with event weights; "
        "*eff. abs* = events after the cut / events entering the cut flow (already triggered and "
        "reconstructed); *eff. rel* = events after / before the cut. The signal efficiency used for the "
        "limits is a different, larger-denominator quantity (see "
        "[Signal](#signal-spectra-and-efficiency)).\n")
    main = {k: cf for k, cf in res.cutflows.items() if _main_cutflow(cf)}
    if len(main) < len(res.cutflows):
        parts.append(f"Cut flows of the {len(res.cutflows) - len(main)} simulated benchmark and signal "
                     "samples are in the [appendix](#appendix-per-sample-cut-flows).\n")
    for run, cf in main.items():
        parts.append(_cutflow_table(run, cf))
    # the invisible run's regions (run/regions.json), not the first regions.json found (dimuon/ sorts first)
    regions = res.json("regions") if (res.root / "regions.json").exists() else res.json("run/regions.json")
    if not regions:  # a multi-campaign search chain: one run folder per campaign (run_<campaign>/)
        regions = {}
        for path in sorted(res.root.glob("run_*/regions.json")):
            more = res.json(f"{path.parent.name}/regions.json")
            regions.update(more if isinstance(more, dict) else {})
    if regions:
        names = list(
            dict.fromkeys(
                n for v in regions.values() for n, x in v.items() if x is None or isinstance(x, int)
            )
        )
        rows = [
            [
                k,
                *[
                    BLINDED
                    if v.get(n) is None or (res.blinded and ("box" in n or "signal" in n))
                    else v.get(n)
                    for n in names
                ],
            ]
            for k, v in regions.items()
        ]
        parts.append("**Region counts**\n\n" + table(["dataset", *names], rows) + "\n")
    else:
        parts.append(unavailable("run", "regions.json not found"))
    return "\n".join(parts)


def _main_cutflow(cf: dict) -> bool:
    """The cut flows of the main text: the campaign sample (data, or the simulated data of the demo)."""
    return cf.get("sample", "campaign") == "campaign"


def _cutflow_table(run: str, cf: dict) -> str:
    rows = []
    for r in cf.get("rows", []):
        if r.get("blinded") or r.get("events") is None:
            rows.append([r.get("cut"), r.get("label"), BLINDED, BLINDED, BLINDED, BLINDED])
        else:
            rows.append([r.get("cut"), r.get("label"), r.get("events"), r.get("weighted"), r.get("eff_abs"),
                         r.get("eff_rel")])
    return (f"**{run}** ({cf.get('kind', '-')}, selection {cf.get('selection', '-')}"
            + (", blinded" if cf.get("blinded") else "") + ")\n\n"
            + table(["cut", "label", "events", "weighted", "eff. abs", "eff. rel"], rows) + "\n")


def details(summary: str, body: str) -> str:
    """A collapsible block (markdown inside, rendered by the md_in_html extension)."""
    return f'<details markdown="1">\n<summary>{summary}</summary>\n\n{body}\n\n</details>\n'


def _sec_appendix_cutflows(res: Results, ps: PlotSet) -> str:
    other = {k: cf for k, cf in res.cutflows.items() if not _main_cutflow(cf)}
    if not other:
        return "No simulated benchmark or signal samples in this results folder.\n"
    figs = [_img(ps, n, f"Cut flow, {n[len('cutflow_'):].replace('_', ' ')} (simulated samples: fraction of "
                 "the events entering the cut flow).") for n in ps.made if n.startswith("cutflow_")]
    return "\n".join(figs) + "\n" + "\n".join(
        details(f"{k} ({cf.get('kind', '-')}, {cf.get('selection', '-')})", _cutflow_table(k, cf))
                     for k, cf in other.items())


def _sec_appendix_hashes(res: Results, ps: PlotSet) -> str:
    if not res.cutflows:
        return unavailable("run", "cutflows/*.json not found")
    # per (selection, campaign, run): runs differ legitimately (e.g. the HCAL0 cut only where installed)
    rows = [[key, cf.get("selection", "-"), cf.get("kind", "-"),
             f"`{str(cf.get('selection_hash', '-'))[:16]}`"]
            for key, cf in res.cutflows.items()]
    return details(f"Selection hash of each of the {len(rows)} data sets",
                   table(["dataset", "selection", "kind", "selection hash"], rows))


def _plane_axes(res: Results) -> tuple[str, str] | None:
    """The two axes of the planes (``plane_final`` first): (ecal, hcal) for the invisible processor, the
    processor's own pair for the others (visible: (wcal, ecal); ALP: (ecal, hcal234)); None: no plane."""
    for name, _ in reversed(PLANES):
        h = res.hist(name)
        if h is not None:
            names = [a.name for a in h.axes if a.name != "run"]
            if len(names) >= 2:
                return names[0], names[1]
    return None


PLANE_AXES = {"ecal": "E_ECAL", "hcal": "E_HCAL", "hcal234": "E_HCAL2-4", "wcal": "E_WCAL"}


def _plane_titles(res: Results) -> dict[str, str]:
    """Panel titles of a search's planes (the cuts of its selection's ``[planes]``, from the provenance);
    {} for the invisible chain, whose panels are the paper's (loose SRD tag, (i)-(iv), all cuts)."""
    if search_kind(res) is None:
        return {}
    for sel in res.selections().values():
        planes = sel.get("planes")
        if sel.get("name") == "dimuon" or not isinstance(planes, dict):
            continue
        out = {"plane_loose": "beam preselection"}
        for key, name in (("i_iv", "plane_i_iv"), ("final", "plane_final")):
            cuts = planes.get(key) or []
            if cuts:
                out[name] = f"cuts up to {str(cuts[-1]).replace('_', ' ')}"
        return out
    return {}


def _plane_section_title(res: Results) -> str:
    axes = _plane_axes(res)
    if search_kind(res) is None or axes is None:
        return "The (E_ECAL, E_HCAL) plane"
    return "The ({}, {}) plane".format(*(PLANE_AXES.get(a, a) for a in axes))


def _sec_planes(res: Results, ps: PlotSet) -> str:
    axes = _plane_axes(res)
    if search_kind(res) is not None and axes is not None:
        x, y = (PLANE_AXES.get(a, a) for a in axes)
        main = [cf for cf in res.cutflows.values() if _main_cutflow(cf)]
        last = (main[0].get("rows") or [{}])[-1] if main else {}
        region = (f"the last cut of the {main[0].get('selection', '-')} selection, `{last.get('cut')}` "
                  f"({last.get('label')})") if last.get("cut") else "the last cut of the selection"
        titles = _plane_titles(res)
        chain = CHAIN_NAMES.get(search_kind(res) or "", "")
        text = (f"({x}, {y}) of the {chain} chain. Its signal region is {region}; the invisible-mode box "
                "and side bands do not apply and are not drawn."
                + (" Blinded: the signal-region events are removed before any histogram is filled."
                   if res.blinded else "") + "\n\n")
        caption = f"({x}, {y}): " + ", ".join(titles.get(n, t) for n, t in PLANES) + "."
        return text + _img(ps, "planes", caption)
    b = _box(res)
    text = (
        f"Signal box E_ECAL < {b.ecal_max:g} GeV, E_HCAL < {b.hcal_max:g} GeV; side band A (E_HCAL > "
        f"{b.hcal_max:g} GeV) and C (E_ECAL > {b.ecal_max:g} GeV); event classes I (dimuons, E_HCAL ~ 10 "
        "GeV), II (hadron electroproduction, E_ECAL + E_HCAL ~ 100 GeV), III (pile-up)."
        + (" The box is **blinded** (masked and hatched)." if res.blinded else "")
        + "\n\n"
    )
    return text + _img(ps, "planes", "(E_ECAL, E_HCAL): loose SRD-tagged, after (i)-(iv), after all cuts.")


# The distribution each search chain is about (its processor's histogram), drawn per run
SEARCH_HISTS = {
    "hcal1_final": (r"$E_{\mathrm{HCAL1}}$ [GeV]", "ALP selection, every cut but the ECAL one",
                    "E_HCAL1 after every cut of the ALP selection before the ECAL one (a → γγ decaying in "
                    "the first HCAL module)"),
    "esum_final": (r"$E_{\mathrm{WCAL}} + E_{\mathrm{ECAL}}$ [GeV]", "visible selection, before the box",
                   "E_WCAL + E_ECAL after every cut of the visible-mode selection before the blind box "
                   "(A' → e+e-: the sum is the beam energy)"),
}


def _sec_search_hists(res: Results, ps: PlotSet) -> str:
    """The search chain's own distribution (ALP: E_HCAL1; visible: E_WCAL + E_ECAL), when drawn."""
    return "\n".join(_img(ps, n, SEARCH_HISTS[n][2] + (" Blinded: the signal-box events are removed."
                                                         if res.blinded else "."))
                     for n in SEARCH_HISTS if n in ps.made)


def _sec_nminus1(res: Results, ps: PlotSet) -> str:
    names = [n for n in [*ps.made, *ps.missing] if n.startswith("nminus1_")]
    search_figs = _sec_search_hists(res, ps)
    if not names:
        return search_figs or unavailable("run", "no nminus1_* histograms")
    note = ("The analysis is blinded: events inside the signal box are removed before these histograms "
            "are filled, so distributions of variables that only matter inside the box are empty or shaped "
            "by the removal (marked *blinded region removed* on the figure).\n\n" if res.blinded else "")
    return (search_figs + "\n" if search_figs else "") + note + "\n".join(
        _img(ps, n, f"N-1 distribution of {plots.physics_label(n[len('nminus1_') :], plain=True)}: every cut "
             "but this "
             "one applied; the kept window is shaded.") for n in names
    )


def _sec_background(res: Results, ps: PlotSet) -> str:
    bkg = res.background()
    if bkg is None or not bkg.runs:
        return unavailable("background", "background.json not found")
    parts = []
    # "upstream" has its own column (the side-band-C extrapolation); the rest are the other sources.
    comps = sorted({c for r in bkg.runs for c in r.components} - {"upstream"})
    rows = []
    for r in bkg.runs:
        cells = [
            r.run,
            f"{_fmt(r.fit.p2)} ± {_fmt(r.fit.p2_unc, 2)}",
            f"{_fmt(r.upstream.value, 3)} ± {_fmt(r.upstream.unc, 2)}",
        ]
        for c in comps:
            d = r.components.get(c)
            cells.append(
                "-" if d is None
                else f"< {_fmt(d.value, 2)}" if d.limit else f"{_fmt(d.value, 3)} ± {_fmt(d.unc, 2)}"
            )
        cells.append(f"**{_fmt(r.total.value, 3)} ± {_fmt(r.total.unc, 2)}**")
        rows.append(cells)
    parts.append(table(["run", "slope p2 [1/GeV]", "upstream (side band C)", *comps, "total n_b"], rows))
    verdicts = [(r.run, v) for r in bkg.runs if (v := validation_verdict(r)) is not None]
    if verdicts:
        parts.append("Validation of the side-band shape (per run):\n\n" + "\n".join(
            f"- run {run}: **{flag}** {msg}" for run, (flag, msg) in verdicts))
    for r in bkg.runs:
        parts.append(_img(ps, f"sideband_c_{r.run}", f"Side-band-C fit and extrapolation, run {r.run}."))
    return "\n\n".join(parts) + "\n"


VERDICT_WORDS = {"ok": "OK", "warn": "WARNING", "fail": "FAILED"}


def validation_verdict(run: BackgroundRun) -> tuple[str, str] | None:
    """The background validation verdict of a run: (``OK``/``WARNING``/``FAILED``, its one-line message),
    from the record's ``validation.flag`` and ``message``; None when the record predates them."""
    v = run.validation
    flag = getattr(v, "flag", None)
    if flag is None:
        return None
    msg = str(getattr(v, "message", None) or "")
    return VERDICT_WORDS.get(str(flag), str(flag).upper()), msg


def _sec_dimuon(res: Results, ps: PlotSet) -> str:
    names = [n for n in [*ps.made, *ps.missing] if n.startswith("dimuon_")]
    if not names:
        return unavailable("run (dimuon processor)", "no dimuon_* histograms")
    ratio = _dimuon_ratio(res)
    text = ""
    if ratio is not None:
        nd, nm, r, err = ratio
        text = (f"Dimuon yield, data / MC = {nd:,.0f} / {nm:,.1f} = **{r:.3f} ± {err:.3f}** (stat.): the "
                "QED benchmark e⁻Z → e⁻Zμ⁺μ⁻ checks the EOT normalisation and the "
                "efficiency of the selection common to both searches; the yield is summed over the first "
                "histogram below.\n\n")
    return text + "\n".join(_img(ps, n, "Dimuon benchmark, data vs MC: "
                                  f"{plots.physics_label(n[len('dimuon_') :], plain=True)}.")
                             for n in names)


def _sec_signal(res: Results, ps: PlotSet) -> str:
    kind = search_kind(res)
    if kind is not None:
        parts = [f"**Signal efficiency** of the {CHAIN_NAMES.get(kind, kind)} search: the signal MC of each "
                 "run and mass through the search's selection (efficiency.json); the yields summary notes "
                 "which value each run uses."]
        if "signal_ecal" in res.hist_names():
            parts.append(_img(ps, "signal_spectra", "Signal E_ECAL spectra (unit area)."))
        return _sec_signal_table(res, ps, parts)
    parts = [
        "**Signal efficiency.** ε_sig(m_A') = W_pass / D: the weighted signal-MC events passing every cut "
        "including the signal box, divided by the number of A' produced per EOT with E_A' above the "
        "missing-energy threshold (the analytic yield), so that N_sig = EOT × (A' per EOT) × ε_sig. It "
        "therefore includes the trigger and reconstruction acceptance that the cut-flow *eff. abs* column "
        "(relative to the events entering the cut flow) does not: the two numbers differ by design.",
        _img(ps, "signal_spectra", "Signal E_ECAL spectra (unit area)."),
    ]
    return _sec_signal_table(res, ps, parts)


def chain_campaigns(res: Results) -> list[str]:
    """The campaigns of a multi-campaign search chain (its ``data_<campaign>/`` folders); [] otherwise."""
    return sorted(p.parent.name[len("data_"):] for p in res.root.glob("data_*/datasets.json"))


def efficiency_runs(res: Results) -> dict[str, Any]:
    """Run -> efficiency entry: efficiency.json, plus the ``efficiency_<campaign>/`` of the other campaigns
    of a multi-campaign search chain (not the invisible chain's ``efficiency_<production>/``)."""
    eff = res.efficiency()
    if eff is None:
        return {}
    runs = dict(eff.runs)
    for camp in chain_campaigns(res):
        more = res.record(type(eff), f"efficiency_{camp}/efficiency.json")
        runs.update({k: v for k, v in (more.runs if more is not None else {}).items() if k not in runs})
    return runs


def _sec_signal_table(res: Results, ps: PlotSet, parts: list[str]) -> str:
    """The efficiency table and figure after the signal section's text ``parts``."""
    runs = efficiency_runs(res)
    if runs:
        masses = sorted({m for r in runs.values() for m in r.mass_GeV})
        rows = []
        for m in masses:
            row: list[Any] = [_fmt(m)]
            for r in runs.values():
                if m in r.mass_GeV:
                    i = r.mass_GeV.index(m)
                    row.append(f"{r.efficiency[i]:.3f} ± {r.unc[i]:.3f}")
                else:
                    row.append("-")
            rows.append(row)
        mass = "m_a [GeV]" if search_kind(res) == "alp" else "m_A' [GeV]"
        parts.append(table([mass, *[f"run {r}" for r in runs]], rows))
        parts.append(_img(ps, "efficiency", "Signal efficiency vs m_A'" + (
            " with the published range." if search_kind(res) is None else ".")))
    else:
        parts.append(unavailable("efficiency", "efficiency.json not found"))
    return "\n\n".join(parts) + "\n"


def _sec_model(res: Results, ps: PlotSet) -> str:
    lim = res.limits()
    if lim is None:
        return unavailable("limits", "limits.json not found")
    info = model_info(lim)
    out = [
        f"- {k}: {_fmt(v) if not isinstance(v, list | dict) else ', '.join(map(str, v))}"
        for k, v in info.items() if v is not None or search_kind(res) is None
    ]
    out.append(f"- Confidence level: {100 * _cl(res):.0f}%")
    check = cast(SimplifiedCheck, lim.simplified_check)  # the invisible scan always writes it
    diff = check.max_abs_rel_diff
    out.append(f"- Cross-check: {check.description}; "
               + (f"max |rel. diff| = {_fmt(diff, 3)}" if diff is not None
                  else "not computed for this scan (no comparable points)"))
    ws = res.workspaces()
    if ws:
        mods = workspace_modifiers(ws[0])
        out.append(f"- pyhf workspaces: {len(ws)} (e.g. `{ws[0].name}`); modifiers of that workspace:")
        out += [f"  - `{n}` ({t})" for n, t in mods.items()]
    else:
        out.append("- pyhf workspaces: none found (limits/workspaces/*.json)")
    return "\n".join(out) + "\n"


def _sec_limits(res: Results, ps: PlotSet) -> str:
    lim = res.eps_limits()
    if lim is None:
        return unavailable("limits", "limits.json (eps scan) not found")
    note = "**Blinded**: expected limits only.\n\n" if res.blinded else ""
    rows = []
    for m in BENCHMARK_MASSES_GEV:
        exp = interp_loglog(lim.mass, lim.exp, m)
        if exp is None:
            continue
        obs = BLINDED if lim.obs is None else _fmt(interp_loglog(lim.mass, lim.obs, m), 3)
        rows.append([_fmt(m), _fmt(exp, 3), obs])
    parts = [note + _img(ps, "eps_limits", "90% CL exclusion on eps(m_A'); expected +-1/2 sigma bands.")]
    if rows:
        parts.append(table(["m_A' [GeV]", "eps expected", "eps observed"], rows))
    parts.append(_img(ps, "y_limits", "Limits on y with the thermal relic targets (digitised curves, drawn "
                      "smoothed: a 9-point moving average of log y)."))
    parts.append(_img(ps, "alpha_d_limits", "Lower limits on alpha_D (pseudo-Dirac, Majorana)."))
    return "\n\n".join(parts) + "\n"


def _sec_optimisation(res: Results, ps: PlotSet) -> str:
    opt = res.optimisation()
    if not opt:
        return unavailable("optimise", "no optimisation scan")
    rows = [[m, _fmt(d["best"], 3)] for m, d in opt.items()]
    return (
        _img(ps, "optimisation", "Expected limit vs E_ECAL box edge.")
        + "\n"
        + table(["m_A' [GeV]", "optimal E_ECAL edge [GeV]"], rows)
        + "\n"
    )


def _blinding(rec: dict[str, Any]) -> str:
    """A stage record's blinding field (or, for older records, its unblind/blinded flag)."""
    if rec.get("blinding"):
        return str(rec["blinding"])
    if isinstance(rec.get("unblind"), bool):
        return "unblinded" if rec["unblind"] else "blinded"
    if isinstance(rec.get("blinded"), bool):
        return "blinded" if rec["blinded"] else "unblinded"
    return "-"


def _sec_provenance(res: Results, ps: PlotSet) -> str:
    stages = _all_stages(res)
    out = [f"- Blinded: **{'yes' if res.blinded else 'no (box opened)'}**"]
    if not stages:
        return "\n".join(out) + "\n\n" + unavailable("any", "provenance.json not found")
    rows = []
    for name, st in stages.items():
        seed = st.get(
            "seed", (st.get("config") or {}).get("seed") if isinstance(st.get("config"), dict) else None
        )
        rows.append(
            [
                name,
                f"`{st.get('_where', '.')}`",
                st.get("time_utc"),
                f"`{st.get('git_commit')}`",
                seed,
                _blinding(st),
                f"`{st.get('command', '')}`",
            ]
        )
    out += ["", table(["stage", "folder", "time (UTC)", "commit", "seed", "blinding", "command"], rows)]
    latest = list(stages.values())[-1]
    if latest.get("versions"):
        out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in latest["versions"].items())]
    return "\n".join(out) + "\n"


_USED_REFS: dict[str, str] = {}  # source codes cited while rendering one report (reset by render_markdown)


def _sec_references(res: Results, ps: PlotSet) -> str:
    if not _USED_REFS:
        return "No sources cited.\n"
    refs = sorted(_USED_REFS.items())
    return "\n".join(f'- <a id="ref-{k.lower()}"></a>**{k}**: {v}' for k, v in refs) + "\n"


SECTIONS: tuple[tuple[str, Callable[[Results, PlotSet], str]], ...] = (
    ("Result", _sec_result),
    ("Data sets", _sec_datasets),
    ("Selection", _sec_selection),
    ("Cut flows", _sec_cutflows),
    ("The (E_ECAL, E_HCAL) plane", _sec_planes),
    ("N-1 distributions", _sec_nminus1),
    ("Background: side-band-C fit", _sec_background),
    ("Dimuon benchmark", _sec_dimuon),
    ("Signal: spectra and efficiency", _sec_signal),
    ("Statistical model", _sec_model),
    ("Limits", _sec_limits),
    ("Cut optimisation", _sec_optimisation),
    ("Provenance", _sec_provenance),
    ("References", _sec_references),
    ("Appendix: per-sample cut flows", _sec_appendix_cutflows),
    ("Appendix: selection hashes", _sec_appendix_hashes),
)
# Extra sections of other searches: (title, builder) appended after the limits by their modules.
TOC_SKIP = ("Result",)


def render_markdown(res: Results, ps: PlotSet) -> str:
    """The report text; each section is built independently so one bad input costs one section."""
    src = hand_written(res)
    if res.campaign():
        camp = ", ".join(chain_campaigns(res)) or str(res.campaign())
    elif src is not None:
        camp = (f"published inputs: {src.split(' (')[0]}" if published_inputs(src)
                else f"reinterpretation: {src.split(' (')[0]}")
    else:
        camp = "unknown campaign"
    what = {"vector": "Z' search", "alp": "ALP search", "visible": "visible-mode search"}.get(
        search_kind(res) or "", "invisible-mode search")
    head = [f"# NA64 {what}: analysis report ({camp})", ""]
    if res.blinded:
        head += ["> **BLINDED**: signal-box content is not shown; limits are expected limits only.", ""]
    _USED_REFS.clear()
    built: list[tuple[str, str]] = []
    for title, build in _sections(res, ps):
        try:
            body = build(res, ps)
        except Exception as exc:  # noqa: BLE001 - reported in the section, never swallowed silently
            log.warning("report section %s failed: %s", title, exc)
            body = f"> **Not available** (section could not be built: {type(exc).__name__}: {exc}).\n"
        built.append((title, body))
    toc = ["**Contents**", ""] + [f"{i}. [{t}](#{slug(t)})" for i, (t, _) in enumerate(built, 1)]
    for i, (title, body) in enumerate(built):
        head += [f"## {title}", "", body]
        if i == 0:  # the result first, then the table of contents
            head += ["\n".join(toc), ""]
    return "\n".join(head)


def slug(title: str) -> str:
    """The HTML id the markdown ``toc`` extension gives a heading (links in the table of contents)."""
    return slugify(title, "-")


def _sections(res: Results, ps: PlotSet) -> list[tuple[str, Callable[[Results, PlotSet], str]]]:
    """SECTIONS plus the extra search sections (hook: ``search_sections(res, ps)`` in
    presentation/search_plots.py, inserted after "Limits")."""
    out = list(SECTIONS)
    extra = list(search_plots.search_sections(res, ps, experiment=_search_experiment(res)))
    if extra:
        i = [t for t, _ in out].index("Limits") + 1
        out[i:i] = extra
    kind = search_kind(res)
    not_run = stages_not_run(res, ps)
    drop = {title for title, _ in not_run}
    if kind is not None:
        drop.add("Limits")  # the dark photon's eps, y, alpha_D: the search section has the search's limits
    out = [(_plane_section_title(res), b) if b is _sec_planes else (t, b) for t, b in out if t not in drop]
    if not_run:
        i = [t for t, _ in out].index("Provenance")
        lines = "".join(f"- **{title}**: {why}.\n" for title, why in not_run)

        def sec_not_run(res: Results, ps: PlotSet, lines: str = lines) -> str:
            return lines

        out.insert(i, ("Stages not run", sec_not_run))
    return out


CHAIN_NAMES = {"vector": "Z'", "alp": "ALP", "visible": "visible-mode"}


def skipped_stages(res: Results) -> dict[str, str]:
    """Stages the demo chain skipped, with why (``skipped_stages`` of the folder's "demo" stage record; a
    name may carry the campaign, e.g. "dimuon prl2023"); {} when none is recorded."""
    demo = _all_stages(res).get("demo") or {}
    skipped = demo.get("skipped_stages")
    return {str(k): str(v) for k, v in skipped.items()} if isinstance(skipped, dict) else {}


def stages_not_run(res: Results, ps: PlotSet) -> list[tuple[str, str]]:
    """(section title, why) of the sections whose stage did not run: skipped by the chain (the demo
    provenance says why) or not part of the search's chain (ALP, visible, Z': no side-band-C fit, dimuon
    benchmark or box-edge scan). Each becomes one line of "Stages not run" instead of a section of missing
    content; an invisible-chain stage missing without a recorded reason keeps its "Not available" section."""
    kind = search_kind(res)
    skipped = skipped_stages(res)
    summ = summary_doc(res) or {}
    notes = sorted({str(n["background"]) for r in summ.get("runs") or [] if isinstance(r, dict)
                    and isinstance(n := r.get("notes"), dict) and n.get("background")})
    bkg_from = (f"the background of each run is the yields summary's ({'; '.join(notes)})" if notes
                else "the background of each run is the yields summary's (Result table)")
    checks = (
        ("Background: side-band-C fit", "background", res.background() is not None,
         f"the side-band-C fit is a stage of the invisible-mode chain; {bkg_from}"),
        ("Dimuon benchmark", "dimuon", any(n.startswith("dimuon_") for n in [*ps.made, *ps.missing]),
         "the QED dimuon benchmark is run in the invisible-mode chain only"),
        ("Cut optimisation", "optimisation", bool(res.optimisation()),
         "the box-edge scan is a study of the invisible-mode E_ECAL box"),
    )
    out = []
    for title, stage, ran, not_in_chain in checks:
        if ran:
            continue
        why = "; ".join(v if k == stage else f"{k}: {v}" for k, v in skipped.items()
                        if k == stage or k.startswith(stage + " "))
        if why:
            out.append((title, f"skipped ({why})"))
        elif kind is not None:
            out.append((title, f"not part of the {CHAIN_NAMES.get(kind, kind)} chain: {not_in_chain}"))
    return out


HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}}
img{{max-width:100%;max-height:560px}} table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #bbb;
padding:3px 8px;text-align:right}} blockquote{{background:#fff4e5;border-left:4px solid #e69500;
margin:1em 0;padding:.3em 1em}} code{{background:#f3f3f3}} details{{margin:.5em 0;border:1px solid #ddd;
padding:.3em .8em}} summary{{cursor:pointer;font-weight:bold}} td:first-child,th:first-child{{text-align:left}}
</style></head>
<body>
{body}
</body></html>
"""  # noqa: E501 - the CSS lines of the template (reflowing them would change the written HTML)


def build_report(results_dir: str | Path, *, plots_made: PlotSet | None = None) -> Path:
    """Draw the plots (unless given) and write ``report.md`` and ``report.html``; returns the .md path.

    Recorded as stage "report" in ``results_dir/provenance.json`` (the files the report read, blinding)."""
    clock = provenance.Clock()
    results_dir = Path(results_dir)
    res = Results(results_dir)
    ps = plots_made or make_plots(results_dir)
    md = render_markdown(res, ps)
    md_path = results_dir / "report.md"
    md_path.write_text(md)
    body = markdown.markdown(md, extensions=["tables", "fenced_code", "toc", "md_in_html"])
    (results_dir / "report.html").write_text(HTML.format(title=f"NA64 report ({res.campaign()})", body=body))
    state = blinding.state(res.blinded)
    provenance.write(results_dir, "report", inputs=res.inputs(), outputs=["report.md", "report.html"],
                     blinding=state, metrics=clock.metrics(), figures=sorted(ps.made), missing=ps.missing)
    return md_path


def run_stage(results_dir: str | Path, *, compare: list[str] | None = None, pdf: bool = False) -> PlotSet:
    """The report stage: every figure the report shows (``plots/``, PNG; also PDF with ``pdf``), then
    ``report.md`` + ``report.html``, both recorded (stages "plots" and "report"). A folder without our
    marker is accepted only when the stage outputs inside it carry theirs (a folder assembled from na64ana
    outputs); else OutputError."""
    results = provenance.prepare_results_dir(results_dir, stage="report")
    made = make_plots(results, compare=compare, pdf=pdf)
    for name, why in made.missing.items():
        log.info("figure %s not drawn: %s", name, why)
    md = build_report(results, plots_made=made)
    log.info("wrote %s, %s and %d figures in %s", md, md.with_suffix(".html"), len(made.made), made.folder)
    return made
