"""NA64 event simulator writing ROOT TTrees that follow na64ana.contract.

Modules, one job each: ``config`` (published + tuning parameters), ``beam`` (tracks, straws, SRD),
``processes`` (truth per process), ``detector`` (shared response, pile-up, trigger), ``rates``
(per-EOT calibration to the publications), ``generate`` (in-memory runs), ``signal`` (A' MC samples),
``dimuon`` (dimuon MC prediction), ``writer`` (TTree output), ``campaign`` (runs to disk + datasets.json).
"""

from .campaign import run_seed, simulate_campaign, simulate_dimuon_samples, simulate_signal_samples
from .dimuon import simulate_dimuon_sample
from .generate import generate_events
from .signal import simulate_signal_sample
from .writer import write_tree

__all__ = ["generate_events", "write_tree", "simulate_campaign", "simulate_signal_sample",
           "simulate_signal_samples", "run_seed", "simulate_dimuon_sample", "simulate_dimuon_samples"]
