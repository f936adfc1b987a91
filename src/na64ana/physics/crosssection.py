"""Temporary alias of :mod:`na64ana.physics.production.brem` (+ widths) while consumer imports move."""

from __future__ import annotations

from .models.widths import width_chichi_dirac, width_chichi_scalar, width_ll  # noqa: F401
from .production.brem import *  # noqa: F401,F403
from .production.brem import _k_table  # noqa: F401
