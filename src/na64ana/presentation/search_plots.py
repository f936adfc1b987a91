"""Figures of the searches beyond the bremsstrahlung dark photon, and the report hook that shows them.

Why here: the figures only read the limits records (``points`` with ``coupling_*`` keys) and, for the muon
g-2 band, arrays from :func:`na64ana.physics.g2.preferred_band` (its only physics import, light: numpy), so
the module imports matplotlib/mplhep and nothing of the statistics layer.

* :func:`plot_coupling_limits`: a vector model's coupling vs mass (L_mu - L_tau, B-L, user vector), the
  observed limit, the expected median with its +-1/+-2 sigma bands and, optionally, the g-2 band;
* :func:`plot_closed_region`: the ALP (m_a, g_agg) excluded region, lower and upper edges, the expected edges
  with their bands;
* :func:`plot_eps_production`: the dark-photon eps limit with the annihilation dip and the
  bremsstrahlung-only expectation (dashed);
* :func:`plot_band`: the visible-mode excluded band in (m_A', eps) with X17 (16.7 MeV) marked;
* :func:`search_figure`: the figure of any limits record (dispatch on ``search``/``production``;
  :func:`search_figure_spec`: its name and caption, drawn later);
* :func:`search_sections`: the report hook (``presentation.report._sections``): extra markdown sections
  with the search figure, drawn into the report's plot folder;
* :func:`save`: PNG and PDF next to each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.style
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..physics import g2
from . import plots as pp

__all__ = ["COUPLING_LABELS", "X17_MASS_GeV", "plot_band", "plot_closed_region", "plot_coupling_limits",
           "plot_eps_production", "save", "search_figure", "search_figure_spec", "search_sections"]
X17_MASS_GeV = 0.0167

COUPLING_LABELS = {
    "g_mu-tau": r"$g_{Z'}$  ($L_\mu - L_\tau$)",
    "g_B-L": r"$g_{B-L}$",
    "g_Z'": r"$g_{Z'}$",
    "eps": r"$\varepsilon$",
    "g_agg": r"$g_{a\gamma\gamma}$ [GeV$^{-1}$]",
}
_BANDS = (("2", "#ffdf00", r"Expected $\pm 2\sigma$"), ("1", "#00c000", r"Expected $\pm 1\sigma$"))


def _style() -> Any:
    """The style of every other figure of the report (fonts with all the Greek letters of the labels)."""
    return matplotlib.style.context(pp.STYLE)


def _column(points: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if p.get(key) is None else float(p[key]) for p in points], dtype=float)


def experiment_label(record: Mapping[str, Any]) -> str:
    """The experiment label of a search figure, from the record's ``analysis``: NA64's own published
    inputs (an ``*_published`` summary of the package) say so; a simulated chain says "Simulation"; any
    other (hand-written) summary is a reinterpretation and never carries the NA64 name."""
    analysis = str(record.get("analysis") or "")
    if "_published" in analysis.split(" (")[0]:
        return "NA64 (published inputs)"
    if "simulated" in analysis:
        return "NA64 Simulation"
    name = analysis.split(" (")[0] or "a yields summary"
    return "Reinterpretation of " + (name if len(name) <= 32 else name[:31] + "...")


def _finish(ax: Any, points: Sequence[Mapping[str, Any]], ylabel: str, xlabel: str, title: str | None,
            keys: Sequence[str], experiment: str = "NA64 (published inputs)") -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    m_all = 1e3 * _column(points, "mass_GeV")
    wide = m_all.max() / m_all.min() > 300  # three decades: 1-3-10 ticks, else 1-2-5
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0) if wide else (1.0, 2.0, 5.0)))
    ax.tick_params(axis="both", labelsize=16)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    vals = np.concatenate([_column(points, k) for k in keys])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size:
        ax.set_ylim(10 ** math.floor(math.log10(vals.min()) - 0.3),
                    10 ** math.ceil(math.log10(vals.max()) + 0.3))
    m = 1e3 * _column(points, "mass_GeV")
    ax.set_xlim(m.min(), m.max())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=13, loc="right")

    # the report's experiment label above the axes: "NA64 <status>", or a reinterpretation without NA64
    status = experiment.removeprefix("NA64").strip().strip("()")
    pp.label(ax, llabel=status if experiment.startswith("NA64") else experiment)


def plot_coupling_limits(record: Mapping[str, Any], *, g2_band: tuple[Any, Any, Any] | None = None,
                         experiment: str | None = None,
                         g2_label: str = r"muon $g-2$ preferred ($\pm 2\sigma$)", title: str | None = None
                         ) -> Any:
    """Coupling limit vs mass (MeV) of a vector-model record; ``g2_band`` = (masses GeV, g_low, g_high).

    Excluded: above the curves. Returns a matplotlib Figure."""
    pts = [p for p in record["points"] if "error" not in p]
    m = 1e3 * _column(pts, "mass_GeV")
    with _style():
        fig = pp.new_figure((8, 6.5))  # constrained layout at the output dpi, as every report figure
        ax = fig.subplots()
        for n, color, label in _BANDS:
            ax.fill_between(m, _column(pts, f"coupling_exp_m{n}"), _column(pts, f"coupling_exp_p{n}"),
                            color=color, lw=0, label=label, zorder=1)
        ax.plot(m, _column(pts, "coupling_exp"), "--", color="k", lw=1.5, label="Expected (median)", zorder=5)
        top = 1e6 * np.nanmax(_column(pts, "coupling_exp_p2"))  # past the axis: the shading reaches its top
        if not record.get("blinded"):
            obs = _column(pts, "coupling_obs")
            ax.fill_between(m, obs, top, color="#3f90da", alpha=0.18, lw=0, zorder=0,
                            label=f"Excluded ({100 * float(record.get('cl', 0.9)):.0f}% CL)")
            ax.plot(m, obs, "-", color="#1f4e8c", lw=2.5, label="Observed", zorder=4)
        keys = ["coupling_exp_m2", "coupling_exp_p2", "coupling_obs"]
        if g2_band is not None:
            gm, lo, hi = (np.asarray(x, dtype=float) for x in g2_band)
            ax.fill_between(1e3 * gm, lo, hi, color="#bd1f01", alpha=0.35, lw=0, zorder=2, label=g2_label)
        label = COUPLING_LABELS.get(str(record.get("coupling")), str(record.get("coupling")))
        _finish(ax, pts, label, r"$m_{Z'}$ [MeV]", title, keys, experiment or experiment_label(record))
        ax.legend(fontsize=10, loc="lower right", frameon=True, framealpha=0.9)
    return fig


def plot_closed_region(record: Mapping[str, Any], *, title: str | None = None, experiment: str | None = None
                       ) -> Any:
    """The closed excluded region of an ALP record in (m_a [MeV], g_agg [GeV^-1]). Returns a Figure."""
    pts = [p for p in record["points"] if "error" not in p]
    m = 1e3 * _column(pts, "mass_GeV")
    with _style():
        fig = pp.new_figure((8, 6.5))  # constrained layout at the output dpi, as every report figure
        ax = fig.subplots()
        for n, color, label in _BANDS:
            # around each edge the band lies between the edges of the -n and +n sigma quantiles
            a_lo, a_hi = _column(pts, f"coupling_exp_m{n}"), _column(pts, f"coupling_exp_m{n}_upper")
            b_lo, b_hi = _column(pts, f"coupling_exp_p{n}"), _column(pts, f"coupling_exp_p{n}_upper")
            ax.fill_between(m, a_lo, np.where(np.isnan(b_lo), a_hi, b_lo), color=color, lw=0, zorder=1,
                            label=label)
            ax.fill_between(m, np.where(np.isnan(b_hi), a_lo, b_hi), a_hi, color=color, lw=0, zorder=1)
        e_lo, e_hi = _column(pts, "coupling_exp"), _column(pts, "coupling_exp_upper")
        ax.plot(m, e_lo, "--", color="k", lw=1.5, label="Expected (median)", zorder=5)  # over the observed
        ax.plot(m, e_hi, "--", color="k", lw=1.5, zorder=5)
        if not record.get("blinded"):
            o_lo, o_hi = _column(pts, "coupling_obs"), _column(pts, "coupling_obs_upper")
            ax.fill_between(m, o_lo, o_hi, color="#3f90da", alpha=0.25, lw=0, zorder=0,
                            label=f"Excluded ({100 * float(record.get('cl', 0.9)):.0f}% CL)")
            ax.plot(m, o_lo, "-", color="#1f4e8c", lw=2.5, label="Observed", zorder=4)
            ax.plot(m, o_hi, "-", color="#1f4e8c", lw=2.5, zorder=4)
            ok = np.flatnonzero(np.isfinite(o_lo) & np.isfinite(o_hi))
            if ok.size:  # close the region at the heaviest excluded mass
                k = ok[-1]
                ax.plot([m[k], m[k]], [o_lo[k], o_hi[k]], "-", color="#1f4e8c", lw=2.5, zorder=4)
        keys = ["coupling_exp_m2", "coupling_exp_m2_upper", "coupling_obs", "coupling_obs_upper"]
        _finish(ax, pts, COUPLING_LABELS["g_agg"], r"$m_a$ [MeV]", title, keys,
                experiment or experiment_label(record))
        ax.legend(fontsize=10, loc="upper right", frameon=True, framealpha=0.9)
    return fig


def save(fig: Any, path: str | Path) -> list[Path]:
    """Write ``path`` as .png (150 dpi) and .pdf; returns the written files."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext, kw in ((".png", {"dpi": 150}), (".pdf", {})):
        fig.savefig(base.with_suffix(ext), **kw)
        out.append(base.with_suffix(ext))
    plt.close(fig)
    return out


def _as_dict(record: Any) -> dict[str, Any]:
    if hasattr(record, "to_json"):
        return record.to_json()
    return dict(record)


def plot_eps_production(record: Mapping[str, Any], *, title: str | None = None, experiment: str | None = None
                        ) -> Any:
    """eps(m_A') of a dark-photon record with several production mechanisms: expected median with its
    +-1/2 sigma bands, observed (unless blinded) and the bremsstrahlung-only expected limit (dashed), the
    mass range where the resonant annihilation contributes shaded. Returns a Figure."""
    rec = _as_dict(record)
    pts = sorted((p for p in rec["points"] if p.get("error") is None and p.get("eps_exp")),
                 key=lambda p: p["mass_GeV"])
    m = 1e3 * _column(pts, "mass_GeV")
    with _style():
        fig = pp.new_figure((8, 6.5))  # constrained layout at the output dpi, as every report figure
        ax = fig.subplots()
        for n, color, label in _BANDS:
            ax.fill_between(m, _column(pts, f"eps_exp_m{n}"), _column(pts, f"eps_exp_p{n}"), color=color,
                            lw=0, label=label, zorder=1)
        ax.plot(m, _column(pts, "eps_exp"), "-", color="k", lw=1.5,
                label="Expected (median), " + " + ".join(rec.get("production") or ["brem"]), zorder=5)
        brem = _column(pts, "eps_exp_brem_only")
        if np.any(np.isfinite(brem)):
            ax.plot(m, brem, "--", color="#bd1f01", lw=1.8, label="Expected, bremsstrahlung only", zorder=3)
        ann = np.array([float((p.get("signal_per_mechanism_at_eps_ref") or {}).get("annihilation", 0.0)) > 0
                        for p in pts])
        if ann.any():
            ax.axvspan(m[ann].min(), m[ann].max(), color="#a0a0ff", alpha=0.15, lw=0, zorder=0,
                       label=r"$e^+e^- \to A'$ resonance open")
        keys = ["eps_exp_m2", "eps_exp_p2", "eps_exp_brem_only"]
        if not rec.get("blinded"):
            ax.plot(m, _column(pts, "eps_obs"), "-", color="#1f4e8c", lw=2.5, label="Observed", zorder=4)
            keys.append("eps_obs")
        ttl = title or f"{rec.get('beam_particle', 'e-')} beam, {rec.get('beam_energy_GeV', 100):g} GeV"
        _finish(ax, pts, r"$\varepsilon$", r"$m_{A'}$ [MeV]", ttl, keys, experiment or experiment_label(rec))
        ax.legend(fontsize=9, loc="upper left", frameon=True, framealpha=0.9)
    return fig


def _curve(points: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mass in MeV, lower edge, upper edge) of ``key``; None edges become NaN (gaps in the curves)."""
    return 1e3 * _column(points, "mass_GeV"), _column(points, key), _column(points, key + "_upper")


def plot_band(record: Mapping[str, Any], *, llabel: str = "Simulation", rlabel: str | None = None) -> Any:
    """The excluded band in (m_A', eps), log-log (mass in MeV): observed (filled, solid edges), expected
    median (dashed) with its +-1/+-2 sigma bands, X17 (16.7 MeV) marked. Returns a matplotlib Figure."""
    rec = _as_dict(record)
    pts = [p for p in rec["points"] if p.get("error") is None]
    cl = float(rec.get("cl", 0.9))
    with matplotlib.style.context(pp.STYLE):
        fig = pp.new_figure((8, 6.5))
        ax = fig.subplots()
        if not rec.get("blinded"):
            m, o_lo, o_hi = _curve(pts, "eps_obs")
            ax.fill_between(m, o_lo, o_hi, color="#3f90da", alpha=0.25, lw=0, zorder=1,
                            label=f"Excluded ({100 * cl:.0f}% CL)")
        bands = (("eps_exp_m2", "eps_exp_p2", "#ffdf00", r"Expected $\pm 2\sigma$"),
                 ("eps_exp_m1", "eps_exp_p1", "#00c000", r"Expected $\pm 1\sigma$"))
        for lo_key, hi_key, color, lab in bands:
            m, a_lo, a_hi = _curve(pts, lo_key)  # the stronger s_up quantile: the wider band
            _, b_lo, b_hi = _curve(pts, hi_key)
            ax.fill_between(m, a_lo, np.where(np.isnan(b_lo), a_hi, b_lo), color=color, lw=0, zorder=2,
                            label=lab)
            ax.fill_between(m, np.where(np.isnan(b_hi), a_lo, b_hi), a_hi, color=color, lw=0, zorder=2)
        if not rec.get("blinded"):
            m, o_lo, o_hi = _curve(pts, "eps_obs")
            ax.plot(m, o_lo, "-", color="#1f4e8c", lw=2.5, zorder=3, label="Observed")
            ax.plot(m, o_hi, "-", color="#1f4e8c", lw=2.5, zorder=3)
        m, e_lo, e_hi = _curve(pts, "eps_exp")
        ax.plot(m, e_lo, "--", color="k", lw=1.5, zorder=4, label="Expected (median)")
        ax.plot(m, e_hi, "--", color="k", lw=1.5, zorder=4)
        ax.axvline(1e3 * X17_MASS_GeV, color="#bd1f01", ls=":", lw=1.5, zorder=5)
        ax.text(1e3 * X17_MASS_GeV * 1.03, 0.97, "X17 (16.7 MeV)", color="#bd1f01", rotation=90, ha="left",
                va="top", transform=ax.get_xaxis_transform(), fontsize=12)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        keys = ("eps_exp_m2", "eps_exp_p2", "eps_exp", *(() if rec.get("blinded") else ("eps_obs",)))
        edges = np.concatenate([c for k in keys for c in _curve(pts, k)[1:]])
        edges = edges[np.isfinite(edges) & (edges > 0)]
        if edges.size:
            ax.set_ylim(10 ** math.floor(math.log10(edges.min()) - 0.6),
                        10 ** math.ceil(math.log10(edges.max()) + 0.3))
        else:  # no mass excluded: an empty band, said on the figure (log axes need a range of their own)
            ax.set_ylim(1e-6, 1e-1)
            what = "expected or observed" if not rec.get("blinded") else "expected; blinded"
            ax.text(0.5, 0.5, f"No mass excluded at {100 * cl:.0f}% CL ({what}):\nthe signal count stays "
                    "below the upper limit\nat every mass and eps", transform=ax.transAxes, ha="center",
                    va="center", fontsize=15, bbox={"fc": "white", "ec": "#888888"})
        ax.set_xlim(m.min(), m.max())
        ax.set_xlabel(r"$m_{A'}$ [MeV]")
        ax.set_ylabel(r"$\varepsilon$")
        if edges.size:
            ax.legend(fontsize=10, loc="lower left", ncol=2, frameon=True, framealpha=0.9)
        pp.label(ax, llabel=llabel, rlabel=rlabel)
    return fig


def search_figure_spec(record: Any, *, experiment: str | None = None
                       ) -> tuple[str, Callable[[], Any], str] | None:
    """(figure name, builder of the Figure, caption) of a limits record beyond the brem-only dark photon,
    else None: what the figure is called and says without drawing it (the report draws it with its other
    figures). ``experiment``: the report's experiment label ("NA64 Simulation", ...; default: from the
    record's ``analysis``, see :func:`experiment_label`)."""
    rec = _as_dict(record)
    search = rec.get("search")
    name = str((rec.get("model") or {}).get("name", ""))
    cl = f"{100 * float(rec.get('cl', 0.9)):.0f}% CL"
    if search == "visible":
        status = (experiment or experiment_label(rec)).removeprefix("NA64").strip().strip("()")
        return ("search_visible_band", lambda: plot_band(rec, llabel=status, rlabel=None),
                f"{cl} excluded band in eps for A' -> e+e- (lower and upper edges); X17 at 16.7 MeV marked.")
    if search == "alp":
        return ("search_alp_region", lambda: plot_closed_region(rec, experiment=experiment),
                f"{cl} closed excluded region in (m_a, g_agg): lower edge from the yield, upper from decays "
                "before the signal regions.")
    if search == "vector":
        band = None
        if name in ("lmu_ltau", "b_l"):
            masses = [p["mass_GeV"] for p in rec["points"] if p.get("error") is None]
            if masses:
                lo, hi = g2.preferred_band(np.asarray(masses, dtype=float))
                band = (masses, lo, hi)
        return (f"search_{name or 'vector'}_coupling",
                lambda: plot_coupling_limits(rec, g2_band=band, experiment=experiment),
                f"{cl} upper limit on {rec.get('coupling', 'the coupling')} of the {name} model"
                + (" with the muon g-2 preferred band." if band else "."))
    if len(rec.get("production") or []) > 1:
        return ("search_eps_production", lambda: plot_eps_production(rec, experiment=experiment),
                f"{cl} eps limit with " + " + ".join(rec["production"]) + " (solid) and the expectation with "
                "bremsstrahlung only (dashed): the resonant annihilation dip.")
    return None


def search_figure(record: Any, *, experiment: str | None = None) -> tuple[str, Any, str] | None:
    """(figure name, Figure, caption) of a limits record beyond the brem-only dark photon, else None
    (:func:`search_figure_spec`, drawn)."""
    spec = search_figure_spec(record, experiment=experiment)
    if spec is None:
        return None
    name, build, caption = spec
    return name, build(), caption


def search_sections(res: Any, ps: Any, *, experiment: str | None = None) -> list[tuple[str, Any]]:
    """Report hook: the search figure of the results' limits.json as one extra section (empty for the
    brem-only dark photon, whose figures the report already has); ``experiment``: the report's label of
    its other figures (a chain run with ``--data`` has no "simulated" in its record's analysis). The figure
    is the one the report drew with its others (``ps.made``; ``ps.missing`` says why it could not be),
    else it is drawn here into the report's plot folder."""
    try:
        rec = res.limits()
    except Exception:  # noqa: BLE001 -- the report shows what it can
        return []
    if rec is None:
        return []
    extra = _crosscheck_section(rec)
    try:
        spec = search_figure_spec(rec, experiment=experiment)
        if spec is None:
            return extra
        name, build, caption = spec
        if name not in ps.made:
            why = getattr(ps, "missing", {}).get(name)
            if why is not None:
                raise RuntimeError(why)
            ps.made[name] = pp.save(build(), ps.folder, name, pdf=getattr(ps, "pdf", True))[0]
    except Exception as exc:  # noqa: BLE001
        return [("Search limits", lambda res, ps, exc=exc: f"> **Figure not available** ({exc}).\n"), *extra]
    rel = ps.made[name].relative_to(Path(ps.folder).parent).as_posix()
    title = {"visible": "Visible-mode band", "alp": "ALP closed region",
             "vector": "Coupling limits"}.get(str(rec.search), "Limits by production mechanism")
    body = f"![{caption}]({rel})\n\n*{caption}*\n" + _numbers(rec)
    return [(title, lambda res, ps, body=body: body), *extra]


def _crosscheck_section(rec: Any) -> list[tuple[str, Any]]:
    """The toy cross-check of limits.json (na64ana.stats.crosscheck) as a short section, if it ran."""
    cc = getattr(rec, "crosscheck", None)
    if not cc:
        return []
    line = cc.get("line") or cc.get("error") or "no result"
    rows = ["| mass [GeV] | toys | CLs (exact) | CLs (pyhf toys) | passed |", "|---|---|---|---|---|"]
    for p in cc.get("points") or []:
        m = p.get("mass_GeV")
        mass = "-" if m is None else f"{m:.4g}"
        rows.append(f"| {mass} | {p.get('ntoys')} | {p.get('cls_exact', 0):.3f} | "
                    f"{p.get('cls_toys', 0):.3f} +- {p.get('cls_toys_err', 0):.3f} | {p.get('passed')} |")
    warn = ("" if cc.get("passed") else
            "> **Warning**: the toy cross-check did not pass (recorded in limits.json).\n\n")
    body = warn + line + "\n\n" + ("\n".join(rows) + "\n" if len(rows) > 2 else "")
    return [("Toy cross-check of the limits", lambda res, ps, body=body: body)]


def _numbers(rec: Any) -> str:
    """A few numbers of the record as a markdown table."""
    d = _as_dict(rec)
    pts = [p for p in d["points"] if p.get("error") is None]
    if not pts:
        return ""
    want = (0.001, 0.01, 0.0167, 0.1, 0.237, 0.3, 1.0)
    rows: list[tuple[dict[str, Any], float]] = []
    for w in want:
        p = min(pts, key=lambda p: abs(math.log(p["mass_GeV"] / w)))
        if abs(math.log(p["mass_GeV"] / w)) > 0.05 or p in [r[0] for r in rows]:
            continue
        rows.append((p, w))
    keys = (["coupling_exp", "coupling_exp_upper", "coupling_obs", "coupling_obs_upper"]
            if d.get("search") in ("alp", "vector") else
            ["eps_exp", "eps_exp_upper", "eps_obs", "eps_obs_upper"] if d.get("search") == "visible" else
            ["eps_exp", "eps_exp_brem_only", "eps_obs"])
    keys = [k for k in keys if any(p.get(k) is not None for p, _ in rows)]
    if not rows or not keys:
        return ""
    fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    lines = ["", "| mass [GeV] | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {p['mass_GeV']:.4g} | " + " | ".join(fmt(p.get(k)) for k in keys) + " |" for p, _ in rows]
    return "\n".join(lines) + "\n"
