"""Signal efficiency per run and A' mass: signal MC through the invisible processor -> efficiency.json.

Definition (S001 eqs. 23, 26): ``eps_tot = W_pass / D`` with ``W_pass`` the weighted signal events passing
every cut including the signal box and ``D`` the A' per EOT with true ``E_A' > emiss_min`` (the same
``emiss_min`` the physics yield uses, so ``N_sig = EOT * yield_per_eot * eps_tot``). The simulated
samples draw E_A' from below ``emiss_min`` too, so events migrating into the box are in ``W_pass``;
``D`` is the analytic physics yield (na64ana.physics.yields), because untriggered events are not stored.

The total factorises exactly into sequential cut-flow ratios ``f_c = W_c / W_(c-1)`` (``W_(-1) = D``),
grouped like the published tables (S001 Table II, S003): primary e- (track, SRD, straw, pile-up), ECAL
(trigger/box acceptance incl. migration, shower shape, box), VETO, HCAL (+HCAL0). Statistical errors are
binomial with effective entries ``n_eff = W / (sum w^2 / sum w)``.

Preshower-threshold correction (brem and annihilation; issue 14 item 5, docs/simulator_tuning.md): the
signal MC loses ``loss_sim`` of its box events to the trigger's E_PS > 0.3 GeV (the generator records it in
datasets.json, ``signal_ps_threshold_loss``); published is a loss <~ ``p = 0.05 +- 0.03`` (S001 Sec. VI.A,
``published.toml`` ``trigger.ps_threshold_loss``). Where ``loss_sim > p`` the efficiency is multiplied by
``(1 - p) / (1 - loss_sim)`` (factor group ``ps_threshold``), with uncertainty ``0.03 / (1 - loss_sim)``
(the published one) and ``(factor - 1) / 2`` (the x -> 1 shape of the A' spectrum) in quadrature; below
``p`` nothing is applied (recorded only). **Off by default** (``ps_correction=True`` applies it): the
simulator's efficiencies are tuned to the published ones, which already contain the published PS-threshold
correction, and the raw heavy-A' efficiencies agree with them while the corrected ones lie 14-23% above
(docs/simulator_tuning.md); the loss is recorded either way. For a signal MC that is not tuned to the
published efficiencies, switch it on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import na64ana.processors  # noqa: F401  (registers the ALP and visible selection variables before plan())

from . import datasets as ds
from . import published as published_numbers
from .bookkeeping import provenance
from .errors import DataError, InputError
from .physics import alp as alp_physics
from .physics import visible as vis_physics
from .physics.yields import signal_yield, signal_yield_per_eot
from .processing import execute, outputs
from .records import CutflowRow, EfficiencyTable, PsThresholdCorrection, RunOutput

# Published-table grouping of the cut-flow factors; cuts not listed go to "other" (so the product of
# the groups is always the total). The acceptance W_read / D (trigger + migration) belongs to the ECAL.
GROUPS: dict[str, str] = {
    "track": "primary_e", "srd": "primary_e", "straw": "primary_e", "pileup": "primary_e",
    "shower": "ecal", "signal_box": "ecal",
    "veto": "veto",
    "hcal0": "hcal", "hcal_zero": "hcal",
}
ACCEPTANCE = "acceptance"  # pseudo-cut name of W_read / D
ACCEPTANCE_GROUP = "ecal"
FACTOR_ORDER = ("primary_e", "ecal", "veto", "hcal", "other")
DEFAULT_MASSES_GeV = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
DEFAULT_EPS = 1e-4  # efficiencies do not depend on eps (only the weight scale does)
BOX_HIST = "signal_ecal"
#: signal production -> the datasets.json sample of its signal MC (written by na64ana.simulation)
SAMPLES = {"brem": "signal", "annihilation": "signal_annihilation", "primakoff": "signal_alp",
           "visible": "signal"}
#: signal production -> the processor (and selection) its signal MC runs through
PROCESSORS = {"brem": "invisible", "annihilation": "invisible", "primakoff": "alp", "visible": "visible"}
#: ALP signal regions: processor region name -> physics region (na64ana.physics.alp)
ALP_REGIONS = {"hcal_decay": "hcal", "beyond": "beyond"}
VISIBLE_BOX_CUT = "energy_sum"
DEFINITIONS = {
    "brem": "weighted signal passing all cuts incl. the box / A' with true E_A' > emiss_min (S001 eqs. 23, "
            "26)",
    "annihilation": "weighted signal passing all cuts incl. the box / resonant A' per EOT with E_R > the "
                    "run's emiss_min (S001 eqs. 23, 26)",
    "primakoff": "weighted ALP signal in the region after the common cuts / ALPs per EOT decaying in the "
                 "region (na64ana.physics.alp)",
    "visible": "weighted A' signal passing all cuts incl. the E_WCAL + E_ECAL box / A' per EOT decaying in "
               "the decay volume above the setup's threshold (na64ana.physics.visible)"}
HISTS = {"primakoff": "signal_ecal_<region>", "visible": "signal_esum"}
#: factor group of the preshower-threshold correction, and the published loss it corrects to
PS_GROUP = "ps_threshold"
PS_PUBLISHED_KEY = "trigger.ps_threshold_loss"
#: productions whose signal goes through the invisible-mode trigger E_PS > trigger.ps_min_GeV
PS_PRODUCTIONS = ("brem", "annihilation")
PS_DEFINITION = ("where the signal MC's PS-threshold loss in the box (datasets.json "
                 "signal_ps_threshold_loss) exceeds the published loss p: efficiency x (1 - p) / "
                 "(1 - loss_sim), uncertainty unc_p / (1 - loss_sim) (published) and (factor - 1) / 2 "
                 "(x -> 1 shape of the A' spectrum, half the correction) in quadrature; else no factor "
                 "(the simulation agrees)")


# ------------------------------------------------------------------------------------------------------
# Arithmetic (pure)


def n_effective(weighted: float, w2_over_w: float) -> float:
    """Effective number of entries of a weighted sum ``W`` when ``sum w^2 / sum w = w2_over_w``."""
    if w2_over_w <= 0 or not math.isfinite(w2_over_w):
        raise DataError(f"weight scale sum(w^2)/sum(w) must be positive, got {w2_over_w!r}")
    return weighted / w2_over_w


def binomial_unc(eff: float, n_eff: float) -> float:
    """Binomial error of a ratio with ``n_eff`` effective trials.

    ``|1 - eff|`` lets a migration-driven ratio above 1 keep a sensible error; the variance is floored at
    its value for half an event (Jeffreys-like), so 0% or 100% never claims zero uncertainty.
    """
    if n_eff <= 0:
        raise DataError(f"no effective entries ({n_eff!r}) for an efficiency")
    p0 = 0.5 / (n_eff + 1.0)
    var = max(eff * abs(1.0 - eff), p0 * (1.0 - p0))
    return math.sqrt(var / n_eff)


def with_systematic(eff: float, stat: float, rel_syst: float) -> float:
    """Total error: statistical (absolute) and a relative systematic in quadrature."""
    if rel_syst < 0:
        raise InputError(f"relative systematic must be >= 0, got {rel_syst!r}", field="syst")
    return math.hypot(stat, rel_syst * eff)


@dataclass(frozen=True)
class Measurement:
    """One (run, mass) efficiency: total, factor groups and per-cut sequential factors with errors."""

    efficiency: float
    unc: float
    factors: dict[str, float]
    factors_unc: dict[str, float]
    cuts: dict[str, float]
    n_eff: float
    weighted_pass: float
    denominator: float
    ps_loss_sim: float | None = None  # the signal MC's preshower-threshold loss (None: not carried)
    ps_correction: float = 1.0  # factor applied for it (also in ``factors``)
    ps_correction_unc: float = 0.0  # its absolute uncertainty (not in ``unc``, which stays statistical)


def ps_threshold_factor(loss_sim: float, published_loss: float, published_unc: float) -> tuple[float, float]:
    """The preshower-threshold correction ``(factor, absolute uncertainty)`` of a signal efficiency whose MC
    loses ``loss_sim`` of the box events to the trigger's PS threshold, against the published loss
    ``published_loss +- published_unc`` (S001 Sec. VI.A).

    Applied only where the simulation loses more (heavy A': the x -> 1 tail of the spectrum leaves the
    preshower below threshold): ``factor = (1 - p) / (1 - loss_sim)``. Its uncertainty, in quadrature:
    the published one, ``published_unc / (1 - loss_sim)`` (= 3.2% of the factor), and the shape near
    x -> 1, ``(factor - 1) / 2``: the published loss is a bound for the published spectrum, ours differs
    exactly in the least certain part of the cross section (the k-factor corrects the integral, not the
    tail), so half the correction is kept as its uncertainty (the raw simulation stays within 2 sigma).
    ``loss_sim <= p``: ``(1.0, 0.0)``, the simulation agrees with the publication.
    """
    for name, v in (("loss_sim", loss_sim), ("published_loss", published_loss)):
        if not math.isfinite(v) or not 0 <= v < 1:
            raise InputError(f"{name} must be in [0, 1), got {v!r}", field=name)
    if not math.isfinite(published_unc) or published_unc < 0:
        raise InputError(f"published_unc must be >= 0, got {published_unc!r}", field="published_unc")
    if loss_sim <= published_loss:
        return 1.0, 0.0
    factor = (1.0 - published_loss) / (1.0 - loss_sim)
    return factor, math.hypot(published_unc / (1.0 - loss_sim), 0.5 * (factor - 1.0))


def with_ps_correction(m: Measurement, loss_sim: float | None, *, apply: bool = True) -> Measurement:
    """``m`` with the preshower-threshold correction (:func:`ps_threshold_factor`, published loss from
    ``published.toml``): efficiency and its statistical error times the factor, the factor as group
    ``ps_threshold``. ``loss_sim`` None (not carried by the sample) or ``apply`` False: ``m`` unchanged but
    for the recorded loss."""
    if loss_sim is None or not apply:
        return replace(m, ps_loss_sim=loss_sim)
    pub = published_numbers.entry(PS_PUBLISHED_KEY)
    factor, unc = ps_threshold_factor(loss_sim, float(pub["value"]), float(pub["unc"]))
    if factor == 1.0:
        return replace(m, ps_loss_sim=loss_sim)
    return replace(m, efficiency=m.efficiency * factor, unc=m.unc * factor,
                   factors={**m.factors, PS_GROUP: factor}, factors_unc={**m.factors_unc, PS_GROUP: unc},
                   ps_loss_sim=loss_sim, ps_correction=factor, ps_correction_unc=unc)


def from_cutflow(rows: Sequence[Mapping[str, Any]], denominator: float, *, w2_over_w: float | None = None,
                 groups: Mapping[str, str] = GROUPS) -> Measurement:
    """Efficiency of one signal sample from its cut-flow rows (``cut``, ``weighted``[, ``events``]).

    Row 0 is "all events read"; the last row must be the final cut (the signal box). ``denominator`` is
    the weighted A' with true E_A' > emiss_min. ``w2_over_w`` (sum w^2 / sum w of the sample) defaults to
    the mean weight of row 0, exact for the uniform weights of a simulated (run, mass) sample.
    """
    if not math.isfinite(denominator) or denominator <= 0:
        raise DataError(f"efficiency denominator (A' with E_A' > emiss_min) is {denominator!r}: "
                        "no signal expected, the efficiency is undefined")
    if len(rows) < 2:
        raise DataError("a cut flow needs the 'all events' row and at least one cut")
    weighted = [float(r["weighted"]) if r["weighted"] is not None else math.nan for r in rows]
    if any(not math.isfinite(w) or w < 0 for w in weighted):
        raise DataError("cut flow has missing (blinded?) or negative weighted counts")
    if any(b > a * (1 + 1e-9) for a, b in zip(weighted[:-1], weighted[1:], strict=True)):
        raise DataError("cut flow is not monotonically decreasing")
    if w2_over_w is None:
        events = rows[0].get("events")
        if not events:
            raise DataError("no events read: cannot infer the weight scale (give w2_over_w)")
        w2_over_w = weighted[0] / float(events)
    names = [ACCEPTANCE, *(str(r["cut"]) for r in rows[1:])]
    prev = [denominator, *weighted[:-1]]
    cuts, rel_var = {}, {}
    for name, num, den in zip(names, weighted, prev, strict=True):
        f = num / den if den > 0 else 0.0
        cuts[name] = f
        n = n_effective(den, w2_over_w) if den > 0 else 0.0
        rel_var[name] = (binomial_unc(f, n) / f) ** 2 if f > 0 and n > 0 else math.inf
    factors: dict[str, float] = {}
    fvar: dict[str, float] = {}
    for name, f in cuts.items():
        g = ACCEPTANCE_GROUP if name == ACCEPTANCE else groups.get(name, "other")
        factors[g] = factors.get(g, 1.0) * f
        fvar[g] = fvar.get(g, 0.0) + rel_var[name]
    ordered = [g for g in FACTOR_ORDER if g in factors] + sorted(set(factors) - set(FACTOR_ORDER))
    factors = {g: factors[g] for g in ordered}
    factors_unc = {g: (factors[g] * math.sqrt(fvar[g]) if math.isfinite(fvar[g]) else math.nan)
                   for g in ordered}
    n0 = n_effective(denominator, w2_over_w)
    eff = weighted[-1] / denominator
    return Measurement(eff, binomial_unc(eff, n0), factors, factors_unc, cuts, n0, weighted[-1], denominator)


def expected_signal_vs_cut(h: Any, cuts: Iterable[float], *, denominator: float | None = None) -> np.ndarray:
    """Weighted signal with E_ECAL below each cut, from a 1D (or run-summed) E_ECAL histogram.

    ``h`` is ``signal_ecal`` or the N-1 box histogram (every cut but the box). Linear interpolation
    inside a bin. With ``denominator`` the result is the efficiency vs the box edge (cut optimisation).
    """
    if "run" in [ax.name for ax in h.axes]:
        h = h[{"run": sum}]
    if len(h.axes) != 1:
        raise InputError(f"need a 1D E_ECAL histogram, got axes {[ax.name for ax in h.axes]}")
    edges = h.axes[0].edges
    cum = np.concatenate([[0.0], np.cumsum(h.values(flow=False))])
    under = float(h.values(flow=True)[0]) if h.axes[0].traits.underflow else 0.0
    x = np.asarray(list(cuts), dtype=float)
    if np.any(~np.isfinite(x)):
        raise InputError("cut values must be finite")
    out = np.interp(np.clip(x, edges[0], edges[-1]), edges, cum) + under
    out[x < edges[0]] = 0.0
    if denominator is not None:
        if denominator <= 0:
            raise DataError(f"denominator must be positive, got {denominator!r}")
        out = out / denominator
    return out


# ------------------------------------------------------------------------------------------------------
# Samples and the processor run


def signal_denominator(mass_GeV: float, eps: float, *, e0: float, emiss_min: float) -> float:
    """A' per EOT with true E_A' > emiss_min: the efficiency denominator (same physics as the weights)."""
    return float(signal_yield_per_eot(mass_GeV, eps, e0=e0, emiss_min=emiss_min))


def _check_masses(masses: Iterable[float]) -> list[float]:
    out = [float(m) for m in masses]
    if not out:
        raise InputError("no masses given", field="--masses")
    bad = [m for m in out if not math.isfinite(m) or m <= 0]
    if bad:
        raise InputError(f"masses must be positive (GeV), got {bad}", field="--masses")
    return out


def _w2_over_w(h: Any, key: str) -> float:
    """sum w^2 / sum w of all events of one key (from a Weight-storage histogram of every event)."""
    s = h[{"run": key}]
    sw = float(np.sum(s.values(flow=True)))
    sw2 = float(np.sum(s.variances(flow=True)))
    if sw <= 0:
        raise DataError(f"{key}: no weighted events in the signal sample")
    return sw2 / sw


def _signal_eps(camp: Any, datasets_file: Path, campaign: str, run: str, mass: float,
                sample: str = "signal") -> float:
    """The coupling the sample weights were made with (the physics denominator is taken at the same one)."""
    got = {f.signal_eps for f in camp.runs[run].files if f.sample == sample and f.signal_mass_GeV == mass}
    if len(got) != 1 or None in got:
        raise InputError(f"signal files of run {run}, m = {mass:g} GeV need one common signal_eps, got "
                         f"{sorted(got, key=str)}", file=str(datasets_file),
                         field=f"campaigns.{campaign}.runs.{run}.files")
    return float(got.pop())


def _ps_loss_sim(camp: Any, datasets_file: Path, campaign: str, run: str, mass: float,
                 sample: str = "signal") -> float | None:
    """The preshower-threshold loss the signal MC of (run, mass) carries (datasets.json
    ``signal_ps_threshold_loss``); several files: their mean weighted by entries; None if none carries it."""
    files = [f for f in camp.runs[run].files if f.sample == sample and f.signal_mass_GeV == mass]
    given = [f for f in files if f.signal_ps_threshold_loss is not None]
    if not given:
        return None
    if len(given) != len(files):
        raise InputError(f"signal files of run {run}, m = {mass:g} GeV: signal_ps_threshold_loss given for "
                         f"{len(given)} of {len(files)} files (all or none)", file=str(datasets_file),
                         field=f"campaigns.{campaign}.runs.{run}.files")
    n = sum(f.nevents for f in given)
    if len(given) == 1:
        return float(given[0].signal_ps_threshold_loss or 0.0)
    if n == 0:
        return float(np.mean([float(f.signal_ps_threshold_loss or 0.0) for f in given]))
    return sum(float(f.signal_ps_threshold_loss or 0.0) * f.nevents for f in given) / n


def table(measurements: Mapping[str, Mapping[float, Measurement]], *, campaign: str,
          syst_rel: Mapping[str, float] | None = None,
          published: Mapping[str, Mapping[str, Any]] | None = None,
          meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The efficiency.json record (docs/interfaces.md) from ``{run: {mass: Measurement}}``.

    ``unc`` is the statistical error combined with the run's relative systematic (``syst_rel``) if
    given, else statistical only, and with the uncertainty of a preshower-threshold factor where one was
    applied; ``unc_stat`` always holds the statistical part. The simulated PS-threshold losses, factors
    and their uncertainties are listed per mass when any sample of the run carries the loss.
    """
    runs: dict[str, Any] = {}
    for rname, by_mass in measurements.items():
        masses = sorted(by_mass)
        ms = [by_mass[m] for m in masses]
        rel = (syst_rel or {}).get(rname)
        groups = list(dict.fromkeys(g for m in ms for g in m.factors))
        cut_names = list(dict.fromkeys(c for m in ms for c in m.cuts))
        runs[rname] = {
            "mass_GeV": masses,
            "efficiency": [m.efficiency for m in ms],
            "unc": [math.hypot(with_systematic(m.efficiency, m.unc, rel) if rel is not None else m.unc,
                               m.efficiency * m.ps_correction_unc / m.ps_correction) for m in ms],
            "unc_stat": [m.unc for m in ms],
            "syst_rel": rel,
            "factors": {g: [m.factors.get(g, 1.0) for m in ms] for g in groups},
            "factors_unc": {g: [m.factors_unc.get(g, 0.0) for m in ms] for g in groups},
            "cuts": {c: [m.cuts.get(c, 1.0) for m in ms] for c in cut_names},
            "n_eff": [m.n_eff for m in ms],
            "weighted_pass_per_eot": [m.weighted_pass for m in ms],
            "denominator_per_eot": [m.denominator for m in ms],
            **({"published": dict(published[rname])} if published and rname in published else {}),
            **({"ps_threshold_loss_sim": [m.ps_loss_sim for m in ms],
                "ps_threshold_correction": [m.ps_correction for m in ms],
                "ps_threshold_correction_unc": [m.ps_correction_unc for m in ms]}
               if any(m.ps_loss_sim is not None for m in ms) else {}),
        }
    return {"campaign": campaign, **dict(meta or {}), "runs": runs}


def markdown(record: EfficiencyTable) -> str:
    """efficiency.json as a markdown table: one row per (run, mass), factors and published values."""
    groups = list(dict.fromkeys(g for r in record.runs.values() for g in r.factors))
    ps_col = any(r.ps_threshold_loss_sim is not None for r in record.runs.values())
    head = ["run", "m_A' [MeV]", "eps_tot", "unc (stat)", "unc", *groups, *(["PS loss (sim)"] * ps_col),
            "published"]
    threshold = f"{record.emiss_min_GeV if record.emiss_min_GeV is not None else 'emiss_min'} GeV"
    if record.emiss_min_by_run_GeV:
        threshold = "the run's E_miss threshold (" + ", ".join(
            f"{r}: {v:g}" for r, v in record.emiss_min_by_run_GeV.items()) + " GeV)"
    what = (f"A' with true E_A' > {threshold}" if record.production in (None, "brem")
            else f"{record.definition}" if record.production != "annihilation"
            else f"resonant A' with E_R > {threshold}")
    lines = [f"### Signal efficiency, campaign {record.campaign}"
             + ("" if record.production in (None, "brem") else f", production {record.production}"), "",
             f"eps_tot = weighted signal passing every cut incl. the box / {what}; "
             "factors multiply to eps_tot.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rname, r in record.runs.items():
        pub = r.published
        for i, m in enumerate(r.mass_GeV):
            ref = pub.light if pub is not None and i == 0 else None
            if pub is not None and i == len(r.mass_GeV) - 1 and len(r.mass_GeV) > 1:
                ref = pub.heavy
            pub_txt = "" if ref is None else f"{ref:.2f}"
            loss = r.ps_threshold_loss_sim[i] if r.ps_threshold_loss_sim is not None else None
            cells = [rname, f"{m * 1e3:g}", f"{r.efficiency[i]:.3f}", f"{r.unc_stat[i]:.3f}",
                     f"{r.unc[i]:.3f}",
                     *(f"{r.factors[g][i]:.3f}" if g in r.factors else "-" for g in groups),
                     *([f"{loss:.3f}" if loss is not None else "-"] * ps_col), pub_txt]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "published: the run's light-A' value on the lightest row and its heavy-A' value on the "
              "heaviest (datasets.json efficiency / efficiency_heavy)."]
    ps = record.ps_threshold_correction
    if ps is not None and ps_col:
        p_txt = f"{ps.published_loss:g} +- {ps.published_loss_unc:g} ({ps.source.split(' (')[0]})"
        how = (f"{PS_GROUP}: (1 - {ps.published_loss:g}) / (1 - PS loss) where the simulation loses "
               "more, else 1; its uncertainty (published, and half the correction for the x -> 1 shape of "
               "the A' spectrum) is in unc." if ps.applied
               else "Correction switched off: raw simulated efficiencies.")
        lines += ["", "PS loss (sim): the signal MC's preshower-threshold loss in the box; published "
                  f"{p_txt}. {how}"]
    return "\n".join(lines) + "\n"


def measure(datasets_file: str | Path, *, out: str | Path, campaign: str | None = None,
            runs: Sequence[str] | None = None, masses: Iterable[float] | None = None,
            executor: str = "iterative", workers: int = 2, scheduler: str | None = None,
            chunksize: int | None = None, syst: bool = True, production: str | None = None,
            ps_correction: bool = False) -> dict[str, Any]:
    """efficiency.json as a plain dict for the signal samples listed in ``datasets_file`` (kept for
    notebooks): :func:`run_stage`."""
    return run_stage(datasets_file, out, campaign=campaign, runs=runs, masses=masses, executor=executor,
                     workers=workers, scheduler=scheduler, chunksize=chunksize, syst=syst,
                     production=production, ps_correction=ps_correction).to_json()


def _denominator(production: str, camp: ds.Campaign, run: ds.Run, mass: float, coupling: float) -> float:
    """Signal per EOT the efficiency is relative to (same physics as the sample weights): brem A' with
    E_A' > the run's emiss_min, resonant annihilation with E_R above it, or the visible A' decaying in the
    run's decay volume above its energy threshold."""
    if production == "brem":
        return signal_denominator(mass, coupling, e0=camp.beam_energy_GeV, emiss_min=camp.emiss_min(run))
    if production == "annihilation":
        y = signal_yield([mass], coupling, mechanisms=["annihilation"], beam=camp.beam,
                         e0=camp.beam_energy_GeV, emiss_min=camp.emiss_min(run))
        return float(y["annihilation"][0])
    if production == "visible":
        setups = vis_physics.load_setups()
        if run.setup is None:
            raise InputError("a visible-mode run needs 'setup'", field="setup")
        setup = vis_physics.setup_for_campaign(setups, run.setup, beam_energy_GeV=camp.beam_energy_GeV)
        return float(np.asarray(vis_physics.yield_per_eot(mass, coupling, setup, setups=setups)))
    raise InputError(f"no single denominator for production '{production}'", field="production")


def compute(records: Mapping[str, Sequence[CutflowRow]], jobs: Sequence[execute.Job], camp: ds.Campaign, *,
            datasets_file: Path, loose: Any, syst: bool = True, production: str = "brem",
            regions: Mapping[str, Any] | None = None, signal_ea_min_fraction: float | None = None,
            ps_correction: bool = False) -> EfficiencyTable:
    """The efficiency table from the signal-MC cut flows (``{key: rows}``) of ``jobs`` (pure arithmetic).

    ``loose``: the run output's ``plane_loose`` histogram (weight scale of each sample). ``production``:
    brem or annihilation (invisible selection, last cut the signal box, each run through its own E_miss
    window), visible (last cut the E_WCAL + E_ECAL box), primakoff (ALPs: one entry ``"<run> <region>"``
    per run and signal region, the region's weighted count of ``regions`` (``{key: RegionCounts}``) over
    the ALP yield decaying in that region; the cut flow up to the cut before the last, then the region).
    ``ps_correction``: brem and annihilation efficiencies corrected for the simulated preshower-threshold
    loss where the samples carry it (:func:`with_ps_correction`); False keeps the raw simulated efficiency
    (the losses are still recorded).
    """
    cname = jobs[0].campaign
    sample = SAMPLES[production]
    meas: dict[str, dict[float, Measurement]] = {}
    where: dict[str, tuple[str, str | None]] = {}
    for j in jobs:
        mass = float(j.signal_mass_GeV or 0.0)
        run = camp.runs[j.run]
        coupling = _signal_eps(camp, datasets_file, cname, j.run, mass, sample)
        rows = [r.model_dump() for r in records[j.key]]
        w2w = _w2_over_w(loose, j.key)
        if production == "primakoff":
            counts = (regions or {}).get(j.key)
            weighted = getattr(counts, "weighted", None) or {}
            for rname, phys in ALP_REGIONS.items():
                w = weighted.get(rname)
                if w is None:
                    raise DataError(f"{j.key}: no weighted count of region '{rname}' in regions.json")
                den = float(np.asarray(alp_physics.yield_per_eot(mass, coupling, phys,
                                                                 e0=camp.beam_energy_GeV)))
                entry = f"{j.run} {phys}"
                region_row = {"cut": f"region_{rname}", "weighted": float(w),
                              "events": counts.counts.get(rname) if counts is not None else None}
                meas.setdefault(entry, {})[mass] = from_cutflow([*rows[:-1], region_row], den, w2_over_w=w2w)
                where[entry] = (j.run, phys)
            continue
        last = VISIBLE_BOX_CUT if production == "visible" else "signal_box"
        if rows[-1]["cut"] != last:
            raise InputError(f"{j.key}: the selection's last cut is '{rows[-1]['cut']}', not the signal box "
                             f"'{last}'")
        den = _denominator(production, camp, run, mass, coupling)
        m = from_cutflow(rows, den, w2_over_w=w2w)
        if production in PS_PRODUCTIONS:
            m = with_ps_correction(m, _ps_loss_sim(camp, datasets_file, cname, j.run, mass, sample),
                                   apply=ps_correction)
        meas.setdefault(j.run, {})[mass] = m
        where[j.run] = (j.run, None)
    pub = {e: {"light": camp.runs[r].efficiency, "heavy": camp.runs[r].efficiency_heavy,
               "rel_unc": camp.runs[r].efficiency_unc} for e, (r, _) in where.items()}
    syst_rel = {e: camp.runs[r].efficiency_unc for e, (r, _) in where.items()} if syst else None
    emiss = {r: camp.emiss_min(camp.runs[r]) for r, _ in where.values()} if production != "visible" else {}
    definition = DEFINITIONS.get(production, DEFINITIONS["brem"])
    rec = table(meas, campaign=cname, syst_rel=syst_rel, published=pub, meta={
                    "definition": definition, "production": production,
                    "emiss_min_GeV": camp.emiss_min_GeV if production != "visible" else None,
                    **({"emiss_min_by_run_GeV": emiss} if len(set(emiss.values())) > 1 else {}),
                    "beam_energy_GeV": camp.beam_energy_GeV,
                    "selection_hash": {j.key: j.selection.hash for j in jobs},
                    "factor_groups": {**GROUPS, ACCEPTANCE: ACCEPTANCE_GROUP},
                    "hist": HISTS.get(production, BOX_HIST),
                    "signal_ea_min_fraction": signal_ea_min_fraction,
                    **({"ps_threshold_correction": _ps_record(ps_correction)}
                       if production in PS_PRODUCTIONS else {})})
    for entry, (rname, region) in where.items():
        if region is not None:
            rec["runs"][entry].update(run=rname, region=region)
    return EfficiencyTable.model_validate(rec)


def _ps_record(applied: bool) -> PsThresholdCorrection:
    pub = published_numbers.entry(PS_PUBLISHED_KEY)
    return PsThresholdCorrection(applied=applied, published_loss=float(pub["value"]),
                                 published_loss_unc=float(pub["unc"]), source=str(pub["source"]),
                                 definition=PS_DEFINITION)


def signal_coverage(signal_datasets: str | Path) -> float | None:
    """The generation coverage of the signal MC (E_A' generated above this fraction of the run's E_miss
    threshold), as recorded by the simulation in the provenance beside its datasets.json; None when not
    recorded (real signal MC, or a visible-mode sample whose threshold is the setup's)."""
    prov = Path(signal_datasets).parent / "provenance.json"
    if not prov.exists():
        return None
    try:
        stages = json.loads(prov.read_text()).get("stages", {})
    except json.JSONDecodeError:
        raise InputError("not JSON", file=str(prov)) from None
    found = [st.get("signal_ea_min_fraction") for st in stages.values() if isinstance(st, dict)]
    values = {float(v) for v in found if isinstance(v, int | float)}
    if len(values) > 1:
        raise InputError(f"several signal_ea_min_fraction values {sorted(values)}", file=str(prov),
                         field="stages.*.signal_ea_min_fraction")
    return values.pop() if values else None


def default_production(campaign: ds.Campaign) -> str:
    """The signal production of a campaign when none is named: visible for a visible-mode campaign, else
    bremsstrahlung."""
    return "visible" if campaign.selection == "visible" else "brem"


def run_stage(signal_datasets: str | Path, out: str | Path, *, masses: Iterable[float] | None = None,
              campaign: str | None = None, runs: Sequence[str] | None = None, production: str | None = None,
              executor: str = "iterative", workers: int = 2, scheduler: str | None = None,
              chunksize: int | None = None, syst: bool = True,
              ps_correction: bool = False) -> EfficiencyTable:
    """The efficiency stage: signal MC (listed in ``signal_datasets``; made by ``na64ana simulate
    --signal-sample`` or the pipeline, never here: the analysis does not import the simulator) -> the
    search's processor -> ``out/efficiency.json`` + ``.md``.

    ``production`` picks the samples and the processor: brem (default; sample ``signal``) and annihilation
    (``signal_annihilation``) through the invisible selection, primakoff (``signal_alp``) through the ALP
    selection, visible (default for a visible-mode campaign) through the visible selection. ``masses``
    filters the listed samples (default: all). ``out`` becomes a complete run output (cut flows, signal
    histograms and N-1, for plots and the cut optimisation) plus the table, which carries the MC's
    generation coverage ``signal_ea_min_fraction`` (from the signal MC's provenance). ``syst`` adds the
    run's published relative efficiency systematic. ``ps_correction`` (default on) corrects brem and
    annihilation efficiencies for the simulated preshower-threshold loss (:func:`with_ps_correction`);
    off: the raw simulated efficiency. Signal MC only: the provenance says ``"no-data"``.
    """
    clock = provenance.Clock()
    if signal_datasets is None:
        raise InputError("give the signal-MC datasets file (simulate it first: na64ana simulate "
                         "--signal-sample, or na64ana efficiency without --signal-datasets)",
                         field="--signal-datasets")
    signal_datasets = Path(signal_datasets)
    dsets = ds.load(signal_datasets)
    camp = dsets.campaign(campaign, file=str(signal_datasets))
    prod = production or default_production(camp)
    if prod not in SAMPLES:
        raise InputError(f"unknown production '{prod}' (choose {', '.join(SAMPLES)})", field="production")
    if (prod == "visible") != (camp.selection == "visible"):
        raise InputError(f"production '{prod}' does not fit the campaign's selection '{camp.selection}'",
                         file=str(signal_datasets), field="production")
    processor = PROCESSORS[prod]
    jobs = execute.plan(signal_datasets, campaign=campaign, runs=runs, samples=(SAMPLES[prod],),
                        processor=processor)
    if masses is not None:
        wanted = _check_masses(masses)
        jobs = [j for j in jobs
                if any(math.isclose(j.signal_mass_GeV or -1.0, m, rel_tol=1e-9) for m in wanted)]
        if not jobs:
            raise InputError(f"no signal samples for masses {wanted} GeV", file=str(signal_datasets))
    missing = [j.key for j in jobs if j.signal_mass_GeV is None or j.kind != "mc"]
    if missing:
        raise InputError(f"signal files need kind 'mc' and signal_mass_GeV: {missing}",
                         file=str(signal_datasets))
    camp = dsets.campaign(jobs[0].campaign, file=str(signal_datasets))
    coverage = signal_coverage(signal_datasets)
    out = provenance.prepare_outdir(out, stage="efficiency")
    result = execute.run(jobs, processor, executor=executor, workers=workers, scheduler=scheduler,
                         chunksize=chunksize or execute.DEFAULT_CHUNKSIZE)
    outputs.write_run(out, result, processor=processor, unblind=False, datasets_file=signal_datasets)
    run_out = RunOutput.load(out)
    rec = compute({k: cf.rows for k, cf in run_out.cutflows.items()}, jobs, camp,
                  datasets_file=signal_datasets, loose=outputs.load_hist(out, "plane_loose"), syst=syst,
                  production=prod, regions=run_out.regions.keys, signal_ea_min_fraction=coverage,
                  ps_correction=ps_correction)
    rec.dump(out / EfficiencyTable.file_name)
    (out / "efficiency.md").write_text(markdown(rec))
    provenance.write(out, "efficiency", inputs=[signal_datasets],
                     outputs=[EfficiencyTable.file_name, "efficiency.md"], blinding="no-data",
                     **provenance.executor_info(result.metrics),
                     metrics=clock.metrics(events=result.metrics.get("events")),
                     datasets_file=str(signal_datasets), syst=syst, production=prod, processor=processor,
                     ps_correction=ps_correction,
                     signal_ea_min_fraction=coverage,
                     masses=sorted({float(j.signal_mass_GeV or 0.0) for j in jobs}))
    return rec
