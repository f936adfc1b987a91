"""The analysis report: every available figure, then ``report.md`` and ``report.html`` telling the story.

Order follows the analysis: data sets, selection, cut flows, (E_ECAL, E_HCAL) planes, N-1 plots, side-band
background, dimuon benchmark, signal, statistical model, limits, cut optimisation, provenance. A stage
that did not run gives a clearly marked "not available" section (never a crash, never a silent gap).

Blinding: when any input is blinded (see :class:`~na64ana.presentation.results.Results`) the report
shows only what
blinded outputs contain; box counts and observed limits are printed as "blinded" even if present.
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import hist
import markdown
import numpy as np

from .. import blinding
from ..blinding import SignalBox
from ..bookkeeping import provenance
from ..records import BackgroundRun, SidebandFit
from . import plots
from .results import (
    BENCHMARK_MASSES_GEV,
    Results,
    hist_meta,
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


# --- context shared by plots and report ------------------------------------------------------------
def _campaign_doc(res: Results) -> dict[str, Any] | None:
    ds = res.json("datasets")
    if not isinstance(ds, dict) or "campaigns" not in ds:
        return None
    name = res.campaign() or ds.get("default_campaign")
    return ds["campaigns"].get(name)


def simulated(res: Results) -> bool | None:
    """True if the inputs were simulated (simulate stage ran, MC cut flows, seeded files); None: unknown."""
    prov = res.json("provenance") or {}
    if "simulate" in prov.get("stages", {}) or any(cf.get("kind") == "mc" for cf in res.cutflows.values()):
        return True
    camp = _campaign_doc(res)
    if camp:
        files = [f for r in camp.get("runs", {}).values() for f in r.get("files", [])]
        if files:
            return any(f.get("seed") is not None or f.get("kind") == "mc" for f in files)
    return None


def _llabel(res: Results) -> str:
    return "Simulation" if simulated(res) is not False else "Internal"


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
    wanted = [k for k in keys if k in cats]
    if not cats or not wanted or len(wanted) == len(cats):
        return h
    return plots.sum_categories(h, wanted)


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
    meta = hist_meta(h)
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


# --- plots -------------------------------------------------------------------------------------------
def _plot_jobs(res: Results) -> list[tuple[str, str, Callable[[], Any]]]:
    """(figure name, stage that makes its input, builder) in report order; builders raise Unavailable."""
    ll, blinded, box = _llabel(res), res.blinded, _box(res)
    jobs: list[tuple[str, str, Callable[[], Any]]] = []

    def planes():
        data = res.keys(campaign_sample=True)
        panels = [(t, _only(h, data)) for n, t in PLANES if (h := res.hist(n)) is not None]
        if not panels:
            raise Unavailable("hists plane_loose/plane_i_iv/plane_final not found")
        return plots.plot_planes(panels, box=box, blinded=blinded, llabel=ll, rlabel=_rlabel(res))

    def cutflow():
        if not res.cutflows:
            raise Unavailable("cutflows/*.json not found")
        return plots.plot_cutflow(res.cutflows, llabel=ll)

    jobs += [("planes", "run", planes), ("cutflow", "run", cutflow)]
    for name in [n for n in res.hist_names() if n.startswith("nminus1_")]:

        def nm1(name=name):
            h = res.hist(name)
            cut, var = _nminus1_parts(res, name, h)
            return plots.plot_nminus1(
                _only(h, res.keys(campaign_sample=True)),
                var,
                window=_cut_window(res, cut, var, h),
                xlabel=_axis_label(h, var),
                llabel=ll,
            )

        jobs.append((name, "run", nm1))
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
        jobs.append(
            (
                f"dimuon_{var}",
                "run (dimuon processor)",
                lambda hd=hd, hm=hm, var=var: plots.plot_data_mc(
                    hd, hm, xlabel=_axis_label(hd, None), llabel=ll
                ),
            )
        )

    def spectra():
        s = _signal_spectra(res)
        if not s:
            raise Unavailable("hist signal_ecal not found")
        return plots.plot_signal_spectra(s, llabel=ll)

    def efficiency():
        eff = res.efficiency()
        if eff is None or not eff.runs:
            raise Unavailable("efficiency.json not found")
        return plots.plot_efficiency(eff.runs, intensities=_intensities(res), llabel=ll)

    def eps():
        lim = res.eps_limits()
        if lim is None:
            raise Unavailable("limits.json (eps scan) not found")
        return plots.plot_eps_limits(lim, llabel=ll, rlabel=_rlabel(res), cl=_cl(res))

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
    return jobs


def _fit_hist(fit: SidebandFit) -> Any:
    """The side-band counts stored with the fit (``edges``, ``counts``) as a hist, when no hist is around."""
    if not fit.edges or not fit.counts:
        raise Unavailable("hist ecal_sideband_c not found and the fit carries no counts")
    h = hist.Hist(hist.axis.Variable(fit.edges, name="ecal"))
    h[...] = np.asarray(fit.counts, float)
    return h


def _axis_label(h: Any, var: str | None) -> str:
    ax = next(a for a in h.axes if a.name != "run") if var is None else h.axes[var]
    return ax.label if ax.label and ax.label != ax.name else ax.name


def _cl(res: Results) -> float:
    lim = res.limits()
    return float(lim.cl) if lim is not None else 0.9


def make_plots(results_dir: str | Path) -> PlotSet:
    """Draw every figure whose inputs exist into ``results_dir/plots/`` (PNG + PDF), recorded in
    ``plots/provenance.json`` (stage "plots": the files read, blinding, the figures)."""
    clock = provenance.Clock()
    res = Results(results_dir)
    out = PlotSet(Path(results_dir) / "plots")
    written: list[str] = []
    for name, stage, build in _plot_jobs(res):
        try:
            fig = build()
        except Unavailable as exc:
            out.missing[name] = f"stage {stage} not run: {exc}"
            continue
        except Exception as exc:  # a malformed input must not kill the report: say what failed
            log.warning("plot %s failed: %s", name, exc)
            out.missing[name] = f"could not be drawn ({type(exc).__name__}: {exc})"
            continue
        paths = plots.save(fig, out.folder, name)
        written += [p.name for p in paths]
        out.made[name] = paths[0]
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
        return f"![{caption}]({rel})\n\n*{caption}* ([PDF]({rel[:-4]}.pdf))\n"
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
    out = [f"- Selection: **{first.get('selection', '-')}** (resolved per run; hashes below)", "",
           table(["dataset", "selection", "kind", "selection hash"], rows), ""]
    out.append(
        "- Cuts, in order: " + ", ".join(f"`{r.get('cut')}` ({r.get('label')})" for r in first["rows"])
    )
    src = _selection_sources(str(first.get("selection", "")))
    if src:
        out += ["", table(["item", "source"], [[p, s] for p, s in src])]
    else:
        out.append("- Sources: see the selection file (not found in the installed package)")
    return "\n".join(out) + "\n"


def _sec_cutflows(res: Results, ps: PlotSet) -> str:
    if not res.cutflows:
        return unavailable("run", "cutflows/*.json not found")
    parts = [_img(ps, "cutflow", "Events after each cut, per run (log scale).")]
    for run, cf in res.cutflows.items():
        rows = []
        for r in cf.get("rows", []):
            if r.get("blinded") or r.get("events") is None:
                rows.append([r.get("cut"), r.get("label"), BLINDED, BLINDED, BLINDED, BLINDED])
            else:
                rows.append(
                    [
                        r.get("cut"),
                        r.get("label"),
                        r.get("events"),
                        r.get("weighted"),
                        r.get("eff_abs"),
                        r.get("eff_rel"),
                    ]
                )
        parts.append(
            f"**{run}** ({cf.get('kind', '-')}, selection {cf.get('selection', '-')}"
            + (", blinded" if cf.get("blinded") else "")
            + ")\n\n"
            + table(["cut", "label", "events", "weighted", "eff. abs", "eff. rel"], rows)
            + "\n"
        )
    # the invisible run's regions (run/regions.json), not the first regions.json found (dimuon/ sorts first)
    regions = res.json("regions") if (res.root / "regions.json").exists() else res.json("run/regions.json")
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


def _sec_planes(res: Results, ps: PlotSet) -> str:
    b = _box(res)
    text = (
        f"Signal box E_ECAL < {b.ecal_max:g} GeV, E_HCAL < {b.hcal_max:g} GeV; side band A (E_HCAL > "
        f"{b.hcal_max:g} GeV) and C (E_ECAL > {b.ecal_max:g} GeV); event classes I (dimuons, E_HCAL ~ 10 "
        "GeV), II (hadron electroproduction, E_ECAL + E_HCAL ~ 100 GeV), III (pile-up)."
        + (" The box is **blinded** (masked and hatched)." if res.blinded else "")
        + "\n\n"
    )
    return text + _img(ps, "planes", "(E_ECAL, E_HCAL): loose SRD-tagged, after (i)-(iv), after all cuts.")


def _sec_nminus1(res: Results, ps: PlotSet) -> str:
    names = [n for n in [*ps.made, *ps.missing] if n.startswith("nminus1_")]
    if not names:
        return unavailable("run", "no nminus1_* histograms")
    return "\n".join(
        _img(ps, n, f"N-1 distribution of `{n[len('nminus1_') :]}` (kept window shaded).") for n in names
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
    for r in bkg.runs:
        parts.append(_img(ps, f"sideband_c_{r.run}", f"Side-band-C fit and extrapolation, run {r.run}."))
    return "\n\n".join(parts) + "\n"


def _sec_dimuon(res: Results, ps: PlotSet) -> str:
    names = [n for n in [*ps.made, *ps.missing] if n.startswith("dimuon_")]
    if not names:
        return unavailable("run (dimuon processor)", "no dimuon_* histograms")
    return "\n".join(_img(ps, n, f"Dimuon benchmark, data vs MC: {n[len('dimuon_') :]}.") for n in names)


def _sec_signal(res: Results, ps: PlotSet) -> str:
    parts = [_img(ps, "signal_spectra", "Signal E_ECAL spectra (unit area).")]
    eff = res.efficiency()
    if eff is not None and eff.runs:
        runs = eff.runs
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
        parts.append(table(["m_A' [GeV]", *[f"run {r}" for r in runs]], rows))
        parts.append(_img(ps, "efficiency", "Signal efficiency vs m_A' with the published range."))
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
        for k, v in info.items()
    ]
    out.append(f"- Confidence level: {100 * _cl(res):.0f}%")
    check = lim.simplified_check
    out.append(f"- Cross-check: {check.description}; max |rel. diff| = {_fmt(check.max_abs_rel_diff, 3)}")
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
    parts.append(_img(ps, "y_limits", "Limits on y with the thermal relic targets."))
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
    prov = res.json("provenance")
    out = [f"- Blinded: **{'yes' if res.blinded else 'no (box opened)'}**"]
    if not prov or not prov.get("stages"):
        return "\n".join(out) + "\n\n" + unavailable("any", "provenance.json not found")
    rows = []
    for name, st in prov["stages"].items():
        seed = st.get(
            "seed", (st.get("config") or {}).get("seed") if isinstance(st.get("config"), dict) else None
        )
        rows.append(
            [
                name,
                st.get("time_utc"),
                f"`{st.get('git_commit')}`",
                seed,
                _blinding(st),
                f"`{st.get('command', '')}`",
            ]
        )
    out += ["", table(["stage", "time (UTC)", "commit", "seed", "blinding", "command"], rows)]
    latest = list(prov["stages"].values())[-1]
    if latest.get("versions"):
        out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in latest["versions"].items())]
    return "\n".join(out) + "\n"


SECTIONS: tuple[tuple[str, Callable[[Results, PlotSet], str]], ...] = (
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
)


def render_markdown(res: Results, ps: PlotSet) -> str:
    """The report text; each section is built independently so one bad input costs one section."""
    camp = res.campaign() or "unknown campaign"
    head = [f"# NA64 invisible-mode search: analysis report ({camp})", ""]
    if res.blinded:
        head += ["> **BLINDED**: signal-box content is not shown; limits are expected limits only.", ""]
    for title, build in SECTIONS:
        try:
            body = build(res, ps)
        except Exception as exc:  # noqa: BLE001 - reported in the section, never swallowed silently
            log.warning("report section %s failed: %s", title, exc)
            body = f"> **Not available** (section could not be built: {type(exc).__name__}: {exc}).\n"
        head += [f"## {title}", "", body]
    return "\n".join(head)


HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}}
img{{max-width:100%}} table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #bbb;
padding:3px 8px;text-align:right}} blockquote{{background:#fff4e5;border-left:4px solid #e69500;
margin:1em 0;padding:.3em 1em}} code{{background:#f3f3f3}}</style></head>
<body>
{body}
</body></html>
"""


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
    body = markdown.markdown(md, extensions=["tables", "fenced_code"])
    (results_dir / "report.html").write_text(HTML.format(title=f"NA64 report ({res.campaign()})", body=body))
    state = blinding.state(res.blinded)
    provenance.write(results_dir, "report", inputs=res.inputs(), outputs=["report.md", "report.html"],
                     blinding=state, metrics=clock.metrics(), figures=sorted(ps.made), missing=ps.missing)
    return md_path


def run_stage(results_dir: str | Path) -> PlotSet:
    """The report stage: every available figure (``plots/``), then ``report.md`` + ``report.html``, both
    recorded (stages "plots" and "report"). A folder without our marker is accepted only when the stage
    outputs inside it carry theirs (a folder assembled from na64ana outputs); else OutputError."""
    results = provenance.prepare_results_dir(results_dir, stage="report")
    made = make_plots(results)
    for name, why in made.missing.items():
        log.info("figure %s not drawn: %s", name, why)
    md = build_report(results, plots_made=made)
    log.info("wrote %s, %s and %d figures in %s", md, md.with_suffix(".html"), len(made.made), made.folder)
    return made
