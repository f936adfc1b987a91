"""Access to the published NA64 numbers in ``data/published.toml``.

Every number taken from a publication lives in that one file, next to its source; code asks for it by a
dotted key so that a reader can always trace a literal back to the paper it came from.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any


@cache
def table() -> dict[str, Any]:
    """The whole parsed ``published.toml`` (cached, read-only by convention)."""
    with resources.files("na64ana").joinpath("data/published.toml").open("rb") as f:
        return tomllib.load(f)


def entry(key: str) -> dict[str, Any]:
    """Return the entry ``{"value": ..., "source": ..., ...}`` for a dotted ``key``.

    Raises ``KeyError`` naming the missing part, so a typo never turns into a silent default.
    """
    node: Any = table()
    walked = []
    for part in key.split("."):
        walked.append(part)
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"published.toml has no entry '{'.'.join(walked)}' (asked for '{key}')")
        node = node[part]
    if not isinstance(node, dict) or "value" not in node:
        raise KeyError(f"published.toml: '{key}' is a section, not a value entry")
    return node


def get(key: str) -> Any:
    """The published value for a dotted ``key`` (e.g. ``"trigger.ecal_max_GeV"``)."""
    return entry(key)["value"]


def source(key: str) -> str:
    """The source string recorded next to ``key``."""
    return entry(key)["source"]
