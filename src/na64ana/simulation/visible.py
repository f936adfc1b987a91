"""Visible-mode event simulation (A' -> e+ e- behind the tungsten calorimeter WCAL) writing ROOT TTrees.

Why a separate generator: the visible-mode detector (WCAL as target, V2/W2 veto, decay volume with S1-S4,
ECAL as the pair detector, V3, HCAL) and its files (``contract.VISIBLE_BRANCHES``) differ from the
invisible mode, and so do its backgrounds. Every number comes from ``data/visible_setup.toml`` (geometry,
beam energy: the published/parametrised setups; ``[simulation]``: tuning knobs with APPROX notes).

Processes (``contract.VisibleProcess`` in ``truth_process``), per beam particle:

* EM_SHOWER -- a beam electron showers in the WCAL: E_WCAL ~ E0, nothing downstream (rare V2 leakage);
* BEAM_HADRON -- a pi- (no SRD tag): punches through as a MIP or showers hadronically (late start, V2 and
  HCAL activity);
* K0_CONVERSION -- a hadron interaction with a leading K0_S -> pi0 pi0 whose photon converts after the
  veto: no V2, S4 ~ two MIPs, the photons in the ECAL (E_WCAL + E_ECAL ~ E0) -- the dominant background,
  vetoed by the SRD tag and the single-shower requirement;
* PILEUP -- an e-m shower with a second beam electron in the gate (E_WCAL ~ 2 E0 or out of time);
* SIGNAL -- e- Z -> e- Z A' in tungsten with E_A' from the production spectrum above threshold
  (:func:`na64ana.physics.visible.aprime_spectrum`), the decay point from the lifetime inside the decay
  volume, the pair's single e-m shower in the ECAL with E_ECAL = E_A' and two MIPs in S4.

Seeding follows the package convention: the caller passes a ``numpy.random.Generator`` made from
:func:`na64ana.simulation.campaign.run_seed`, so one seed reproduces a file bit for bit
(:func:`write_visible_tree` writes byte-reproducible files with the writer's content UUID and timestamps).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from ..contract import DEFAULT_TREE, VISIBLE_BRANCHES, VisibleProcess
from ..datasets import Run
from ..errors import InputError, OutputError
from ..physics import visible as vis
from .writer import DEFAULT_CHUNK, compression_codec, content_uuid, fixed_root_timestamps

__all__ = [
    "generate_visible_events",
    "generate_visible_run",
    "simulate_visible_signal_sample",
    "write_visible_tree",
]

PDG_ELECTRON = 11
PDG_PION = -211


def _t(setups: vis.VisibleSetups, key: str) -> Any:
    """A ``[simulation]`` tuning value of the setup file (KeyError names the missing entry)."""
    if key not in setups.simulation:
        raise KeyError(f"visible_setup.toml has no simulation entry '{key}'")
    return setups.simulation[key].value


# ------------------------------------------------------------------------------------------------------
# Detector response helpers (vectorised)


def _mips(n: int, count: float | np.ndarray, setups: vis.VisibleSetups, rng: np.random.Generator
          ) -> np.ndarray:
    """Counter energy (MeV) of ``count`` MIPs: a sum of log-normal (Landau-like) MIPs plus noise."""
    sigma = float(_t(setups, "counter_mip_sigma"))
    count = np.broadcast_to(np.asarray(count, dtype=float), (n,))
    out = np.zeros(n)
    for k in range(int(count.max()) if n else 0):
        has = count > k
        out += np.where(has, rng.lognormal(-0.5 * sigma**2, sigma, n), 0.0)
    return out + np.abs(rng.normal(0.0, float(_t(setups, "counter_noise_MeV")), n))


def _smear(e: np.ndarray, stochastic: float, constant: float, rng: np.random.Generator) -> np.ndarray:
    e = np.asarray(e, dtype=float)
    sigma = np.sqrt(stochastic**2 * np.clip(e, 0.0, None) + (constant * e) ** 2)
    return np.clip(e + sigma * rng.standard_normal(e.size), 0.0, None)


def _empty(n: int) -> dict[str, np.ndarray]:
    return {b.name: np.zeros(n, dtype=b.dtype) for b in VISIBLE_BRANCHES}


def _beam(a: dict[str, np.ndarray], setup: vis.Setup, setups: vis.VisibleSetups, electron: np.ndarray,
          rng: np.random.Generator) -> None:
    """Tracker, SRD and the upstream counters for every event; SRD fires for electrons only."""
    n = electron.size
    e0 = setup.e0
    a["trigger"][:] = 1
    a["track_n"][:] = np.where(rng.random(n) < float(_t(setups, "multi_track_prob")), 2, 1)
    a["track_p"][:] = e0 * (1.0 + float(_t(setups, "momentum_resolution")) * rng.standard_normal(n))
    a["truth_e0"][:] = e0
    a["truth_pdg"][:] = np.where(electron, PDG_ELECTRON, PDG_PION)
    tagged = np.where(electron, rng.random(n) < float(_t(setups, "srd_electron_efficiency")),
                      rng.random(n) < float(_t(setups, "srd_hadron_fake_rate")))
    mean = float(_t(setups, "srd_electron_mean_MeV"))
    for i in range(3):
        a[f"srd_e{i}"][:] = np.where(tagged, np.clip(rng.gamma(4.0, mean / 4.0, n), 1.05, 79.0),
                                     rng.exponential(0.1, n))
        a[f"srd_t{i}"][:] = rng.normal(0.0, 0.5, n)
    for c in ("s1_e", "s2_e", "s3_e"):
        a[c][:] = _mips(n, 1, setups, rng)
    a["weight"][:] = 1.0


def _quiet_downstream(a: dict[str, np.ndarray], idx: np.ndarray, setups: vis.VisibleSetups,
                      rng: np.random.Generator) -> None:
    """Noise only in V2, S4, ECAL, V3, HCAL for the events ``idx``."""
    n = idx.size
    a["v2_e"][idx] = _mips(n, 0, setups, rng)
    a["s4_e"][idx] = _mips(n, 0, setups, rng)
    a["v3_e"][idx] = _mips(n, 0, setups, rng)
    a["ecal_e"][idx] = np.abs(rng.normal(0.0, float(_t(setups, "ecal_noise_GeV")), n))
    a["ecal_ncl"][idx] = 0
    a["ecal_chi2"][idx] = 0.0
    a["ecal_t"][idx] = rng.normal(0.0, float(_t(setups, "ecal_time_sigma_ns")), n)
    for i in range(4):
        a[f"hcal_e{i}"][idx] = np.abs(rng.normal(0.0, float(_t(setups, "hcal_noise_GeV")), n)) / 4.0


def _em_wcal(a: dict[str, np.ndarray], idx: np.ndarray, energy: np.ndarray, setup: vis.Setup,
             setups: vis.VisibleSetups, rng: np.random.Generator) -> None:
    """An e-m shower of ``energy`` contained in the WCAL, starting in its first X0."""
    n = idx.size
    leak = rng.exponential(float(_t(setups, "em_leak_mean_fraction")), n)
    a["wcal_e"][idx] = _smear(energy * (1.0 - np.clip(leak, 0.0, 1.0)),
                              float(_t(setups, "wcal_resolution_stochastic")),
                              float(_t(setups, "wcal_resolution_constant")), rng)
    a["wcal_ps_e"][idx] = energy * rng.gamma(4.0, float(_t(setups, "wcal_ps_fraction_em")) / 4.0, n)
    a["wcal_t"][idx] = rng.normal(0.0, float(_t(setups, "wcal_time_sigma_ns")), n)


def _ecal_em(a: dict[str, np.ndarray], idx: np.ndarray, energy: np.ndarray, setups: vis.VisibleSetups,
             rng: np.random.Generator) -> None:
    """One e-m shower of ``energy`` in the ECAL (the unresolved e+e- pair or one photon)."""
    n = idx.size
    a["ecal_e"][idx] = _smear(energy, float(_t(setups, "ecal_resolution_stochastic")), 0.0, rng)
    a["ecal_ncl"][idx] = 1
    a["ecal_chi2"][idx] = rng.gamma(3.0, float(_t(setups, "ecal_chi2_em_mean")) / 3.0, n)
    a["ecal_x"][idx] = rng.normal(0.0, 5.0, n)
    a["ecal_y"][idx] = rng.normal(0.0, 5.0, n)


# ------------------------------------------------------------------------------------------------------
# Processes


def _em_shower(a, idx, setup, setups, rng):
    _em_wcal(a, idx, np.full(idx.size, setup.e0), setup, setups, rng)
    _quiet_downstream(a, idx, setups, rng)
    leak = rng.random(idx.size) < float(_t(setups, "v2_leak_prob"))
    a["v2_e"][idx[leak]] = _mips(int(leak.sum()), 1, setups, rng)
    a["truth_process"][idx] = VisibleProcess.EM_SHOWER


def _beam_hadron(a, idx, setup, setups, rng):
    n = idx.size
    e0 = setup.e0
    _quiet_downstream(a, idx, setups, rng)
    depth = rng.exponential(float(_t(setups, "hadron_lambda_X0")), n)  # interaction depth in X0
    interacts = depth < setup.wcal_X0.f
    mip_w = float(_t(setups, "mip_wcal_GeV"))
    frac = np.clip(rng.normal(float(_t(setups, "hadron_visible_fraction")), 0.15, n), 0.05, 1.0)
    a["wcal_e"][idx] = np.where(interacts, frac * e0 * (1 - depth / setup.wcal_X0.f) + mip_w, mip_w)
    a["wcal_ps_e"][idx] = np.where(depth < 2.0, frac * e0 * 0.02, float(_t(setups, "wcal_ps_mip_GeV")))
    a["wcal_t"][idx] = rng.normal(0.0, float(_t(setups, "wcal_time_sigma_ns")), n)
    # punch-through (no interaction) or leaking hadron-shower products: V2, S4, ECAL MIP, V3, HCAL
    a["v2_e"][idx] = _mips(n, np.where(interacts, rng.poisson(3.0, n), 1), setups, rng)
    a["s4_e"][idx] = _mips(n, np.where(interacts, rng.poisson(2.0, n), 1), setups, rng)
    a["ecal_e"][idx] = np.where(interacts, (1 - frac) * e0 * rng.uniform(0.1, 0.5, n),
                                float(_t(setups, "mip_ecal_GeV")))
    a["ecal_ncl"][idx] = np.where(interacts, rng.integers(1, 4, n), 1)
    a["ecal_chi2"][idx] = rng.gamma(3.0, 3.0, n)
    a["v3_e"][idx] = _mips(n, 1, setups, rng)
    rest = np.where(interacts, (1 - frac) * e0 * rng.uniform(0.2, 0.6, n),
                    float(_t(setups, "mip_hcal_GeV")))
    for i in range(4):
        a[f"hcal_e{i}"][idx] = rest / 4.0 * rng.uniform(0.5, 1.5, n)
    a["truth_process"][idx] = VisibleProcess.BEAM_HADRON


def _k0_conversion(a, idx, setup, setups, rng):
    """pi- -> leading K0_S (x E0) in the WCAL; K0_S -> pi0 pi0 in the decay volume; a photon converts."""
    n = idx.size
    e0 = setup.e0
    lo, hi = setups.simulation["k0_energy_fraction_range"].value
    x = rng.uniform(lo, hi, n)
    _quiet_downstream(a, idx, setups, rng)
    depth = rng.exponential(float(_t(setups, "hadron_lambda_X0")), n)
    a["wcal_e"][idx] = _smear((1 - x) * e0 * float(_t(setups, "hadron_visible_fraction")),
                              float(_t(setups, "wcal_resolution_stochastic")), 0.0, rng)
    a["wcal_ps_e"][idx] = np.where(depth < 2.0, (1 - x) * e0 * 0.05, float(_t(setups, "wcal_ps_mip_GeV")))
    a["wcal_t"][idx] = rng.normal(0.0, float(_t(setups, "wcal_time_sigma_ns")), n)
    a["s4_e"][idx] = _mips(n, 2, setups, rng)  # the converted photon's pair
    single = rng.random(n) < float(_t(setups, "k0_single_cluster_prob"))
    a["ecal_e"][idx] = _smear(x * e0, float(_t(setups, "ecal_resolution_stochastic")), 0.0, rng)
    a["ecal_ncl"][idx] = np.where(single, 1, rng.integers(2, 5, n))
    a["ecal_chi2"][idx] = rng.gamma(3.0, float(_t(setups, "k0_chi2_mean")) / 3.0, n)
    a["truth_decay_z"][idx] = rng.uniform(setup.shield_cm * 10, setup.s4_z_mm.f, n)
    a["truth_process"][idx] = VisibleProcess.K0_CONVERSION


def _pileup(a, idx, setup, setups, rng):
    _em_shower(a, idx, setup, setups, rng)
    dt = rng.uniform(-1.0, 1.0, idx.size) * float(_t(setups, "pileup_dt_ns"))
    inside = np.abs(dt) < float(_t(setups, "wcal_gate_ns"))
    e_second = _smear(np.full(idx.size, setup.e0), float(_t(setups, "wcal_resolution_stochastic")),
                      float(_t(setups, "wcal_resolution_constant")), rng)
    a["wcal_e"][idx] += np.where(inside, e_second, 0.0)
    a["wcal_t"][idx] += np.where(inside, 0.5 * dt, dt)  # the pulse time shifts towards the second one
    a["truth_process"][idx] = VisibleProcess.PILEUP


def _signal(a, idx, setup, setups, rng, mass: float, eps: float):
    """A' from the production spectrum in W, decaying to e+e- between the veto and the ECAL."""
    n = idx.size
    e0 = setup.e0
    spec = vis.aprime_spectrum(mass, e0, setups.threshold_GeV(setup))
    p = vis.decay_probability(spec.centres, mass, eps, setup.shield_cm, setup.decay_cm)
    w = spec.counts * p
    if not np.any(w > 0):
        raise InputError(f"no A' of mass {mass} GeV decays in the decay volume at eps = {eps}",
                         field="signal")
    cdf = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    e_a = np.interp(rng.random(n), cdf, spec.edges)
    # decay point: exponential with l(E_A') truncated to [L_sh, L_sh + L_dec]
    lam = vis.decay_length_cm(e_a, mass, eps)
    u = rng.random(n)
    lo = np.exp(-setup.shield_cm / lam)
    hi = np.exp(-(setup.shield_cm + setup.decay_cm) / lam)
    z_cm = -lam * np.log(lo - u * (lo - hi))
    _em_wcal(a, idx, e0 - e_a, setup, setups, rng)
    a["wcal_ps_e"][idx] = e0 * rng.gamma(4.0, float(_t(setups, "wcal_ps_fraction_em")) / 4.0, n)
    _quiet_downstream(a, idx, setups, rng)
    a["s4_e"][idx] = _mips(n, 2, setups, rng)
    _ecal_em(a, idx, e_a, setups, rng)
    a["ecal_t"][idx] = rng.normal(0.0, float(_t(setups, "ecal_time_sigma_ns")), n)
    a["truth_eaprime"][idx] = e_a
    a["truth_decay_z"][idx] = 10.0 * z_cm
    a["truth_process"][idx] = VisibleProcess.SIGNAL


# ------------------------------------------------------------------------------------------------------
# Public generators


def generate_visible_events(setup: vis.Setup, n_beam: int, rng: np.random.Generator, *,
                            setups: vis.VisibleSetups | None = None, run_number: int = 0,
                            n_signal: int = 0, signal: tuple[float, float] | None = None,
                            n_k0: int | None = None, info: dict | None = None) -> dict[str, np.ndarray]:
    """``n_beam`` beam particles through the visible-mode setup, plus ``n_signal`` A' events.

    The beam is electrons and a ``hadron_fraction`` of pi-; a hadron interacts within the WCAL with
    probability 1 - exp(-X0_WCAL/lambda), a ``charge_exchange_fraction`` of those gives a leading K0 and a
    ``k0s_to_pi0pi0_fraction`` x ``conversion_after_veto_prob`` of these the K0_CONVERSION signature
    (``n_k0`` forces that count instead, for studies); a ``pileup_prob`` of the electrons is PILEUP.
    ``signal = (mass_GeV, eps)`` is needed when ``n_signal > 0``. Events are shuffled (by ``rng``).
    ``info`` receives the EOT represented (the beam electrons) and the count per process."""
    setups = setups or vis.load_setups()
    if int(n_beam) != n_beam or n_beam < 0 or int(n_signal) != n_signal or n_signal < 0:
        raise InputError("n_beam and n_signal must be non-negative integers", field="n_events")
    if n_signal and signal is None:
        raise InputError("signal events need signal = (mass_GeV, eps)", field="signal")
    n_beam, n_signal = int(n_beam), int(n_signal)
    n_had = int(rng.binomial(n_beam, float(_t(setups, "hadron_fraction"))))
    n_el = n_beam - n_had
    forced = n_k0 is not None
    if n_k0 is None:
        p_int = 1.0 - np.exp(-setup.wcal_X0.f / float(_t(setups, "hadron_lambda_X0")))
        p_k0 = (p_int * float(_t(setups, "charge_exchange_fraction"))
                * float(_t(setups, "k0s_to_pi0pi0_fraction"))
                * float(_t(setups, "conversion_after_veto_prob")))
        n_k0 = int(rng.binomial(n_had, p_k0))
    n_k0 = int(n_k0)
    if n_k0 < 0:
        raise InputError(f"n_k0 must be >= 0, got {n_k0}", field="n_k0")
    n_had_other = n_had if forced else n_had - n_k0  # forced K0 events come on top of the beam
    n_pu = int(rng.binomial(max(n_el - n_signal, 0), float(_t(setups, "pileup_prob"))))
    n_em = max(n_el - n_signal - n_pu, 0)
    counts = {"em_shower": n_em, "pileup": n_pu, "beam_hadron": n_had_other, "k0_conversion": n_k0,
              "signal": n_signal}
    n = sum(counts.values())
    a = _empty(n)
    labels = np.repeat(np.arange(5), list(counts.values()))
    rng.shuffle(labels)
    electron = (labels == 0) | (labels == 1) | (labels == 4)
    _beam(a, setup, setups, electron, rng)
    makers = (_em_shower, _pileup, _beam_hadron, _k0_conversion)
    for k, make in enumerate(makers):
        idx = np.flatnonzero(labels == k)
        if idx.size:
            make(a, idx, setup, setups, rng)
    idx = np.flatnonzero(labels == 4)
    if idx.size:
        assert signal is not None
        _signal(a, idx, setup, setups, rng, float(signal[0]), float(signal[1]))
    a["run"][:] = run_number
    a["event"][:] = np.arange(n)
    a["spill"][:] = 1 + np.arange(n) // 10_000
    if info is not None:
        info["eot"] = float(n_el)
        info["generated"] = counts
    return a


def generate_visible_run(run: Run, *, campaign: str, run_name: str, rng: np.random.Generator,
                         beam_energy: float, n_events: int | None = None,
                         signal: tuple[float, float] | None = None, info: dict | None = None,
                         setups: vis.VisibleSetups | None = None) -> dict[str, np.ndarray]:
    """One visible-mode run of a datasets.json campaign: its ``setup`` checked against the campaign.

    ``n_events`` beam particles (default ``[simulation] default_beam_particles``); with ``signal = (mass,
    eps)`` the A' count is drawn from Poisson(EOT x efficiency-free yield per EOT), as in data."""
    setups = setups or vis.load_setups()
    if run.setup is None:
        raise InputError("a visible-mode run needs 'setup' (a configuration of visible_setup.toml)",
                         field=f"campaigns.{campaign}.runs.{run_name}.setup")
    setup = vis.setup_for_campaign(setups, run.setup, campaign=campaign, beam_energy_GeV=beam_energy)
    n_beam = int(_t(setups, "default_beam_particles")) if n_events is None else int(n_events)
    n_signal = 0
    if signal is not None:
        mu = n_beam * float(vis.yield_per_eot(signal[0], signal[1], setup, setups=setups))
        n_signal = int(rng.poisson(mu))
    number = int(run_name) if run_name.isdigit() else run.year
    return generate_visible_events(setup, n_beam, rng, setups=setups, run_number=number, n_signal=n_signal,
                                   signal=signal, info=info)


def simulate_visible_signal_sample(setup: vis.Setup, *, mass_GeV: float, eps: float, n_events: int,
                                   rng: np.random.Generator, setups: vis.VisibleSetups | None = None,
                                   info: dict | None = None) -> dict[str, np.ndarray]:
    """Signal MC: ``n_events`` A' decaying in the decay volume; weight = A' per EOT per generated event."""
    setups = setups or vis.load_setups()
    a = generate_visible_events(setup, 0, rng, setups=setups, n_signal=n_events, signal=(mass_GeV, eps),
                                n_k0=0)
    y = float(vis.yield_per_eot(mass_GeV, eps, setup, setups=setups))
    a["weight"][:] = y / max(n_events, 1)
    if info is not None:
        info["eot"] = 0.0
        info["yield_per_eot"] = y
    return a


# ------------------------------------------------------------------------------------------------------
# Writing


def write_visible_tree(path: str | Path, arrays: dict[str, np.ndarray], *, compression: str = "lz4",
                       tree: str = DEFAULT_TREE, chunk: int = DEFAULT_CHUNK) -> int:
    """Write visible-contract ``arrays`` as a TTree, atomically and byte-reproducibly; returns the entries.

    The same recipe as :func:`na64ana.simulation.writer.write_tree` (content UUID, fixed timestamps,
    temporary folder + rename) for the visible branch set (that writer is bound to the invisible one)."""
    path = Path(path)
    codec = compression_codec(compression)
    names = [b.name for b in VISIBLE_BRANCHES if b.name in arrays]
    missing = [b.name for b in VISIBLE_BRANCHES if b.name not in arrays and not b.mc_only]
    if missing:
        raise InputError(f"missing visible-contract branches {missing}", field="arrays")
    n = len(arrays[names[0]]) if names else 0
    bad = [k for k in names if len(arrays[k]) != n]
    if bad:
        raise InputError(f"branches {bad} have a length different from {n}", field="arrays")
    types = {b.name: np.dtype(b.dtype) for b in VISIBLE_BRANCHES if b.name in arrays}
    if not path.parent.is_dir():
        raise OutputError("output folder does not exist", file=str(path.parent))
    if int(chunk) != chunk or chunk <= 0:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}", field="chunk")
    chunk = int(chunk)
    file_id = content_uuid(path.name, arrays, names, types, tree=tree, compression=compression, chunk=chunk)
    tmp_dir = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp = tmp_dir / path.name
    try:
        tmp_dir.mkdir(exist_ok=True)
        with fixed_root_timestamps(), \
                uproot.recreate(tmp, compression=codec, uuid_function=lambda: file_id) as f:
            t = f.mktree(tree, types)
            for start in range(0, max(n, 1), chunk):
                t.extend({k: np.ascontiguousarray(arrays[k][start:start + chunk], dtype=types[k])
                          .astype(types[k].newbyteorder(">")) for k in names})
        tmp.replace(path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return n
