"""Benchmark: full exact-CLs scan (observed + expected +-1/+-2 sigma) vs the naive pyhf toy loop.

Usage: python benchmarks/bench_limits.py [--masses 50] [--toys 200]
The pyhf cost is MEASURED for one mass and one mu point (ntoys toys) and EXTRAPOLATED to a scan, stated so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from na64ana import summary
from na64ana.stats import limits
from na64ana.stats.model import pyhf_model

SUMMARY = Path(__file__).resolve().parents[1] / "examples" / "summaries" / "prl2019_published.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--masses", type=int, default=50)
    ap.add_argument("--toys", type=int, default=200, help="pyhf toys for the one timed point")
    a = ap.parse_args()
    data = json.loads(SUMMARY.read_text())
    data["masses_GeV"] = list(np.geomspace(1e-3, 1.0, a.masses))
    s = summary.validate(data)

    t0 = time.perf_counter()
    res = limits.scan(s, method="exact")
    t_exact = time.perf_counter() - t0
    ok = [p for p in res["points"] if "error" not in p]
    print(f"exact hybrid CLs: {len(ok)}/{a.masses} masses (obs + 5 expected quantiles) in {t_exact:.1f} s "
          f"({t_exact / a.masses:.2f} s/mass), max |combined/simplified - 1| = "
          f"{res['simplified_check']['max_abs_rel_diff']:.3%}")

    import pyhf

    pyhf.set_backend("numpy")
    spec = limits.mass_spec(s, 0.01, 2.3)
    model, obs = pyhf_model(spec)
    t0 = time.perf_counter()
    pyhf.infer.hypotest(1.0, obs, model, test_stat="qtilde", calctype="toybased", ntoys=a.toys,
                        return_expected_set=True, track_progress=False)
    t_point = time.perf_counter() - t0
    # a naive toy scan: ~10 mu points x ~1000 toys (for ~3% precision on CLs ~ 0.1) per mass
    per_mass = t_point * (1000 / a.toys) * 10
    naive = per_mass * a.masses
    print(f"pyhf toys: measured {t_point:.1f} s for ONE mass, ONE mu point, {a.toys} toys (s+b and b)")
    print(f"  extrapolated naive scan (10 mu points x 1000 toys x {a.masses} masses): {naive / 3600:.1f} h "
          f"-> speed-up ~{naive / t_exact:.0f}x (extrapolation, not a full measurement)")


if __name__ == "__main__":
    main()
