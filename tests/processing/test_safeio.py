"""The chunk-output format of na64ana.processing.safeio (encode_output / decode_output) keeps every type
and value a chunk output can hold: what comes out of the cache is what went in (the attacks on the format
are in tests/trust/test_trust_formats.py)."""

from __future__ import annotations

import math

import hist
import numpy as np
import pytest
from coffea.processor.executor import WorkItem

from na64ana.processing import safeio


def _histograms() -> dict[str, hist.Hist]:
    rng = np.random.default_rng(7)
    x, y = rng.normal(50, 20, 500), rng.exponential(10, 500)
    weighted = hist.Hist(hist.axis.StrCategory([], growth=True, name="run"),
                         hist.axis.Regular(40, 0, 100, name="ecal", label="E_ECAL [GeV]"),
                         hist.axis.Variable([0, 1, 2, 5, 10, 50], name="hcal"),
                         storage=hist.storage.Weight(), metadata={"note": "w"})
    weighted.fill(run=["A"] * 250 + ["B"] * 250, ecal=x, hcal=y, weight=rng.uniform(0.5, 2, 500))
    ints = hist.Hist(hist.axis.Integer(0, 10, name="n", underflow=False),
                     hist.axis.Boolean(name="ok"), storage=hist.storage.Int64())
    ints.fill(n=rng.integers(-2, 12, 500), ok=rng.random(500) < 0.3)
    mean = hist.Hist(hist.axis.IntCategory([1, 2, 3], name="c"), storage=hist.storage.Mean())
    mean.fill(c=rng.integers(1, 4, 500), sample=x)
    wmean = hist.Hist(hist.axis.Regular(10, 1, 100, transform=hist.axis.transform.log, name="logx"),
                      storage=hist.storage.WeightedMean())
    wmean.fill(logx=x, sample=y, weight=rng.uniform(0.5, 2, 500))
    double = hist.Hist(hist.axis.Regular(5, 0, 1, circular=True, name="phi"), storage=hist.storage.Double())
    double.fill(phi=rng.random(500))
    return {"weighted": weighted, "ints": ints, "mean": mean, "double": double, "wmean": wmean}


def _assert_same(a, b, path="") -> None:
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, hist.Hist):
        assert a == b, path  # axes (edges, categories, flow, metadata), storage type and contents
        assert a.storage_type is b.storage_type and [ax.label for ax in a.axes] == [ax.label for ax in b.axes]
        assert a.__dict__ == b.__dict__, path  # the user metadata
        for field in a.view(flow=True).dtype.names or ():
            np.testing.assert_array_equal(a.view(flow=True)[field], b.view(flow=True)[field], err_msg=path)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


def test_every_stored_type_round_trips():
    item = WorkItem("test/A", "/data/a1.root", "events", 0, 64, b"\x01\x02uuid", {"k": 1})
    output = {
        "out": {
            "hists": {k: h for k, h in _histograms().items() if k != "wmean"},  # wmean: test below
            "cutflow": {"A": {"events": np.array([68, 52, 0]), "weighted": np.array([68.0, 52.5, 0.0])}},
            "arrays": [np.arange(6, dtype="<i4").reshape(2, 3), np.array([1.5, np.nan, -np.inf], "<f4"),
                       np.array([2**63 + 5], dtype="<u8"), np.array([True, False]), np.zeros((0, 3)),
                       np.array(3.25), np.arange(10.0)[::3], np.arange(4, dtype=">i8")],
            "scalars": (None, True, 7, np.int64(-3), 2.5, float("inf"), float("nan"), np.float32(0.5), "s"),
            "blinded": {"A", "B"}, "frozen": frozenset({1, 2}), "bytes": b"\x00\xff",
            "int_keys": {1: "one", (2, "b"): [3]},
        },
        "processed": {item},
        "metrics": {"entries": 64, "columns": set()},
    }
    back = safeio.decode_output(safeio.encode_output(output))
    # numpy scalars come back as Python numbers, big-endian and strided arrays as little-endian copies
    expected = dict(output)
    scalars = (None, True, 7, -3, 2.5, float("inf"), float("nan"), 0.5, "s")
    expected["out"] = dict(output["out"], scalars=scalars)
    expected["out"]["arrays"] = [np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
                                 for a in output["out"]["arrays"]]
    for key in ("out", "metrics"):
        _assert_same({k: expected[key][k] for k in sorted(expected[key], key=str)},
                     {k: back[key][k] for k in sorted(back[key], key=str)}, key)
    assert back["processed"] == {item}
    assert all(a.flags.writeable for a in back["out"]["arrays"])  # a copy, not a view of the entry


def test_weighted_mean_round_trips_except_empty_bins_variance():
    # boost-histogram's uhi reader gives an *empty* WeightedMean bin a NaN variance (from_uhi(to_uhi(h))
    # does it alone, with or without the cache); every filled bin and every other field reads back equal
    h = _histograms()["wmean"]
    back = safeio.decode_output(safeio.encode_output({"h": h}))["h"]
    was, now = h.view(flow=True), back.view(flow=True)
    for field in ("sum_of_weights", "sum_of_weights_squared", "value"):
        np.testing.assert_array_equal(was[field], now[field])
    filled = was["sum_of_weights"] > 0
    assert filled.sum() >= 5 and (~filled).sum() >= 1
    np.testing.assert_array_equal(h.variances(flow=True)[filled], back.variances(flow=True)[filled])


def test_encoding_is_deterministic_and_keeps_dict_order():
    output = {"out": {"hists": _histograms(), "blinded": {"B", "A", "C"}}, "metrics": {}}
    once = safeio.encode_output(output)
    back = safeio.decode_output(once)
    assert list(back["out"]["hists"]) == list(output["out"]["hists"])  # insertion order, not sorted
    assert safeio.encode_output(back) == once


@pytest.mark.parametrize("value", [object(), np.array(["text"]), np.array([1 + 2j]), np.zeros(2, dtype="<f2"),
                                   np.zeros(2, dtype="<i2"), np.zeros(2, dtype=[("a", "<f8")])])
def test_types_outside_the_safe_set_are_refused(value):
    with pytest.raises(safeio.UnsafeContent):
        safeio.encode_output({"out": value})
