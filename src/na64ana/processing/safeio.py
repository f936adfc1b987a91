"""Safe storage formats: nothing na64ana reads back from a folder can execute code (issue #13, item 1).

Histograms are stored as the uhi JSON serialization of ``hist`` (``hist.serialization.to_uhi``, the
field's interchange format: one ``hists/<name>.json`` per histogram, readable alone by any uhi reader).
Chunk-cache entries (:func:`encode_output`) are a JSON header of a closed set of tagged types (dict, list,
tuple, set, str, numbers, bytes, ``hist.Hist`` as its uhi dict, coffea's ``WorkItem``) in which every numpy
array is a reference into raw little-endian array bytes that follow the header (issue #19: no per-number
JSON for the ~17 histograms of every chunk). Arrays are read with ``np.frombuffer`` for an allow-list of
numeric dtypes only, after checking each reference against the length of the entry, and a histogram's
axes must make exactly as many bins as it stores. The cache adds lz4 compression and the sha256 of the
content, checked *before* anything is decoded. Decoding a foreign or hostile file can at worst fail with
:class:`UnsafeContent` (a one-line error, or a cache miss): there is no pickle, no numpy object array, no
constructor chosen by the file, and what it can make the reader allocate is bounded by its own size.

Folders written before this format (``hists/*.pkl``) are refused, never unpickled: :data:`LEGACY_MESSAGE`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hist
import numpy as np
import uhi.io.json as uj
from hist import serialization

#: the histogram file suffix (uhi JSON)
HIST_SUFFIX = ".json"
#: what a folder written before the safe format holds (never read)
LEGACY_HIST_SUFFIX = ".pkl"
LEGACY_MESSAGE = ("this folder predates the safe output format (histograms are pickles, which can execute "
                  "code when read): it is not read; re-run `na64ana run` to rewrite it")
#: hard limits on what a decoder accepts (a hostile file must not exhaust memory or the stack)
MAX_BYTES = 1 << 30
MAX_DEPTH = 64


class UnsafeContent(ValueError):
    """Content that is not in the safe format (foreign, tampered, truncated or of a refused type)."""


# ------------------------------------------------------------------------------------------------------
# Histograms


def hist_to_dict(h: hist.Hist) -> dict[str, Any]:
    return serialization.to_uhi(h)


_KNOWN_TRANSFORMS = ("pow", "log", "sqrt")


def _flag(x: Any) -> int:
    if not isinstance(x, bool):
        raise UnsafeContent("histogram axis flag is not a boolean")
    return int(x)


def _axis_extent(ax: Any) -> int:
    """Number of bins, flow bins included, that ``from_uhi`` makes for the uhi axis dict ``ax``."""
    if not isinstance(ax, Mapping):
        raise UnsafeContent("malformed histogram axis")
    info = ax.get("writer_info", {})
    info = info.get("boost-histogram", {}) if isinstance(info, Mapping) else {}
    info = info if isinstance(info, Mapping) else {}
    kind = ax.get("type")
    if info.get("orig_type") != "Integer" and info.get("transform") in _KNOWN_TRANSFORMS:
        n = info.get("bins")
        flow = 2  # from_uhi restores a transformed Regular axis with its default flow bins
    elif kind == "regular":
        n = ax.get("bins")
        flow = _flag(ax.get("underflow")) + _flag(ax.get("overflow"))
    elif kind == "variable":
        edges = ax.get("edges")
        n = len(edges) - 1 if isinstance(edges, (list, np.ndarray)) else None
        flow = _flag(ax.get("underflow")) + _flag(ax.get("overflow"))
    elif kind in ("category_str", "category_int"):
        cats = ax.get("categories")
        n = len(cats) if isinstance(cats, list) else None
        flow = _flag(ax.get("flow"))
    elif kind == "boolean":
        n, flow = 2, 0
    else:
        raise UnsafeContent(f"histogram axis type {str(kind)[:20]!r} refused")
    if type(n) is not int or n < 0:
        raise UnsafeContent("histogram axis bin count is not a non-negative integer")
    return n + flow


def _check_size(d: Mapping[str, Any]) -> None:
    """The bins the axes of ``d`` make must be as many as its stored values: what a file can make
    ``from_uhi`` allocate is then bounded by the file's own size (no histogram of 10^12 bins)."""
    axes, storage = d.get("axes"), d.get("storage")
    if not isinstance(axes, list) or not isinstance(storage, Mapping) or "values" not in storage:
        raise UnsafeContent("histogram without axes or contents")
    cells = math.prod(_axis_extent(ax) for ax in axes)
    try:
        stored = np.size(storage["values"])
    except (ValueError, TypeError):  # a ragged list
        raise UnsafeContent("histogram values are not an array") from None
    if cells != stored:
        raise UnsafeContent(f"histogram axes make {cells} bins, {stored} are stored")


def hist_from_dict(d: Mapping[str, Any]) -> hist.Hist:
    if not isinstance(d, Mapping) or "uhi_schema" not in d:
        raise UnsafeContent("not a uhi histogram")
    _check_size(d)
    try:
        h = serialization.from_uhi(dict(d))
    except Exception as exc:  # malformed: one error type for the caller
        raise UnsafeContent(f"malformed uhi histogram ({type(exc).__name__}: {exc})") from None
    if not isinstance(h, hist.Hist):
        h = hist.Hist(h)
    return h


def _json_default(obj: Any) -> Any:
    return uj.default(obj)


def _json_hook(obj: dict[str, Any]) -> Any:
    return uj.object_hook(obj)


def dump_hist(h: hist.Hist) -> bytes:
    return json.dumps(hist_to_dict(h), default=_json_default, sort_keys=True).encode()


def load_hist_bytes(blob: bytes) -> hist.Hist:
    if len(blob) > MAX_BYTES:
        raise UnsafeContent("histogram file too large")
    try:
        d = json.loads(blob, object_hook=_json_hook)
    except (ValueError, RecursionError) as exc:
        raise UnsafeContent(f"not JSON ({type(exc).__name__})") from None
    return hist_from_dict(d)


def hist_meta(h: Any) -> Any:
    """A hist's metadata or None (reading an unset ``.metadata`` warns in boost-histogram 1.8 and raises
    from 1.9)."""
    return vars(h).get("metadata") if hasattr(h, "__dict__") else None


def write_hist(path: str | Path, h: hist.Hist) -> None:
    """One histogram to ``path`` (uhi JSON), atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(dump_hist(h))
    tmp.replace(path)


def read_hist(path: str | Path) -> hist.Hist:
    """One histogram file; a legacy pickle is refused without being opened."""
    path = Path(path)
    if path.suffix == LEGACY_HIST_SUFFIX:
        raise UnsafeContent(LEGACY_MESSAGE)
    return load_hist_bytes(path.read_bytes())


# ------------------------------------------------------------------------------------------------------
# Chunk outputs (the cache)
#
# Layout of an encoded output: OUTPUT_MAGIC, the header length (8 bytes, little-endian), the header (UTF-8
# JSON), zero padding to a multiple of 8, the array bytes. The header is {"v": 1, "data_bytes": n, "root":
# <tagged structure>}, where every numpy array (also those of a histogram's uhi dict) is a reference
# {"__nd__": {"dtype", "shape", "offset", "nbytes"}} into the array bytes. Arrays are read back with
# np.frombuffer, only for the dtypes of ARRAY_DTYPES, after checking each reference against the length of
# the array bytes: what a file can make the reader allocate is bounded by the file's own size.

#: what an encoded chunk output starts with (the version of this layout is part of it)
OUTPUT_MAGIC = b"NA64OUT1"
#: the dtypes an array in a chunk output may have (little-endian): anything else is refused
ARRAY_DTYPES = frozenset({"<f8", "<f4", "<i8", "<i4", "<u8", "|b1"})
MAX_NDIM = 32
_ALIGN = 8
_WORKITEM_FIELDS = ("dataset", "filename", "treename", "entrystart", "entrystop", "fileuuid", "usermeta",
                    "preload")


class _ArrayWriter:
    """Collects the array bytes of one encoded output and hands out their references."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.size = 0

    def add(self, arr: np.ndarray) -> dict[str, Any]:
        dtype = arr.dtype
        if dtype.byteorder == ">":
            dtype = dtype.newbyteorder("<")
        if dtype.str not in ARRAY_DTYPES:
            raise UnsafeContent(f"array of dtype {arr.dtype} is not stored")
        data = np.ascontiguousarray(arr, dtype=dtype)
        ref = {"dtype": dtype.str, "shape": list(data.shape), "offset": self.size, "nbytes": data.nbytes}
        self.parts.append(data.reshape(-1).view(np.uint8))
        pad = -data.nbytes % _ALIGN
        if pad:
            self.parts.append(bytes(pad))
        self.size += data.nbytes + pad
        return {"__nd__": ref}


def _encode(obj: Any, arrays: _ArrayWriter, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise UnsafeContent("nesting too deep")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else {"__f__": repr(x)}
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return arrays.add(obj)
    if isinstance(obj, bytes):
        return {"__b__": obj.hex()}
    if isinstance(obj, hist.Hist):
        return {"__hist__": _encode(hist_to_dict(obj), arrays, depth + 1)}
    if isinstance(obj, (set, frozenset)):
        items = [_encode(x, arrays, depth + 1) for x in obj]
        items.sort(key=lambda x: json.dumps(x, sort_keys=True))
        return {"__set__" if isinstance(obj, set) else "__fset__": items}
    if isinstance(obj, tuple):
        return {"__t__": [_encode(x, arrays, depth + 1) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, arrays, depth + 1) for x in obj]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {"__d__": {k: _encode(v, arrays, depth + 1) for k, v in obj.items()}}
        return {"__dk__": [[_encode(k, arrays, depth + 1), _encode(v, arrays, depth + 1)]
                           for k, v in obj.items()]}
    from coffea.processor.executor import WorkItem  # local: coffea.processor, +0.4 s CPU for every reader

    if isinstance(obj, WorkItem):
        return {"__wi__": _encode({k: getattr(obj, k) for k in _WORKITEM_FIELDS}, arrays, depth + 1)}
    raise UnsafeContent(f"type {type(obj).__name__} is not stored")


def _count(x: Any, what: str) -> int:
    """A non-negative int from a header (bool, float or anything else is refused)."""
    if type(x) is not int or x < 0:
        raise UnsafeContent(f"array {what} is not a non-negative integer")
    return x


def _read_array(ref: Any, data: memoryview) -> np.ndarray:
    if not isinstance(ref, dict) or set(ref) != {"dtype", "shape", "offset", "nbytes"}:
        raise UnsafeContent("malformed array reference")
    if not isinstance(ref["dtype"], str) or ref["dtype"] not in ARRAY_DTYPES:
        raise UnsafeContent(f"array of dtype {str(ref['dtype'])[:20]!r} refused")
    shape = ref["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise UnsafeContent("malformed array shape")
    shape = [_count(n, "dimension") for n in shape]
    offset, nbytes = _count(ref["offset"], "offset"), _count(ref["nbytes"], "size")
    dtype = np.dtype(ref["dtype"])
    if math.prod(shape) * dtype.itemsize != nbytes:
        raise UnsafeContent("array shape does not match its size")
    if offset + nbytes > len(data):
        raise UnsafeContent("array beyond the end of the entry")
    return np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape).copy()


def _decode(obj: Any, data: memoryview, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise UnsafeContent("nesting too deep")
    if obj is None or isinstance(obj, (bool, str, int, float)):
        return obj
    if isinstance(obj, list):
        return [_decode(x, data, depth + 1) for x in obj]
    if not isinstance(obj, dict) or len(obj) != 1:
        raise UnsafeContent("untagged object")
    (tag, val), = obj.items()
    if tag == "__d__" and isinstance(val, dict):
        return {k: _decode(v, data, depth + 1) for k, v in val.items()}
    if tag == "__dk__" and isinstance(val, list):
        if not all(isinstance(kv, list) and len(kv) == 2 for kv in val):
            raise UnsafeContent("malformed mapping")
        return {_hashable(_decode(k, data, depth + 1)): _decode(v, data, depth + 1) for k, v in val}
    if tag == "__f__" and val in ("inf", "-inf", "nan"):
        return float(val)
    if tag == "__nd__":
        return _read_array(val, data)
    if tag == "__b__" and isinstance(val, str):
        try:
            return bytes.fromhex(val)
        except ValueError:
            raise UnsafeContent("malformed bytes") from None
    if tag == "__hist__":
        d = _decode(val, data, depth + 1)
        if not isinstance(d, dict):
            raise UnsafeContent("malformed histogram")
        return hist_from_dict(d)
    if tag in ("__set__", "__fset__") and isinstance(val, list):
        items = [_hashable(_decode(x, data, depth + 1)) for x in val]
        return set(items) if tag == "__set__" else frozenset(items)
    if tag == "__t__" and isinstance(val, list):
        return tuple(_decode(x, data, depth + 1) for x in val)
    if tag == "__wi__":
        from coffea.processor.executor import WorkItem  # local: see _encode

        f = _decode(val, data, depth + 1)
        if not isinstance(f, dict):
            raise UnsafeContent("malformed work item")
        return WorkItem(**{k: f.get(k) for k in _WORKITEM_FIELDS})
    raise UnsafeContent(f"unknown tag {str(tag)[:20]!r}")


def _hashable(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_hashable(y) for y in x)
    if isinstance(x, (dict, np.ndarray)):
        raise UnsafeContent(f"unhashable {type(x).__name__} as a key or set item")
    return x


def encode_output(obj: Any) -> bytes:
    """A chunk output in the layout above (raises :class:`UnsafeContent` for a type outside the safe set)."""
    arrays = _ArrayWriter()
    root = _encode(obj, arrays)
    # not sort_keys: a dict reads back in the order it was written (the merge order of an uncached run)
    header = json.dumps({"v": 1, "data_bytes": arrays.size, "root": root}, separators=(",", ":"),
                        allow_nan=False).encode()
    pad = bytes(-(len(OUTPUT_MAGIC) + 8 + len(header)) % _ALIGN)
    return b"".join([OUTPUT_MAGIC, len(header).to_bytes(8, "little"), header, pad, *arrays.parts])


def decode_output(blob: bytes) -> Any:
    """The object :func:`encode_output` encoded; anything else raises :class:`UnsafeContent`."""
    if len(blob) > MAX_BYTES:
        raise UnsafeContent("entry too large")
    head = len(OUTPUT_MAGIC) + 8
    if len(blob) < head or not blob.startswith(OUTPUT_MAGIC):
        raise UnsafeContent("not an encoded chunk output")
    header_len = int.from_bytes(blob[len(OUTPUT_MAGIC):head], "little")
    if header_len > len(blob) - head:
        raise UnsafeContent("header beyond the end of the entry")
    try:
        header = json.loads(blob[head:head + header_len])
    except (ValueError, RecursionError) as exc:
        raise UnsafeContent(f"header is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("v") != 1 or set(header) != {"v", "data_bytes", "root"}:
        raise UnsafeContent("unknown header")
    start = head + header_len + (-(head + header_len) % _ALIGN)
    if len(blob) - start != header["data_bytes"]:
        raise UnsafeContent(f"array bytes: {len(blob) - start}, header says {header['data_bytes']!r}")
    try:
        return _decode(header["root"], memoryview(blob)[start:])
    except RecursionError:
        raise UnsafeContent("nesting too deep") from None


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()
