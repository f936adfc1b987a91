"""Publication-style figures of the NA64 invisible-mode analysis.

Every ``plot_*`` function is pure: it takes data (``hist.Hist`` objects, arrays, parsed JSON pieces) and
returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as PNG and PDF. Figures are built with
``Figure()`` directly (no pyplot state), so they work under any backend, render with Agg and never leak.
The NA64 label and the mplhep ROOT style are applied to every figure.

Blinding: the plane and N-1 plots mask the signal box themselves when told ``blinded=True``, so a
histogram that carries box content by mistake still shows nothing there.
"""

from __future__ import annotations

import functools
import logging
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.style
import mplhep
import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from scipy import special

from .. import published
from ..blinding import SignalBox
from ..records import EfficiencyRun, SidebandFit, Upstream
from .results import Curve, EpsLimits

# Plane range: the ECAL trigger threshold (end of side band C) and the beam energy (GeV).
ECAL_TRIGGER_GEV = float(published.get("trigger.ecal_max_GeV"))
BEAM_GEV = float(published.get("beam.energy_GeV"))

# ROOT style with the base font scaled for our ~8x6 inch figures (the style assumes 10x10 at 26 pt).
STYLE = {**mplhep.style.ROOT, "font.size": 17}
# The ROOT style names a 'cursive' family that is rarely installed; matplotlib falls back silently enough,
# but logs one warning per figure. Keep notebooks and logs readable.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
DPI = 110
COLORS = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300", "#b9ac70")
MODEL_LABEL = {"scalar": "scalar", "pseudodirac": "pseudo-Dirac", "majorana": "Majorana"}


def styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw inside the mplhep style context: rcParams are read when artists are created."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.style.context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def label(ax: Any, *, llabel: str = "Simulation", rlabel: str | None = None) -> None:
    """The experiment label: bold "NA64", italic status, exposure on the right.

    Same look as ``mplhep.label.exp_label``, but the status text is anchored to the "NA64" text artist
    (``xycoords=artist``), so it stays in place when constrained layout moves the axes at save time
    (exp_label computes the offset once, in axes fractions, and overlapped on our layouts).
    """
    if llabel.startswith("Reinterpretation"):
        # a hand-written summary (another experiment's or a paper's numbers): no NA64 claim
        # short (the report truncates the source name), so it never squeezes the axes
        ax.text(0.0, 1.01, llabel, transform=ax.transAxes, ha="left", va="bottom", fontsize="medium",
                style="italic")
        if rlabel:
            ax.text(1.0, 1.01, rlabel, transform=ax.transAxes, ha="right", va="bottom", fontsize="medium")
        return
    exp = ax.text(
        0.0, 1.01, "NA64", transform=ax.transAxes, ha="left", va="bottom", fontsize="x-large", weight="bold"
    )
    if llabel:
        ax.annotate(
            " " + llabel,
            xy=(1.0, 0.0),
            xycoords=exp,
            ha="left",
            va="bottom",
            fontsize="large",
            style="italic",
        )
    if rlabel:
        ax.text(1.0, 1.01, rlabel, transform=ax.transAxes, ha="right", va="bottom", fontsize="medium")


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free figure on an Agg canvas at the output dpi (mplhep positions labels in pixels)."""
    fig = Figure(figsize=figsize, layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


# Figure file metadata: no creation date in the PDF (matplotlib writes the current time otherwise), so the
# same figure gives the same bytes and a results folder is reproducible file by file; the PNG carries only
# matplotlib's "Software" entry. Nothing derived from the data goes into metadata.
SAVE_METADATA = {".pdf": {"CreationDate": None}, ".png": {}}
# zlib level 1 for the PNGs: level 6 (PIL's default) spent ~1/5 of the report's drawing time compressing,
# for files ~20% smaller
SAVE_OPTIONS: dict[str, dict[str, Any]] = {".pdf": {}, ".png": {"pil_kwargs": {"compress_level": 1}}}


def save(fig: Figure, outdir: str | Path, name: str, *, pdf: bool = True) -> list[Path]:
    """Write ``outdir/name.png`` and (``pdf``) ``.pdf`` (byte-reproducible, see SAVE_METADATA); returns the
    paths, PNG first. The constrained layout keeps every label inside the figure, so no "tight" bounding
    box is computed (that is a second full draw per file); it is run once here and then fixed (savefig
    would run it in a first, non-rendering draw of the whole figure for each file)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.png", *([outdir / f"{name}.pdf"] if pdf else [])]
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.execute(fig)
        fig.set_layout_engine(None)
    for p in paths:
        fig.savefig(p, metadata=SAVE_METADATA[p.suffix], **SAVE_OPTIONS[p.suffix])
    return paths


# --- histogram helpers --------------------------------------------------------------------------------
def project(h: Any, *axes: str) -> Any:
    """Sum a histogram over every axis not named (the ``run`` category, usually)."""
    names = [a.name for a in h.axes]
    return h if names == list(axes) else h.project(*axes)


def categories(h: Any, name: str) -> list[str]:
    names = [a.name for a in h.axes]
    return [str(c) for c in h.axes[name]] if name in names else []


def select(h: Any, **cats: Any) -> Any:
    """Select category bins by value (``select(h, run="I")``)."""
    return h[dict(cats)]


def sum_categories(h: Any, keys: Sequence[str], axis: str = "run") -> Any:
    """Sum of the ``axis`` bins named in ``keys`` (that axis removed)."""
    return functools.reduce(operator.add, (h[{axis: k}] for k in keys))


def _values_edges(h1: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vals = np.asarray(h1.values(), dtype=float)
    var = h1.variances()
    err = np.sqrt(var) if var is not None else np.sqrt(np.clip(vals, 0, None))
    return vals, np.asarray(h1.axes[0].edges), np.asarray(err, dtype=float)


def mask_box(values: np.ndarray, xedges: np.ndarray, yedges: np.ndarray, box: SignalBox) -> np.ndarray:
    """NaN in every bin that overlaps the signal box: blinded planes show nothing there."""
    out = np.array(values, dtype=float)
    inx = xedges[:-1] < box.ecal_max
    iny = yedges[:-1] < box.hcal_max
    out[np.ix_(inx, iny)] = np.nan
    return out


# --- (E_ECAL, E_HCAL) planes ----------------------------------------------------------------------------
# a white outline keeps the region labels readable on top of the coloured 2D histogram
HALO = [patheffects.withStroke(linewidth=3, foreground="white")]


def _draw_regions(ax: Any, box: SignalBox, ymax: float, *, blinded: bool) -> None:
    xmax = BEAM_GEV
    kw: dict[str, Any] = {"fill": False, "lw": 1.6}
    ax.add_patch(Rectangle((0, 0), box.ecal_max, box.hcal_max, ec="red", **kw))
    if blinded:
        ax.add_patch(
            Rectangle(
                (0, 0), box.ecal_max, box.hcal_max, fc="lightgrey", ec="red", hatch="///", lw=1.6, zorder=5
            )
        )
        ax.annotate(
            "BLINDED",
            (box.ecal_max / 2, box.hcal_max),
            xytext=(box.ecal_max / 2, 0.2 * ymax),
            color="red",
            ha="center",
            fontsize=12,
            weight="bold",
            zorder=6,
            bbox={"fc": "white", "ec": "red"},
            arrowprops={"arrowstyle": "->", "color": "red"},
        )
    else:
        ax.annotate(
            "signal box",
            (box.ecal_max / 2, box.hcal_max),
            xytext=(box.ecal_max / 2, 0.2 * ymax),
            color="red",
            ha="center",
            fontsize=12,
            bbox={"fc": "white", "ec": "red"},
            arrowprops={"arrowstyle": "->", "color": "red"},
        )
    ax.add_patch(
        Rectangle((0, box.hcal_max), box.ecal_max, ymax - box.hcal_max, ec="tab:blue", ls="--", **kw)
    )
    ax.text(2, 0.55 * ymax, "A", color="tab:blue", fontsize=14, weight="bold", path_effects=HALO)
    ax.add_patch(
        Rectangle((box.ecal_max, 0), xmax - box.ecal_max, box.hcal_max, ec="tab:green", ls="--", **kw)
    )
    ax.text(box.ecal_max + 2, 0.05 * ymax, "C", color="tab:green", fontsize=14, weight="bold",
            path_effects=HALO)
    # Event classes of PRD 97 072002 Fig. 7: I dimuons, II hadrons (E_ECAL + E_HCAL ~ E0), III pile-up.
    ax.plot([0, xmax], [xmax, 0], color="k", ls=":", lw=1)
    ax.text(20, 10, "I", fontsize=14, weight="bold", path_effects=HALO, va="center")
    ax.text(0.62 * xmax, 0.43 * xmax, "II", fontsize=14, weight="bold", path_effects=HALO, rotation=-45)
    ax.text(0.75 * xmax, 0.6 * min(ymax, xmax), "III", fontsize=14, weight="bold", path_effects=HALO)


PLANE_LABELS = {"ecal": r"$E_{\mathrm{ECAL}}$ [GeV]", "hcal": r"$E_{\mathrm{HCAL}}$ [GeV]",
                "hcal234": r"$E_{\mathrm{HCAL}}$, modules 2-4 [GeV]", "wcal": r"$E_{\mathrm{WCAL}}$ [GeV]"}


@styled
def plot_planes(
    panels: Sequence[tuple[str, Any]],
    *,
    box: SignalBox | None = None,
    blinded: bool = False,
    llabel: str = "Simulation",
    rlabel: str | None = None,
) -> Figure:
    """The (E_ECAL, E_HCAL) planes (loose SRD tag, after (i)-(iv), after all cuts) side by side.

    ``panels``: (title, hist with ``ecal`` and ``hcal`` axes; other axes are summed). Side bands A/C, the
    signal box and event classes I-III are drawn; with ``blinded`` the box is masked and hatched.
    """
    box = box or SignalBox()
    fig = new_figure((7 * len(panels), 6.3))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, h) in zip(axes, panels, strict=True):
        # the invisible search's (ecal, hcal); another processor's own pair, e.g. ALP (ecal, hcal234),
        # visible (wcal, ecal): its regions are not the invisible ones, so none are drawn
        xname, yname = [a.name for a in h.axes if a.name != "run"][:2]
        invisible = (xname, yname) == ("ecal", "hcal")
        h2 = project(h, xname, yname)
        xe, ye = np.asarray(h2.axes[xname].edges), np.asarray(h2.axes[yname].edges)
        vals = np.asarray(h2.values(), dtype=float)
        if blinded and invisible:  # other processors drop their box before filling
            vals = mask_box(vals, xe, ye, box)
        vals = np.where(vals > 0, vals, np.nan)
        if np.isfinite(vals).any():
            mesh = ax.pcolormesh(
                xe,
                ye,
                vals.T,
                norm=LogNorm(vmin=np.nanmin(vals), vmax=np.nanmax(vals)),
                cmap="viridis",
                rasterized=True,
            )
            fig.colorbar(mesh, ax=ax, label="Events / bin")
        else:  # an empty panel says so (not a drawing failure)
            empty = "no event left after these cuts" + ("\noutside the blinded box" if blinded else "")
            ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", fontsize=12,
                    color="dimgrey")
        ymax = float(ye[-1])
        if invisible:
            _draw_regions(ax, box, ymax, blinded=blinded)
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ymax)
        ax.set_xlabel(PLANE_LABELS.get(xname, xname))
        ax.set_ylabel(PLANE_LABELS.get(yname, yname))
        ax.text(
            0.97,
            0.97,
            title,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=13,
            bbox={"fc": "white", "ec": "none", "alpha": 0.8},
        )
        # the exposure once, above the last panel (three labels collided with the status text)
        label(ax, llabel=llabel, rlabel=rlabel if ax is axes[-1] else None)
    return fig


# --- cut flow, N-1 --------------------------------------------------------------------------------------
# Physics labels of the ntuple branches (contract names; units come from the histogram axis or here).
PHYSICS_LABELS: dict[str, str] = {
    "ecal_e": r"$E_\mathrm{ECAL}$ [GeV]", "ecal": r"$E_\mathrm{ECAL}$ [GeV]",
    "hcal_e": r"$E_\mathrm{HCAL}$ (modules 1-4) [GeV]", "hcal": r"$E_\mathrm{HCAL}$ [GeV]",
    "hcal_e0": r"$E_\mathrm{HCAL}$, module 1 [GeV]", "hcal_e1": r"$E_\mathrm{HCAL}$, module 2 [GeV]",
    "hcal_e2": r"$E_\mathrm{HCAL}$, module 3 [GeV]", "hcal_e3": r"$E_\mathrm{HCAL}$, module 4 [GeV]",
    "hcal0_e": r"$E_\mathrm{HCAL0}$ (zero degree) [GeV]",
    "ecal_pileup": "ECAL pile-up peaks", "ecal_chi2": r"ECAL shower-shape $\chi^2$",
    "srd_e_max": "SRD module energy, maximum [MeV]", "srd_e_min": "SRD module energy, minimum [MeV]",
    "srd_t_absmax": r"SRD hit time $|t|$, maximum [ns]", "straw_nhits": "straw-tube hits",
    "track_n": "incoming tracks", "track_p": r"track momentum $p$ [GeV]",
    "track_theta": r"track angle $\theta_\mathrm{in}$ [mrad]",
    "veto_e_max": "VETO counter energy, maximum [MeV]", "m_mumu": r"$m_{\mu\mu}$ [GeV]",
}


def physics_label(name: str, *, plain: bool = False) -> str:
    """A physics label for a branch or histogram-name fragment: the known variable at its end (e.g.
    ``veto_e_veto`` -> "E_VETO [MIP]"), else the name with underscores as spaces. ``plain``: no TeX and
    units in parentheses (for text and image captions)."""
    low = name.lower()
    out = name.replace("_", " ")
    for key in sorted(PHYSICS_LABELS, key=len, reverse=True):
        if low == key or low.endswith("_" + key):
            out = PHYSICS_LABELS[key]
            if low != key and low[: -len(key) - 1] not in key:  # the cut name in front, e.g. muon_veto_
                out = f"{out} ({low[: -len(key) - 1].replace('_', ' ')} cut)"
            break
    if plain:
        out = re.sub(r"\\mathrm\{([^}]*)\}", r"\1", out).replace("$", "").replace("\\", "")
        out = out.replace("[", "(").replace("]", ")").replace("{", "").replace("}", "")
    return out


# a sequential map for many samples ordered in a parameter (signal masses): neighbours look alike
SAMPLE_COLORS = tuple(matplotlib.colormaps["viridis"](v) for v in np.linspace(0.0, 0.9, 10))


def _sample_label(sample: str) -> str:
    """'signal-m0.02' -> "A' 20 MeV"; other sample names as they are."""
    m = re.fullmatch(r"signal-m([0-9.eE+-]+)", sample)
    if m is None:
        return sample
    mass = float(m.group(1))
    return f"A' {mass * 1e3:g} MeV" if mass < 1 else f"A' {mass:g} GeV"


@styled
def plot_cutflow(cutflows: Mapping[str, Mapping[str, Any]], *, llabel: str = "Simulation",
                 efficiency: bool = False, title: str | None = None) -> Figure:
    """Events after each cut per run (log y), or, with ``efficiency``, the fraction of the events entering
    the cut flow (``eff_abs``; for MC samples whose weights are not event counts). Blinded rows are hatched
    and marked, never plotted. More than 6 entries put the legend beside the axes."""
    fig = new_figure((11, 6.5))
    ax = fig.subplots()
    labels: list[str] = []  # the union of the cut lists, each run's order kept (a cut only some runs
    wording: dict[str, set[str]] = {}  # have, e.g. HCAL0, goes right after its predecessor in that run)
    for cf in cutflows.values():
        prev = -1
        for row in cf.get("rows", []):
            name = str(row.get("cut") or row.get("label"))  # one column per cut, however runs word it
            wording.setdefault(name, set()).add(str(row.get("label") or name))
            if name not in labels:
                labels.insert(prev + 1, name)
            prev = labels.index(name)
    # the tick: the cut's label when every run words it the same, else its name
    ticks = [next(iter(wording[n])) if len(wording[n]) == 1 else n for n in labels]
    x = np.arange(len(labels))
    blinded_cols: set[int] = set()
    zero_marked = False
    # many samples named "<run>-<sample>" (signal MC: 3 runs x 10 masses): colour = sample, marker = run,
    # and a legend of samples plus one of runs instead of one entry per line
    split = {k: str(k).split("-", 1) for k in cutflows}
    grouped = len(cutflows) > 6 and all(len(v) == 2 for v in split.values())
    run_names = list(dict.fromkeys(v[0] for v in split.values())) if grouped else []
    samples = list(dict.fromkeys(v[1] for v in split.values())) if grouped else []
    for i, (run, cf) in enumerate(cutflows.items()):
        y = np.full(len(labels), np.nan)
        for row in cf.get("rows", []):
            j = labels.index(str(row.get("cut") or row.get("label")))
            if row.get("blinded") or row.get("events") is None:
                blinded_cols.add(j)
            elif efficiency:
                y[j] = row.get("eff_abs") if row.get("eff_abs") is not None else np.nan
            else:
                y[j] = row.get("weighted") if row.get("weighted") is not None else row["events"]
        have = {str(row.get("cut") or row.get("label")) for row in cf.get("rows", [])}
        for j in range(1, len(labels)):  # a cut this run does not have (e.g. HCAL0 before 2017) keeps
            if labels[j] not in have:    # its events: the line goes on instead of breaking
                y[j] = y[j - 1]
        if grouped:
            r_name, sample = split[run]
            ax.plot(x, np.where(y > 0, y, np.nan), marker="os^vD<>p"[run_names.index(r_name) % 8], ms=4,
                    lw=1, color=SAMPLE_COLORS[samples.index(sample) % len(SAMPLE_COLORS)])
            continue
        color = COLORS[i % len(COLORS)]
        ax.plot(
            x,
            np.where(y > 0, y, np.nan),
            marker="os^vD<>p"[i % 8],
            color=color,
            label=f"run {run}" if len(str(run)) <= 4 else str(run),
        )
        if not efficiency and (y == 0).any():  # a log axis cannot show 0: mark where the run empties
            j0 = int(np.argmax(y == 0))
            ax.plot([j0], [0.02 + 0.03 * (i % 4)], marker="v", ms=9, color=color, ls="none", clip_on=False,
                    transform=ax.get_xaxis_transform())
            zero_marked = True
    if zero_marked:  # in the legend: a log axis cannot draw 0
        ax.plot([], [], marker="v", ms=9, color="grey", ls="none", label="no event left after this cut")
    for j in sorted(blinded_cols):
        ax.axvspan(j - 0.45, j + 0.45, fc="lightgrey", ec="red", hatch="///", alpha=0.6)
        ax.text(
            j,
            0.5,
            "BLINDED",
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="center",
            va="center",
            color="red",
            weight="bold",
            fontsize=11,
        )
    if efficiency:
        ax.set_ylim(0.0, 1.08)
    else:
        ax.set_yscale("log")
    ax.set_xticks(x, ticks, rotation=35, ha="right", fontsize=10)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel("Cumulative efficiency" if efficiency else "Events after cut")
    if title:
        ax.set_title(title, fontsize=12, loc="right", pad=22)
    if grouped:
        handles = [Line2D([], [], color=SAMPLE_COLORS[j % len(SAMPLE_COLORS)], lw=2, label=_sample_label(smp))
                   for j, smp in enumerate(samples)]
        handles += [Line2D([], [], color="grey", marker="os^vD<>p"[j % 8], ls="none", label=f"run {r}")
                    for j, r in enumerate(run_names)]
        ax.legend(handles=handles, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)
    elif len(cutflows) > 6:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1 + len(cutflows) // 20,
                  borderaxespad=0.0)
    else:
        ax.legend(fontsize=11)
    label(ax, llabel=llabel)
    return fig


@styled
def plot_nminus1(
    h: Any,
    variable: str,
    *,
    window: tuple[float | None, float | None] | None = None,
    xlabel: str | None = None,
    llabel: str = "Simulation",
    blinded: bool = False,
    title: str | None = None,
) -> Figure:
    """N-1 distribution of one cut variable per run, the kept window shaded and its edges drawn; with
    ``blinded`` a visible note says the signal-box events were removed (empty or shaped histograms);
    ``title`` (e.g. the selection and the cut) on the right above the axes."""
    fig = new_figure((8, 6))
    ax = fig.subplots()
    runs = categories(h, "run")
    empty = not np.any(np.asarray(h.values()) > 0)
    for i, run in enumerate(runs or [None]):
        h1 = project(select(h, run=run) if run is not None else h, variable)
        if empty:  # nothing to draw (all blinded): the axis and the note below, no overlapping zero lines
            edges = _values_edges(h1)[1]
            break
        vals, edges, _ = _values_edges(h1)
        mplhep.histplot(
            vals, edges, ax=ax, color=COLORS[i % len(COLORS)], label=f"run {run}" if run is not None else None
        )
    if window is not None:
        lo, hi = window
        ax.axvspan(
            lo if lo is not None else edges[0],
            hi if hi is not None else edges[-1],
            color="tab:green",
            alpha=0.12,
            label="kept",
        )
        for edge in (lo, hi):
            if edge is not None:
                ax.axvline(edge, color="tab:green", ls="--", lw=1.5)
    if np.any(np.asarray(h.values()) > 0):  # an empty N-1 histogram (e.g. all blinded) stays linear
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or physics_label(variable))
    ax.set_ylabel("Events / bin")
    if empty:
        ax.set_ylim(0.0, 1.0)
        ax.set_xlim(edges[0], edges[-1])
    if blinded:
        ax.text(0.5 if empty else 0.27, 0.5 if empty else 0.93,
                "blinded region removed" + ("\n(no entry: none passes the other cuts\nor every one is in the "
                                            "signal box)" if empty else ""),
                transform=ax.transAxes, ha="center", va="center", color="red", weight="bold", fontsize=13,
                bbox={"fc": "white", "ec": "red", "alpha": 0.8})
    if ax.get_legend_handles_labels()[0]:  # none for an empty histogram without a window
        ax.legend(fontsize=11)
    if title:
        ax.set_title(title, fontsize=12, loc="right", pad=22)
    label(ax, llabel=llabel)
    return fig


# --- side band C --------------------------------------------------------------------------------------
def _model(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if name == "exp":
        return lambda e, p: np.exp(p[0] + p[1] * e)
    # local: na64ana.background loads awkward/uproot/iminuit (+0.9 s CPU), needed for alternative shapes only
    from ..background import MODELS

    return MODELS[name][0]


def _fit(fit: SidebandFit | Mapping[str, Any]) -> SidebandFit:
    return fit if isinstance(fit, SidebandFit) else SidebandFit.model_validate(fit)


def fit_curve(fit: SidebandFit | Mapping[str, Any],
              e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fitted density f(E) (events/GeV; the fit's model, e.g. exp(p1 + p2 E)) and its +-1 sigma band.

    The band propagates the parameter covariance linearly in log f (numerical gradient), or, without a
    covariance, the slope uncertainty ``p2_unc`` around the fit-range centre.
    """
    fit = _fit(fit)
    params = np.asarray(fit.params, dtype=float)
    func = _model(fit.model)
    f = func(e, params)
    cov = fit.cov
    if cov is not None and np.shape(cov) == (params.size, params.size):
        grads = []
        for i in range(params.size):
            dp = np.zeros_like(params)
            dp[i] = 1e-6 * max(1.0, abs(params[i]))
            grads.append((np.log(func(e, params + dp)) - np.log(func(e, params - dp))) / (2 * dp[i]))
        g = np.array(grads)
        var = np.einsum("ik,ij,jk->k", g, np.asarray(cov, dtype=float), g)
    else:
        rng = fit.fit_range or [e.min(), e.max()]
        var = ((e - 0.5 * (rng[0] + rng[1])) * float(fit.p2_unc or 0.0)) ** 2
    s = np.sqrt(np.clip(var, 0, None))
    return f, f * np.exp(-s), f * np.exp(s)


@styled
def plot_sideband_fit(
    h_ecal: Any,
    fit: SidebandFit | Mapping[str, Any],
    *,
    prediction: Upstream | Mapping[str, Any] | None = None,
    box: SignalBox | None = None,
    run: str | None = None,
    llabel: str = "Simulation",
) -> Figure:
    """Side-band-C E_ECAL spectrum (events/GeV), the exp(p1 + p2 E) fit and its extrapolation into the box.

    ``fit``: background.json ``runs[].fit``; ``prediction``: its ``upstream`` (value, unc) in the box.
    The curve is drawn as a density (events per GeV), the data are divided by the bin width to match.
    """
    box = box or SignalBox()
    fit = _fit(fit)
    if prediction is not None and not isinstance(prediction, Upstream):
        prediction = Upstream.model_validate(prediction)
    fig = new_figure((8, 6))
    ax = fig.subplots()
    vals, edges, err = _values_edges(project(h_ecal, "ecal"))
    width = np.diff(edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ok = (centres >= box.ecal_max) & (vals > 0)
    # Poisson (Garwood) 68% intervals: a bin of 1 event has a lower error < its value, so the bar stays on
    # the log axis instead of running to its bottom
    lo68, hi68 = garwood_interval(vals[ok], np.maximum(err[ok], 0.0) ** 2)
    yerr = np.vstack([vals[ok] - lo68, hi68 - vals[ok]])
    ax.errorbar(
        centres[ok],
        vals[ok] / width[ok],
        yerr=np.maximum(yerr, 0.0) / width[ok],
        xerr=width[ok] / 2,
        fmt="ko",
        ms=4,
        label="side band C",
    )
    rng = fit.fit_range or [box.ecal_max, ECAL_TRIGGER_GEV]
    for lo, hi, style, lab in ((rng[0], rng[1], "-", "fit"), (0.0, box.ecal_max, "--", "extrapolation")):
        e = np.linspace(lo, hi, 200)
        f, flo, fhi = fit_curve(fit, e)
        ax.plot(e, f, color="tab:red", ls=style, label=rf"$e^{{p_1 + p_2 E}}$ {lab}")
        ax.fill_between(e, flo, fhi, color="tab:red", alpha=0.25 if style == "-" else 0.15, lw=0)
    ax.axvspan(0, box.ecal_max, color="gold", alpha=0.15, label="signal region (extrapolated)")
    p2_unc = fit.p2_unc
    text = f"model: {fit.model}"
    if fit.p2 is not None:
        text = rf"$p_2 = {float(fit.p2):.3f}" + (rf" \pm {float(p2_unc):.3f}" if p2_unc else "") + "$ / GeV"
    if prediction is not None:
        unc = prediction.unc
        text += "\n" + rf"$n_b = {prediction.value:.3g}" + (rf" \pm {unc:.2g}$" if unc else "$")
    ax.text(0.04, 0.93, text + (f"\nrun {run}" if run else ""), transform=ax.transAxes, va="top", fontsize=12)
    ax.set_yscale("log")
    # the extrapolation runs many decades down towards E = 0, where it adds nothing to n_b: the axis shows
    # three decades below the density at the box edge (and below the smallest side-band point)
    at_edge = float(fit_curve(fit, np.array([box.ecal_max]))[0][0])
    floors = [v for v in (at_edge / 1e3, float(np.min(vals[ok] / width[ok])) / 10 if ok.any() else None)
              if v is not None and np.isfinite(v) and v > 0]
    if floors:
        ax.set_ylim(bottom=min(floors))
    ax.set_xlim(0, max(edges[-1], ECAL_TRIGGER_GEV))
    ax.set_xlabel(r"$E_{\mathrm{ECAL}}$ [GeV]")
    ax.set_ylabel(r"Events / GeV ($E_{\mathrm{HCAL}} < 1$ GeV)")
    ax.legend(fontsize=10, loc="lower right")
    label(ax, llabel=llabel)
    return fig


def garwood_interval(values: np.ndarray, variances: np.ndarray, coverage: float = 0.682689492137
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Frequentist (Garwood) Poisson interval of counts, scaled for weighted bins through the effective
    count n = value^2 / variance (what ``hist.intervals.poisson_interval`` does, without importing
    scipy.stats: ~0.6 CPU-s of the report's start-up)."""
    values, variances = np.asarray(values, float), np.asarray(variances, float)
    tail = 0.5 * (1.0 - coverage)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(values > 0, variances / values, 1.0)
        n = np.where(variances > 0, values**2 / variances, values)
    lo = np.where(n > 0, scale * special.gammaincinv(np.maximum(n, 1e-300), tail), 0.0)
    hi = scale * special.gammaincinv(n + 1.0, 1.0 - tail)
    return lo, hi


# --- dimuons, signal spectra, efficiency ---------------------------------------------------------------
@styled
def plot_data_mc(
    h_data: Any,
    h_mc: Any,
    *,
    variable: str | None = None,
    xlabel: str | None = None,
    llabel: str = "Simulation",
) -> Figure:
    """Dimuon benchmark: data points over MC, data/MC ratio below (the f reduction factors of S001)."""
    fig = new_figure((8, 7.5))
    ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    var = variable or next(a.name for a in h_data.axes if a.name != "run")
    d, edges, derr = _values_edges(project(h_data, var))
    m, _, merr = _values_edges(project(h_mc, var))
    mplhep.histplot(m, edges, ax=ax, histtype="fill", color="#9ecae1", label="MC")
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centres, d, yerr=derr, fmt="ko", ms=4, label="data")
    ax.set_ylabel("Events / bin")
    ax.legend(fontsize=11)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio, rerr = d / m, derr / m
    good = m > 0
    rax.errorbar(centres[good], ratio[good], yerr=rerr[good], fmt="ko", ms=4)
    rax.axhline(1, color="grey", ls="--")
    if d.sum() > 0 and m.sum() > 0:
        rax.axhline(d.sum() / m.sum(), color="tab:red", lw=1, label=f"data/MC = {d.sum() / m.sum():.2f}")
        rax.legend(fontsize=9, loc="upper right")
    rax.set_ylim(0, 2)
    rax.set_ylabel("Data / MC")
    rax.set_xlabel(xlabel or var)
    label(ax, llabel=llabel)
    return fig


@styled
def plot_signal_spectra(spectra: Mapping[str, Any], *, llabel: str = "Simulation") -> Figure:
    """Signal E_ECAL spectra (unit area) for a few A' masses: harder E_A' for heavier A' (S001 Fig. 6)."""
    fig = new_figure((8, 6))
    ax = fig.subplots()
    for i, (lab, h) in enumerate(spectra.items()):
        vals, edges, _ = _values_edges(project(h, "ecal"))
        tot = vals.sum()
        mplhep.histplot(
            vals / tot if tot > 0 else vals, edges, ax=ax, color=COLORS[i % len(COLORS)], label=lab
        )
    ax.set_yscale("log")
    ax.set_xlabel(r"$E_{\mathrm{ECAL}}$ [GeV]")
    ax.set_ylabel("Fraction of events / bin")
    ax.legend(fontsize=11, title=r"$m_{A'}$")
    label(ax, llabel=llabel)
    return fig


@styled
def plot_efficiency(
    runs: Mapping[str, EfficiencyRun | Mapping[str, Any]],
    *,
    intensities: Mapping[str, float] | None = None,
    llabel: str = "Simulation",
    published_range: bool = True,
    mass_label: str = r"$m_{A'}$ [GeV]",
) -> Figure:
    """Signal efficiency vs m_A' per run, with the published range (PRL 123 121801: ~0.5-0.7) unless
    ``published_range`` is False (another search than the invisible dark photon: not its reference).

    With ``intensities`` (e-/spill per run) a second panel shows the intensity dependence at the lightest
    mass, where PRL 2019 quotes 0.69 (low) vs 0.53 (high intensity).
    """
    recs = {run: r if isinstance(r, EfficiencyRun) else EfficiencyRun.model_construct(
        mass_GeV=list(r["mass_GeV"]), efficiency=list(r["efficiency"]), unc=r.get("unc"))
        for run, r in runs.items()}
    fig = new_figure((14 if intensities else 8, 6))
    axs = fig.subplots(1, 2 if intensities else 1, squeeze=False)[0]
    ax = axs[0]
    low, high = (
        published.get("efficiency.prl2019_low_intensity"),
        published.get("efficiency.prl2019_high_intensity"),
    )
    if published_range:
        ax.axhspan(min(high), max(low), color="grey", alpha=0.15, label="PRL 123 121801 range")
    for i, (run, r) in enumerate(recs.items()):
        m, e = np.asarray(r.mass_GeV, float), np.asarray(r.efficiency, float)
        u = np.asarray(r.unc, float) if r.unc is not None else None
        ax.errorbar(
            m, e, yerr=u, marker="os^vD"[i % 5], color=COLORS[i % len(COLORS)], capsize=2, label=f"run {run}"
        )
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel(mass_label)  # the search's particle (ALP: m_a)
    ax.set_ylabel(r"Signal efficiency $\varepsilon_{\mathrm{tot}}$")
    ax.legend(fontsize=10)
    label(ax, llabel=llabel)
    if intensities:
        bx = axs[1]
        pts = [
            (intensities[r], recs[r].efficiency[int(np.argmin(recs[r].mass_GeV))])
            for r in recs
            if r in intensities
        ]
        if pts:
            x, y = np.array(pts).T
            x = x / 1e6  # in 10^6 e-/spill: no offset text colliding with the axis label
            bx.plot(x, y, "o", color="k", label=r"this analysis, lightest $m_{A'}$")
            for rname, xi, yi in zip([r for r in recs if r in intensities], x, y, strict=True):
                bx.annotate(f"run {rname}", (xi, yi), textcoords="offset points", xytext=(0, -16),
                            fontsize=10, ha="center")
            pad = 0.15 * max(float(np.ptp(x)), 0.5)
            bx.set_xlim(float(x.min()) - pad, float(x.max()) + pad)
        bx.axhline(low[0], color="tab:blue", ls="--", label="PRL 2019, low intensity")
        bx.axhline(high[0], color="tab:red", ls="--", label="PRL 2019, high intensity")
        bx.set_ylim(0, 1)
        bx.set_xlabel(r"Beam intensity [$10^6\,e^-$/spill]")
        bx.set_ylabel(r"$\varepsilon_{\mathrm{tot}}$")
        bx.legend(fontsize=10)
        label(bx, llabel=llabel)
    return fig


# --- limits ---------------------------------------------------------------------------------------------
@styled
def plot_eps_limits(
    lim: EpsLimits, *, llabel: str = "Simulation", rlabel: str | None = None, cl: float = 0.9,
    compare: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Figure:
    """eps(m_A') exclusion: observed (solid red, excluded region shaded to the top edge), expected median
    (dashed black, drawn above the observed so it stays visible when they coincide), +-1 sigma green,
    +-2 sigma yellow; ``compare``: other curves (label -> (mass GeV, eps)) overlaid."""
    fig = new_figure((8, 6.5))
    ax = fig.subplots()
    if lim.band is not None:
        ax.fill_between(
            lim.mass, lim.band["m2"], lim.band["p2"], color="#ffdf00", lw=0, label=r"Expected $\pm 2\sigma$"
        )
        ax.fill_between(
            lim.mass, lim.band["m1"], lim.band["p1"], color="#00c000", lw=0, label=r"Expected $\pm 1\sigma$"
        )
    tops = [np.nanmax(lim.exp)] + ([np.nanmax(lim.band["p2"])] if lim.band is not None else [])
    if lim.obs is not None:
        tops.append(np.nanmax(lim.obs))
    top = max(tops) * 4
    if lim.obs is not None:
        ax.fill_between(lim.mass, lim.obs, top, color="tab:red", alpha=0.10, lw=0, label="Excluded")
        ax.plot(lim.mass, lim.obs, "-", color="tab:red", lw=2.5, label="Observed", zorder=3)
    ax.plot(lim.mass, lim.exp, "k--", lw=1.6, label="Expected", zorder=4)
    for i, (name, (x, y)) in enumerate((compare or {}).items()):
        ax.plot(x, y, "-.", color=COLORS[(i + 3) % len(COLORS)], lw=2, label=name, zorder=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{A'}$ [GeV]")
    ax.set_ylabel(rf"$\varepsilon$ ({100 * cl:.0f}% CL upper limit)")
    ax.set_xlim(lim.mass.min(), lim.mass.max())
    ax.set_ylim(top=top)
    ax.legend(fontsize=11, loc="upper left")
    label(ax, llabel=llabel, rlabel=rlabel)
    return fig


def _alpha_value(key: str) -> str:
    return key.split("=")[-1]


def smooth_loglog(x: np.ndarray, y: np.ndarray, window: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """A digitised curve smoothed for display: sorted in x, then a centred moving average of log y over
    ``window`` points (symmetric, shrinking at the ends). Removes the digitisation jitter of the
    relic-target curves (a few % in y); the CSV values themselves are unchanged and used everywhere else."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(x)
    x, ly = x[order], np.log(y[order])
    n, half = len(ly), window // 2
    # symmetric windows, shrinking towards the ends (an end point stays where it is: no bias there)
    out = np.array([ly[i - k: i + k + 1].mean() for i in range(n) for k in [min(half, i, n - 1 - i)]])
    return x, np.exp(out)


@styled
def plot_y_limits(
    ylims: Mapping[str, Curve],
    relic: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    llabel: str = "Simulation",
    cl: float = 0.9,
) -> Figure:
    """y = eps^2 alpha_D (m_chi/m_A')^4 limits (m_A' = 3 m_chi), one panel per alpha_D, with relic targets."""
    fig = new_figure((7.5 * len(ylims), 6.5))
    axes = fig.subplots(1, len(ylims), squeeze=False)[0]
    for ax, (key, c) in zip(axes, ylims.items(), strict=True):
        if c.y_exp is not None:
            ax.plot(c.x, c.y_exp, "k--", label=f"Expected {100 * cl:.0f}% CL upper limit", zorder=4)
        if c.y is not None:
            exp_name = "NA64" if not llabel.startswith("Reinterpretation") else "Observed"
            ax.plot(c.x, c.y, "-", color="tab:red", lw=2.5, label=f"{exp_name} {100 * cl:.0f}% CL", zorder=3)
            ax.fill_between(c.x, c.y, np.nanmax(c.y) * 1e3, color="tab:red", alpha=0.10, lw=0)
        for i, (model, (m, y)) in enumerate(relic.items()):
            ms, ys = smooth_loglog(m, y)
            ax.plot(ms, ys, color=COLORS[i + 1], lw=1.5, label=f"{MODEL_LABEL.get(model, model)} relic")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(c.x.min(), c.x.max())
        ax.set_xlabel(r"$m_\chi$ [GeV]")
        ax.set_ylabel(r"$y = \varepsilon^2 \alpha_D (m_\chi/m_{A'})^4$")
        ax.text(
            0.96,
            0.05,
            rf"$\alpha_D = {_alpha_value(key)}$, $m_{{A'}} = 3 m_\chi$",
            transform=ax.transAxes,
            ha="right",
            fontsize=12,
        )
        ax.legend(fontsize=10, loc="upper left")
        label(ax, llabel=llabel)
    return fig


@styled
def plot_alpha_d(alims: Mapping[str, Curve], *, llabel: str = "Simulation", cl: float = 0.9) -> Figure:
    """Lower limits on alpha_D from the relic relation (pseudo-Dirac, Majorana), m_A' = 3 m_chi."""
    fig = new_figure((8, 6.5))
    ax = fig.subplots()
    for i, (model, c) in enumerate(alims.items()):
        name = MODEL_LABEL.get(model, model)
        if c.y is not None:  # wide and light under the expected: both stay visible where they coincide
            ax.plot(c.x, c.y, color=COLORS[i], lw=4, alpha=0.55, label=f"{name} ({100 * cl:.0f}% CL)",
                    zorder=2)
        if c.y_exp is not None:
            ax.plot(c.x, c.y_exp, color=COLORS[i], ls=(0, (4, 2)), lw=1.3, label=f"{name}, expected",
                    zorder=3)
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_\chi$ [GeV]")
    ax.set_ylabel(r"$\alpha_D$ lower limit (excluded below)")
    ax.legend(fontsize=11)
    label(ax, llabel=llabel)
    return fig


@styled
def plot_optimisation(opt: Mapping[str, Mapping[str, Any]], *, llabel: str = "Simulation") -> Figure:
    """Expected eps limit vs the E_ECAL box edge, per mass, optimum marked (S001 Fig. 14)."""
    fig = new_figure((8, 6))
    ax = fig.subplots()
    for i, (mass, d) in enumerate(opt.items()):
        cut, eps = np.asarray(d["cut"], float), np.asarray(d["eps"], float)
        ref = float(np.nanmin(eps))
        color = COLORS[i % len(COLORS)]
        ax.plot(cut, eps / ref, marker="o", ms=3, color=color, label=rf"$m_{{A'}} = {_mass_label(mass)}$")
        if d.get("best") is not None:
            ax.axvline(d["best"], color=color, ls="--", lw=1)
            ax.annotate(
                f"optimum {d['best']:.0f} GeV",
                (d["best"], 1.0),
                textcoords="offset points",
                xytext=(5, 10 + 15 * i),
                color=color,
                fontsize=10,
            )
    ax.set_xlabel(r"$E_{\mathrm{ECAL}}$ box edge [GeV]")
    ax.set_ylabel(r"Expected $\varepsilon_{90}$ / minimum")
    ax.legend(fontsize=11)
    label(ax, llabel=llabel)
    return fig


def _mass_label(mass: str) -> str:
    try:
        m = float(mass)
    except ValueError:
        return str(mass)
    return f"{m * 1e3:g}" + r"\,\mathrm{MeV}" if m < 1 else f"{m:g}" + r"\,\mathrm{GeV}"
