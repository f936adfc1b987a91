"""coffea processors for the NA64 analysis (installed as na64ana.processors)."""

from __future__ import annotations

from .base import SelectionProcessor
from .dimuon import DimuonProcessor
from .invisible import InvisibleProcessor
from .visible import VisibleProcessor

PROCESSORS: dict[str, type[SelectionProcessor]] = {"invisible": InvisibleProcessor, "dimuon": DimuonProcessor,
                                                   "visible": VisibleProcessor}

__all__ = ["PROCESSORS", "DimuonProcessor", "InvisibleProcessor", "SelectionProcessor", "VisibleProcessor"]
