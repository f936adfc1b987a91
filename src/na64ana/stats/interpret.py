"""Light thermal dark matter reading of the eps limits (brief Sec. 10).

y = eps^2 alpha_D (m_chi/m_A')^4 at m_A' = 3 m_chi, and the relic relation turned into a lower limit on
alpha_D (pseudo-Dirac f = 0.25, Majorana f = 3). The formulas live in :mod:`na64ana.physics.darkmatter`;
this module only maps the limits.json points onto them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import published
from ..physics import darkmatter as dm
from ..records import AlphaDEntry, AlphaDLimits, LimitPoint, YBand, YLimits

_BAND_KEYS = ("eps_obs", "eps_exp", "eps_exp_m1", "eps_exp_p1", "eps_exp_m2", "eps_exp_p2")
Points = Sequence[LimitPoint | Mapping[str, Any]]


def _points(points: Points) -> list[LimitPoint]:
    """Points with a limit (observed, or expected only when blinded), as records."""
    recs = [p if isinstance(p, LimitPoint) else LimitPoint.model_validate(p) for p in points]
    return [p for p in recs if p.error is None and (p.eps_obs or p.eps_exp)]


def y_limits(points: Points, alpha_ds: list[float] | None = None, ratio: float | None = None) -> YLimits:
    """Upper limits on y(m_chi) for each alpha_D (default: the published benchmarks 0.5 and 0.1) at
    m_A' = ``ratio`` m_chi (default: the published convention, 3)."""
    ratio = dm.default_ratio() if ratio is None else float(ratio)
    alpha_ds = list(alpha_ds or published.get("darkmatter.alpha_d_benchmarks"))
    good = _points(points)
    bands = {}
    for a in alpha_ds:
        bands[f"alpha_d={a:g}"] = YBand(**{
            key.replace("eps", "y"): [float(dm.y_from_eps(getattr(p, key), p.mass_GeV / ratio, a, ratio))
                                      if getattr(p, key) else None for p in good]
            for key in _BAND_KEYS})
    return YLimits(ratio_mA_over_mchi=ratio, m_chi_GeV=[p.mass_GeV / ratio for p in good], **bands)


def alpha_d_limits(points: Points, ratio: float | None = None) -> AlphaDLimits:
    """Lower limits on alpha_D(m_chi) from eps_obs for pseudo-Dirac and Majorana DM."""
    ratio = dm.default_ratio() if ratio is None else float(ratio)
    good = _points(points)

    def entry(kind: str) -> AlphaDEntry:
        return AlphaDEntry(
            f=dm.relic_f(kind),
            alpha_d_min_obs=[_amin(p.eps_obs, p.mass_GeV / ratio, kind, ratio) if p.eps_obs else None
                             for p in good],
            alpha_d_min_exp=[_amin(p.eps_exp, p.mass_GeV / ratio, kind, ratio) if p.eps_exp else None
                             for p in good])

    return AlphaDLimits(ratio_mA_over_mchi=ratio, m_chi_GeV=[p.mass_GeV / ratio for p in good],
                        pseudodirac=entry("pseudodirac"), majorana=entry("majorana"))


def _amin(eps: float, m_chi: float, kind: str, ratio: float) -> float:
    return float(dm.alpha_d_lower_limit(eps, m_chi, kind, ratio))


def add_interpretation(result: dict[str, Any], *, ratio: float | None = None,
                       alpha_d: float | None = None) -> dict[str, Any]:
    """Add ``y_limits`` and ``alpha_d_limits`` to a limits.json dict (in place; also returned). ``ratio``:
    the summary's m_A'/m_chi; ``alpha_d``: the summary's alpha_D, added to the published benchmarks."""
    alphas = None
    if alpha_d is not None:
        alphas = list(published.get("darkmatter.alpha_d_benchmarks"))
        if not any(abs(a - alpha_d) < 1e-12 for a in alphas):
            alphas.append(float(alpha_d))
    result["y_limits"] = y_limits(result["points"], alphas, ratio=ratio).to_json()
    result["alpha_d_limits"] = alpha_d_limits(result["points"], ratio=ratio).to_json()
    return result
