"""The in-memory generator: one run's triggered events as contract arrays (no I/O).

Skim level draws Poisson counts per sub-process from rates per EOT at the run's full EOT, so 1e11 EOT
cost only the ~1e6 events that end up in the skim. Trigger level draws a fixed number of triggered
events with the full trigger-level composition (dominated by the low-energy tail and beam hadrons).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..contract import BRANCHES, Process
from ..datasets import Run
from ..errors import InputError
from . import processes as P
from .config import pub
from .detector import pileup_probabilities, respond, respond_rest, respond_trigger, trigger
from .rates import E_BEAM, BeamSpec, Source, skim_sources, trigger_sources

Level = Literal["skim", "trigger"]
LEVELS = ("skim", "trigger")
_BATCH = 1 << 18  # trigger level works in cache-friendly batches
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def run_number(run_name: str, fallback: int = 0) -> int:
    """Integer run number for the ``run`` branch: digits as is, roman numerals (I, II, III) decoded."""
    if run_name.isdigit():
        return int(run_name)
    name = run_name.upper()
    if name and all(c in _ROMAN for c in name):
        total = 0
        for a, b in zip(name, name[1:] + " ", strict=True):
            v = _ROMAN[a]
            total += -v if b != " " and _ROMAN[b] > v else v
        return total
    return fallback


def eot_weighted_intensity(n: int, intensity_range: tuple[float, float], rng: np.random.Generator
                           ) -> np.ndarray:
    """Intensity seen by EOT-uniform events when spill intensities are uniform in the range (pdf ~ I)."""
    lo, hi = intensity_range
    return np.sqrt(lo * lo + rng.random(n) * (hi * hi - lo * lo))


def skim_mask(arrays: dict[str, np.ndarray], e_nominal: float) -> np.ndarray:
    """The skim: SR-tag energies in the window in all modules and a beam track near E0 (loose plane).

    Deliberately looser than the analysis cuts (no timing, angle, shape, VETO, HCAL requirement).
    """
    lo, hi = pub("detector.srd_window_MeV")
    ok = np.ones(arrays["ecal_e"].size, dtype=bool)
    for i in range(pub("detector.srd_modules")):
        e = arrays[f"srd_e{i}"]
        ok &= (e > lo) & (e < hi)
    p = arrays["track_p"]
    return ok & (p > 0.8 * e_nominal) & (p < 1.2 * e_nominal)


def _check_eot(eot: float | None, run: Run, run_name: str) -> float:
    eot = run.eot if eot is None else eot
    if eot is None or not np.isfinite(eot) or eot <= 0:
        raise InputError(f"EOT must be a positive number, got {eot!r}", field=f"runs.{run_name}.eot")
    return float(eot)


def _truth_from_sources(sources: list[Source], counts: np.ndarray, rng: np.random.Generator
                        ) -> dict[str, np.ndarray]:
    """Truth of ``counts`` events per source, already in random order (interleaved, no permutation).

    A random label sequence with the given counts decides which slots each source fills; every source
    generates its block at once and scatters it into its (sorted) slots, which is much cheaper than a
    full-permutation gather of every truth array afterwards.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    live = np.flatnonzero(counts > 0)
    if live.size <= 1:
        parts = [sources[i].gen(int(counts[i]), rng) for i in live]
        return parts[0] if parts else P.concat([])
    # labels with exactly these counts in random order: sort uniform keys drawn per source block
    cum = np.cumsum(counts)
    labels = np.searchsorted(cum, rng.permutation(n), side="right") if n < 4096 else \
        _shuffled_labels(counts, rng)
    out: dict[str, np.ndarray] = {}
    for i in live:
        slots = np.flatnonzero(labels == i)
        part = sources[i].gen(slots.size, rng)
        if not out:
            out = {k: np.empty((n, *v.shape[1:]), dtype=v.dtype) for k, v in part.items()}
        for k, v in part.items():
            out[k][slots] = v
    return out


def _shuffled_labels(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random sequence with ``counts[i]`` copies of label i (sequential draws, no Fisher-Yates shuffle).

    Slot j takes label i with probability (remaining of i) / (remaining slots): realised as a categorical
    draw with the initial shares, then the surplus/deficit per label fixed by relabelling random slots.
    """
    n = int(counts.sum())
    labels = np.searchsorted(np.cumsum(counts) / n, rng.random(n), side="right").astype(np.int16)
    labels = np.minimum(labels, counts.size - 1)
    have = np.bincount(labels, minlength=counts.size)
    over = [np.flatnonzero(labels == i)[rng.choice(int(have[i]), int(have[i] - counts[i]), replace=False)]
            for i in np.flatnonzero(have > counts)]
    if over:
        free = np.concatenate(over)
        free = free[rng.permutation(free.size)]
        need = np.clip(counts - have, 0, None)
        labels[free] = np.repeat(np.arange(counts.size, dtype=np.int16), need)
    return labels


def _thin_pileup(truth: dict[str, np.ndarray], intensity: np.ndarray, i_max: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Keep region-III events with P_pileup(I) / P_pileup(I_max): their rate grows with intensity."""
    keep = np.ones(intensity.size, dtype=bool)
    forced = np.flatnonzero(truth["pileup_forced"])
    p = pileup_probabilities(intensity[forced])["ecal"] / pileup_probabilities(np.array([i_max]))["ecal"][0]
    keep[forced] = rng.random(forced.size) < p
    return keep


def _take(d: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in d.items()}


def _intensities(truth: dict[str, np.ndarray], run: Run, rng: np.random.Generator
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """EOT-weighted intensities, with region-III pile-up thinned to its intensity dependence."""
    intensity = eot_weighted_intensity(truth["e0"].size, run.intensity_e_per_spill, rng).astype(np.float32)
    if truth["pileup_forced"].any():
        keep = np.flatnonzero(_thin_pileup(truth, intensity, run.intensity_e_per_spill[1], rng))
        truth, intensity = _take(truth, keep), intensity[keep]
    return truth, intensity


def _simulate(truth: dict[str, np.ndarray], run: Run, rng: np.random.Generator
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Give intensities, thin region III, apply the detector -> (truth, response, triggered), all events.

    ``truth`` must already be in random order (see :func:`_truth_from_sources`).
    """
    truth, intensity = _intensities(truth, run, rng)
    det = respond(truth, intensity, hcal0_installed=run.hcal0, rng=rng)
    return truth, det, trigger(det["ecal_e"], det["ecal_ps_e"])


def _simulate_triggered(truth: dict[str, np.ndarray], run: Run, rng: np.random.Generator
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """As :func:`_simulate` but only the triggered events get the full response (the rest is not kept).

    Returns (truth, response) of the triggered events and the number of candidates after thinning.
    """
    truth, intensity = _intensities(truth, run, rng)
    stage = respond_trigger(truth, intensity, rng)
    keep = np.flatnonzero(trigger(stage["ecal_e"], stage["ecal_ps_e"]))
    truth = {k: v[keep] for k, v in truth.items() if k not in _STAGE1_ONLY}
    intensity, stage = intensity[keep], _take(stage, keep)
    return truth, respond_rest(truth, intensity, stage, hcal0_installed=run.hcal0, rng=rng), intensity.size


_STAGE1_ONLY = ("ecal", "ps", "pileup_forced")  # truth used by the trigger stage only


def _spills(n: int, eot: float, intensity_nominal: float, rng: np.random.Generator) -> np.ndarray:
    """Spill numbers (sorted) of ``n`` events uniform in EOT: multinomial counts per spill, no sort."""
    n_full, rest = divmod(eot, intensity_nominal)
    n_spills = int(n_full) + (rest > 0)
    if n == 0 or n_spills > 10_000_000:  # absurd spill counts: fall back to sorting positions
        return (1 + np.sort(rng.uniform(0.0, eot, n)) // intensity_nominal).astype(np.int32)
    p = np.full(n_spills, intensity_nominal / eot)
    p[-1] = max(0.0, 1.0 - p[:-1].sum())
    counts = rng.multinomial(n, p / p.sum())
    return np.repeat(np.arange(1, n_spills + 1, dtype=np.int32), counts)


def assemble(truth: dict[str, np.ndarray], det: dict[str, np.ndarray], *, run_no: int, eot: float,
             intensity_nominal: float, rng: np.random.Generator,
             weight: float = 1.0) -> dict[str, np.ndarray]:
    """Contract arrays in branch order: events spread over the run's spills in EOT order."""
    n = truth["e0"].size
    out = {
        "run": np.full(n, run_no, dtype=np.int32),
        "spill": _spills(n, eot, intensity_nominal, rng),
        "event": np.arange(1, n + 1, dtype=np.int64),
        "trigger": np.ones(n, dtype=np.uint16),
        **det,
        "truth_process": truth["process"], "truth_pdg": truth["pdg"], "truth_e0": truth["e0"],
        "truth_eaprime": truth["eaprime"], "weight": np.full(n, weight, dtype=np.float32),
    }
    return {b.name: np.ascontiguousarray(out[b.name], dtype=b.dtype) for b in BRANCHES}


def signal_truth(mass_GeV: float, eps: float, n: int, rng: np.random.Generator, *, e_nominal: float,
                 ea_min: float) -> dict[str, np.ndarray]:
    """``n`` A' events with E_A' > ea_min from the physics spectrum (na64ana.physics.yields)."""
    from ..physics.yields import sample_aprime_energy

    ea = sample_aprime_energy(mass_GeV, n, rng, e0=e_nominal, ea_min=ea_min)
    return P.signal(n, e_nominal, ea, rng, mass_GeV=mass_GeV)


def signal_count_rate(mass_GeV: float, eps: float, *, e_nominal: float, ea_min: float) -> float:
    """A' per EOT with E_A' > ea_min at (mass, eps)."""
    from ..physics.yields import signal_yield_per_eot

    return signal_yield_per_eot(mass_GeV, eps, e0=e_nominal, emiss_min=ea_min)


def generate_events(run: Run, *, campaign: str, run_name: str, level: Level, rng: np.random.Generator,
                    eot: float | None = None, n_events: int | None = None, beam_energy: float = 100.0,
                    signal: tuple[float, float] | None = None, emiss_min: float = 50.0,
                    info: dict | None = None, beam: BeamSpec = E_BEAM, box_ecal_max: float | None = None,
                    spill_offset: int = 0) -> dict[str, np.ndarray]:
    """All contract branches (truth_* and weight = 1 included) for the triggered events of one run.

    ``level="skim"``: the loose-plane skim at ``eot`` (default: the run's EOT). ``level="trigger"``:
    ``n_events`` triggered events (their EOT equivalent is returned by :func:`trigger_level_eot`).
    ``signal=(mass_GeV, eps)`` adds A' events (E_A' above 0.8 * emiss_min, so migrations are included).
    ``info``, if given, receives ``eot`` (the EOT the events represent) and ``generated`` per sub-process.
    ``beam``: beam particle and contaminants (an e+ beam conjugates every truth PDG code);
    ``box_ecal_max``: the run's signal-box edge the box backgrounds are normalised below (default 50 GeV);
    ``spill_offset``: added to the spill numbers (one part of a run split into several files).
    """
    info = {} if info is None else info
    if level not in LEVELS:
        raise InputError(f"unknown level '{level}' (choose skim or trigger)", field="level")
    if not np.isfinite(beam_energy) or beam_energy <= 0:
        raise InputError(f"beam energy must be positive, got {beam_energy!r}", field="beam_energy")
    run_no = run_number(run_name)
    if level == "skim":
        eot = _check_eot(eot, run, run_name)
        sources = skim_sources(campaign, run_name, run, e_nominal=beam_energy, beam=beam,
                               box_ecal_max=box_ecal_max)
        if signal is not None:
            ea_min = 0.8 * emiss_min
            sig = signal
            sources = [*sources, Source("signal", Process.SIGNAL,
                                        signal_count_rate(*sig, e_nominal=beam_energy, ea_min=ea_min),
                                        lambda n, r: signal_truth(*sig, n, r, e_nominal=beam_energy,
                                                                  ea_min=ea_min))]
        counts = rng.poisson([s.rate_per_eot * eot for s in sources])
        truth = _truth_from_sources(sources, counts, rng)
        info.update(eot=eot, generated={s.name: int(k) for s, k in zip(sources, counts, strict=True)})
        truth, det, _ = _simulate_triggered(truth, run, rng)
        keep = np.flatnonzero(skim_mask(det, beam_energy))
        truth, det = _take(truth, keep), _take(det, keep)
        out = assemble(truth, det, run_no=run_no, eot=eot, intensity_nominal=run.intensity_nominal, rng=rng)
        return _beam_frame(out, beam, spill_offset)

    if n_events is None or int(n_events) != n_events or n_events < 0:
        raise InputError(f"trigger level needs a non-negative integer n_events, got {n_events!r}",
                         field="n_events")
    n_events = int(n_events)
    sources = trigger_sources(campaign, run_name, run, e_nominal=beam_energy, beam=beam,
                              box_ecal_max=box_ecal_max)
    rates = np.array([s.rate_per_eot for s in sources])
    out = {b.name: np.empty(n_events, dtype=b.dtype) for b in BRANCHES}
    n_cand, n_trig, n_done, acc = 0, 0, 0, 0.5
    while n_done < n_events:
        n_gen = min(int((n_events - n_done) / acc * 1.05) + 1000, _BATCH)
        counts = rng.multinomial(n_gen, rates / rates.sum())
        blocks = [_triggered_block(sources[i], int(counts[i]), run, rng) for i in np.flatnonzero(counts)]
        n_cand += n_gen
        n_trig += sum(blk["truth_e0"].size for blk in blocks)
        n_done += _scatter_blocks(out, blocks, n_done, n_events - n_done, rng)
        acc = max(n_trig / n_cand, 1e-3)
    eot_equiv = n_events / acc / rates.sum()
    info.update(eot=eot_equiv, generated={"candidates": n_cand})
    out["run"][:] = run_no
    out["spill"][:] = _spills(n_events, eot_equiv, run.intensity_nominal, rng)
    out["event"][:] = np.arange(1, n_events + 1)
    out["trigger"][:] = 1
    out["weight"][:] = 1.0
    return _beam_frame(out, beam, spill_offset)


def _beam_frame(out: dict[str, np.ndarray], beam: BeamSpec, spill_offset: int) -> dict[str, np.ndarray]:
    """An e+ beam is the charge conjugate of the e- one (every truth PDG code flips); spill numbering of a
    run part continues after the previous parts. The default e- beam is returned untouched."""
    if beam.charge_sign != 1:
        np.negative(out["truth_pdg"], out=out["truth_pdg"])
    if spill_offset:
        out["spill"] += np.int32(spill_offset)
    return out


def _triggered_block(src: Source, n: int, run: Run, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Triggered events among ``n`` candidates of one source: truth and response in one flat dict.

    Sources with a two-stage generator get their non-trigger quantities only for the triggered events
    (most beam hadrons and muons fail the trigger), and every source gets the full response only then.
    """
    truth = (src.gen_trigger or src.gen)(n, rng)
    intensity = eot_weighted_intensity(n, run.intensity_e_per_spill, rng).astype(np.float32)
    stage = respond_trigger(truth, intensity, rng)
    ok = trigger(stage["ecal_e"], stage["ecal_ps_e"])
    if truth["pileup_forced"].any():
        ok &= _thin_pileup(truth, intensity, run.intensity_e_per_spill[1], rng)
    keep = np.flatnonzero(ok)
    truth = {k: v[keep] for k, v in truth.items() if k not in _STAGE1_ONLY}
    if src.finish is not None:
        truth = src.finish(truth, rng)
    det = respond_rest(truth, intensity[keep], _take(stage, keep), hcal0_installed=run.hcal0, rng=rng)
    det.update({name: truth[key] for name, key in _TRUTH_BRANCHES.items()})
    return det


def _scatter_blocks(out: dict[str, np.ndarray], blocks: list[dict[str, np.ndarray]], start: int, room: int,
                    rng: np.random.Generator) -> int:
    """Interleave the per-source blocks in random order into ``out[start:]`` (at most ``room`` events).

    Slots are a random label sequence over the triggered events; a block's first rows fill its slots below
    ``room`` (rows are i.i.d., so truncating keeps a fair sample). Returns the number of events written.
    """
    counts = np.array([blk["truth_e0"].size for blk in blocks], dtype=np.int64)
    m = int(counts.sum())
    if m == 0:
        return 0
    labels = _labels(counts, rng)
    names = [name for name in _DET_BRANCHES | set(_TRUTH_BRANCHES) if name in out]
    for i, blk in enumerate(blocks):
        slots = np.flatnonzero(labels == i)
        slots = slots[:np.searchsorted(slots, room)]
        for name in names:
            out[name][start + slots] = blk[name][:slots.size]
    return min(m, room)


def _labels(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random sequence with ``counts[i]`` copies of label i."""
    n = int(counts.sum())
    if n < 4096:
        return np.searchsorted(np.cumsum(counts), rng.permutation(n), side="right")
    return _shuffled_labels(counts, rng)


_TRUTH_BRANCHES = {"truth_process": "process", "truth_pdg": "pdg", "truth_e0": "e0",
                   "truth_eaprime": "eaprime"}
_DET_BRANCHES = {b.name for b in BRANCHES} - set(_TRUTH_BRANCHES) - {"run", "spill", "event", "trigger",
                                                                     "weight"}


__all__ = ["generate_events", "run_number", "skim_mask", "assemble", "Process", "LEVELS"]
