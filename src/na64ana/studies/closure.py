"""Signal-injection closure (issue 5.6): does the whole chain give back the A' signal it was fed?

Two campaigns are simulated with the same runs: one with A' events of (mass, eps_inj) injected by the
simulator, one without (null, independent seed). Each goes through the full chain, unblinded: run ->
background (side-band-C fits) -> summary (observed = box counts, efficiency from the signal MC at this
mass) -> pyhf workspace of :func:`na64ana.stats.limits.mass_spec`. In that model eps^2 = mu eps_ref^2, so
the injected signal strength is ``mu_inj = (eps_inj / eps_ref)^2``.

* injected sample: the maximum-likelihood mu (pyhf, nuisances profiled) with its 68% profile-likelihood
  interval; closure = |mu_hat - mu_inj| / sigma (the interval half on mu_inj's side) within ~2 sigma.
* null sample: the observed 90% CL limit (exact hybrid CLs) must lie inside the expected +-2 sigma band.

Both are statistical statements: for a fixed seed they are deterministic, and a correct chain fails the
2 sigma (3 sigma) criterion for ~5% (0.3%) of the seeds.

The study never simulates (the analysis does not import the simulator): its caller (``na64ana closure``,
:mod:`na64ana.cli.closure`) simulates the two campaigns and the signal MC and hands over
:class:`ClosureInputs` -- the datasets files written and the truth injected.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from .. import background as bg
from .. import datasets as dsets
from .. import summary as summ
from ..bookkeeping import provenance
from ..errors import InputError
from ..processing.stage import run_stage as run_events
from ..records import ClosureRecord, ClosureSample
from ..stats import cls
from ..stats import limits as lim
from ..stats.limits import EPS0, mass_spec, yields_per_eot
from ..stats.model import pyhf_model
from ..summary import Summary, signal_shares

log = logging.getLogger("na64ana.closure")


def scaled_datasets(src: str | Path, dst: str | Path, scale: float) -> Path:
    """Copy of a datasets file with every run's EOT multiplied by ``scale`` (reduced-EOT closure).

    Per-EOT rates are unchanged, so the expected signal and background scale with the EOT."""
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"EOT scale must be positive, got {scale!r}", field="--eot-scale")
    ds = dsets.load(src)
    data = ds.model_dump(mode="json")
    for camp in data["campaigns"].values():
        for run in camp["runs"].values():
            run["eot"] = run["eot"] * scale
            run["files"] = []
    checked = dsets.validate(data, file=str(dst))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    dsets.dump(checked, dst)
    return Path(dst)


def eps_reference(summary: Summary, mass: float) -> tuple[float, float]:
    """(eps_ref, n_ref) of the limits model: nominal total signal n_ref = N90(n=0) at eps_ref."""
    n_ref = cls.poisson_upper_limit(0, 0.0, summary.cl)
    y0 = float(yields_per_eot(summary, [mass])[0])
    s_eps0 = y0 * float(sum(s.sum() for s in signal_shares(summary, mass)))
    return EPS0 * math.sqrt(n_ref / s_eps0), n_ref


def profile_fit(spec: dict[str, Any], *, mu_max: float) -> dict[str, Any]:
    """pyhf MLE of mu (Minuit, nuisances profiled) and its 68% profile-likelihood interval.

    Why the profile interval: with O(10) events the likelihood is asymmetric; HESSE is reported too."""
    import pyhf  # lazy: ~1 s to import, needed only for this fit

    spec = json.loads(json.dumps(spec))
    spec["measurements"][0]["config"]["parameters"][0]["bounds"] = [[0.0, mu_max]]
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0, tolerance=1e-3))
    model, data = pyhf_model(spec)
    poi = model.config.poi_index
    res = np.asarray(pyhf.infer.mle.fit(data, model, return_uncertainties=True))  # (npar, 2): value, unc
    best, unc = res[:, 0], res[:, 1]
    best_twice = float(pyhf.infer.mle.fit(data, model, return_fitted_val=True)[1])
    mu_hat = float(best[poi])

    def delta(mu: float) -> float:
        fixed = float(pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)[1])
        return fixed - best_twice - 1.0

    lo = 0.0
    if mu_hat > 1e-6 and delta(0.0) > 0:
        lo = float(optimize.brentq(delta, 0.0, mu_hat, xtol=1e-4 * max(mu_hat, 1.0)))
    hi_b = max(2.0 * mu_hat, mu_hat + 5.0)
    while delta(hi_b) < 0 and hi_b < mu_max:
        hi_b = min(2.0 * hi_b, mu_max)
    hi = float(optimize.brentq(delta, mu_hat, hi_b, xtol=1e-4 * max(mu_hat, 1.0)))
    pyhf.set_backend("numpy")
    return {"mu_hat": mu_hat, "mu_hesse_unc": float(unc[poi]), "mu_interval_68": [lo, hi]}


def pull(mu_hat: float, interval: Sequence[float], mu_true: float) -> float:
    """Signed deviation in units of the profile-likelihood half-interval on the side of ``mu_true``."""
    lo, hi = interval
    sigma = (hi - mu_hat) if mu_true >= mu_hat else (mu_hat - lo)
    return (mu_true - mu_hat) / sigma if sigma > 0 else math.inf


def within_band(point: Mapping[str, Any], n_sigma: int = 2) -> bool | None:
    """Is the observed eps limit inside the expected +-n sigma band (inclusive: bands are discrete)?"""
    obs = point.get("eps_obs")
    lo, hi = point.get(f"eps_exp_m{n_sigma}"), point.get(f"eps_exp_p{n_sigma}")
    if obs is None or lo is None:
        return None
    return bool(lo * (1 - 1e-6) <= obs and (hi is None or obs <= hi * (1 + 1e-6)))


def _chain(sim_ds: Path, out: Path, eff_dir: Path, *, campaign: str, runs: Sequence[str] | None, mass: float,
           label: str, executor: str, workers: int) -> Summary:
    """One simulated campaign through the stages, unblinded: run -> background -> summary (``out/``)."""
    run_events(sim_ds, out / "run", campaign=campaign, runs=runs, unblind=True, executor=executor,
               workers=workers)
    bg.run_stage(out / "run", sim_ds, out / "background")
    s = summ.run_stage(out / "run", out / "background", eff_dir, sim_ds, out, masses_GeV=[mass],
                       analysis=f"closure {label}", campaign=campaign)
    if s.blinded:
        raise InputError("the signal box is blinded; the closure needs unblinded outputs",
                         file=str(out / "run"))
    return s


@dataclass(frozen=True)
class ClosureInputs:
    """What the caller simulated for the closure, and the truth it injected.

    ``injected_datasets`` / ``null_datasets``: datasets files of the two simulated campaigns (the first with
    A' events of (``mass_GeV``, ``eps_injected``)); ``efficiency_dir``: an efficiency output holding
    ``mass_GeV``; ``source_datasets``: the datasets file the simulation started from (provenance);
    ``seeds``: the simulation seeds by sample (recorded)."""

    injected_datasets: Path
    null_datasets: Path
    efficiency_dir: Path
    campaign: str
    mass_GeV: float
    eps_injected: float
    source_datasets: Path
    seeds: dict[str, int] = field(default_factory=dict)
    eot_scale: float = 1.0
    n_signal_mc: int | None = None


def run_closure(inputs: ClosureInputs, *, out: str | Path, runs: Sequence[str] | None = None,
                executor: str = "iterative", workers: int = 2) -> ClosureRecord:
    """The closure test on already-simulated campaigns; writes ``out/closure.json`` and ``out/closure.md``.

    Built from the stages (run, background, summary, limits: the same code as the analysis), each writing
    its own folder under ``out/<injected|null>/``."""
    out = provenance.prepare_outdir(out, stage="closure")
    clock = provenance.Clock()
    mass, eps, cname = inputs.mass_GeV, inputs.eps_injected, inputs.campaign
    eff_file = Path(inputs.efficiency_dir) / "efficiency.json"
    if not eff_file.exists():
        raise InputError("no efficiency.json (run 'na64ana efficiency' first)", file=str(eff_file))
    sims = {"injected": Path(inputs.injected_datasets), "null": Path(inputs.null_datasets)}
    samples: dict[str, dict[str, Any]] = {}
    summaries: dict[str, Summary] = {}
    for label, sim_ds in sims.items():
        sd = summaries[label] = _chain(sim_ds, out / label, Path(inputs.efficiency_dir), campaign=cname,
                                       runs=runs, mass=mass, label=label, executor=executor, workers=workers)
        samples[label] = {"summary": f"{label}/{summ.FILE}",
                          "observed": {r.name: r.observed for r in sd.runs},
                          "background": {r.name: r.background for r in sd.runs},
                          "background_unc": {r.name: r.background_unc for r in sd.runs}}
    # injected: MLE of mu vs mu_inj
    s_inj = summaries["injected"]
    eps_ref, n_ref = eps_reference(s_inj, mass)
    mu_inj = (eps / eps_ref) ** 2
    spec = mass_spec(s_inj, mass, n_ref)
    fit = profile_fit(spec, mu_max=max(50.0, 5.0 * mu_inj))
    p = pull(fit["mu_hat"], fit["mu_interval_68"], mu_inj)
    shares = signal_shares(s_inj, mass)
    norm = n_ref / float(sum(s.sum() for s in shares))
    samples["injected"].update({
        "eps_ref": eps_ref, "n_ref": n_ref, "mu_injected": mu_inj, **fit, "pull": p,
        "agree_2sigma": abs(p) <= 2.0, "agree_3sigma": abs(p) <= 3.0,
        "expected_signal": {r.name: float(s.sum() * norm * mu_inj) for r, s in zip(s_inj.runs, shares,
                                                                                     strict=True)},
        "eps_fitted": eps_ref * math.sqrt(fit["mu_hat"]),
        "eps_interval_68": [eps_ref * math.sqrt(x) for x in fit["mu_interval_68"]]})
    # null: observed limit inside the expected band (the limits stage on the null summary)
    point = lim.run_stage(out / "null" / summ.FILE, out / "null" / "limits").points[0]
    pt = point.model_dump(exclude_unset=True)
    samples["null"].update({"limit": pt, "within_1sigma": within_band(pt, 1),
                            "within_2sigma": within_band(pt, 2)})
    record = ClosureRecord(campaign=cname, mass_GeV=mass, eps_injected=eps, seed=inputs.seeds.get("injected"),
                           eot_scale=inputs.eot_scale, n_signal_mc=inputs.n_signal_mc,
                           injected=ClosureSample.model_validate(samples["injected"]),
                           null=ClosureSample.model_validate(samples["null"]),
                           definition=(__doc__ or "").split("\n\n")[1])
    record.dump(out / ClosureRecord.file_name)
    (out / "closure.md").write_text(markdown(record))
    # the pseudo-data are opened on purpose (closure on simulation)
    # inputs from outside the closure folder (what the caller simulated into it is part of the output)
    outside = [f for f in (inputs.source_datasets, sims["injected"], sims["null"], eff_file)
               if not Path(f).resolve().is_relative_to(out.resolve())]
    provenance.write(out, "closure", inputs=outside,
                     outputs=["closure.json", "closure.md"], blinding="unblinded",
                     seeds=dict(inputs.seeds) or None, executor=executor, workers=workers,
                     metrics=clock.metrics(), datasets=str(inputs.source_datasets), mass_GeV=mass, eps=eps,
                     eot_scale=inputs.eot_scale, n_signal_mc=inputs.n_signal_mc, campaign=cname)
    return record


def markdown(record: ClosureRecord | Mapping[str, Any]) -> str:
    """A short human-readable closure report."""
    rec = record.to_json() if isinstance(record, ClosureRecord) else record
    inj, null = rec["injected"], rec["null"]
    lo, hi = inj["mu_interval_68"]
    lim = null["limit"]
    f = lambda x: "-" if x is None else f"{x:.4g}"  # noqa: E731
    return "\n".join([
        f"### Signal-injection closure: m_A' = {rec['mass_GeV'] * 1e3:g} MeV, "
        f"eps = {rec['eps_injected']:.3g} ({rec['campaign']}, EOT x {rec.get('eot_scale', 1.0):g}, "
        f"seed {rec.get('seed')})", "",
        "| | injected | null |", "|---|---|---|",
        f"| observed in box | {sum(inj['observed'].values())} | {sum(null['observed'].values())} |",
        f"| background | {sum(inj['background'].values()):.3g} | {sum(null['background'].values()):.3g} |",
        f"| expected injected signal | {sum(inj['expected_signal'].values()):.3g} | 0 |", "",
        f"- mu_injected = (eps_inj / eps_ref)^2 = {inj['mu_injected']:.4g} (eps_ref = {inj['eps_ref']:.4g})",
        f"- mu_hat = {inj['mu_hat']:.4g}, 68% profile interval [{lo:.4g}, {hi:.4g}] (HESSE "
        f"{inj['mu_hesse_unc']:.3g}); pull {inj['pull']:+.2f} sigma -> "
        f"{'agrees' if inj['agree_2sigma'] else 'DISAGREES'} within 2 sigma",
        f"- null: eps_obs = {f(lim.get('eps_obs'))}, expected median {f(lim.get('eps_exp'))}, "
        f"+-1 sigma [{f(lim.get('eps_exp_m1'))}, {f(lim.get('eps_exp_p1'))}], +-2 sigma "
        f"[{f(lim.get('eps_exp_m2'))}, {f(lim.get('eps_exp_p2'))}] -> within 2 sigma: "
        f"{null['within_2sigma']}",
        "", rec.get("definition", ""), ""])
