"""Cut optimisation (issue 5.5): expected 90% CL limit on eps vs the E_ECAL signal-box edge, blinded.

For each candidate edge ``c`` and mass, per run:

* signal: weighted signal MC with E_ECAL < c after every other cut (``signal_ecal`` of the efficiency
  output, weight = A' per EOT at the sample's eps), times the run's EOT. This already contains the physics
  yield, the efficiency and the migrations. The samples only contain A' with E_A' above
  ``signal_ea_min_fraction * emiss_min`` (recorded in efficiency.json), so above ``coverage_GeV`` the MC
  is incomplete; there the signal is
  the physics yield with E_miss > E0 - c times the efficiency measured at the nominal box (labelled
  ``physics x eff(box)`` in ``signal_source``).
* background: the side-band-C exponential extrapolated into [0, c). Blinded: the fit never uses bins below
  the run's box edge, so for c below the edge the nominal side-band fit ([edge, 80] GeV) is extrapolated,
  above it the side band is re-fitted from c. Other components (dimuons, decays, ...) are the published
  box values, kept fixed (no MC for their E_ECAL shape).
* the median expected limit (and +-1 sigma) from the exact hybrid CLs of :mod:`na64ana.stats.cls`;
  with a large background (> 3 events: enumeration too costly, asymptotics valid) the closed-form
  asymptotic CLs limits (pyhf's toms748 scan fails there with ~100% log-normal background widths).

The expected median limit at small background is a step function of the cut (the median outcome is n = 0
while P(0 | b) > 1/2, i.e. b < ln 2), so the optimum often sits where the total background reaches ~0.7.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .. import background as bg
from .. import blinding, published, workers
from ..bookkeeping import provenance
from ..efficiency import expected_signal_vs_cut
from ..errors import InputError
from ..physics.yields import signal_yield_per_eot
from ..processing import outputs
from ..records import EfficiencyTable, OptimisationMass, OptimisationRecord
from ..stats import cls
from ..stats.limits import EPS0
from ..stats.model import counting_model_from_spec, workspace_spec

log = logging.getLogger(__name__)
N_REF = 2.302585  # nominal total signal of the model (N90 at n = 0): keeps the POI limit O(1)
EXACT_MAX_BACKGROUND = 3.0  # above this total background: asymptotic (exact enumeration costs minutes)
COVERAGE_MARGIN_GeV = 3.0  # ~3 sigma of the ECAL resolution near 60 GeV


@dataclass(frozen=True)
class RunInputs:
    """What one run contributes at a given cut (independent of the mass for the background)."""

    name: str
    eot: float
    sideband: Any  # 1D hist.Hist of side band C (E_ECAL), blinded below the box edge
    box_edge: float
    others: float  # fixed non-upstream background (published box values scaled to the run)
    others_unc: float
    signal_rel: float  # relative signal uncertainty of the run (efficiency syst, EOT)


def coverage_GeV(e0: float, emiss_min: float, fraction: float, margin: float = COVERAGE_MARGIN_GeV) -> float:
    """Largest box edge for which the signal MC (E_A' > fraction * emiss_min) holds all box events."""
    return e0 - fraction * emiss_min - margin


def background_at_cut(run: RunInputs, cut: float, *, fit_max: float) -> tuple[float, float, dict[str, Any]]:
    """(events, absolute uncertainty, fit info) of all backgrounds with E_ECAL < ``cut`` in one run.

    The fit starts at max(cut, box edge): bins inside the blinded box are never used."""
    lo = max(cut, run.box_edge)
    up = bg.estimate_upstream(run.sideband, box=(0.0, cut), fit_range=(lo, fit_max))
    value = up.value + run.others
    unc = math.hypot(up.unc, run.others_unc)
    info = {"fit_range": [lo, fit_max], "p2": float(up.fit.params[1]), "upstream": up.value,
            "upstream_unc": up.unc}
    return value, unc, info


def signal_per_eot(h: Any, cuts: Sequence[float], *, yield_fn, e0: float, box: float,
                   coverage: float) -> tuple[np.ndarray, list[str]]:
    """Signal per EOT (at the sample's eps) with E_ECAL < cut, and its source per cut.

    ``h``: the run's 1D ``signal_ecal``; ``yield_fn(emiss_min)``: physics A' per EOT above emiss_min at the
    same eps. Beyond ``coverage`` the MC misses events: physics yield x efficiency at the box."""
    cut_values = np.asarray(cuts, dtype=float)
    direct = expected_signal_vs_cut(h, cut_values)
    eff_box = float(expected_signal_vs_cut(h, [box])[0]) / yield_fn(e0 - box)
    out, src = direct.copy(), ["signal MC"] * cut_values.size
    for i, c in enumerate(cut_values):
        if c > coverage:
            out[i] = yield_fn(e0 - c) * eff_box
            src[i] = "physics x eff(box)"
    return out, src


def gaussian_limits(signal: np.ndarray, background: np.ndarray, background_unc: np.ndarray,
                    cl: float) -> dict[str, float]:
    """Asymptotic expected CLs limits on mu for large backgrounds (closed form, Cowan et al. 2011 eq. 89).

    sigma_mu from the Fisher information of the Asimov background-only data with the background
    uncertainty in the variance, mu_up(N) = sigma_mu (Phi^-1(1 - alpha Phi(N)) + N)."""
    info = float(np.sum(signal**2 / (background + background_unc**2)))
    sigma = 1.0 / math.sqrt(info)
    alpha = 1.0 - cl
    n_sig = {"m2": -2.0, "m1": -1.0, "median": 0.0, "p1": 1.0, "p2": 2.0}
    return {k: sigma * (float(stats.norm.ppf(1.0 - alpha * stats.norm.cdf(n))) + n) for k, n in n_sig.items()}


def _exact_spec(signal: np.ndarray, background: np.ndarray, background_unc: np.ndarray,
                signal_rel: Sequence[float], *, shared_rel: float) -> str:
    """The workspace (JSON, keys sorted) of the exact expected limit: the signal normalised to N_REF."""
    scale = N_REF / signal.sum()
    channels = [{"name": f"run_{i}", "signal": [si * scale], "background": [bi], "observed": [0],
                 "signal_sys": {f"sig_{i}": ri}, "background_sys": {f"bkg_{i}": ui / bi} if bi > 0 else {}}
                for i, (si, bi, ui, ri) in enumerate(zip(signal, background, background_unc, signal_rel,
                                                         strict=True))]
    return json.dumps(workspace_spec(channels, shared={"xsec": shared_rel}), sort_keys=True)


def expected_limit(signal: Sequence[float], background: Sequence[float], background_unc: Sequence[float],
                   signal_rel: Sequence[float], *, shared_rel: float, cl: float,
                   exact_max_background: float = EXACT_MAX_BACKGROUND) -> dict[str, Any]:
    """Expected limits on the signal strength mu for signal events per run (any normalisation).

    Exact hybrid CLs (stats.cls) up to ``exact_max_background`` total events; above, where enumerating the
    outcomes costs minutes and asymptotics hold, the closed-form Gaussian limits (signal systematics,
    < 20% and irrelevant there, are left out). Returns the mu quantiles for signal scaled by ``scale``."""
    s = np.asarray(signal, dtype=float)
    b = np.asarray(background, dtype=float)
    u = np.asarray(background_unc, dtype=float)
    b_tot = float(b.sum())
    scale = N_REF / s.sum()
    if b_tot > exact_max_background:
        return {"mu": gaussian_limits(s * scale, b, u, cl), "scale": scale, "background_total": b_tot,
                "method": "gaussian (large background)"}
    spec = _exact_spec(s, b, u, signal_rel, shared_rel=shared_rel)
    return {"mu": dict(_exact_expected_mu(spec, cl)), "scale": scale,
            "background_total": b_tot, "method": "exact hybrid CLs"}


# expected mu quantiles per (workspace JSON, cl): the signal is normalised to N_REF, so every mass with
# the same run shares at a cut (one run: every mass) is the same model; filled by the pool, then read
_EXPECTED_MU: dict[tuple[str, float], tuple[tuple[str, float], ...]] = {}
_EXPECTED_MU_MAX = 4096


def _exact_expected_mu(spec_json: str, cl: float) -> tuple[tuple[str, float], ...]:
    """Expected mu quantiles of one workspace (cached on the workspace itself)."""
    key = (spec_json, cl)
    if key not in _EXPECTED_MU:
        res = cls.limits(counting_model_from_spec(json.loads(spec_json)), cl, method="exact")
        if len(_EXPECTED_MU) >= _EXPECTED_MU_MAX:
            _EXPECTED_MU.clear()
        _EXPECTED_MU[key] = tuple((k, float(v)) for k, v in res.mu_exp.items())
    return _EXPECTED_MU[key]


def _prefetch_expected_mu(spec_jsons: Sequence[str], cl: float) -> None:
    """The exact expected limits of every distinct workspace not yet known, on the pool's processes
    (:func:`na64ana.workers.map_ordered`): the scan then reads them."""
    todo = sorted({j for j in spec_jsons if (j, cl) not in _EXPECTED_MU})
    for j, mu in zip(todo, workers.map_ordered(lambda j: _exact_expected_mu(j, cl), todo), strict=True):
        _EXPECTED_MU[(j, cl)] = mu


def best_cut(cuts: Sequence[float], eps: Sequence[float | None]) -> float | None:
    """The cut with the smallest expected limit (the loosest one among exact ties: more signal kept)."""
    vals = np.array([np.inf if e is None or not np.isfinite(e) else e for e in eps])
    if not np.isfinite(vals).any():
        return None
    best = np.flatnonzero(vals <= vals.min() * (1 + 1e-9))
    return float(np.asarray(cuts, dtype=float)[best[-1]])


def scan_cuts(runs: Sequence[RunInputs], signal_hists: Mapping[str, Mapping[str, Any]],
              masses: Sequence[float], cuts: Sequence[float], *, sample_eps: Mapping[str, float],
              e0: float, emiss_min: float, box: float, coverage: float, shared_rel: float, cl: float = 0.9,
              xsec: str = "etl", fit_max: float | None = None
              ) -> tuple[dict[str, OptimisationMass], dict[str, list[dict[str, Any]]]]:
    """Per mass the expected eps limit vs cut and the optimum; the background fits per run and cut.

    ``signal_hists[mass_key][run]``: the run's 1D signal E_ECAL histogram; ``sample_eps[mass_key]``: eps
    of the sample weights."""
    fit_max = fit_max or float(published.get("selection.sideband_c_fit_max_GeV"))
    cuts = [float(c) for c in cuts]
    bkg: dict[str, list[tuple[float, float, dict]]] = {
        r.name: [background_at_cut(r, c, fit_max=fit_max) for c in cuts] for r in runs}
    sigs: dict[str, tuple[dict[str, np.ndarray], list[str]]] = {}
    for m in masses:
        mkey = f"{m:g}"
        eps_s = sample_eps[mkey]

        def yield_fn(emin: float, m: float = m, eps_s: float = eps_s) -> float:
            return signal_yield_per_eot(m, eps_s, e0=e0, emiss_min=emin, xsec=xsec)

        sig: dict[str, np.ndarray] = {}
        src: list[str] = []
        for r in runs:
            per_eot, src = signal_per_eot(signal_hists[mkey][r.name], cuts, yield_fn=yield_fn, e0=e0, box=box,
                                          coverage=coverage)
            sig[r.name] = per_eot * r.eot
        sigs[mkey] = sig, src
    # the exact expected limits of every (mass, cut) at once, on the machine's cores
    _prefetch_expected_mu([
        _exact_spec(np.array([sig[r.name][i] for r in runs]), np.array([bkg[r.name][i][0] for r in runs]),
                    np.array([bkg[r.name][i][1] for r in runs]), [r.signal_rel for r in runs],
                    shared_rel=shared_rel)
        for sig, _ in sigs.values() for i in range(len(cuts))
        if sum(bkg[r.name][i][0] for r in runs) <= EXACT_MAX_BACKGROUND], cl)
    out: dict[str, OptimisationMass] = {}
    for m in masses:
        mkey = f"{m:g}"
        eps_s = sample_eps[mkey]
        sig, src = sigs[mkey]
        rec: dict[str, list] = {k: [] for k in ("eps_exp", "eps_exp_m1", "eps_exp_p1", "signal_events",
                                                "background", "background_unc", "method")}
        for i, c in enumerate(cuts):
            s = [sig[r.name][i] for r in runs]
            b = [bkg[r.name][i][0] for r in runs]
            u = [bkg[r.name][i][1] for r in runs]
            lim = expected_limit(s, b, u, [r.signal_rel for r in runs], shared_rel=shared_rel, cl=cl)
            eps_ref = eps_s * math.sqrt(lim["scale"])
            for key, q in (("eps_exp", "median"), ("eps_exp_m1", "m1"), ("eps_exp_p1", "p1")):
                mu = lim["mu"][q]
                rec[key].append(eps_ref * math.sqrt(mu) if np.isfinite(mu) else None)
            rec["signal_events"].append(float(sum(s)))
            rec["background"].append(lim["background_total"])
            rec["background_unc"].append(float(math.sqrt(sum(x * x for x in u))))
            rec["method"].append(lim["method"])
            log.info("m = %s GeV, cut %.1f GeV: S = %.4g (eps %.3g), B = %.3g -> eps_exp %.4g [%s]", mkey, c,
                     sum(s), eps_s, lim["background_total"], rec["eps_exp"][-1] or math.nan, lim["method"])
        opt = best_cut(cuts, rec["eps_exp"])
        nominal = [e for c, e in zip(cuts, rec["eps_exp"], strict=True) if abs(c - box) < 1e-9]
        out[mkey] = OptimisationMass.model_validate({
            "mass_GeV": float(m), "cut_GeV": cuts, **rec, "signal_source": src, "sample_eps": eps_s,
            "optimum_GeV": opt, "eps_exp_at_optimum": (rec["eps_exp"][cuts.index(opt)] if opt is not None
                                                       else None),
            "eps_exp_at_box": nominal[0] if nominal else None})
    fits = {r.name: [{"cut_GeV": c, **info, "events": v, "unc": u}
                     for c, (v, u, info) in zip(cuts, bkg[r.name], strict=True)] for r in runs}
    return out, fits


def other_background(campaign: str, eot_fraction: float) -> tuple[float, float]:
    """(value, uncertainty) of the non-upstream background components of a run (published table x EOT
    fraction), counted as background.json counts them (:func:`na64ana.background.counted`): an upper limit
    is value = limit with a 100% uncertainty, not dropped (dropping it made the background low)."""
    counted = [bg.counted(c) for c in bg.published_components(campaign, eot_fraction).values()]
    return sum(v for v, _ in counted), math.sqrt(sum(u * u for _, u in counted))


def _mass_key_in(table_masses: Sequence[float], m: float) -> float | None:
    for x in table_masses:
        if math.isclose(float(x), m, rel_tol=1e-6):
            return float(x)
    return None


def load_inputs(run_dir: str | Path, efficiency_dir: str | Path, *, masses: Sequence[float] | None = None,
                eot_unc: float | None = None) -> dict[str, Any]:
    """Everything :func:`scan_cuts` needs from a (blinded) campaign run output and an efficiency output.

    Only side band C of the data and the signal MC are read. ``masses`` default: every mass of
    efficiency.json present in all runs."""
    run_dir, efficiency_dir = Path(run_dir), Path(efficiency_dir)
    if not (efficiency_dir / EfficiencyTable.file_name).exists():
        raise InputError("no efficiency.json (run 'na64ana efficiency' first)", file=str(efficiency_dir))
    eff = EfficiencyTable.load(efficiency_dir)
    if eff.signal_ea_min_fraction is None:  # the signal MC's generation coverage (no simulator import)
        raise InputError("no signal_ea_min_fraction (the signal MC's E_A' coverage; re-run 'na64ana "
                         "efficiency')", file=str(efficiency_dir / EfficiencyTable.file_name),
                         field="signal_ea_min_fraction")
    sc = outputs.load_hist(run_dir, "ecal_sideband_c")
    sig_h = outputs.load_hist(efficiency_dir, "signal_ecal")
    eot_unc = float(published.get("systematics.eot_rel")) if eot_unc is None else eot_unc
    run_out = outputs.load_run(run_dir)
    recs = [run_out.cutflows[k] for k in sc.axes["run"]]
    recs = [rec for rec in recs if rec.kind == "data"]
    if not recs:
        raise InputError("no data runs in the run output", file=str(run_dir))
    campaign = recs[0].campaign
    total = sum(float(rec.eot) for rec in recs)
    runs = []
    for rec in recs:
        if rec.run not in eff.runs:
            raise InputError(f"run '{rec.run}' has no signal efficiency",
                             file=str(efficiency_dir / EfficiencyTable.file_name))
        frac = float(rec.eot) / bg.reference_eot(campaign, total)
        other, other_unc = other_background(campaign, frac)
        syst = eff.runs[rec.run].syst_rel or 0.0
        runs.append(RunInputs(rec.run, float(rec.eot), sc[{"run": rec.key}], bg.box_edge(run_dir, rec.key),
                              other, other_unc, math.hypot(syst, eot_unc)))
    if eff.beam_energy_GeV is None or eff.emiss_min_GeV is None:
        raise InputError("efficiency.json has no beam_energy_GeV / emiss_min_GeV",
                         file=str(efficiency_dir / EfficiencyTable.file_name))
    e0, emiss_min = float(eff.beam_energy_GeV), float(eff.emiss_min_GeV)
    common = set.intersection(*(set(map(float, eff.runs[r.name].mass_GeV)) for r in runs))
    wanted = sorted(common) if masses is None else [float(m) for m in masses]
    hists: dict[str, dict[str, Any]] = {}
    sample_eps: dict[str, float] = {}
    keys = set(sig_h.axes["run"])
    for m in wanted:
        if _mass_key_in(sorted(common), m) is None:
            raise InputError(f"mass {m:g} GeV not in efficiency.json for every run (have {sorted(common)})",
                             field="--masses")
        mkey = f"{m:g}"
        hists[mkey] = {}
        for r in runs:
            key = f"{r.name}-signal-m{m:g}"
            if key not in keys:
                raise InputError(f"no signal_ecal entry '{key}'", file=str(efficiency_dir))
            hists[mkey][r.name] = sig_h[{"run": key}]
        # eps of the sample weights from the efficiency denominator (A' per EOT above emiss_min ~ eps^2)
        rr = eff.runs[runs[0].name]
        m_table = _mass_key_in(rr.mass_GeV, m)
        assert m_table is not None  # checked above for every run
        i = [float(x) for x in rr.mass_GeV].index(m_table)
        y0 = signal_yield_per_eot(m, EPS0, e0=e0, emiss_min=emiss_min)
        sample_eps[mkey] = EPS0 * math.sqrt(float(rr.denominator_per_eot[i]) / y0)
    edges = {r.box_edge for r in runs}
    if len(edges) > 1:
        log.warning("runs have different box edges %s: the signal source switch uses the first",
                    sorted(edges))
    return {"runs": runs, "signal_hists": hists, "sample_eps": sample_eps, "masses": wanted, "e0": e0,
            "emiss_min": emiss_min, "box": runs[0].box_edge, "campaign": campaign,
            "coverage": coverage_GeV(e0, emiss_min, float(eff.signal_ea_min_fraction)),
            "signal_ea_min_fraction": float(eff.signal_ea_min_fraction),
            "blinded": all(rec.blinded for rec in recs), "eot_unc": eot_unc}


def compute(run_dir: str | Path, efficiency_dir: str | Path, *, masses: Sequence[float] | None = None,
            cuts: Sequence[float], xsec_unc: float | None = None, eot_unc: float | None = None,
            cl: float = 0.9) -> OptimisationRecord:
    """The optimisation record (reads the run and efficiency outputs, writes nothing)."""
    return _compute(load_inputs(run_dir, efficiency_dir, masses=masses, eot_unc=eot_unc), cuts=cuts,
                    xsec_unc=xsec_unc, cl=cl)


def _compute(inp: Mapping[str, Any], *, cuts: Sequence[float], xsec_unc: float | None, cl: float
             ) -> OptimisationRecord:
    xsec = float(published.get("systematics.xsec_rel")) if xsec_unc is None else xsec_unc
    per_mass, fits = scan_cuts(inp["runs"], inp["signal_hists"], inp["masses"], list(cuts),
                               sample_eps=inp["sample_eps"], e0=inp["e0"], emiss_min=inp["emiss_min"],
                               box=inp["box"], coverage=inp["coverage"], shared_rel=xsec, cl=cl)
    return OptimisationRecord(
        campaign=inp["campaign"], blinded=True, cl=cl, box_ecal_max_GeV=inp["box"],
        signal_mc_coverage_GeV=inp["coverage"], signal_ea_min_fraction=inp["signal_ea_min_fraction"],
        runs=[r.name for r in inp["runs"]],
        systematics={"xsec_rel": xsec, "eot_rel": inp["eot_unc"],
                     "signal_rel_per_run": {r.name: r.signal_rel for r in inp["runs"]}},
        method=(__doc__ or "").split("\n\n")[1], optimisation=per_mass, background_fits=fits)


def run_stage(run_dir: str | Path, efficiency_dir: str | Path, out: str | Path, *,
              masses: Sequence[float] | None = None, cuts: Sequence[float], xsec_unc: float | None = None,
              eot_unc: float | None = None, cl: float = 0.9) -> OptimisationRecord:
    """The optimise stage: :func:`compute`, then ``out/optimisation.json`` + ``.md`` and the provenance (the
    run and efficiency outputs recorded whole: folder inputs with every file's sha256)."""
    clock = provenance.Clock()
    out = provenance.prepare_outdir(out, stage="optimise")
    inp = load_inputs(run_dir, efficiency_dir, masses=masses, eot_unc=eot_unc)
    record = _compute(inp, cuts=cuts, xsec_unc=xsec_unc, cl=cl)
    record.dump(out / OptimisationRecord.file_name)
    (out / "optimisation.md").write_text(markdown(record))
    provenance.write(out, "optimise", inputs=[run_dir, efficiency_dir],
                     outputs=["optimisation.json", "optimisation.md"],
                     blinding=blinding.state(inp["blinded"]),
                     metrics=clock.metrics(), run_dir=str(run_dir), efficiency_dir=str(efficiency_dir),
                     cuts=list(cuts), masses=inp["masses"])
    return record


optimise = run_stage  # the name the notebooks and older callers use


def markdown(rec: OptimisationRecord | Mapping[str, Any]) -> str:
    """One table per mass: cut, S, B, expected eps (median, +-1 sigma), method; the optimum."""
    record = rec.to_json() if isinstance(rec, OptimisationRecord) else rec
    lines = [f"### Box-edge optimisation, campaign {record['campaign']} (blinded: side band + MC only)", ""]
    for mkey, d in record["optimisation"].items():
        at_box = d["eps_exp_at_box"] or float("nan")
        lines += [f"m_A' = {float(mkey) * 1e3:g} MeV: optimum E_ECAL < {d['optimum_GeV']} GeV "
                  f"(eps_exp {d['eps_exp_at_optimum']:.4g}; at the box {at_box:.4g})",
                  "", "| cut [GeV] | S (eps_sample) | B | eps_exp | -1 sigma | +1 sigma | method | signal |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, c in enumerate(d["cut_GeV"]):
            f = lambda x: "-" if x is None else f"{x:.4g}"  # noqa: E731
            lines.append(f"| {c:g} | {d['signal_events'][i]:.4g} | {d['background'][i]:.3g} | "
                         f"{f(d['eps_exp'][i])} | {f(d['eps_exp_m1'][i])} | {f(d['eps_exp_p1'][i])} | "
                         f"{d['method'][i]} | {d['signal_source'][i]} |")
        lines.append("")
    return "\n".join(lines)
