"""coffea processors for the NA64 analysis (installed as na64ana.processors)."""

from __future__ import annotations

from .alp import AlpProcessor
from .base import SelectionProcessor
from .dimuon import DimuonProcessor
from .invisible import InvisibleProcessor
from .visible import VisibleProcessor

PROCESSORS: dict[str, type[SelectionProcessor]] = {"invisible": InvisibleProcessor, "dimuon": DimuonProcessor,
                                                   "visible": VisibleProcessor, "alp": AlpProcessor}

__all__ = ["PROCESSORS", "AlpProcessor", "DimuonProcessor", "InvisibleProcessor", "SelectionProcessor",
           "VisibleProcessor"]
