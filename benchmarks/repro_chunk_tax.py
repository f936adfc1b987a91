"""Minimal reproducers of the per-chunk cost of coffea's Runner and of uproot's UUID-keyed object cache.

Part 1 (coffea): what ``Runner._work_function`` pays for every chunk on a local, warm, lz4 file, piece by
piece (median of ``--reps`` CPU times per 2M-event chunk): ``uproot.open`` + the TTree metadata, the
NanoEvents factory, reading the 20 processor columns through NanoEvents vs one ``tree.arrays``, the same
with the file kept open (na64ana's ``KeptOpenSource``), unpickling the processor, compressing the chunk
output. Part 2 (uproot): one ``object_cache`` shared by two opens returns the TTree of the first file for
a second file that has the same ROOT UUID but other contents (so a shared cache must be per file).

    .venv/bin/python benchmarks/repro_chunk_tax.py            # uses the 2e7-event benchmark sample
    .venv/bin/python benchmarks/repro_chunk_tax.py --quick    # 1e6 events

Results and the proposed upstream changes: docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_processor as bp  # noqa: E402


def cpu_median(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        c0 = time.process_time()
        fn()
        out.append(time.process_time() - c0)
    return statistics.median(out)


def part1(events: float, chunk: int, reps: int) -> None:
    import awkward as ak
    import cloudpickle
    import lz4.frame
    import uproot
    from coffea.nanoevents import BaseSchema, NanoEventsFactory
    from coffea.processor.executor import _compress
    from na64ana.processors import PROCESSORS

    from na64ana.processing import sources

    dj = bp.make_sample(int(events))
    jobs = bp.plan_trigger(dj)
    job = jobs[0]
    path, tree = str(job.files[0]), job.tree
    branches, _ = bp.processor_columns(job)
    start, stop = 0, min(chunk, job.nevents // len(job.files))
    mm = {"handler": uproot.source.file.MemmapSource}
    kept = {"handler": sources.KeptOpenSource, "array_cache": None}

    def open_tree(opts):
        with uproot.open({path: None}, **opts) as f:
            return f[tree].num_entries

    def factory(opts):
        with uproot.open({path: None}, **opts) as f:
            return NanoEventsFactory.from_root(file=f, treepath=tree, schemaclass=BaseSchema, mode="virtual",
                                               entry_start=start, entry_stop=stop, buffer_cache={}).events()

    def read_ne(opts):
        with uproot.open({path: None}, **opts) as f:
            ev = NanoEventsFactory.from_root(file=f, treepath=tree, schemaclass=BaseSchema, mode="virtual",
                                             entry_start=start, entry_stop=stop, buffer_cache={}).events()
            return {b: ak.to_numpy(ev[b]) for b in branches}

    def read_arrays(opts):
        with uproot.open({path: None}, **opts) as f:
            return f[tree].arrays(branches, entry_start=start, entry_stop=stop, library="np")

    proc = PROCESSORS["invisible"]({j.key: j.selection for j in jobs})
    blob = lz4.frame.compress(cloudpickle.dumps(proc), compression_level=1)
    out = proc.process(_Chunk(read_arrays(mm), job.metadata))
    rows = [
        ("uproot.open + TTree metadata, new MemmapSource", lambda: open_tree(mm)),
        ("uproot.open + TTree metadata, KeptOpenSource", lambda: open_tree(kept)),
        ("+ NanoEventsFactory(BaseSchema).events(), MemmapSource", lambda: factory(mm)),
        ("+ NanoEventsFactory(BaseSchema).events(), KeptOpenSource", lambda: factory(kept)),
        (f"+ read {len(branches)} columns via NanoEvents, MemmapSource", lambda: read_ne(mm)),
        (f"+ read {len(branches)} columns via NanoEvents, KeptOpenSource", lambda: read_ne(kept)),
        (f"open + tree.arrays({len(branches)} columns), MemmapSource", lambda: read_arrays(mm)),
        (f"open + tree.arrays({len(branches)} columns), KeptOpenSource", lambda: read_arrays(kept)),
        ("unpickle the processor (cloudpickle + lz4)", lambda: cloudpickle.loads(lz4.frame.decompress(blob))),
        ("compress the chunk output (pickle + lz4)", lambda: _compress(out, 1)),
    ]
    read_arrays(kept)  # the kept map exists before the timing, as for every chunk after a file's first
    print(f"{Path(path).name}: chunk of {stop - start} events, CPU ms per chunk (median of {reps}), "
          f"load {os.getloadavg()[0]:.2f}")
    for label, fn in rows:
        print(f"  {label:62s} {cpu_median(fn, reps) * 1e3:8.1f}")
    sources.release()


class _Chunk(dict):
    def __init__(self, arrays, metadata):
        super().__init__(arrays)
        self.metadata = metadata


def part2() -> None:
    import uuid

    import uproot

    fixed = uuid.UUID(int=42)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, value in (("a.root", 1.0), ("b.root", 2.0)):
            p = Path(d) / name
            with uproot.recreate(p, uuid_function=lambda: fixed) as f:
                t = f.mktree("events", {"x": np.float32})
                t.extend({"x": np.full(10, value, dtype=np.float32)})
            paths.append(p)
        shared: dict = {}
        with uproot.open(paths[0], object_cache=shared) as fa:
            xa = fa["events"]["x"].array(library="np")
            with uproot.open(paths[1], object_cache=shared) as fb:
                xb = fb["events"]["x"].array(library="np")
        verdict = "WRONG: b.root read through the TTree of a.root" if xb[0] != 2.0 else "correct"
        print(f"uproot object_cache shared by two files with the same UUID: a.root x={xa[0]}, "
              f"b.root x={xb[0]} ({verdict})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=float, default=2e7)
    ap.add_argument("--chunksize", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.events = 1e6
    bp.print_machine()
    part1(args.events, args.chunksize, args.reps)
    part2()
    return 0


if __name__ == "__main__":
    sys.exit(main())
