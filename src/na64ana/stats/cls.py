"""Small-count-correct CLs for NA64 counting models.

Why: with 0 observed events the asymptotic formulae give a 90% CL limit of ~1.46 signal events instead of
the exact 2.30, and pyhf's toy calculator costs minutes per point. NA64 likelihoods are a product of a few
Poisson terms with log-normal constraints, so the CLs can be computed *exactly* over the discrete outcomes:

* test statistic: pyhf's ``qtilde`` (profile likelihood ratio, nuisances profiled with the auxiliary
  measurements at nominal, POI >= 0, q = 0 for mu_hat > mu), minimised by a vectorised damped Newton fit
  over all outcomes at once;
* outcome probabilities: hybrid (Cousins-Highland) -- Poisson probabilities averaged over the log-normal
  priors of the nuisances by Gauss-Hermite quadrature;
* CLs(mu; n_obs) = P_sb(q >= q_obs) / P_b(q >= q_obs), summing over all outcome vectors with total count
  <= K (the remainder has probability < 1e-9 and q = 0).

Every nuisance multiplies the signal or background by ``(1 + r) ** theta`` with theta ~ N(0, 1): a
log-normal with log-width ``ln(1 + r)`` (pyhf ``normsys`` hi = 1 + r, lo = 1/(1 + r), interpcode code1).
It is defined for any r > 0 (kappa = 1 + r): a 300% uncertainty is kappa = 4, no cap is needed or applied.
Log-normal widths add in quadrature, so per channel the efficiency and EOT terms merge into one width and
all signal terms shared by every channel (cross section) into one global width -- exactly, not approximately.
A channel's background may instead be asymmetric, pyhf's normsys code1 with (hi, lo) = (kappa_up,
kappa_down): kappa_up ** theta for theta > 0, kappa_down ** -theta for theta < 0 (log-widths ln kappa_up and
-ln kappa_down on the two sides; see :func:`asymmetric_kappa`).

Wide uncertainties: the enumeration and the scanned signal range follow the *marginal* background-only
count distribution (Poisson averaged over the log-normal priors, :func:`marginal_count_pmf`), not the
nominal Poisson, so the expected band is finite whenever the outcomes that carry it are enumerated; the
priors are integrated with 10-point Gauss-Hermite where that is exact to < 1e-6 (log-width x sqrt(k_max + 1)
<= 1) and otherwise with Gauss-Legendre on each half line, with nodes dense enough to resolve the Poisson
peak in theta (needed above ~50% uncertainties, and for any asymmetric prior: it has a kink at theta = 0).

The core takes the signal as plain numbers (``signal`` = expected events at mu = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize, special, stats

GH_NODES = 10
QUANTILES = {"m2": stats.norm.cdf(-2), "m1": stats.norm.cdf(-1), "median": 0.5,
             "p1": stats.norm.cdf(1), "p2": stats.norm.cdf(2)}
_TAIL = 1e-6  # s+b probability left out of the enumeration (those outcomes have q = 0 anyway)
_BAND_COVER = 1e-3  # background-only outcomes beyond this tail probability count as +inf limits
# Budgets (bounded time and memory for any uncertainty and any number of runs, docs/inference.md):
MAX_OUTCOMES = 400_000  # enumerated outcome vectors
MAX_QUAD_CELLS = 100_000_000  # Poisson terms per probability evaluation (nodes x counts, see _quad_cells)
MAX_COUNT = 10_000  # largest total count whose marginal probability is ever computed
_CHUNK_CELLS = 8_000_000  # Poisson terms held in memory at once
BAND_TOYS = 4000  # background-only toys of the expected band when exact enumeration is over budget
BAND_SEED = 1
FALLBACK_OUTCOMES = 20_000  # enumerated outcomes for the observed limit when the band comes from toys
LARGE_COUNT_OUTCOMES = 50_000  # above this (and a diffuse count distribution) the exact method uses toys


def log_width(rel: float | np.ndarray) -> np.ndarray:
    """Log-normal width for a relative uncertainty r: the factor is (1 + r) ** theta, theta ~ N(0, 1)."""
    r = np.asarray(rel, dtype=float)
    if np.any(~np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"relative uncertainties must be finite and >= 0, got {rel!r}")
    return np.log1p(r)


def asymmetric_kappa(value: float, up: float, down: float) -> tuple[float, float]:
    """(kappa_up, kappa_down) = ((value + up)/value, (value - down)/value) for ``value +up -down``.

    pyhf's normsys (hi, lo) with interpcode code1: the factor is kappa_up ** theta above the nominal and
    kappa_down ** -theta below. ``0.1 +0.3 -0.09`` gives (4.0, 0.1). Any ``up`` is allowed (no cap); ``down``
    must be below ``value`` (a log-normal never reaches zero)."""
    value, up, down = float(value), float(up), float(down)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"value: must be a finite number > 0, got {value!r}")
    if not (math.isfinite(up) and up >= 0):
        raise ValueError(f"up: must be a finite number >= 0, got {up!r}")
    if not (math.isfinite(down) and 0 <= down < value):
        raise ValueError(f"down: must be >= 0 and below the value {value!r} (a log-normal is > 0), "
                         f"got {down!r}")
    return (value + up) / value, (value - down) / value


def kappa_log_widths(kappa_up: float, kappa_down: float) -> tuple[float, float]:
    """Log-loadings (a_up, a_down) of a code1 normsys: ln factor = a_up theta (theta > 0), a_down theta
    (theta < 0)."""
    if not (math.isfinite(kappa_up) and kappa_up > 0 and math.isfinite(kappa_down) and kappa_down > 0):
        raise ValueError(f"kappa_up and kappa_down must be finite and > 0, got ({kappa_up!r}, "
                         f"{kappa_down!r})")
    return math.log(kappa_up), -math.log(kappa_down)


@dataclass(frozen=True)
class CountingModel:
    """Bins grouped in channels (runs). Widths are log-normal widths (see :func:`log_width`)."""

    signal: np.ndarray
    background: np.ndarray
    observed: np.ndarray
    channel: np.ndarray
    sig_shared: float = 0.0
    sig_chan: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bkg_chan: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bkg_chan_dn: np.ndarray = field(default_factory=lambda: np.zeros(0))  # empty: symmetric (= bkg_chan)
    # ONE background nuisance shared by the channels (correlated across runs): per-channel log-loadings
    # above / below its nominal (empty: none; a channel with loading 0 does not depend on it)
    bkg_shared: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bkg_shared_dn: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def has_shared_background(self) -> bool:
        return bool(self.bkg_shared.size and (np.any(self.bkg_shared > 0) or np.any(self.bkg_shared_dn > 0)))

    @property
    def bkg_dn(self) -> np.ndarray:
        """Log-loading of the background below the nominal (theta < 0); ``bkg_chan`` above it."""
        return self.bkg_chan_dn if self.bkg_chan_dn.size else self.bkg_chan

    @property
    def symmetric(self) -> bool:
        return bool(np.array_equal(self.bkg_dn, self.bkg_chan))

    @classmethod
    def build(cls, signal, background, observed, *, channel=None, shared_rel=(), signal_rel=None,
              background_rel=None, background_kappa=None, background_shared_kappa=None) -> CountingModel:
        """Model from relative uncertainties.

        ``shared_rel``: relative signal uncertainties common to all channels (e.g. cross section);
        ``signal_rel``: per channel, a number or a list of independent terms (efficiency, EOT);
        ``background_rel``: per channel relative background uncertainty (kappa = 1 + r, any r >= 0);
        ``background_kappa``: instead of ``background_rel``, per channel ``kappa`` (symmetric) or a pair
        ``(kappa_up, kappa_down)`` (pyhf normsys hi, lo; e.g. :func:`asymmetric_kappa`);
        ``background_shared_kappa``: one more background nuisance, the SAME parameter in every channel
        (correlated across runs, e.g. the side-band shape choice), per channel ``kappa``, a pair or ``None``
        (channel unaffected).
        """
        s = np.atleast_1d(np.asarray(signal, dtype=float))
        b = np.atleast_1d(np.asarray(background, dtype=float))
        n = np.atleast_1d(np.asarray(observed))
        ch = np.arange(s.size) if channel is None else np.asarray(channel, dtype=int)
        nch = int(ch.max()) + 1
        if not (s.shape == b.shape == n.shape == ch.shape):
            raise ValueError("signal, background, observed and channel must have the same length")
        if np.any(s < 0) or np.any(b < 0) or np.any(n < 0) or np.any(n != np.round(n)):
            raise ValueError("signal and background must be >= 0 and observed non-negative integers")
        if not np.any(s > 0):
            raise ValueError("the signal is zero in every bin")

        def per_chan(x):
            if x is None:
                return np.zeros(nch)
            out = []
            for v in (list(x) if np.ndim(x) or isinstance(x, list | tuple) else [x] * nch):
                terms = np.atleast_1d(np.asarray(v, dtype=float))
                out.append(float(np.sqrt(np.sum(log_width(terms) ** 2))))
            if len(out) != nch:
                raise ValueError(f"expected {nch} per-channel uncertainties, got {len(out)}")
            return np.asarray(out)

        shared = float(np.sqrt(np.sum(log_width(np.asarray(list(shared_rel), dtype=float)) ** 2)))
        extra: dict[str, np.ndarray] = {}
        if background_shared_kappa is not None:
            extra["bkg_shared"], extra["bkg_shared_dn"] = _kappa_loadings(background_shared_kappa, nch,
                                                                          "background_shared_kappa")
        if background_kappa is None:
            bup = per_chan(background_rel)
            return cls(s, b, n.astype(int), ch, shared, per_chan(signal_rel), bup, **extra)
        if background_rel is not None:
            raise ValueError("give background_rel or background_kappa, not both")
        up, dn = _kappa_loadings(background_kappa, nch, "background_kappa")
        return cls(s, b, n.astype(int), ch, shared, per_chan(signal_rel), up, dn, **extra)

    @property
    def nbins(self) -> int:
        return self.signal.size

    def shared_bkg_log(self, y: float) -> np.ndarray:
        """Per-channel ln(background factor) of the shared background nuisance at value ``y``."""
        if not self.has_shared_background:
            return np.zeros(self.sig_chan.size)
        return (self.bkg_shared if y > 0 else self.bkg_shared_dn) * y


def _kappa_loadings(kappa, nch: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) log-loadings per channel from a kappa, a (kappa_up, kappa_down) pair or None per channel
    (a bare number or pair applies to every channel)."""
    single = not isinstance(kappa, list | np.ndarray) or (isinstance(kappa, tuple))
    kap = [kappa] * nch if single else list(kappa)
    if len(kap) != nch:
        raise ValueError(f"{name}: expected {nch} per-channel values, got {len(kap)}")
    up, dn = np.zeros(nch), np.zeros(nch)
    for c, kc in enumerate(kap):
        if kc is None:
            continue
        one = not isinstance(kc, list | tuple | np.ndarray)
        hi, lo = (float(kc), 1.0 / float(kc)) if one else (float(kc[0]), float(kc[1]))
        up[c], dn[c] = kappa_log_widths(hi, lo)
        if one or math.isclose(hi * lo, 1.0, rel_tol=1e-12):
            dn[c] = up[c]  # symmetric: keep the exact (faster) symmetric path
        if up[c] < 0 or dn[c] < 0:
            raise ValueError(f"{name}: channel {c} has kappa_up {hi} and kappa_down {lo}; "
                             "need kappa_up >= 1 >= kappa_down (a monotonic response)")
    return up, dn


# ---------------------------------------------------------------------------------------------------------
# outcome enumeration and hybrid probabilities

def enumerate_outcomes(nbins: int, kmax: int) -> np.ndarray:
    """All non-negative integer vectors of length ``nbins`` with sum <= kmax (rows)."""
    out = np.zeros((1, 0), dtype=np.int32)
    for _ in range(nbins):
        used = out.sum(axis=1)
        reps = kmax - used + 1
        rows = np.repeat(out, reps, axis=0)
        new = np.concatenate([np.arange(r) for r in reps]).astype(np.int32)
        out = np.column_stack([rows, new])
    return out


@lru_cache(maxsize=8)
def _gh(n: int = GH_NODES) -> tuple[np.ndarray, np.ndarray]:
    x, w = hermegauss(n)
    return x, w / math.sqrt(2 * math.pi)


_HALF_LINE = 8.5  # |theta| beyond 8.5 has prior probability 1.9e-17
_NODES_PER_WIDTH = 10  # half-line Gauss-Legendre nodes per unit of (log-width x sqrt(k_max + 1))


@lru_cache(maxsize=64)
def _half_gl(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    t = (x + 1.0) * _HALF_LINE / 2.0
    return t, w * _HALF_LINE / 2.0 * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def prior_rule(a_up: float, a_dn: float, kmax: int, *, kink: bool | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadrature over theta ~ N(0, 1) of a factor exp(a theta) (a = a_up above 0, a_dn below): nodes,
    weights, ln factor at the nodes.

    Gauss-Hermite (10 nodes) for a symmetric narrow prior (a sqrt(k_max + 1) <= 1: Poisson probabilities
    of counts <= k_max exact to < 1e-6); otherwise Gauss-Legendre on [-8.5, 0] and [0, 8.5] with enough
    nodes to resolve the Poisson peak of width ~1/(a sqrt(k)) in theta (and the kink at 0 if a_up != a_dn):
    max relative error < 3e-4 on every probability > 1e-10, tested up to a = ln 10."""
    n = _rule_half_nodes(a_up, a_dn, kmax, kink)
    if n == 0:
        return np.zeros(1), np.ones(1), np.zeros(1)
    if n < 0:
        x, w = _gh()
        return x, w, a_up * x
    t, wt = _half_gl(n)
    x = np.concatenate([-t[::-1], t])
    w = np.concatenate([wt[::-1], wt])
    return x, w, np.where(x > 0, a_up * x, a_dn * x)


def _rule_half_nodes(a_up: float, a_dn: float, kmax: int, kink: bool | None = None) -> int:
    """Gauss-Legendre nodes per half line of :func:`prior_rule` (0: no prior, -1: Gauss-Hermite)."""
    if a_up == 0.0 and a_dn == 0.0:
        return 0
    a = max(abs(a_up), abs(a_dn))
    kink = (a_up != a_dn) if kink is None else kink
    if not kink and a * math.sqrt(kmax + 1.0) <= 1.0:
        return -1
    return min(8 + math.ceil(_NODES_PER_WIDTH * a * math.sqrt(kmax + 1.0)), 400)


def _rule_size(a_up: float, a_dn: float, kmax: int, kink: bool | None = None) -> int:
    n = _rule_half_nodes(a_up, a_dn, kmax, kink)
    return 1 if n == 0 else GH_NODES if n < 0 else 2 * n


def _shared_bkg_rule(model: CountingModel, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the shared background nuisance (one node at 0 if there is none)."""
    if not model.has_shared_background:
        return np.zeros(1), np.ones(1)
    kink = not np.array_equal(model.bkg_shared, model.bkg_shared_dn)
    y, wy, _ = prior_rule(float(model.bkg_shared.max()), float(model.bkg_shared_dn.max()), kmax, kink=kink)
    return y, wy


def probabilities(model: CountingModel, mu: float, outcomes: np.ndarray) -> np.ndarray:
    """Hybrid P(outcome | mu): Poisson probabilities averaged over the log-normal nuisance priors.

    With a shared background nuisance and one bin per channel (the dark-photon scan) the same quadrature
    is evaluated by :func:`_probabilities_shared` (the signal + background Poisson as a convolution, the
    background tables reused across mu and masses); otherwise by :func:`_probabilities_direct`."""
    if model.has_shared_background and _one_bin_per_channel(model):
        return _probabilities_shared(model, mu, outcomes)
    return _probabilities_direct(model, mu, outcomes)


def _one_bin_per_channel(model: CountingModel) -> bool:
    return bool(model.nbins == model.sig_chan.size
                and np.array_equal(np.sort(model.channel), np.arange(model.nbins)))


def _probabilities_direct(model: CountingModel, mu: float, outcomes: np.ndarray) -> np.ndarray:
    """:func:`probabilities` by the direct quadrature: for every node of the shared background nuisance,
    every (signal, background) node pair of every channel (the reference for the fast path)."""
    kmax = int(outcomes.max()) if outcomes.size else 0
    ys, wys = _shared_bkg_rule(model, kmax)
    out = np.zeros(outcomes.shape[0])
    for y, wy in zip(ys, wys, strict=True):
        out += wy * _probabilities_at(model, mu, outcomes, kmax, model.shared_bkg_log(float(y)))
    return out


def _probabilities_at(model: CountingModel, mu: float, outcomes: np.ndarray, kmax: int,
                      lshared: np.ndarray) -> np.ndarray:
    """:func:`probabilities` at a fixed value of the shared background nuisance (per-channel log factor)."""
    x, wx, lx = prior_rule(model.sig_shared, model.sig_shared, kmax)
    k = np.arange(kmax + 1)
    # (outcomes, x nodes): the per-channel tables are gathered row-wise (contiguous), summed over x last
    total = np.broadcast_to(wx[None, :], (outcomes.shape[0], x.size)).copy()
    bdn = model.bkg_dn
    for c in range(model.sig_chan.size):
        bins = np.flatnonzero(model.channel == c)
        _, wu, lu = prior_rule(model.sig_chan[c], model.sig_chan[c], kmax)
        _, wv, lv = prior_rule(model.bkg_chan[c], bdn[c], kmax)
        fs = np.exp(lx[:, None, None] + lu[None, :, None])  # (x,u,1)
        fb = np.exp(lv + lshared[c])[None, None, :]  # (1,1,v)
        w = (wu[:, None] * wv[None, :])[None]  # (1,u,v)
        cube = x.size * wu.size * wv.size
        if bins.size == 1:
            j = bins[0]
            lam = mu * model.signal[j] * fs + model.background[j] * fb  # (x,u,v)
            wb = np.broadcast_to(w, lam.shape)
            if cube * k.size <= _CHUNK_CELLS:
                table = np.einsum("xuvk,xuv->xk", _pois(k, lam), wb)
            else:  # same sum, a few x nodes at a time (bounded memory)
                step = max(1, _CHUNK_CELLS // (wu.size * wv.size * k.size))
                table = np.concatenate([np.einsum("xuvk,xuv->xk", _pois(k, lam[i:i + step]), wb[i:i + step])
                                        for i in range(0, x.size, step)])
            total *= np.take(np.ascontiguousarray(table.T), outcomes[:, j], axis=0)
        else:
            step = max(1, _CHUNK_CELLS // max(cube, 1))
            for r0 in range(0, outcomes.shape[0], step):
                rows = outcomes[r0:r0 + step]
                logp: np.ndarray | float = 0.0
                for j in bins:
                    lam = mu * model.signal[j] * fs + model.background[j] * fb
                    logp = logp + _logpois(k, lam)[..., rows[:, j]]  # (x,u,v,M)
                logp = np.asarray(logp)
                total[r0:r0 + step] *= np.einsum("xuvm,xuv->mx", np.exp(logp),
                                                 np.broadcast_to(w, logp.shape[:3]))
    return total.sum(axis=1)


_SHARED_CACHE: dict[tuple, tuple] = {}  # background tables and outcome plans (mu- and mass-independent)
_SHARED_CACHE_SIZE = 8
_TOEPLITZ_CELLS = 4_000_000  # above this the convolution is a loop over the lag (bounded memory)


def _cached(key: tuple, make):
    hit = _SHARED_CACHE.get(key)
    if hit is None:
        if len(_SHARED_CACHE) >= _SHARED_CACHE_SIZE:
            _SHARED_CACHE.pop(next(iter(_SHARED_CACHE)))
        hit = _SHARED_CACHE[key] = make()
    return hit


def _shared_bkg_tables(model: CountingModel, kmax: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Weights of the shared background nuisance's nodes and, per channel, the background-only count
    probabilities at each node averaged over the channel's own background prior: (ny,), [(ny, K)].

    They do not depend on the signal: computed once per model background and depth (cached)."""
    order = np.argsort(model.channel)
    key = ("bkg", kmax, model.background[order].tobytes(), model.bkg_chan.tobytes(), model.bkg_dn.tobytes(),
           model.bkg_shared.tobytes(), model.bkg_shared_dn.tobytes())

    def make():
        k = np.arange(kmax + 1)
        ys, wys = _shared_bkg_rule(model, kmax)
        lsh = np.array([model.shared_bkg_log(float(y)) for y in ys])  # (ny, C)
        bdn = model.bkg_dn
        tables = []
        for c in range(model.sig_chan.size):
            _, wv, lv = prior_rule(model.bkg_chan[c], bdn[c], kmax)
            lam = model.background[order[c]] * np.exp(lv[None, :] + lsh[:, c:c + 1])  # (y, v)
            tables.append(np.einsum("yvk,v->yk", _pois(k, lam), wv))
        return wys, tables

    return _cached(key, make)


def _outcome_plan(outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct prefixes (all columns but the last) of the outcome rows and each row's prefix index."""
    key = ("plan", outcomes.shape, hash(np.ascontiguousarray(outcomes).tobytes()))

    def make():
        if outcomes.shape[1] <= 1:
            return np.zeros((1, 0), dtype=outcomes.dtype), np.zeros(outcomes.shape[0], dtype=np.intp)
        pre, inv = np.unique(outcomes[:, :-1], axis=0, return_inverse=True)
        return pre, np.asarray(inv).reshape(-1)

    return _cached(key, make)


def _probabilities_shared(model: CountingModel, mu: float, outcomes: np.ndarray) -> np.ndarray:
    """:func:`probabilities` for one bin per channel and a shared background nuisance: the same nodes and
    weights as :func:`_probabilities_direct`, summed in another order.

    Per channel, Pois(k; S + B) = sum_j Pois(j; S) Pois(k - j; B), so the (signal node, background node)
    double sum factorises into a signal table (x, j) averaged over the channel's signal prior and the
    cached background table (y, k) averaged over its own background prior, convolved in the count:
    T_c(x, y, k). Then P(n) = sum_{x, y} w_x w_y prod_c T_c(x, y, n_c), the last channel by one matrix
    product per distinct prefix (n_1..n_{C-1}). Equal to the direct sum up to rounding (tested)."""
    kmax = int(outcomes.max()) if outcomes.size else 0
    K = kmax + 1
    k = np.arange(K)
    order = np.argsort(model.channel)  # bin of each channel
    wys, btabs = _shared_bkg_tables(model, kmax)
    _, wx, lx = prior_rule(model.sig_shared, model.sig_shared, kmax)
    ny, nx = wys.size, wx.size
    tables = []  # per channel (nx * ny, K), rows x-major
    for c in range(model.sig_chan.size):
        _, wu, lu = prior_rule(model.sig_chan[c], model.sig_chan[c], kmax)
        lam = mu * model.signal[order[c]] * np.exp(lx[:, None] + lu[None, :])  # (x, u)
        stab = np.einsum("xuk,u->xk", _pois(k, lam), wu)  # (x, j)
        btab = btabs[c]  # (y, k)
        if K * ny * K <= _TOEPLITZ_CELLS:
            shifted = np.zeros((K, ny, K))  # shifted[j, y, k] = btab[y, k - j]
            for j in range(K):
                shifted[j, :, j:] = btab[:, :K - j]
            # einsum, not BLAS: multi-threaded BLAS on these small products costs several times the
            # CPU on a loaded machine
            t = np.einsum("xj,jq->xq", stab, shifted.reshape(K, ny * K)).reshape(nx * ny, K)
        else:
            t3 = np.zeros((nx, ny, K))
            for j in range(K):
                t3[:, :, j:] += stab[:, j, None, None] * btab[None, :, :K - j]
            t = t3.reshape(nx * ny, K)
        tables.append(t)
    w = (wx[:, None] * wys[None, :]).reshape(-1)  # (nx * ny,)
    pre, inv = _outcome_plan(outcomes)
    last = tables[-1]
    out = np.empty(outcomes.shape[0])
    transposed = [np.ascontiguousarray(t.T) for t in tables[:-1]]  # (K, P): row gathers
    step = max(1, _CHUNK_CELLS // max(w.size, 1))
    heads = np.empty((pre.shape[0], K))
    for r0 in range(0, pre.shape[0], step):
        if transposed:
            g = np.take(transposed[0], pre[r0:r0 + step, 0], axis=0) * w
            for c, tt in enumerate(transposed[1:], start=1):
                g *= np.take(tt, pre[r0:r0 + step, c], axis=0)
        else:  # one channel: the prefix is empty
            g = np.broadcast_to(w, (min(step, pre.shape[0] - r0), w.size))
        heads[r0:r0 + step] = g @ last
    out[:] = heads[inv, outcomes[:, -1]]
    return out


def _quad_cells(model: CountingModel, kmax: int) -> int:
    """Poisson terms of one probability evaluation at enumeration depth ``kmax`` (the quadrature budget):
    nodes of every prior times counts, summed over the channels and the shared background nodes. The
    marginal count distribution up to ``kmax`` costs the same."""
    nx = _rule_size(model.sig_shared, model.sig_shared, kmax)
    ny = 1
    if model.has_shared_background:
        ny = _rule_size(float(model.bkg_shared.max()), float(model.bkg_shared_dn.max()), kmax,
                        kink=not np.array_equal(model.bkg_shared, model.bkg_shared_dn))
    bdn = model.bkg_dn
    tot = 0
    for c in range(model.sig_chan.size):
        nu = _rule_size(model.sig_chan[c], model.sig_chan[c], kmax)
        nv = _rule_size(model.bkg_chan[c], bdn[c], kmax)
        tot += nx * nu * nv * (kmax + 1) * int(np.count_nonzero(model.channel == c))
    return ny * tot


def budget_kmax(model: CountingModel, *, max_outcomes: int = MAX_OUTCOMES,
                max_cells: int = MAX_QUAD_CELLS) -> int:
    """Largest enumeration depth (total count) within both budgets: at most ``max_outcomes`` outcome
    vectors and ``max_cells`` Poisson terms per probability evaluation (and <= MAX_COUNT)."""

    def ok(kk: int) -> bool:
        return (math.comb(kk + model.nbins, model.nbins) <= max_outcomes
                and _quad_cells(model, kk) <= max_cells)

    lo, hi = 0, MAX_COUNT
    if ok(hi):
        return hi
    while hi - lo > 1:  # ok(lo), not ok(hi); both conditions grow with the depth
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def marginal_count_pmf(model: CountingModel, mu: float, kmax: int) -> np.ndarray:
    """P(total count = k | mu) for k = 0..kmax, the Poisson averaged over every log-normal prior (hybrid).

    This, not the nominal Poisson, is what the enumeration must cover: with kappa = 4 on b = 0.5 the 99.9%
    quantile of the background-only count is 37 events, not 4."""
    k = np.arange(kmax + 1)
    _, wx, lx = prior_rule(model.sig_shared, model.sig_shared, kmax)
    ys, wys = _shared_bkg_rule(model, kmax)
    bdn = model.bkg_dn
    out = np.zeros(kmax + 1)
    chans = []
    for c in range(model.sig_chan.size):
        on = model.channel == c
        _, wu, lu = prior_rule(model.sig_chan[c], model.sig_chan[c], kmax)
        _, wv, lv = prior_rule(model.bkg_chan[c], bdn[c], kmax)
        chans.append((float(model.signal[on].sum()), float(model.background[on].sum()), wu, lu, wv, lv))
    for y, wy in zip(ys, wys, strict=True):
        lsh = model.shared_bkg_log(float(y))
        for i in range(wx.size):
            conv = np.zeros(kmax + 1)
            conv[0] = 1.0
            for c, (s_c, b_c, wu, lu, wv, lv) in enumerate(chans):
                lam = mu * s_c * np.exp(lx[i] + lu)[:, None] + b_c * np.exp(lv + lsh[c])[None, :]  # (u,v)
                wuv = wu[:, None] * wv[None, :]
                if lam.size * k.size <= _CHUNK_CELLS:
                    p_c = np.einsum("uvk,uv->k", _pois(k, lam), wuv)
                else:  # bounded memory: a few u nodes at a time
                    step = max(1, _CHUNK_CELLS // (wv.size * k.size))
                    p_c = sum(np.einsum("uvk,uv->k", _pois(k, lam[r:r + step]), wuv[r:r + step])
                              for r in range(0, wu.size, step))
                conv = np.convolve(conv, p_c)[: kmax + 1]
            out += wy * wx[i] * conv
    return out


def marginal_count_quantile(model: CountingModel, mu: float, q: float, *, max_count: int | None = None
                            ) -> int:
    """Smallest total count n with P(total <= n | mu) >= q under the marginal (prior-averaged) model.

    The search never goes beyond ``max_count`` (default: the quadrature budget, :func:`budget_kmax` with
    an unlimited outcome count): a ValueError says the quantile lies beyond it (bounded time and memory)."""
    found = _marginal_quantile_capped(model, mu, q, max_count)
    if found is None:
        cap = budget_kmax(model, max_outcomes=2**62) if max_count is None else max_count
        raise ValueError(f"the {q} quantile of the count lies beyond {cap} events, the largest count "
                         "within the quadrature budget (very wide background uncertainty)")
    return found


def _marginal_quantile_capped(model: CountingModel, mu: float, q: float, max_count: int | None
                              ) -> int | None:
    """:func:`marginal_count_quantile`, or None if it lies beyond ``max_count``."""
    cap = budget_kmax(model, max_outcomes=2**62) if max_count is None else int(max_count)
    if mu == 0.0 and _quantile_lower_bound(model, q) > cap:
        return None  # certainly beyond: no need to pay for the marginal distribution up to the cap
    mean = mu * float(model.signal.sum()) + float(model.background.sum())
    kmax = max(int(stats.poisson.ppf(q, mean + 1e-12)) + 4, 8)
    while True:
        kk = min(kmax, cap)
        cdf = np.cumsum(marginal_count_pmf(model, mu, kk))
        hit = np.flatnonzero(cdf >= q - 1e-12)
        if hit.size:
            return int(hit[0])
        if kk >= cap:
            return None
        kmax *= 2


def _quantile_lower_bound(model: CountingModel, q: float) -> int:
    """A cheap lower bound on the background-only marginal count quantile ``q``: with every other
    nuisance at or above its median (probability >= 1/2 each, factors >= 1), one background term above
    z = Phi^-1(1 - 4 (1 - q)) and the Poisson count above its median, P(total > n) >= 1 - q for
    n < median(Poisson(b_c exp(a z))) - 1."""
    z = float(stats.norm.isf(4.0 * (1.0 - q)))
    best = 0
    for c in range(model.sig_chan.size):
        b_c = float(model.background[model.channel == c].sum())
        loads = [float(model.bkg_chan[c])]
        if model.has_shared_background:
            loads.append(float(model.bkg_shared[c]))
        for a in loads:
            lam = b_c * math.exp(min(a * z, 700.0))
            best = max(best, int(stats.poisson.median(lam)) - 2 if lam > 0 else 0)
    return best


def _poisson_ppf(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Inverse Poisson CDF (scipy's, ~20x faster for small means: direct summation up to lam <= 50)."""
    lam = np.broadcast_to(lam, u.shape)
    out = np.empty(u.shape, dtype=np.int64)
    big = lam > 50.0
    if big.any():
        out[big] = stats.poisson.ppf(u[big], lam[big]).astype(np.int64)
    small = ~big
    us, ls = u[small], lam[small]
    p = np.exp(-ls)
    cdf = p.copy()
    k = np.zeros(us.shape, dtype=np.int64)
    todo = np.flatnonzero(us > cdf)
    j = 0
    while todo.size:
        j += 1
        p[todo] *= ls[todo] / j
        cdf[todo] += p[todo]
        k[todo] = j
        todo = todo[us[todo] > cdf[todo]]
        if j > 400:  # rounding near u = 1: leave the rest to scipy
            k[todo] = stats.poisson.ppf(us[todo], ls[todo]).astype(np.int64)
            break
    out[small] = k
    return out


def _logpois(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    lam = np.asarray(lam)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = k * np.log(lam) - lam - special.gammaln(k + 1)
    return np.where(lam > 0, out, np.where(k == 0, 0.0, -np.inf))


def _pois(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return np.exp(_logpois(k, lam))


# ---------------------------------------------------------------------------------------------------------
# vectorised profile-likelihood fits

@dataclass(frozen=True)
class _Design:
    s: np.ndarray
    b: np.ndarray
    A: np.ndarray  # (bins, P) log-loadings of the signal on the nuisances
    C: np.ndarray  # (bins, P) log-loadings of the background (theta > 0)
    Cdn: np.ndarray  # (bins, P) the same for theta < 0 (== C unless a background prior is asymmetric)
    sym: bool = True

    @classmethod
    def of(cls, m: CountingModel) -> _Design:
        cols_s, cols_b, cols_d = [], [], []
        zero = np.zeros(m.nbins)
        if m.sig_shared > 0:
            cols_s.append(np.full(m.nbins, m.sig_shared))
            cols_b.append(zero)
            cols_d.append(zero)
        bdn = m.bkg_dn
        for c in range(m.sig_chan.size):
            on = (m.channel == c).astype(float)
            if m.sig_chan[c] > 0:
                cols_s.append(on * m.sig_chan[c])
                cols_b.append(zero)
                cols_d.append(zero)
            if (m.bkg_chan[c] > 0 or bdn[c] > 0) and np.any(m.background[m.channel == c] > 0):
                cols_s.append(zero)
                cols_b.append(on * m.bkg_chan[c])
                cols_d.append(on * bdn[c])
        if m.has_shared_background:
            cols_s.append(zero)
            cols_b.append(m.bkg_shared[m.channel])
            cols_d.append(m.bkg_shared_dn[m.channel])
        A = np.column_stack(cols_s) if cols_s else np.zeros((m.nbins, 0))
        C = np.column_stack(cols_b) if cols_b else np.zeros((m.nbins, 0))
        Cdn = np.column_stack(cols_d) if cols_d else np.zeros((m.nbins, 0))
        return cls(m.signal, m.background, A, C, Cdn, bool(np.array_equal(C, Cdn)))

    @property
    def npar(self) -> int:
        return self.A.shape[1]

    @property
    def AA(self) -> np.ndarray:
        """(bins, P*P): per bin the outer product of its signal loadings (Hessian by one matrix product)."""
        return (self.A[:, :, None] * self.A[:, None, :]).reshape(self.A.shape[0], -1)

    @property
    def CC(self) -> np.ndarray:
        """(bins, P*P): the same for the background loadings (symmetric priors)."""
        return (self.C[:, :, None] * self.C[:, None, :]).reshape(self.C.shape[0], -1)

    @property
    def hessian_loadings(self) -> np.ndarray:
        """(3 bins, P*P): AA, CC and AC stacked (the symmetric-prior Hessian in one matrix product)."""
        cached = self.__dict__.get("_hessian_loadings")
        if cached is None:
            cached = np.vstack([self.AA, self.CC, self.AC])
            object.__setattr__(self, "_hessian_loadings", cached)
        return cached

    @property
    def AC(self) -> np.ndarray:
        """(bins, P*P): A_j C_j^T + C_j A_j^T per bin (the signal-background cross term of the Hessian)."""
        ac = self.A[:, :, None] * self.C[:, None, :]
        return (ac + np.swapaxes(ac, 1, 2)).reshape(self.A.shape[0], -1)

    def bkg_log(self, th: np.ndarray) -> np.ndarray:
        """ln(background factor) per row and bin (code1: piecewise linear in theta)."""
        if self.sym:
            return th @ self.C.T
        return np.maximum(th, 0.0) @ self.C.T + np.minimum(th, 0.0) @ self.Cdn.T

    def bkg_loading(self, th: np.ndarray) -> np.ndarray:
        """d ln(background)/d theta per row: (bins, P) if symmetric, else (rows, bins, P)."""
        if self.sym:
            return self.C
        return np.where(th[:, None, :] > 0, self.C[None], self.Cdn[None])


def _nll_terms(d: _Design, n, mu, th):
    # Trial Newton steps may push a nuisance far out: exp overflows there. Such points get nll = +inf
    # (never NaN), so the damped step is rejected instead of poisoning the fit.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        S = mu[:, None] * d.s * np.exp(th @ d.A.T)
        B = d.b * np.exp(d.bkg_log(th))
        lam = S + B
        logterm = np.where(n > 0, n * np.log(lam), 0.0)
        nll = np.sum(lam - logterm, axis=1) + 0.5 * np.sum(th * th, axis=1)
    ok = np.all((lam > 0) | (n == 0), axis=1) & np.all(lam >= 0, axis=1) & np.isfinite(nll)
    return np.where(ok, nll, np.inf), S, B, lam


def _fit(d: _Design, n: np.ndarray, mu: np.ndarray | None, th0: np.ndarray, mu0: np.ndarray | None = None,
         iters: int = 60, tol: float = 1e-7):
    """Minimise the NLL for every outcome row of ``n`` (fixed ``mu`` if given, else mu free and > 0).

    Damped Newton (Levenberg-Marquardt) with per-row step acceptance. Returns (nll, theta, mu)."""
    free = mu is None
    M, P = n.shape[0], d.npar
    th = th0.copy()
    if free:
        assert mu0 is not None, "a free-mu fit needs a start value mu0"
        mu_v = mu0.copy()
    else:
        assert mu is not None
        mu_v = np.broadcast_to(mu, (M,)).astype(float).copy()
    nll, S, B, lam = _nll_terms(d, n, mu_v, th)
    damp = np.full(M, 1e-3)
    active = np.ones(M, dtype=bool)
    eye = np.eye(P + int(free))
    for _ in range(iters):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        ni, Si, Bi, li, thi = n[idx], S[idx], B[idx], lam[idx], th[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(li > 0, ni / li, 0.0)
            r2 = np.where(li > 0, ni / li**2, 0.0)
        w = 1.0 - r
        # d lambda_j / d theta = S_j A_j + B_j C_j; with symmetric priors every sum over bins is a 2-D
        # matrix product with the fixed (bins, P) / (bins, P*P) loadings (BLAS; no (rows, bins, P) arrays)
        if d.sym:
            g = (w * Si) @ d.A + (w * Bi) @ d.C + thi
            r2S = r2 * Si
            # one product: [signal, background, cross] weights (rows, 3 bins) x stacked loadings
            H = (np.concatenate([(w + r2S) * Si, (w + r2 * Bi) * Bi, r2S * Bi], axis=1)
                 @ d.hessian_loadings).reshape(idx.size, P, P)
        else:
            Cl = d.bkg_loading(thi)
            dth = Si[:, :, None] * d.A + Bi[:, :, None] * Cl  # (m,bins,P)
            g = np.matmul(w[:, None, :], dth)[:, 0, :] + thi
            H = (((w * Si) @ d.AA).reshape(idx.size, P, P)
                 + np.matmul(np.swapaxes(Cl, 1, 2) * (w * Bi)[:, None, :], Cl)
                 + np.matmul(np.swapaxes(dth, 1, 2) * r2[:, None, :], dth))
        H += np.eye(P)
        if free:
            mi = mu_v[idx]
            e = Si / np.maximum(mi, 1e-300)[:, None]
            gm = np.sum(w * e, axis=1)
            hmm = np.sum(r2 * e * e, axis=1)
            if d.sym:
                hmt = (w * e + r2 * e * Si) @ d.A + (r2 * e * Bi) @ d.C
            else:
                hmt = (w * e) @ d.A + np.matmul((r2 * e)[:, None, :], dth)[:, 0, :]
            g = np.column_stack([g, gm])
            Hf = np.zeros((idx.size, P + 1, P + 1))
            Hf[:, :P, :P] = H
            Hf[:, :P, P] = hmt
            Hf[:, P, :P] = hmt
            Hf[:, P, P] = hmm
            H = Hf
        gnorm = np.max(np.abs(g), axis=1) if g.shape[1] else np.zeros(idx.size)
        done = gnorm < tol
        scale = np.maximum(np.abs(np.diagonal(H, axis1=1, axis2=2)), 1e-12)
        Hd = H  # damped in place (H is not used again): the diagonal gets damp * scale, as H + damp scale 1
        diag = np.arange(eye.shape[0])
        Hd[:, diag, diag] += damp[idx, None] * scale
        try:
            step = -np.linalg.solve(Hd, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -g / scale
        new_th = thi + step[:, :P]
        new_mu = mu_v[idx]
        if free:
            new_mu = np.maximum(mu_v[idx] + step[:, P], 0.1 * mu_v[idx])  # stay positive
        nn, Sn, Bn, ln = _nll_terms(d, ni, new_mu, new_th)
        prev = nll[idx].copy()
        ok = (nn <= prev) & ~done
        acc = idx[ok]
        th[acc], mu_v[acc], nll[acc] = new_th[ok], new_mu[ok], nn[ok]
        S[acc], B[acc], lam[acc] = Sn[ok], Bn[ok], ln[ok]
        damp[acc] = np.maximum(damp[acc] * 0.3, 1e-9)
        rej = idx[~ok & ~done]
        damp[rej] *= 10.0
        with np.errstate(invalid="ignore"):
            # converged in value: compare with the NLL *before* the step (comparing with the updated value
            # stopped every fit after its first accepted step; harmless for narrow priors, where one
            # Newton step from theta = 0 is nearly exact, wrong for wide ones)
            # a step (accepted or not) that changes the NLL by less than rounding: at the minimum (without
            # this, rows at their minimum kept being rejected until the damping ran out, ~11 more passes)
            small = (np.abs(prev - nn) < 1e-11 * np.maximum(1.0, np.abs(prev))) & ~done
        active[idx[done | small]] = False
        active[rej[damp[rej] > 1e8]] = False
    return nll, th, mu_v


@dataclass
class _Profiles:
    """Per-outcome free-fit results (independent of the tested mu)."""

    nll_min: np.ndarray
    mu_hat: np.ndarray
    th_start: np.ndarray


def _free_fits(d: _Design, n: np.ndarray) -> _Profiles:
    M, P = n.shape[0], d.npar
    zero = np.zeros((M, P))
    nll0, th0, _ = _fit(d, n, np.zeros(1), zero)
    # envelope theorem: d NLL_prof / d mu at mu = 0 -> if >= 0 the bounded estimate is mu_hat = 0
    e = d.s * np.exp(th0 @ d.A.T)
    lam0 = d.b * np.exp(d.bkg_log(th0))
    with np.errstate(divide="ignore", invalid="ignore"):
        grad0 = np.sum(e * (1 - np.where(lam0 > 0, n / lam0, np.inf * (n > 0))), axis=1)
    grad0 = np.nan_to_num(grad0, nan=-np.inf)
    need = grad0 < 0
    mu_hat = np.zeros(M)
    nll_min = nll0.copy()
    if need.any():
        tot_s = d.s.sum()
        mu_init = np.maximum(n[need].sum(axis=1) - d.b.sum(), 0.5) / tot_s
        nl, _, mh = _fit(d, n[need], None, np.zeros((int(need.sum()), P)), mu0=mu_init, iters=100)
        better = nl < nll0[need]
        mu_hat[need] = np.where(better, mh, 0.0)
        nll_min[need] = np.minimum(nl, nll0[need])
    return _Profiles(nll_min, mu_hat, th0)


def qtilde(d: _Design, n: np.ndarray, prof: _Profiles, mu: float, th_start: np.ndarray | None = None):
    """pyhf-style qtilde for every outcome row (aux data at nominal). Returns (q, theta_hat_hat)."""
    q = np.zeros(n.shape[0])
    th_out = np.zeros((n.shape[0], d.npar)) if th_start is None else th_start.copy()
    need = prof.mu_hat < mu
    if need.any():
        start = (prof.th_start if th_start is None else th_start)[need]
        nll, th, _ = _fit(d, n[need], np.asarray(mu, dtype=float), start)
        q[need] = np.maximum(2.0 * (nll - prof.nll_min[need]), 0.0)
        th_out[need] = th
    return q, th_out


# ---------------------------------------------------------------------------------------------------------
# CLs

def _cls_for(q: np.ndarray, p_sb: np.ndarray, p_b: np.ndarray, q_eval: np.ndarray) -> np.ndarray:
    """CLs = P_sb(q >= q_e) / P_b(q >= q_e) for each q_e in ``q_eval`` (ties count as as-extreme)."""
    return _tails(q, p_sb, p_b, q_eval)[2]


def _tails(q: np.ndarray, p_sb: np.ndarray, p_b: np.ndarray, q_eval: np.ndarray):
    order = np.argsort(-q, kind="stable")
    qs = q[order]
    csb = np.concatenate([[0.0], np.cumsum(p_sb[order])])
    cb = np.concatenate([[0.0], np.cumsum(p_b[order])])
    tol = 1e-7 * np.maximum(1.0, np.abs(q_eval))
    cnt = np.searchsorted(-qs, -(q_eval - tol), side="right")
    clsb, clb = csb[cnt], cb[cnt]
    with np.errstate(divide="ignore", invalid="ignore"):
        return clsb, clb, np.where(clb > 0, np.minimum(clsb / clb, 1.0), 1.0)


@dataclass
class LimitResult:
    """Upper limits on mu (signal strength) and the CLs numbers behind them."""

    cl: float
    mu_obs: float
    mu_exp: dict[str, float]
    cls_obs_at_limit: float
    n_outcomes: int
    method: str = "exact-hybrid"
    info: dict = field(default_factory=dict)


class ExactCLs:
    """Exact (enumerated) hybrid CLs for a :class:`CountingModel`."""

    def __init__(self, model: CountingModel, *, tail: float = _TAIL, max_outcomes: int = MAX_OUTCOMES,
                 max_cells: int = MAX_QUAD_CELLS, band_toys: int = BAND_TOYS, band_seed: int = BAND_SEED):
        self.model = model
        self.design = _Design.of(model)
        self.tail, self.max_outcomes, self.max_cells = tail, max_outcomes, max_cells
        self.band_toys, self.band_seed = band_toys, band_seed
        self.s_tot = float(model.signal.sum())
        b_tot = float(model.background.sum())
        n_obs = int(model.observed.sum())
        # enumeration depth within the budgets (outcomes and quadrature); n_hi + 3 must fit in it
        self.k_budget = budget_kmax(model, max_outcomes=max_outcomes, max_cells=max_cells)
        n_nom = max(int(stats.poisson.ppf(1 - _BAND_COVER, b_tot + 1e-12)), n_obs)
        # limits for the background-only outcomes we need: total count up to the 1 - 1e-3 quantile of the
        # *marginal* background-only distribution (log-normal-smeared, not the nominal Poisson)
        n_marg = _marginal_quantile_capped(model, 0.0, 1 - _BAND_COVER, max(self.k_budget - 3, 0))
        # over budget: the expected band comes from seeded background-only toys (see :meth:`limits`); the
        # enumeration (within budget) still gives the observed limit, exact at n = 0
        self.band_fallback = n_marg is None or n_nom > self.k_budget - 3
        n_hi = max(n_nom, n_marg) if n_marg is not None else n_nom
        self.n_hi = min(n_hi, max(self.k_budget - 3, 0)) if self.band_fallback else n_hi
        if self.band_fallback:  # the enumeration serves the observed limit only (n = 0: any depth is exact)
            self.k_budget = min(self.k_budget, budget_kmax(model, max_outcomes=min(max_outcomes,
                                                                                   FALLBACK_OUTCOMES)))
            self.n_hi = min(self.n_hi, max(self.k_budget - 3, 0))
        # scan range in signal events: above the limit for n_hi events (~ n + 2.3 + 1.3 sqrt(n));
        # :meth:`limits` widens it when a needed limit lies beyond (wide signal uncertainties)
        self._setup(float(n_hi + 2.5 + 2.0 * math.sqrt(n_hi + 1.0) + b_tot))

    def _setup(self, t_max: float) -> None:
        """Enumerate the outcomes for scanning the total signal up to ``t_max`` events."""
        model, tail = self.model, self.tail
        b_tot = float(model.background.sum())
        n_obs, n_hi = int(model.observed.sum()), self.n_hi
        self.t_max = t_max
        # outcomes with a larger total have mu_hat > mu at every scanned mu, hence q = 0: never in a tail
        kmax = int(stats.poisson.isf(tail, self.t_max + b_tot * 1.5)) + 1
        kmax = max(kmax, n_obs)
        if kmax > self.k_budget:  # never beyond the budgets (within them: the depth of before)
            kmax = max(self.k_budget, n_hi + 3) if not self.band_fallback else self.k_budget
            kmax = max(kmax, min(n_obs, self.k_budget))
        while math.comb(kmax + model.nbins, model.nbins) > self.max_outcomes and kmax > n_hi + 3:
            kmax -= 1
        self.kmax = kmax
        self.outcomes = enumerate_outcomes(model.nbins, kmax)
        obs = model.observed.astype(np.int32)
        match = np.flatnonzero(np.all(self.outcomes == obs, axis=1))
        if match.size == 0:
            self.outcomes = np.vstack([self.outcomes, obs])
            match = np.array([self.outcomes.shape[0] - 1])
        self.obs_index = int(match[0])
        # free fits on demand (:meth:`_profiles`): only the outcomes that ever carry probability > 1e-14
        # are fitted (about a third of a 5-run enumeration); each row's fit is independent of the others
        n_rows, npar = self.outcomes.shape[0], self.design.npar
        self.prof = _Profiles(np.zeros(n_rows), np.zeros(n_rows), np.zeros((n_rows, npar)))
        self._fitted = np.zeros(n_rows, dtype=bool)
        self.p_b = probabilities(model, 0.0, self.outcomes)

    def _profiles(self, idx: np.ndarray) -> _Profiles:
        """Free-fit results of the outcome rows ``idx``, fitting the rows not fitted yet."""
        fitted = getattr(self, "_fitted", None)
        if fitted is not None:
            miss = idx[~fitted[idx]]
            if miss.size:
                new = _free_fits(self.design, self.outcomes[miss])
                self.prof.nll_min[miss], self.prof.mu_hat[miss] = new.nll_min, new.mu_hat
                self.prof.th_start[miss] = new.th_start
                fitted[miss] = True
        return _Profiles(self.prof.nll_min[idx], self.prof.mu_hat[idx], self.prof.th_start[idx])

    @property
    def band_rows_cover(self) -> float:
        """Background-only probability of the outcomes the band is read from (p_b > 0.1 BAND_COVER)."""
        return float(self.p_b[self.p_b > 0.1 * _BAND_COVER].sum())

    @property
    def large_counts(self) -> bool:
        """Counts of tens of events per run: more than LARGE_COUNT_OUTCOMES outcomes, spread so thinly that
        the outcomes the band is read from cannot reach its +2 sigma quantile (the enumerated band would be
        infinite) -- and each scan point fits hundreds of thousands of outcomes (minutes per mass).
        :func:`limits` then uses :class:`ToyCLs` (same hybrid CLs, seeded toys) and says so."""
        return bool(self.outcomes.shape[0] > LARGE_COUNT_OUTCOMES and self.band_rows_cover < QUANTILES["p2"])

    def _relevant(self, p_sb: np.ndarray, extra: np.ndarray) -> np.ndarray:
        keep = (p_sb > 1e-14) | (self.p_b > 1e-14)
        keep[extra] = True
        return keep

    def cls(self, mu: float, which: np.ndarray | None = None) -> np.ndarray:
        """CLs at ``mu`` with outcome rows ``which`` (default: the observed) taken as the observation."""
        return self.tail_probs(mu, which)[2]

    def tail_probs(self, mu: float, which: np.ndarray | None = None):
        """(CLsb, CLb, CLs) at ``mu`` for the observation rows ``which`` (default: the observed)."""
        which = np.array([self.obs_index]) if which is None else np.asarray(which)
        p_sb = probabilities(self.model, mu, self.outcomes)
        idx = np.flatnonzero(self._relevant(p_sb, which))
        sub = self._profiles(idx)
        q, _ = qtilde(self.design, self.outcomes[idx], sub, mu)
        return _tails(q, p_sb[idx], self.p_b[idx], q[np.searchsorted(idx, which)])

    def _grid_scan(self, mus: np.ndarray, which: np.ndarray) -> np.ndarray:
        """CLs(mu) on a grid for all outcome rows in ``which`` (shape (len(mus), len(which)))."""
        out = np.empty((mus.size, which.size))
        th = np.zeros_like(self.prof.th_start)
        seeded = np.zeros(th.shape[0], dtype=bool)  # th starts at the free fit's theta (mu = 0)
        # the rows relevant at the largest mu are free-fitted in one batch (each row's fit is independent
        # of the batch; one call instead of one per grid point: the per-call overhead was ~half the cost)
        p_last = probabilities(self.model, float(mus[-1]), self.outcomes)
        self._profiles(np.flatnonzero(self._relevant(p_last, which)))
        for i, mu in enumerate(mus):
            p_sb = p_last if i == mus.size - 1 else probabilities(self.model, mu, self.outcomes)
            keep = self._relevant(p_sb, which)
            idx = np.flatnonzero(keep)
            sub = self._profiles(idx)
            fresh = ~seeded[idx]
            th[idx[fresh]] = sub.th_start[fresh]
            seeded[idx] = True
            q, th_new = qtilde(self.design, self.outcomes[idx], sub, mu, th_start=th[idx])
            th[idx] = th_new
            out[i] = _cls_for(q, p_sb[idx], self.p_b[idx], q[np.searchsorted(idx, which)])
        return out

    def _refine(self, row: int, lo: float, hi: float, level: float) -> float:
        f = lambda mu: math.log(max(self.cls(mu, np.array([row]))[0], 1e-300)) - math.log(level)  # noqa: E731
        flo, fhi = f(lo), f(hi)
        if flo < 0 or fhi > 0:
            return math.nan
        return float(optimize.brentq(f, lo, hi, xtol=1e-5 * hi, rtol=1e-5))

    def limits(self, cl: float = 0.9, *, expected: bool = True, n_grid: int = 28,
               max_widen: int = 4) -> LimitResult:
        """Observed and expected (median, +-1, +-2 sigma) upper limits on mu at confidence level ``cl``.

        If a limit that is needed (the observed, or a band quantile inside the enumerated probability)
        lies beyond the scanned range, the range is doubled (up to ``max_widen`` times) and rescanned: an
        ``inf`` is then a real statement (coverage), not a scan artefact.

        Over budget (``band_fallback``: enumerating the outcomes that carry the band would exceed
        ``max_outcomes`` or the quadrature budget) the observed limit still comes from the enumeration
        (exact at n = 0: its tail is the n = 0 outcome alone; otherwise the background-only probability
        left out is recorded) and the band from :class:`ToyCLs` with ``band_toys`` seeded background-only
        toys, the quantiles landing on n = 0 set to the exact n = 0 limit; ``method`` and ``info`` say so
        and carry the Monte Carlo precision."""
        res = self._widened(cl, expected=expected and not self.band_fallback, n_grid=n_grid,
                            max_widen=max_widen)
        if self.band_fallback:
            res = self._fallback(res, cl, expected=expected, n_grid=n_grid, max_widen=max_widen)
        return res

    def _widened(self, cl: float, *, expected: bool, n_grid: int, max_widen: int) -> LimitResult:
        res = self._limits_once(cl, expected=expected, n_grid=n_grid)
        for _ in range(max_widen):
            if not res.info.get("beyond_range"):
                break
            self._setup(2.0 * self.t_max)
            res = self._limits_once(cl, expected=expected, n_grid=n_grid)
        return res

    def _fallback(self, res: LimitResult, cl: float, *, expected: bool, n_grid: int,
                  max_widen: int) -> LimitResult:
        """Observed from the (budgeted) enumeration, expected band from seeded toys (see :meth:`limits`)."""
        info = res.info
        info["band_fallback"] = True
        info["k_budget"] = int(self.k_budget)
        p_b_enum = float(self.p_b.sum())
        info["p_b_enumerated"] = p_b_enum
        n_obs = int(self.model.observed.sum())
        obs_exact = n_obs == 0 or n_obs <= self.kmax
        toys = None
        if not obs_exact or expected:
            toys = ToyCLs(self.model, ntoys=self.band_toys, seed=self.band_seed, n_hi=self.n_hi)
        if not obs_exact:  # the observation itself is beyond the enumeration: toys for it too
            assert toys is not None
            tr = toys._widened(cl, expected=False, n_grid=n_grid, max_widen=max_widen)
            res.mu_obs, res.cls_obs_at_limit = tr.mu_obs, tr.cls_obs_at_limit
            info["observed_method"] = f"toys-hybrid({self.band_toys}, seed {self.band_seed})"
        else:
            info["observed_method"] = "exact" if n_obs == 0 else "enumerated"
            if n_obs > 0:  # tail probabilities may miss outcomes beyond the enumeration: at most this
                info["observed_tail_missing_p_b"] = max(0.0, 1.0 - p_b_enum)
        res.method = "exact-hybrid (observed)"
        if not expected:
            return res
        assert toys is not None
        tr = toys._widened(cl, expected=True, n_grid=n_grid, max_widen=max_widen)
        zero_lim = res.mu_obs if n_obs == 0 else self._row_limit(0, cl, n_grid)
        mu_exp, precision = {}, {}
        rows = getattr(toys, "_band_rows", {})
        for name, val in tr.mu_exp.items():
            row = rows.get(name)
            if row is not None and not np.any(toys.outcomes[row]):
                mu_exp[name] = zero_lim  # the n = 0 outcome: exact, not a toy estimate
                precision[name] = {"exact_n0": True}
                continue
            mu_exp[name] = val
            precision[name] = toys._precision(row, val, tr.info.get("band_intervals", {}).get(name))
        res.mu_exp = mu_exp
        res.method = (f"exact-hybrid (observed) + toys-hybrid band ({self.band_toys} background-only toys, "
                      f"seed {self.band_seed})")
        info.update({"band_method": "toys-hybrid", "band_toys": self.band_toys, "band_seed": self.band_seed,
                     "band_precision": precision, "band_t_max": float(toys.t_max)})
        return res

    def _row_limit(self, row: int, cl: float, n_grid: int) -> float:
        """Exact limit of one enumerated outcome row (scan range as for the observed limit)."""
        mus = np.linspace(0.0, self.t_max, n_grid + 1)[1:] / self.s_tot
        curve = self._grid_scan(mus, np.array([row]))[:, 0]
        return self._refine_from_grid(row, mus, curve, 1.0 - cl)

    def _limits_once(self, cl: float, *, expected: bool, n_grid: int) -> LimitResult:
        level = 1.0 - cl
        mus = np.linspace(0.0, self.t_max, n_grid + 1)[1:] / self.s_tot
        need_b = np.flatnonzero(self.p_b > 0.1 * _BAND_COVER) if expected else np.zeros(0, dtype=int)
        which = np.unique(np.concatenate([[self.obs_index], need_b])).astype(int)
        curves = self._grid_scan(mus, which)
        lims = np.array([_first_crossing(mus, curves[:, k], level) for k in range(which.size)])
        obs_k = int(np.searchsorted(which, self.obs_index))
        mu_obs = self._refine_from_grid(self.obs_index, mus, curves[:, obs_k], level)
        mu_exp: dict[str, float] = {}
        info: dict = {"kmax": self.kmax, "grid_max_mu": float(mus[-1])}
        if expected:
            w = self.p_b[which]
            order = np.argsort(lims, kind="stable")
            cum = np.cumsum(w[order]) / 1.0  # probabilities not renormalised: missing mass -> +inf limits
            self._band_rows = {}
            for name, p in QUANTILES.items():
                pos = int(np.searchsorted(cum, p - 1e-12))
                if pos >= order.size or not np.isfinite(lims[order[pos]]):
                    mu_exp[name] = math.inf
                    if pos < order.size:  # the probability is there, the limit beyond the scanned range
                        info["beyond_range"] = True
                    continue
                k = order[pos]
                row = int(which[k])
                self._band_rows[name] = row
                if isinstance(self, ToyCLs):  # outcome-sampling spread of the quantile (order statistics)
                    dp = math.sqrt(p * (1 - p) / self.ntoys)
                    ends = [int(np.searchsorted(cum, min(max(pp, 0.0), 1.0) - 1e-12))
                            for pp in (p - dp, p + dp)]
                    info.setdefault("band_intervals", {})[name] = [
                        float(lims[order[min(e, order.size - 1)]]) for e in ends]
                mu_exp[name] = (mu_obs if row == self.obs_index
                                else self._refine_from_grid(row, mus, curves[:, k], level))
            info["p_b_covered"] = float(w.sum())
        if not np.isfinite(mu_obs):
            info["beyond_range"] = True
        info["t_max"] = float(self.t_max)
        info["n_hi"] = int(getattr(self, "n_hi", -1))
        cls_at = float(self.cls(mu_obs)[0]) if np.isfinite(mu_obs) else math.nan
        return LimitResult(cl, mu_obs, mu_exp, cls_at, int(self.outcomes.shape[0]), info=info)

    def _refine_from_grid(self, row: int, mus: np.ndarray, curve: np.ndarray, level: float) -> float:
        below = np.flatnonzero(curve < level)
        if below.size == 0:
            return math.inf
        i = int(below[0])
        lo = mus[i - 1] if i > 0 else mus[0] * 1e-3
        val = self._refine(row, lo, mus[i], level)
        return val if np.isfinite(val) else _first_crossing(mus, curve, level)


def _first_crossing(mus: np.ndarray, curve: np.ndarray, level: float) -> float:
    """mu where CLs first drops below ``level``, by linear interpolation of ln CLs (inf if never)."""
    below = np.flatnonzero(curve < level)
    if below.size == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        x0, y0 = 0.0, 0.0
    else:
        x0, y0 = mus[i - 1], math.log(max(curve[i - 1], 1e-300))
    x1, y1 = mus[i], math.log(max(curve[i], 1e-300))
    t = (math.log(level) - y0) / (y1 - y0) if y1 != y0 else 1.0
    return float(x0 + t * (x1 - x0))


def poisson_upper_limit(n_obs: int, background: float = 0.0, cl: float = 0.9) -> float:
    """Classical CLs upper limit on the signal for one counting bin without systematics (N90 for n = 0).

    CLs = P(n <= n_obs | s + b) / P(n <= n_obs | b); for n_obs = 0 this is exp(-s) whatever b is."""
    level = 1.0 - cl
    cb = stats.poisson.cdf(n_obs, background)
    f = lambda s: stats.poisson.cdf(n_obs, s + background) / cb - level  # noqa: E731
    hi = 10.0 + 3.0 * n_obs
    while f(hi) > 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-10))


def limits(model: CountingModel, cl: float = 0.9, *, method: str = "exact", expected: bool = True,
           ntoys: int = 4000, seed: int = 1) -> LimitResult:
    """Upper limits on mu for ``model`` with the chosen small-count-correct ``method``."""
    if not 0 < cl < 1:
        raise ValueError("cl must be in (0, 1)")
    if method == "exact":
        exact = ExactCLs(model)
        if exact.large_counts:  # see ExactCLs.large_counts: seeded toys, recorded as such
            res = ToyCLs(model, ntoys=ntoys, seed=seed).limits(cl, expected=expected)
            res.method = (f"toys-hybrid({ntoys}, seed {seed}): large counts, {exact.outcomes.shape[0]} "
                          f"outcomes, background-only outcomes above {0.1 * _BAND_COVER:g} cover "
                          f"{exact.band_rows_cover:.3f} < {QUANTILES['p2']:.3f}")
            res.info["large_counts"] = True
            return res
        return exact.limits(cl, expected=expected)
    if method == "toys":
        res = ToyCLs(model, ntoys=ntoys, seed=seed).limits(cl, expected=expected)
        res.method = f"toys-hybrid({ntoys})"
        return res
    raise ValueError(f"unknown method {method!r} (exact|toys)")


class ToyCLs(ExactCLs):
    """Same test statistic and hybrid model, probabilities estimated with vectorised toys.

    For models with many bins (shapes) where enumerating outcomes is too costly: the outcome set is the
    union of the sampled outcomes and each probability is its toy frequency."""

    def __init__(self, model: CountingModel, *, ntoys: int = 4000, seed: int = 1, n_hi: int | None = None):
        self.model = model
        self.design = _Design.of(model)
        self.ntoys = ntoys
        self.rng = np.random.default_rng(seed)
        self.s_tot = float(model.signal.sum())
        b_tot = float(model.background.sum())
        n_obs = int(model.observed.sum())
        n_nom = max(int(stats.poisson.ppf(1 - 1e-3, b_tot * 1.5 + 1e-12)), n_obs)
        if n_hi is None:  # the marginal quantile within the quadrature budget; beyond it the scan starts
            # from the given/nominal range and is widened where a limit lies beyond it
            n_marg = _marginal_quantile_capped(model, 0.0, 1 - _BAND_COVER, None)
            n_hi = max(n_nom, n_marg) if n_marg is not None else n_nom
        else:
            n_hi = max(n_nom, n_hi)
        self.n_hi = n_hi
        self.t_max = float(n_hi + 4.0 + 4.0 * math.sqrt(n_hi + 1.0) + 2.0 * b_tot)
        self.kmax = -1
        self.band_fallback = False  # the toys are the band (ExactCLs.limits reads it)
        # one column per nuisance (the shared background one only if present: same stream as before)
        ncol = 1 + 2 * model.sig_chan.size + int(model.has_shared_background)
        self._z = self.rng.standard_normal((ntoys, ncol))
        self._u = self.rng.random((ntoys, model.nbins))
        base = [model.observed.astype(np.int32)[None], self._sample(0.0)]
        self.outcomes = np.unique(np.vstack(base), axis=0)
        self.obs_index = int(np.flatnonzero(np.all(self.outcomes == model.observed, axis=1))[0])
        self.prof = _free_fits(self.design, self.outcomes)
        self.p_b = self._freq(self._sample(0.0))

    def _setup(self, t_max: float) -> None:
        self.t_max = t_max  # toys are drawn at any mu: widening the scan needs no new outcome set

    def _sample(self, mu: float) -> np.ndarray:
        """Toys with common random numbers (same nuisances and uniforms at every mu: smooth curves)."""
        m, z = self.model, self._z
        nch = m.sig_chan.size
        fs = np.exp(m.sig_shared * z[:, :1] + m.sig_chan[m.channel][None] * z[:, 1:1 + nch][:, m.channel])
        zb = z[:, 1 + nch:1 + 2 * nch][:, m.channel]
        fb = np.exp(np.where(zb > 0, m.bkg_chan[m.channel][None], m.bkg_dn[m.channel][None]) * zb)
        if m.has_shared_background:
            y = z[:, -1:]
            load = np.where(y > 0, m.bkg_shared[m.channel][None], m.bkg_shared_dn[m.channel][None])
            fb = fb * np.exp(load * y)
        lam = mu * m.signal * fs + m.background * fb
        return _poisson_ppf(self._u, lam).astype(np.int32)

    _index_of: dict[bytes, int] | None = None

    def _lookup(self) -> dict[bytes, int]:
        """Row bytes -> index in ``outcomes`` (kept up to date by :meth:`_extend`)."""
        look = self._index_of
        if look is None or len(look) != self.outcomes.shape[0]:
            look = {r.tobytes(): i for i, r in enumerate(np.ascontiguousarray(self.outcomes))}
            self._index_of = look
        return look

    def _freq(self, toys: np.ndarray) -> np.ndarray:
        uniq, counts = np.unique(toys, axis=0, return_counts=True)
        uniq = np.ascontiguousarray(uniq, dtype=self.outcomes.dtype)
        look = self._lookup()
        keys = [r.tobytes() for r in uniq]
        new = uniq[np.array([k not in look for k in keys], dtype=bool)]
        if new.size:
            self._extend(new)
            look = self._lookup()
        pos = np.array([look[k] for k in keys], dtype=int)
        out = np.zeros(self.outcomes.shape[0])
        out[pos] = counts / toys.shape[0]
        return out

    def _extend(self, new: np.ndarray) -> None:
        prof = _free_fits(self.design, new)
        look = getattr(self, "_index_of", None)
        if look is not None and len(look) == self.outcomes.shape[0]:
            base = self.outcomes.shape[0]
            look.update({r.tobytes(): base + i for i, r in enumerate(np.ascontiguousarray(new))})
        self.outcomes = np.vstack([self.outcomes, new])
        self.prof = _Profiles(np.concatenate([self.prof.nll_min, prof.nll_min]),
                              np.concatenate([self.prof.mu_hat, prof.mu_hat]),
                              np.vstack([self.prof.th_start, prof.th_start]))
        if hasattr(self, "p_b"):
            self.p_b = np.concatenate([self.p_b, np.zeros(new.shape[0])])

    def tail_probs(self, mu: float, which: np.ndarray | None = None):
        which = np.array([self.obs_index]) if which is None else np.asarray(which)
        p_sb = self._freq(self._sample(mu))
        idx = np.flatnonzero((p_sb > 0) | (self.p_b > 0) | np.isin(np.arange(p_sb.size), which))
        sub = self._profiles(idx)
        q, _ = qtilde(self.design, self.outcomes[idx], sub, mu)
        return _tails(q, p_sb[idx], self.p_b[idx], q[np.searchsorted(idx, which)])

    def _grid_scan(self, mus: np.ndarray, which: np.ndarray) -> np.ndarray:
        return np.vstack([self.cls(mu, which) for mu in mus])

    def _precision(self, row: int | None, mu: float, interval: list[float] | None) -> dict:
        """Monte Carlo precision of a band limit: binomial error of the toy CLs at the limit (relative)
        and the limits at the quantile +- its binomial spread over the sampled outcomes."""
        out: dict = {"interval": interval}
        if row is None or not np.isfinite(mu):
            return out
        clsb, clb, cls_t = (float(v[0]) for v in self.tail_probs(mu, np.array([row])))
        n = self.ntoys
        rel = math.sqrt(max(1 - clsb, 0.0) / (n * max(clsb, 1.0 / n))
                        + max(1 - clb, 0.0) / (n * max(clb, 1.0 / n)))
        out.update({"cls_at_limit": cls_t, "cls_rel_err": rel})
        return out


def _row_index(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    lookup = {r.tobytes(): i for i, r in enumerate(np.ascontiguousarray(table))}
    return np.array([lookup[r.tobytes()] for r in np.ascontiguousarray(rows)], dtype=int)


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    keys = {r.tobytes() for r in np.ascontiguousarray(table)}
    return np.array([r.tobytes() in keys for r in np.ascontiguousarray(rows)], dtype=bool)
