"""Mediator models: couplings -> widths, BR_inv and the effective electron coupling eps_eff(m).

Why a package: a new mediator (L_mu - L_tau, B-L, a user-defined vector) is one class here, registered by
name, and the yields (:mod:`na64ana.physics.yields`) and the searches (:mod:`na64ana.searches`) use it
without change. Map:

* :mod:`.widths`: two-body widths of a vector (to fermions, complex scalars, neutrinos) vs the coupling;
* :mod:`.base`: :class:`DarkMatter`, :class:`VectorCouplings`, the abstract :class:`VectorMediator`
  and the name registry (:func:`get`, :func:`available`, :func:`register`);
* :mod:`.dark_photon`: :class:`DarkPhoton` (eps).

Examples:
    >>> from na64ana.physics import models
    >>> "dark_photon" in models.available()
    True
    >>> models.get("dark_photon", eps=1e-4, alpha_d=0.1, dm="scalar").dark.kind
    'scalar'
"""

from __future__ import annotations

from . import widths
from .alp import AlpPhoton  # registers "alp_photon"
from .b_l import BMinusL  # registers "b_l"
from .base import (
           DM_KINDS,
           INVISIBLE_CHANNELS,
           DarkMatter,
           VectorCouplings,
           VectorMediator,
           available,
           get,
           register,
)
from .dark_photon import DarkPhoton
from .lmu_ltau import LMuLTau  # registers "lmu_ltau"
from .vector import UserVector  # registers "vector"

__all__ = ["DM_KINDS", "INVISIBLE_CHANNELS", "AlpPhoton", "BMinusL", "DarkMatter", "DarkPhoton", "LMuLTau",
           "UserVector", "VectorCouplings", "VectorMediator", "available", "get", "register", "widths"]
