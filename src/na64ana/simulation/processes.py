"""Per-process truth: what each kind of triggered NA64 event deposits before detector response.

Each generator returns a *truth* dict of equal-length arrays (see :func:`blank`): the beam particle, the
true e-m-scale ECAL and PS deposits, whether the ECAL shower looks e-m, the number of charged particles
crossing the VETO, the four HCAL module deposits, the HCAL0 deposit, and extra tracker activity. The
detector response (smearing, noise, pile-up, trigger) is applied afterwards, identically for all processes.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import gammainc

from ..contract import Process
from . import beam
from .config import pub, tune

F32 = np.float32
PDG_E, PDG_MU, PDG_PI, PDG_K = 11, 13, -211, -321


def blank(n: int, process: Process, pdg: int | np.ndarray) -> dict[str, np.ndarray]:
    """Truth arrays for ``n`` events of ``process`` with nothing deposited yet."""
    def z() -> np.ndarray:  # np.zeros is calloc-backed: untouched pages cost nothing
        return np.zeros(n, dtype=F32)

    return {
        "process": np.full(n, int(process), dtype=np.int8),
        "pdg": np.broadcast_to(np.asarray(pdg, dtype=np.int32), (n,)).copy(),
        "e0": z(), "eaprime": z(), "p_true": z(), "theta_true": z(),
        "srd_tag": np.zeros(n, dtype=bool),
        "ecal": z(), "ps": z(), "em": np.ones(n, dtype=bool),
        "veto_mips": np.zeros(n, dtype=np.int16),
        "hcal": np.zeros((n, pub("detector.hcal_modules")), dtype=F32),
        "hcal0": z(),
        "extra_tracks": np.zeros(n, dtype=np.int16), "extra_straw": np.zeros(n, dtype=np.int16),
        "pileup_forced": np.zeros(n, dtype=bool),
    }


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate truth dicts (same keys)."""
    if not parts:
        return blank(0, Process.EM_SHOWER, PDG_E)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ------------------------------------------------------------------------------------------ shapes

@cache
def _ps_table() -> tuple[np.ndarray, np.ndarray]:
    """PS fraction of a gamma-profile e-m shower vs log(E): fraction within the first PS depth in X0."""
    log_e = np.linspace(np.log(1e-3), np.log(1e3), 512)
    b = tune("ecal.ps_profile_b")
    t_max = np.maximum(log_e - np.log(tune("ecal.pb_critical_energy_GeV")) - 0.5, 0.5)
    return log_e, gammainc(b * t_max + 1.0, b * pub("detector.ecal_ps_depth_X0"))


def em_ps(e_shower: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PS energy: the first ~4 X0 of a gamma-profile e-m shower, with log-normal fluctuations."""
    log_e, table = _ps_table()
    frac = np.interp(np.log(np.maximum(e_shower, 1e-3)), log_e, table).astype(F32)
    fl = np.exp(tune("ecal.ps_fluctuation") * rng.standard_normal(e_shower.size, dtype=F32))
    return (np.minimum(frac * fl, 1.0) * e_shower).astype(F32)


def _brems_weight(x: np.ndarray) -> np.ndarray:
    """Thin-target bremsstrahlung photon spectrum in x = k/E (complete screening)."""
    return (4.0 / 3.0 * (1.0 - x) + x * x) / x


@cache
def _inverse_cdf(kind: str, x_min: float, e_nominal: float) -> tuple[np.ndarray, np.ndarray]:
    """Tabulated inverse CDF of the photon fraction x for 'hadron' (brems), 'dimuon' (x sigma_mumu)."""
    x = np.linspace(x_min, 1.0, 2001)
    w = _brems_weight(x)
    if kind == "dimuon":
        # sigma(gamma -> mu mu) on Pb at 1, 10, 100 GeV (S001 Sec. V), log-log interpolated
        e_pts = np.log([1.0, 10.0, 100.0])
        s_pts = np.log(pub("dimuon.sigma_tot_pb_ub"))
        w = w * np.exp(np.interp(np.log(x * e_nominal), e_pts, s_pts))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(x))])
    return cdf / cdf[-1], x


def sample_photon_x(kind: str, n: int, e_nominal: float, rng: np.random.Generator) -> np.ndarray:
    x_min = tune("dimuon.x_min") if kind == "dimuon" else tune("hadron.photon_x_min")
    cdf, x = _inverse_cdf(kind, x_min, e_nominal)
    return np.interp(rng.random(n), cdf, x).astype(F32)


def photon_x_fraction_above(kind: str, x_cut: float, e_nominal: float) -> float:
    """Fraction of generated photons with x > x_cut (used to normalise rates defined in a sub-range)."""
    x_min = tune("dimuon.x_min") if kind == "dimuon" else tune("hadron.photon_x_min")
    cdf, x = _inverse_cdf(kind, x_min, e_nominal)
    return float(1.0 - np.interp(x_cut, x, cdf))


def _split_hcal(total: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Share a hadron shower over HCAL1-4 with an exponential longitudinal fall-off."""
    n_mod = pub("detector.hcal_modules")
    lo, hi = tune("hcal.hadron_attenuation")
    a = rng.uniform(lo, hi, total.size).astype(F32)
    w = np.exp(-a[:, None] * np.arange(n_mod, dtype=F32)[None, :])
    return (total[:, None] * w / w.sum(axis=1, keepdims=True)).astype(F32)


def _muon_hcal(n: int, per_module: float, rng: np.random.Generator) -> np.ndarray:
    shape = tune("hcal.muon_module_shape")
    return (rng.standard_gamma(shape, (n, pub("detector.hcal_modules")), dtype=F32) * (per_module / shape))


def _pair(key: str) -> tuple[float, float]:
    """A two-number tuning value (e.g. the Beta(a, b) parameters or a uniform range) as floats."""
    a, b = tune(key)
    return float(a), float(b)


def _mip(mean: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Landau-like MIP deposit: gamma-distributed around ``mean`` (shape ecal.mip_gamma_shape)."""
    k = tune("ecal.mip_gamma_shape")
    return mean * rng.standard_gamma(k, n) / k


def _electron_primary(t: dict[str, np.ndarray], e_nominal: float, rng: np.random.Generator) -> None:
    e0, theta = beam.electron_beam(t["e0"].size, e_nominal, rng)
    t["e0"][:], t["p_true"][:], t["theta_true"][:] = e0, e0, theta
    t["srd_tag"][:] = True


# --------------------------------------------------------------------------------------- processes

def dimuon(n: int, e_nominal: float, rng: np.random.Generator, *, lost: bool = False
           ) -> dict[str, np.ndarray]:
    """e- Z -> e- Z gamma, gamma Z -> mu+ mu- Z in the ECAL: two MIPs in VETO, ~2.5 GeV per HCAL module.

    ``lost``: both muons escape VETO and HCAL (the box background 'loss of muons', S001 Table IV).
    """
    t = blank(n, Process.DIMUON, PDG_E)
    _electron_primary(t, e_nominal, rng)
    x = sample_photon_x("dimuon", n, e_nominal, rng)
    shower = t["e0"] * (1.0 - x)
    t["ecal"][:] = shower + 2.0 * tune("ecal.muon_mip_GeV")
    t["ps"][:] = em_ps(shower, rng)
    if not lost:
        t["veto_mips"][:] = 2
        t["hcal"][:] = _muon_hcal(n, pub("detector.muon_mip_per_hcal_module_GeV"), rng)
    return t


def hadron_electroproduction(n: int, e_nominal: float, rng: np.random.Generator, *, lost: bool = False
                             ) -> dict[str, np.ndarray]:
    """e- Z -> e- + hadrons: E_ECAL + E_HCAL ~ E0; charged hadrons hit the VETO, neutral-only events do not.

    ``lost``: the hadrons escape detection (box background 'hadron interactions in the target').
    """
    t = blank(n, Process.HADRON_ELECTROPRODUCTION, PDG_E)
    _electron_primary(t, e_nominal, rng)
    x = sample_photon_x("hadron", n, e_nominal, rng)
    e_had = t["e0"] * x
    f_lo, f_hi = tune("hadron.em_fraction")
    f_em = rng.uniform(f_lo, f_hi, n).astype(F32)
    shower = t["e0"] * (1.0 - x)
    t["ecal"][:] = shower + f_em * e_had
    t["ps"][:] = em_ps(shower, rng)
    if lost:
        return t
    t["em"][:] = rng.random(n) < tune("hadron.em_like_fraction")
    t["hcal"][:] = _split_hcal((1.0 - f_em) * e_had, rng)
    charged = rng.random(n) >= tune("hadron.neutral_fraction")
    t["veto_mips"][:] = np.where(charged, 1 + rng.poisson(tune("hadron.extra_charged_mean"), n), 0)
    return t


def upstream_ecal_max() -> float:
    """Upper edge of the generated upstream E_ECAL: the trigger edge plus a few resolution sigmas, so
    that the measured spectrum stays exponential up to the (sharp, measured-energy) trigger cut."""
    return pub("trigger.ecal_max_GeV") + tune("upstream.ecal_overshoot_GeV")


def upstream_ecal_fraction(slope: float, lo: float, hi: float, cut: float) -> float:
    """Fraction of a truncated exp(slope*E) on [lo, hi] below ``cut``."""
    return float(np.expm1(slope * (cut - lo)) / np.expm1(slope * (hi - lo)))


def upstream(n: int, e_nominal: float, slope: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """e- (electro-nuclear) interactions in the beam line: exponential E_ECAL (slope per GeV), nothing in
    the VETO.

    Part of them leave extra straw hits, part send a hard neutral to zero degree (HCAL0), and a fraction
    ``upstream.hcal_fraction`` send neutral hadrons into the HCAL with a share ``upstream.hcal_share`` of
    the energy lost upstream (E0 - E_ECAL): E_HCAL > 10 GeV, the validation region. The same mechanism and
    the same E_ECAL slope as side band C (E_HCAL < 1 GeV), so the validation region tests the shape that is
    extrapolated into the box (issue 14 item 1; hadron electroproduction in the target stays there as the
    contamination it is in data).
    """
    t = blank(n, Process.UPSTREAM_INTERACTION, PDG_E)
    _electron_primary(t, e_nominal, rng)
    lo, hi = tune("upstream.ecal_min_GeV"), upstream_ecal_max()
    u = rng.random(n)
    e = lo + np.log1p(u * np.expm1(slope * (hi - lo))) / slope
    t["ecal"][:] = e
    t["ps"][:] = em_ps(t["ecal"], rng)
    trk = rng.random(n) < tune("upstream.tracker_activity_fraction")
    t["extra_straw"][:] = np.where(trk, 2 + rng.poisson(tune("upstream.straw_extra_mean"), n), 0)
    neutral = rng.random(n) < tune("upstream.hard_neutral_fraction")
    h_lo, h_hi = tune("upstream.hcal0_neutral_GeV")
    t["hcal0"][:] = np.where(neutral, rng.uniform(h_lo, h_hi, n), 0.0)
    to_hcal = rng.random(n) < tune("upstream.hcal_fraction")
    share = rng.uniform(*_pair("upstream.hcal_share"), n).astype(F32)
    e_had = np.where(to_hcal, share * np.maximum(t["e0"] - t["ecal"], 0.0), 0.0).astype(F32)
    t["hcal"][:] = _split_hcal(e_had, rng)
    return t


def upstream_clean_fraction(hcal0_installed: bool) -> float:
    """Fraction of upstream interactions with no extra straw hits, no hadrons in the HCAL and (if HCAL0
    exists) no hard neutral: the ones that can reach side band C and the box."""
    f = (1.0 - tune("upstream.tracker_activity_fraction")) * (1.0 - tune("upstream.hcal_fraction"))
    return f * (1.0 - tune("upstream.hard_neutral_fraction")) if hcal0_installed else f


def decay_in_flight(n: int, e_nominal: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """pi/K -> e nu and Ke3 after the tracker, with an accidental SR tag: a soft e- shower, nothing else."""
    ke3 = rng.random(n) < tune("decay.ke3_fraction")
    t = blank(n, Process.DECAY_IN_FLIGHT, np.where(ke3, PDG_K, PDG_PI))
    e0, theta = beam.hadron_beam(n, e_nominal, rng)
    t["e0"][:], t["p_true"][:], t["theta_true"][:] = e0, e0, theta
    t["srd_tag"][:] = True
    frac = np.where(ke3, rng.beta(*_pair("decay.ke3_energy_beta"), n), rng.random(n))  # 2-body: flat
    t["ecal"][:] = e0 * frac
    t["ps"][:] = em_ps(t["ecal"], rng)
    return t


def punch_through(n: int, e_nominal: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Shower energy escaping through cracks/holes as gammas missing VETO and HCAL: flat E_ECAL."""
    t = blank(n, Process.PUNCH_THROUGH, PDG_E)
    _electron_primary(t, e_nominal, rng)
    t["ecal"][:] = t["e0"] * rng.uniform(*_pair("punch.ecal_fraction"), n)
    t["ps"][:] = em_ps(t["ecal"], rng)
    return t


def pileup_region3(n: int, e_nominal: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Region III: an e- overlapping a beam hadron; E_ECAL + E_HCAL above E0, overlapping (non e-m) shapes."""
    t = blank(n, Process.PILEUP, PDG_E)
    _electron_primary(t, e_nominal, rng)
    t["ecal"][:] = t["e0"] * rng.beta(*_pair("pileup.region3_ecal_beta"), n)
    t["ps"][:] = em_ps(t["ecal"], rng)
    t["em"][:] = False
    t["hcal"][:] = _split_hcal(t["e0"] * rng.beta(*_pair("pileup.region3_hcal_beta"), n).astype(F32), rng)
    charged = rng.random(n) < tune("pileup.region3_charged_fraction")
    t["veto_mips"][:] = np.where(charged, 1 + rng.poisson(tune("pileup.region3_extra_charged_mean"), n), 0)
    t["pileup_forced"][:] = True
    return t


def beam_hadron_trigger(n: int, e_nominal: float, rng: np.random.Generator, *, tagged: bool
                        ) -> dict[str, np.ndarray]:
    """Stage 1 of :func:`beam_hadron`: only what the trigger sees (E_ECAL, E_PS) plus the private ``_f_ecal``
    and ``_inter`` that :func:`beam_hadron_finish` needs. ~88% of beam hadrons fail the trigger, so the
    trigger-level generator finishes only the triggered ones."""
    kaon = rng.random(n) < pub("beam.kaon_fraction") / (pub("beam.kaon_fraction") + pub("beam.pion_fraction"))
    t = blank(n, Process.BEAM_HADRON, np.where(kaon, PDG_K, PDG_PI))
    e0, theta = beam.hadron_beam(n, e_nominal, rng)
    t["e0"][:], t["p_true"][:], t["theta_true"][:] = e0, e0, theta
    t["srd_tag"][:] = tagged
    lam = tune("beam.pion_interaction_lengths")
    depth = rng.exponential(1.0, n) / lam  # in units of the ECAL depth
    inter = depth < 1.0
    f_ecal = np.where(inter, rng.uniform(*_pair("beam.hadron_ecal_fraction"), n) * (1.0 - depth), 0.0)
    mip = tune("ecal.muon_mip_GeV") * np.minimum(depth, 1.0)
    t["ecal"][:] = mip + f_ecal * e0
    in_ps = depth < pub("detector.ecal_ps_depth_X0") / pub("detector.ecal_depth_X0")
    ps_mip = _mip(tune("ecal.muon_ps_mip_GeV"), n, rng)
    t["ps"][:] = np.where(in_ps, f_ecal * e0 * rng.uniform(*_pair("beam.hadron_ps_fraction"), n), ps_mip)
    t["em"][:] = False
    t["_f_ecal"], t["_inter"] = f_ecal, inter
    return t


def beam_hadron_finish(t: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stage 2 of :func:`beam_hadron` (any subset of stage-1 events): HCAL and VETO."""
    f_ecal, inter = t.pop("_f_ecal"), t.pop("_inter")
    t["hcal"][:] = _split_hcal(((1.0 - f_ecal) * t["e0"]).astype(F32), rng)
    t["veto_mips"][:] = 1 + rng.poisson(np.where(inter, tune("beam.hadron_extra_charged_mean"), 0.0))
    return t


def beam_hadron(n: int, e_nominal: float, rng: np.random.Generator, *, tagged: bool) -> dict[str, np.ndarray]:
    """Beam pi-/K- (fake SR tag if ``tagged``): MIP or hadronic interaction in the ECAL, rest in HCAL."""
    return beam_hadron_finish(beam_hadron_trigger(n, e_nominal, rng, tagged=tagged), rng)


def beam_muon_trigger(n: int, e_nominal: float, rng: np.random.Generator, *, tagged: bool
                      ) -> dict[str, np.ndarray]:
    """Stage 1 of :func:`beam_muon`: E_ECAL and E_PS (99% fail the trigger)."""
    t = blank(n, Process.BEAM_MUON, PDG_MU)
    e0, theta = beam.hadron_beam(n, e_nominal, rng)
    t["e0"][:], t["p_true"][:], t["theta_true"][:] = e0, e0, theta
    t["srd_tag"][:] = tagged
    hard = rng.random(n) < tune("beam.muon_brems_probability")
    brems = np.where(hard, rng.exponential(tune("beam.muon_brems_mean_GeV"), n), 0.0)
    t["ecal"][:] = _mip(tune("ecal.muon_mip_GeV"), n, rng) + brems
    t["ps"][:] = _mip(tune("ecal.muon_ps_mip_GeV"), n, rng) + em_ps(brems, rng)
    t["em"][:] = brems > 0
    t["veto_mips"][:] = 1
    return t


def beam_muon_finish(t: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stage 2 of :func:`beam_muon` (any subset of stage-1 events): the HCAL MIPs."""
    t["hcal"][:] = _muon_hcal(t["e0"].size, 0.5 * pub("detector.muon_mip_per_hcal_module_GeV"), rng)
    return t


def beam_muon(n: int, e_nominal: float, rng: np.random.Generator, *, tagged: bool) -> dict[str, np.ndarray]:
    """Beam mu-: a MIP everywhere (rarely a hard brems in the ECAL), one VETO MIP, ~half a pair per module."""
    return beam_muon_finish(beam_muon_trigger(n, e_nominal, rng, tagged=tagged), rng)


def low_energy_electron(n: int, e_nominal: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The 50-70 GeV beam tail: a full e-m shower below the 80 GeV trigger edge, weaker SR."""
    t = blank(n, Process.LOW_ENERGY_ELECTRON, PDG_E)
    lo, hi = pub("beam.low_energy_electron_range_GeV")
    _, theta = beam.electron_beam(n, e_nominal, rng)
    e = rng.uniform(lo, hi, n).astype(F32) * (e_nominal / pub("beam.energy_GeV"))
    t["e0"][:], t["p_true"][:], t["theta_true"][:] = e, e, theta
    t["srd_tag"][:] = True
    t["ecal"][:] = e
    t["ps"][:] = em_ps(e, rng)
    return t


def em_ps_from(e_shower: np.ndarray, start_X0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PS energy of an e-m shower starting ``start_X0`` deep: the profile share left in the PS depth."""
    b = tune("ecal.ps_profile_b")
    e = np.maximum(np.asarray(e_shower, dtype=np.float64), 1e-3)
    t_max = np.maximum(np.log(e / tune("ecal.pb_critical_energy_GeV")) - 0.5, 0.5)
    room = np.maximum(pub("detector.ecal_ps_depth_X0") - np.asarray(start_X0, dtype=np.float64), 0.0)
    frac = gammainc(b * t_max + 1.0, b * room)
    fl = np.exp(tune("ecal.ps_fluctuation") * rng.standard_normal(e.size))
    return (np.minimum(frac * fl, 1.0) * np.asarray(e_shower)).astype(F32)


@cache
def _emitter_table(mass_GeV: float, e_nominal: float) -> tuple[np.ndarray, np.ndarray]:
    """(x grid, integral of the A' shape S above x) on a grid dense towards x -> 1 (S ~ 1/(1 - x))."""
    from ..physics.production import brem as xs

    x_max = float(xs.x_range(mass_GeV, e_nominal)[1])
    w = np.linspace(np.log(1.0 - tune("signal.emitter_x_min")), np.log(1.0 - x_max), 400)
    x = -np.expm1(w)
    return x, np.asarray(xs.shape_integral(mass_GeV, e_nominal, x), dtype=np.float64)


def emitter_energy(e0: np.ndarray, ea: np.ndarray, mass_GeV: float, e_nominal: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Energy of the e- that emitted the A' in the shower (>= E_A').

    With a primary track length flat in u = ln(E0/E) (Bethe-Heitler: the primary loses ~ one e-fold per
    X0), P(E_e | E_A') ~ S(x = E_A'/E_e) dx: x is S truncated to [E_A'/E0, x_max]. Heavy A' (S peaked at
    x -> 1) come from an e- that already radiated E0 - E_A' in the first X0, i.e. in the PS.
    """
    x, g = _emitter_table(float(mass_GeV), float(e_nominal))
    x0 = np.clip(ea / e0, x[0], x[-1])
    g0 = np.interp(x0, x, g)
    xs = np.interp((1.0 - rng.random(ea.size)) * g0, g[::-1], x[::-1])
    return np.clip(ea / np.maximum(xs, x0), ea, e0)


def signal(n: int, e_nominal: float, e_aprime: np.ndarray, rng: np.random.Generator, *,
           mass_GeV: float | None = None) -> dict[str, np.ndarray]:
    """e- Z -> e- Z A', A' invisible: the ECAL keeps E0 - E_A' as an e-m shower, nothing downstream.

    With ``mass_GeV`` the A' is emitted inside the shower (:func:`emitter_energy`) at depth
    t = signal.depth_per_efold_X0 * ln(E0/E_e): the energy radiated before (showers started ~t/2 deep)
    and the recoil e- (from t) fill the PS. Without it the A' is emitted at the ECAL front (old model).
    """
    t = blank(n, Process.SIGNAL, PDG_E)
    _electron_primary(t, e_nominal, rng)
    ea = np.minimum(np.asarray(e_aprime, dtype=F32) * (t["e0"] / e_nominal), t["e0"])
    t["eaprime"][:] = ea
    t["ecal"][:] = t["e0"] - ea
    if mass_GeV is None:
        t["ps"][:] = em_ps(t["ecal"], rng)
        return t
    e0 = t["e0"].astype(np.float64)
    ee = emitter_energy(e0, ea.astype(np.float64), mass_GeV, e_nominal, rng)
    depth = tune("signal.depth_per_efold_X0") * np.log(e0 / ee)
    t["ps"][:] = em_ps_from(e0 - ee, 0.5 * depth, rng) + em_ps_from(ee - ea, depth, rng)
    return t
