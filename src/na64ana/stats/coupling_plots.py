"""Figures of the model limits of :mod:`na64ana.stats.coupling` (to move to ``presentation/`` on integration).

Why here and physics free: the figures only read the limits records (``points`` with ``coupling_*`` keys)
and, for the muon g-2 band, arrays the caller computes (:func:`na64ana.physics.g2.preferred_band`), so the
module imports matplotlib/mplhep only and nothing of the physics or statistics layers.

* :func:`plot_coupling_limits`: a vector model's coupling vs mass (L_mu - L_tau, B-L, user vector), the
  observed limit, the expected median with its +-1/+-2 sigma bands and, optionally, the g-2 band;
* :func:`plot_closed_region`: the ALP (m_a, g_agg) excluded region, lower and upper edges, the expected edges
  with their bands;
* :func:`save`: PNG and PDF next to each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COUPLING_LABELS", "plot_closed_region", "plot_coupling_limits", "save"]

COUPLING_LABELS = {
    "g_mu-tau": r"$g_{Z'}$  ($L_\mu - L_\tau$)",
    "g_B-L": r"$g_{B-L}$",
    "g_Z'": r"$g_{Z'}$",
    "eps": r"$\varepsilon$",
    "g_agg": r"$g_{a\gamma\gamma}$ [GeV$^{-1}$]",
}
_BANDS = (("2", "#ffdf00", r"Expected $\pm 2\sigma$"), ("1", "#00c000", r"Expected $\pm 1\sigma$"))


def _style() -> Any:
    import matplotlib.style
    import mplhep

    return matplotlib.style.context(mplhep.style.ROOT)


def _column(points: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if p.get(key) is None else float(p[key]) for p in points], dtype=float)


def _finish(ax: Any, points: Sequence[Mapping[str, Any]], ylabel: str, xlabel: str, title: str | None,
            keys: Sequence[str]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

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
    ax.text(0.03, 0.97, "NA64 (reinterpreted inputs)", transform=ax.transAxes, ha="left", va="top",
            fontsize=14, fontweight="bold")


def plot_coupling_limits(record: Mapping[str, Any], *, g2_band: tuple[Any, Any, Any] | None = None,
                         g2_label: str = r"muon $g-2$ preferred ($\pm 2\sigma$)", title: str | None = None
                         ) -> Any:
    """Coupling limit vs mass (MeV) of a vector-model record; ``g2_band`` = (masses GeV, g_low, g_high).

    Excluded: above the curves. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    pts = [p for p in record["points"] if "error" not in p]
    m = 1e3 * _column(pts, "mass_GeV")
    with _style():
        fig, ax = plt.subplots(figsize=(8, 6.5))
        for n, color, label in _BANDS:
            ax.fill_between(m, _column(pts, f"coupling_exp_m{n}"), _column(pts, f"coupling_exp_p{n}"),
                            color=color, lw=0, label=label, zorder=1)
        ax.plot(m, _column(pts, "coupling_exp"), "--", color="k", lw=1.5, label="Expected (median)", zorder=3)
        top = 10 * np.nanmax(_column(pts, "coupling_exp_p2"))
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
        _finish(ax, pts, label, r"$m_{Z'}$ [MeV]", title, keys)
        ax.legend(fontsize=10, loc="lower right", frameon=True, framealpha=0.9)
        fig.tight_layout()
    return fig


def plot_closed_region(record: Mapping[str, Any], *, title: str | None = None) -> Any:
    """The closed excluded region of an ALP record in (m_a [MeV], g_agg [GeV^-1]). Returns a Figure."""
    import matplotlib.pyplot as plt

    pts = [p for p in record["points"] if "error" not in p]
    m = 1e3 * _column(pts, "mass_GeV")
    with _style():
        fig, ax = plt.subplots(figsize=(8, 6.5))
        for n, color, label in _BANDS:
            # around each edge the band lies between the edges of the -n and +n sigma quantiles
            a_lo, a_hi = _column(pts, f"coupling_exp_m{n}"), _column(pts, f"coupling_exp_m{n}_upper")
            b_lo, b_hi = _column(pts, f"coupling_exp_p{n}"), _column(pts, f"coupling_exp_p{n}_upper")
            ax.fill_between(m, a_lo, np.where(np.isnan(b_lo), a_hi, b_lo), color=color, lw=0, zorder=1,
                            label=label)
            ax.fill_between(m, np.where(np.isnan(b_hi), a_lo, b_hi), a_hi, color=color, lw=0, zorder=1)
        e_lo, e_hi = _column(pts, "coupling_exp"), _column(pts, "coupling_exp_upper")
        ax.plot(m, e_lo, "--", color="k", lw=1.5, label="Expected (median)", zorder=3)
        ax.plot(m, e_hi, "--", color="k", lw=1.5, zorder=3)
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
        _finish(ax, pts, COUPLING_LABELS["g_agg"], r"$m_a$ [MeV]", title, keys)
        ax.legend(fontsize=10, loc="upper right", frameon=True, framealpha=0.9)
        fig.tight_layout()
    return fig


def save(fig: Any, path: str | Path) -> list[Path]:
    """Write ``path`` as .png (150 dpi) and .pdf; returns the written files."""
    import matplotlib.pyplot as plt

    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext, kw in ((".png", {"dpi": 150}), (".pdf", {})):
        fig.savefig(base.with_suffix(ext), **kw)
        out.append(base.with_suffix(ext))
    plt.close(fig)
    return out
