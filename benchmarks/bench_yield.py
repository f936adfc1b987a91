"""Time the thick-target yield for a 100-point mass grid (target: < 5 s on one core).

Run: python benchmarks/bench_yield.py. The first number includes loading (or, on a fresh machine,
simulating and caching) the track-length table; the second is a warm call.
"""

from __future__ import annotations

import time

import numpy as np

from na64ana.physics.yields import yield_per_eot_grid


def main() -> None:
    masses = np.geomspace(0.001, 3.0, 100)
    t0 = time.perf_counter()
    first = yield_per_eot_grid(masses, 1e-4)
    t1 = time.perf_counter()
    again = yield_per_eot_grid(masses, 1e-4)
    t2 = time.perf_counter()
    assert np.array_equal(first, again)
    print(f"yield_per_eot_grid, 100 masses: first call {t1 - t0:.3f} s (incl. track-length table), "
          f"warm {t2 - t1:.3f} s")


if __name__ == "__main__":
    main()
