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
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
BKG_UNC_CAP = 0.9  # summary contract: relative background width < 100% (see na64ana.summary)


def scaled_datasets(src: str | Path, dst: str | Path, scale: float) -> Path:
    """Copy of a datasets file with every run's EOT multiplied by ``scale`` (reduced-EOT closure).

    Per-EOT rates are unchanged, so the expected signal and background scale with the EOT."""
    from .. import datasets as dsets
    from ..errors import InputError

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


def summary_dict(*, analysis: str, campaign: Any, regions: Mapping[str, Any], background: Mapping[str, Any],
                 efficiency: Mapping[str, Any], mass: float, keys: Mapping[str, str],
                 bkg_unc_cap: float = BKG_UNC_CAP) -> dict[str, Any]:
    """The yields summary (na64ana.summary contract) of one unblinded chain.

    ``keys``: {run name: dataset key of the campaign sample}. A relative background uncertainty above
    ``bkg_unc_cap`` (the side-band extrapolation can exceed 100%) is capped and the cap noted."""
    bkg_runs = {r["run"]: r for r in background["runs"]}
    runs, notes = [], {}
    for name, key in keys.items():
        n = regions[key]["signal_box"]
        if n is None:
            raise ValueError(f"run {name}: the signal box is blinded; the closure needs --unblind outputs")
        er = efficiency["runs"][name]
        ms = [float(x) for x in er["mass_GeV"]]
        i = int(np.argmin([abs(math.log(x / mass)) for x in ms]))
        eff, eff_unc = float(er["efficiency"][i]), float(er["unc"][i])
        b, bu = float(bkg_runs[name]["total"]["value"]), float(bkg_runs[name]["total"]["unc"])
        if b > 0 and bu >= bkg_unc_cap * b:
            notes[f"run_{name}"] = f"background_unc {bu:.4g} capped at {bkg_unc_cap:g} x background"
            bu = bkg_unc_cap * b
        r = campaign.runs[name]
        runs.append({"name": name, "eot": r.eot, "eot_unc": r.eot_unc, "efficiency": min(eff, 1.0),
                     "efficiency_unc": min(eff_unc / eff, 0.99), "background": b, "background_unc": bu,
                     "observed": int(n)})
    return {"analysis": analysis, "beam_energy_GeV": campaign.beam_energy_GeV,
            "emiss_min_GeV": campaign.emiss_min_GeV, "cross_section": "etl", "cl": 0.9,
            "correlated": {"xsec": campaign.xsec_unc}, "runs": runs, "masses_GeV": [mass],
            "notes": {"efficiency": f"signal MC at m = {ms[i]:g} GeV", **notes}}


def eps_reference(summary: Any, mass: float) -> tuple[float, float]:
    """(eps_ref, n_ref) of the limits model: nominal total signal n_ref = N90(n=0) at eps_ref."""
    from ..stats import cls
    from ..stats.limits import EPS0, yields_per_eot
    from ..summary import signal_shares

    n_ref = cls.poisson_upper_limit(0, 0.0, summary.cl)
    y0 = float(yields_per_eot(summary, [mass])[0])
    s_eps0 = y0 * float(sum(s.sum() for s in signal_shares(summary, mass)))
    return EPS0 * math.sqrt(n_ref / s_eps0), n_ref


def profile_fit(spec: dict[str, Any], *, mu_max: float) -> dict[str, Any]:
    """pyhf MLE of mu (Minuit, nuisances profiled) and its 68% profile-likelihood interval.

    Why the profile interval: with O(10) events the likelihood is asymmetric; HESSE is reported too."""
    import pyhf
    from scipy import optimize

    from ..stats.model import pyhf_model

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


def _process(sim_ds: Path, out: Path, campaign: str, runs: Sequence[str] | None, executor: str,
             workers: int) -> Path:
    """``na64ana run --unblind`` then ``na64ana background`` on one simulated campaign; returns run dir."""
    from .. import background as bg
    from ..bookkeeping import provenance
    from ..processing import execute, outputs

    run_dir = provenance.prepare_outdir(out / "run", stage="run")
    outputs.begin(run_dir)
    jobs = execute.plan(sim_ds, campaign=campaign, runs=runs)
    result = execute.run(jobs, "invisible", executor=executor, workers=workers, unblind=True)
    outputs.write_run(run_dir, result, processor="invisible", unblind=True, datasets_file=sim_ds)
    bdir = provenance.prepare_outdir(out / "background", stage="background")
    clock = provenance.Clock()
    table = bg.table_from_run(run_dir, sim_ds)
    provenance.write_json(bdir / "background.json", table)
    provenance.write(bdir, "background", inputs=[run_dir, sim_ds], outputs=["background.json"],
                     blinded=table.get("blinded"), metrics=clock.metrics(), run_dir=str(run_dir))
    return run_dir


def _chain_summary(sample_dir: Path, sim_ds: Path, campaign: str, eff: Mapping[str, Any], mass: float,
                   label: str) -> dict[str, Any]:
    from .. import datasets as dsets
    from ..processing import outputs

    run_dir = sample_dir / "run"
    regions = outputs.load_regions(run_dir)
    bkg = json.loads((sample_dir / "background" / "background.json").read_text())
    camp = dsets.load(sim_ds).campaign(campaign)
    keys = {outputs.load_cutflow(run_dir, k)["run"]: k for k in regions
            if outputs.load_cutflow(run_dir, k).get("sample", "campaign") == "campaign"}
    return summary_dict(analysis=f"closure {label}", campaign=camp, regions=regions, background=bkg,
                        efficiency=eff, mass=mass, keys=keys)


def run_closure(datasets_file: str | Path, *, mass: float, eps: float, out: str | Path, seed: int = 2019,
                campaign: str | None = None, runs: Sequence[str] | None = None, eot_scale: float = 1.0,
                n_signal_mc: int = 20_000, executor: str = "iterative", workers: int = 2,
                efficiency_dir: str | Path | None = None) -> dict[str, Any]:
    """The closure test end to end; writes ``out/closure.json`` and ``out/closure.md``, returns the record."""
    from .. import datasets as dsets
    from .. import efficiency as effmod
    from .. import summary as summ
    from ..bookkeeping import provenance
    from ..simulation import simulate_campaign, simulate_signal_samples
    from ..stats import limits as lim
    from ..stats.limits import mass_spec

    out = provenance.prepare_outdir(out, stage="closure")
    clock = provenance.Clock()
    src = Path(datasets_file)
    external_eff = None if efficiency_dir is None else Path(efficiency_dir) / "efficiency.json"
    cname = campaign or dsets.load(src).default_campaign
    base = src if eot_scale == 1.0 else scaled_datasets(src, out / "datasets_scaled.json", eot_scale)
    sims = {"injected": simulate_campaign(base, out_dir=out / "injected" / "sim", campaign=cname, runs=runs,
                                          seed=seed, signal_mass=mass, signal_eps=eps),
            "null": simulate_campaign(base, out_dir=out / "null" / "sim", campaign=cname, runs=runs,
                                      seed=seed + 1)}
    if efficiency_dir is None:
        sig = simulate_signal_samples(base, out_dir=out / "signal_mc", masses_GeV=[mass],
                                      n_events=n_signal_mc, campaign=cname, runs=runs, seed=seed + 2)
        effmod.measure(sig, out=out / "efficiency", campaign=cname, runs=runs, masses=[mass],
                       executor=executor, workers=workers)
        efficiency_dir = out / "efficiency"
    eff = json.loads((Path(efficiency_dir) / "efficiency.json").read_text())
    record: dict[str, Any] = {"campaign": cname, "mass_GeV": mass, "eps_injected": eps, "seed": seed,
                              "eot_scale": eot_scale, "n_signal_mc": n_signal_mc}
    for label, sim_ds in sims.items():
        _process(sim_ds, out / label, cname, runs, executor, workers)
        sd = _chain_summary(out / label, sim_ds, cname, eff, mass, label)
        provenance.write_json(out / label / "summary.json", sd)
        record[label] = {"summary": f"{label}/summary.json",
                         "observed": {r["name"]: r["observed"] for r in sd["runs"]},
                         "background": {r["name"]: r["background"] for r in sd["runs"]},
                         "background_unc": {r["name"]: r["background_unc"] for r in sd["runs"]}}
    # injected: MLE of mu vs mu_inj
    s_inj = summ.validate(json.loads((out / "injected" / "summary.json").read_text()))
    eps_ref, n_ref = eps_reference(s_inj, mass)
    mu_inj = (eps / eps_ref) ** 2
    spec = mass_spec(s_inj, mass, n_ref)
    fit = profile_fit(spec, mu_max=max(50.0, 5.0 * mu_inj))
    p = pull(fit["mu_hat"], fit["mu_interval_68"], mu_inj)
    shares = summ.signal_shares(s_inj, mass)
    norm = n_ref / float(sum(s.sum() for s in shares))
    record["injected"].update({
        "eps_ref": eps_ref, "n_ref": n_ref, "mu_injected": mu_inj, **fit, "pull": p,
        "agree_2sigma": abs(p) <= 2.0, "agree_3sigma": abs(p) <= 3.0,
        "expected_signal": {r.name: float(s.sum() * norm * mu_inj) for r, s in zip(s_inj.runs, shares,
                                                                                     strict=True)},
        "eps_fitted": eps_ref * math.sqrt(fit["mu_hat"]),
        "eps_interval_68": [eps_ref * math.sqrt(x) for x in fit["mu_interval_68"]]})
    # null: observed limit inside the expected band
    s_null = summ.validate(json.loads((out / "null" / "summary.json").read_text()))
    point = lim.scan(s_null, method="exact", out_dir=out / "null",
                     summary_file=out / "null" / "summary.json")["points"][0]
    record["null"].update({"limit": point, "within_1sigma": within_band(point, 1),
                           "within_2sigma": within_band(point, 2)})
    record["definition"] = __doc__.split("\n\n")[1]
    provenance.write_json(out / "closure.json", record)
    (out / "closure.md").write_text(markdown(record))
    # the pseudo-data are opened on purpose (closure on simulation): blinded = False
    provenance.write(out, "closure", inputs=[src, *([external_eff] if external_eff else [])],
                     outputs=["closure.json", "closure.md"], blinded=False,
                     seeds={"injected": seed, "null": seed + 1, "signal_mc": seed + 2},
                     executor=executor, workers=workers, metrics=clock.metrics(),
                     datasets=str(src), mass_GeV=mass, eps=eps, seed=seed,
                     eot_scale=eot_scale, n_signal_mc=n_signal_mc, campaign=cname)
    return record


def markdown(rec: Mapping[str, Any]) -> str:
    """A short human-readable closure report."""
    inj, null = rec["injected"], rec["null"]
    lo, hi = inj["mu_interval_68"]
    lim = null["limit"]
    f = lambda x: "-" if x is None else f"{x:.4g}"  # noqa: E731
    return "\n".join([
        f"### Signal-injection closure: m_A' = {rec['mass_GeV'] * 1e3:g} MeV, "
        f"eps = {rec['eps_injected']:.3g} ({rec['campaign']}, EOT x {rec['eot_scale']:g}, "
        f"seed {rec['seed']})", "",
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
