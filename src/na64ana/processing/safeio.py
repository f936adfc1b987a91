"""Safe storage formats: nothing na64ana reads back from a folder can execute code (issue #13, item 1).

Histograms are stored as the uhi JSON serialization of ``hist`` (``hist.serialization.to_uhi``, the
field's interchange format: one ``hists/<name>.json`` per histogram, readable alone by any uhi reader).
Chunk-cache entries are JSON of a closed set of tagged types (dict, list, tuple, set, str, numbers, bytes,
numpy arrays of numeric dtype, ``hist.Hist`` as uhi, coffea's ``WorkItem``), lz4-compressed, with the
sha256 of the content stored beside it and checked *before* anything is decoded. Decoding a foreign or
hostile file can at worst fail with :class:`UnsafeContent` (a one-line error, or a cache miss): there is
no pickle, no numpy object array and no constructor chosen by the file.

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
_NUMERIC_KINDS = "biuf"


class UnsafeContent(ValueError):
    """Content that is not in the safe format (foreign, tampered, truncated or of a refused type)."""


# ------------------------------------------------------------------------------------------------------
# Histograms


def hist_to_dict(h: hist.Hist) -> dict[str, Any]:
    return serialization.to_uhi(h)


def hist_from_dict(d: Mapping[str, Any]) -> hist.Hist:
    if not isinstance(d, Mapping) or "uhi_schema" not in d:
        raise UnsafeContent("not a uhi histogram")
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


def _encode(obj: Any, depth: int = 0) -> Any:
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
        if obj.dtype.kind not in _NUMERIC_KINDS + "b" or obj.dtype.hasobject:
            raise UnsafeContent(f"array of dtype {obj.dtype} is not stored")
        flat = [_encode(x) for x in obj.ravel().tolist()]
        return {"__nd__": [obj.dtype.str, list(obj.shape), flat]}
    if isinstance(obj, bytes):
        return {"__b__": obj.hex()}
    if isinstance(obj, hist.Hist):
        return {"__hist__": json.loads(dump_hist(obj))}
    if isinstance(obj, (set, frozenset)):
        items = [_encode(x, depth + 1) for x in obj]
        items.sort(key=lambda x: json.dumps(x, sort_keys=True))
        return {"__set__" if isinstance(obj, set) else "__fset__": items}
    if isinstance(obj, tuple):
        return {"__t__": [_encode(x, depth + 1) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, depth + 1) for x in obj]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {"__d__": {k: _encode(v, depth + 1) for k, v in obj.items()}}
        return {"__dk__": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in obj.items()]}
    from coffea.processor.executor import WorkItem  # local: coffea.processor, +0.4 s CPU for every reader

    if isinstance(obj, WorkItem):
        f = {k: getattr(obj, k) for k in ("dataset", "filename", "treename", "entrystart", "entrystop",
                                          "fileuuid", "usermeta", "preload")}
        return {"__wi__": _encode(f, depth + 1)}
    raise UnsafeContent(f"type {type(obj).__name__} is not stored")


def _decode(obj: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise UnsafeContent("nesting too deep")
    if obj is None or isinstance(obj, (bool, str, int, float)):
        return obj
    if isinstance(obj, list):
        return [_decode(x, depth + 1) for x in obj]
    if not isinstance(obj, dict) or len(obj) != 1:
        raise UnsafeContent("untagged object")
    (tag, val), = obj.items()
    if tag == "__d__" and isinstance(val, dict):
        return {k: _decode(v, depth + 1) for k, v in val.items()}
    if tag == "__dk__" and isinstance(val, list):
        return {_hashable(_decode(k, depth + 1)): _decode(v, depth + 1) for k, v in val}
    if tag == "__f__" and val in ("inf", "-inf", "nan"):
        return float(val)
    if tag == "__nd__" and isinstance(val, list) and len(val) == 3:
        dt, shape, flat = val
        dtype = np.dtype(str(dt))
        if dtype.kind not in _NUMERIC_KINDS + "b" or dtype.hasobject:
            raise UnsafeContent(f"array of dtype {dtype} refused")
        flat = [float(x["__f__"]) if isinstance(x, dict) and x.get("__f__") in ("inf", "-inf", "nan")
                else x for x in flat]
        if any(not isinstance(x, (int, float, bool)) for x in flat):
            raise UnsafeContent("array element is not a number")
        return np.array(flat, dtype=dtype).reshape([int(s) for s in shape])
    if tag == "__b__" and isinstance(val, str):
        return bytes.fromhex(val)
    if tag == "__hist__":
        return hist_from_dict(json.loads(json.dumps(val), object_hook=_json_hook))
    if tag in ("__set__", "__fset__") and isinstance(val, list):
        items = [_hashable(_decode(x, depth + 1)) for x in val]
        return set(items) if tag == "__set__" else frozenset(items)
    if tag == "__t__" and isinstance(val, list):
        return tuple(_decode(x, depth + 1) for x in val)
    if tag == "__wi__":
        from coffea.processor.executor import WorkItem  # local: see _encode

        f = _decode(val, depth + 1)
        if not isinstance(f, dict):
            raise UnsafeContent("malformed work item")
        return WorkItem(**{k: f.get(k) for k in ("dataset", "filename", "treename", "entrystart",
                                                  "entrystop", "fileuuid", "usermeta", "preload")})
    raise UnsafeContent(f"unknown tag {tag!r}")


def _hashable(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_hashable(y) for y in x)
    return x


def encode_output(obj: Any) -> bytes:
    """A chunk output as tagged JSON (raises :class:`UnsafeContent` for a type outside the safe set)."""
    return json.dumps(_encode(obj), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def decode_output(blob: bytes) -> Any:
    if len(blob) > MAX_BYTES:
        raise UnsafeContent("entry too large")
    try:
        doc = json.loads(blob)
    except (ValueError, RecursionError) as exc:
        raise UnsafeContent(f"not JSON ({type(exc).__name__})") from None
    try:
        return _decode(doc)
    except RecursionError:
        raise UnsafeContent("nesting too deep") from None


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()
