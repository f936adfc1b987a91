"""The processor's cut-flow and N-1 bookkeeping equals coffea's own PackedSelection.cutflow/nminusone.

processors/base.py ANDs plain numpy masks (measured 2x cheaper than packing them into PackedSelection for
every chunk); this test keeps coffea's implementation as the reference, on a sample with NaN/inf inputs."""

import numpy as np
from coffea.analysis_tools import PackedSelection

from na64ana import selection
from na64ana.processing import execute, outputs


def test_processor_bookkeeping_equals_packed_selection(tmp_path, synth):
    arrays, _ = synth.make_arrays(seed=7)
    synth.write_tree(tmp_path / "a.root", arrays)
    n = len(arrays["ecal_e"])
    ds_file = synth.write_datasets(tmp_path / "datasets.json",
                                   {"B": (True, [synth.file_entry(tmp_path / "a.root", n)])})
    jobs = execute.plan(ds_file)
    res = execute.run(jobs, "invisible", unblind=True)
    rec = outputs.write_run(tmp_path / "out", res, processor="invisible", unblind=True,
                            datasets_file=ds_file)["B"]

    sel = jobs[0].selection
    values = selection.compute({k: np.asarray(v) for k, v in arrays.items()}, sel.variables)
    ps = PackedSelection()
    for name, mask in selection.cut_masks(sel, values).items():
        ps.add(name, mask)
    names = [c.name for c in sel.cuts]

    ref = ps.cutflow(*names).result()
    assert [r["events"] for r in rec["rows"]] == [int(ref.nevonecut[0]), *map(int, ref.nevcutflow[1:])]
    assert rec["rows"][0]["events"] == n

    nm1 = ps.nminusone(*names).result()  # labels: initial, N - <cut> ..., N
    for i, cut in enumerate(sel.cuts):
        for var in cut.variables:
            h = outputs.load_hist(tmp_path / "out", f"nminus1_{cut.name}_{var}")
            total = h[{"run": "B"}].sum(flow=True)
            total = getattr(total, "value", total)
            assert total == int(nm1.nev[i + 1]), (cut.name, var)
