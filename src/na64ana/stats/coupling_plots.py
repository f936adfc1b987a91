"""Moved to :mod:`na64ana.presentation.search_plots` (kept as an alias for old imports)."""

from ..presentation.search_plots import (  # noqa: F401
    COUPLING_LABELS,
    plot_closed_region,
    plot_coupling_limits,
    save,
)

__all__ = ["COUPLING_LABELS", "plot_closed_region", "plot_coupling_limits", "save"]
