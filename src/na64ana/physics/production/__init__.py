"""Production mechanisms: a cross section per target atom for one kind of shower particle.

Why a package: each mechanism is "a shower particle meets a target atom" and only its cross section and
the particle it needs differ, so :mod:`na64ana.physics.yields` folds any of them with the matching
track length of :mod:`na64ana.physics.shower`. A new mechanism is a new module here plus an entry in
:data:`MECHANISMS`:

* :mod:`.brem`: A' bremsstrahlung e+- Z -> e+- Z A' (emitters e- and e+, on nuclei; WW/ETL, k-factors);
* :mod:`.annihilation`: resonant e+ e- -> A' (emitters e+, on atomic electrons; Breit-Wigner, narrow width);
* ``primakoff`` (not yet built): gamma Z -> a Z for ALPs (emitters photons, on nuclei; brief_extensions 5,
  sigma = (1/8) g_agg^2 alpha Z^2 [ln((t_d + t_min)/(t_a + t_min)) - 2]) with T_gamma from the shower.
"""

from __future__ import annotations

from . import annihilation, brem

__all__ = ["MECHANISMS", "SHOWER_PARTICLE", "annihilation", "brem"]

MECHANISMS = ("brem", "annihilation")
#: which shower track length each mechanism folds with (see na64ana.physics.shower.PARTICLES)
SHOWER_PARTICLE = {"brem": "charged", "annihilation": "e+", "primakoff": "gamma"}
