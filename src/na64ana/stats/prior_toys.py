"""pyhf toys of the hybrid kind: the exact CLs and its expected band checked by pyhf's own calculator.

The exact CLs of :mod:`na64ana.stats.cls` is *hybrid* (Cousins-Highland): the nuisance parameters are
averaged over their priors, the auxiliary measurements stay as observed. pyhf's ``ToyCalculator`` is
frequentist ("LHC-style"): its toys are generated at the nuisances profiled on the observed data and
randomise the auxiliary data, so its expected band is that of the nominal-Poisson count distribution -- a
different quantity (docs/inference.md: with b = 0.5 and kappa = 4 its +2 sigma is ~4 signal events, the
hybrid one ~14), and comparing the two bands cannot tell a right band from a wrong one.

:class:`PriorToyCalculator` is pyhf's ``ToyCalculator`` with one change, the toy generation: per toy the
constrained nuisances are drawn from their priors (a unit normal around the observed auxiliary data, as
``normsys`` constrains them), the POI is the tested one (signal + background) or 0 (background only), the
main counts are Poisson around ``model.expected_actualdata`` there, and the auxiliary data are the observed
ones. The test statistic (qtilde, pyhf's fits), the tail probabilities and CLs of every toy
(``ToyCalculator.pvalues``) are pyhf's code; the expected band is their percentiles over the
background-only toys, as ``ToyCalculator.expected_pvalues`` takes them.
Toys differ only in their main counts, so the test statistic is computed once per distinct count vector
(exactly what pyhf would compute for each toy, at a fraction of the fits).

:func:`band_check` evaluates it at the exact limits: at mu = mu_exp[q] the toy expected CLs of quantile q
must be 1 - CL, within the toys' binomial precision.

Examples:
    >>> from na64ana.stats.model import workspace_spec
    >>> spec = workspace_spec([{"name": "r", "signal": [1.0], "background": [0.5], "observed": [0],
    ...                         "background_sys": {"bkg": 3.0}}], shared={})
    >>> check = band_check(spec, ntoys=3000, seed=2, keys=("median", "p2"))
    >>> check.passed, round(check.quantiles["p2"]["mu_exact"], 2)  # signal events: kappa = 4's wide tail
    (True, 13.45)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyhf
from pydantic import BaseModel, ConfigDict, Field
from pyhf.infer.calculators import EmpiricalDistribution, ToyCalculator
from pyhf.infer.test_statistics import qmu_tilde

from .cls import ExactCLs
from .model import MODIFIER_SETTINGS, counting_model_from_spec, pyhf_model

__all__ = ["BandCheck", "PriorToyCalculator", "band_check"]

# pyhf's order of the expected band (ToyCalculator.expected_pvalues: -2, -1, 0, +1, +2 sigma)
BAND_KEYS = ("m2", "m1", "median", "p1", "p2")
BAND_PERCENTILES = dict(zip(BAND_KEYS, (2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681),
                            strict=True))
GAUSSIAN_MODIFIERS = {"normsys", "histosys"}


class PriorToyCalculator(ToyCalculator):
    """pyhf's toy calculator with toys drawn from the prior predictive (module docstring). ``seed``: the
    toys' own generator (numpy's global state is left alone)."""

    def __init__(self, data: Any, pdf: Any, *, ntoys: int, seed: int, **kwargs: Any) -> None:
        super().__init__(data, pdf, ntoys=ntoys, test_stat="qtilde", track_progress=False, **kwargs)
        kinds = {m["type"] for ch in pdf.spec["channels"] for s in ch["samples"] for m in s["modifiers"]}
        bad = sorted(kinds - GAUSSIAN_MODIFIERS - {"normfactor"})
        if bad:
            raise ValueError(f"prior toys: modifiers {bad} have no unit-normal prior (normsys/histosys only)")
        self.rng = np.random.default_rng(seed)
        self._q: dict[tuple[float, tuple[float, ...]], float] = {}
        self._batched: Any = None  # the same model evaluated for all toys at once (pyhf batch_size)
        n_main = pdf.config.nmaindata
        self.aux = np.asarray(data, dtype=float)[n_main:]

    def _sample_main(self, poi: float) -> np.ndarray:
        """(ntoys, nmaindata) counts: nuisances from their priors, the POI fixed."""
        cfg = self.pdf.config
        pars = np.tile(np.asarray(cfg.suggested_init(), dtype=float), (self.ntoys, 1))
        pars[:, cfg.poi_index] = poi
        offset = 0
        for name in cfg.auxdata_order:  # normsys/histosys: a unit normal around the observed aux datum
            sl = cfg.par_slice(name)
            n = sl.stop - sl.start
            pars[:, sl] = self.aux[offset:offset + n] + self.rng.standard_normal((self.ntoys, n))
            offset += n
        if self._batched is None or self._batched.batch_size != self.ntoys:
            self._batched = pyhf.Model(self.pdf.spec, batch_size=self.ntoys, poi_name=cfg.poi_name,
                                       modifier_settings=MODIFIER_SETTINGS)
        lam = np.asarray(self._batched.expected_actualdata(pars), dtype=float)[:, :cfg.nmaindata]
        return self.rng.poisson(lam).astype(float)

    def _qtilde(self, poi: float, main: np.ndarray) -> float:
        key = (float(poi), tuple(main.tolist()))
        if key not in self._q:
            data = np.concatenate([main, self.aux])
            self._q[key] = float(qmu_tilde(poi, data, self.pdf, self.init_pars, self.par_bounds,
                                           self.fixed_params))
        return self._q[key]

    def distributions(self, poi_test: float, track_progress: bool | None = None
                      ) -> tuple[EmpiricalDistribution, EmpiricalDistribution]:
        """The test statistic's distributions under s + b (POI = ``poi_test``) and b only (POI = 0)."""
        out = []
        for poi in (poi_test, 0.0):
            toys = self._sample_main(poi)
            out.append(EmpiricalDistribution(np.array([self._qtilde(poi_test, t) for t in toys])))
        return out[0], out[1]

    def distinct_outcomes(self) -> int:
        """Count vectors for which pyhf's fits were run (the rest were the same vectors again)."""
        return len({k[1] for k in self._q})


class BandCheck(BaseModel):
    """The exact band against pyhf prior toys: per quantile the exact mu limit, pyhf's toy expected CLs
    there, its binomial error and the verdict."""

    model_config = ConfigDict(extra="forbid")

    cl: float
    ntoys: int
    seed: int
    n_sigma: float
    abs_tol: float
    quantiles: dict[str, dict[str, float | bool]] = Field(
        description="per band key: mu_exact, cls_toys (pyhf's expected CLs at the quantile), cls_toys_err, "
                    "cls_toys_range_lo/hi (over the quantile's binomial range), passed")
    passed: bool

    def line(self) -> str:
        vals = ", ".join(f"{k} {v['cls_toys']:.3f} +- {v['cls_toys_err']:.3f}"
                         for k, v in self.quantiles.items())
        return (f"pyhf prior-toy band check {'PASSED' if self.passed else 'FAILED'} ({self.ntoys} toys): "
                f"expected CLs at the exact band limits = {vals}; expected {1 - self.cl:.2f}")


def band_check(spec: dict[str, Any], *, cl: float = 0.9, ntoys: int = 4000, seed: int = 1,
               n_sigma: float = 3.0, abs_tol: float = 0.005, mu_exp: dict[str, float] | None = None,
               keys: tuple[str, ...] = BAND_KEYS) -> BandCheck:
    """pyhf's expected CLs (prior toys, :class:`PriorToyCalculator`) at each exact expected limit of
    ``spec``; quantile q passes if 1 - CL lies within n_sigma sigma + abs_tol of the toy CLs over the
    percentiles q +- n_sigma (binomial spread of the quantile's position), sigma the binomial spread of the
    toy CLs at 1 - CL. ``mu_exp``: the band to check (default: :mod:`na64ana.stats.cls`'s,
    computed here) -- lets a test feed a wrong band. ``keys``: the quantiles checked (default all five)."""
    level = 1.0 - cl
    if mu_exp is None:
        mu_exp = {k: float(v) for k, v in ExactCLs(counting_model_from_spec(spec)).limits(cl).mu_exp.items()}
    previous = pyhf.get_backend()
    pyhf.set_backend("numpy")
    try:
        model, data = pyhf_model(spec)
        calc = PriorToyCalculator(data, model, ntoys=ntoys, seed=seed)
        rows: dict[str, dict[str, float | bool]] = {}
        for k in keys:
            mu = mu_exp[k]
            sb, b = calc.distributions(mu)
            # pyhf's (CLsb, CLb, CLs) of every background-only toy, as ToyCalculator.expected_pvalues takes
            # its percentiles of them
            tails = {t: calc.pvalues(t, sb, b) for t in np.unique(b.samples)}
            per_toy = np.array([[float(x) for x in tails[t]] for t in b.samples])
            pct = BAND_PERCENTILES[k]
            # where the quantile lies among the toys is itself known to +- its binomial spread: with a
            # discrete count it may fall on either side of an atom (b = 0.5, kappa = 4: F(8) = 0.9763 vs
            # the +2 sigma quantile 0.9772), so the verdict takes the CLs over that percentile range
            d = n_sigma * 100.0 * math.sqrt(pct / 100.0 * (1.0 - pct / 100.0) / ntoys)
            lo, cls_t, hi = np.percentile(per_toy[:, 2], [max(pct - d, 0.0), pct, min(pct + d, 100.0)])
            clb = max(float(np.percentile(per_toy[:, 1], pct)), 1.0 / ntoys)
            # the binomial spread of the toy CLs if it were 1 - CL, at the quantile's b-only tail
            p0 = level * clb
            err = level * math.sqrt((1 - p0) / (ntoys * p0) + (1 - clb) / (ntoys * clb))
            rows[k] = {"mu_exact": mu, "cls_toys": float(cls_t), "cls_toys_err": err,
                       "cls_toys_range_lo": float(min(lo, hi)), "cls_toys_range_hi": float(max(lo, hi)),
                       "passed": bool(min(lo, hi) - n_sigma * err - abs_tol <= level
                                      <= max(lo, hi) + n_sigma * err + abs_tol)}
    finally:
        pyhf.set_backend(*previous)
    return BandCheck(cl=cl, ntoys=ntoys, seed=seed, n_sigma=n_sigma, abs_tol=abs_tol, quantiles=rows,
                     passed=all(bool(r["passed"]) for r in rows.values()))
