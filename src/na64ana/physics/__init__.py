"""Physics of the signal in layers: shower -> production -> model -> yields (GeV units).

Why layers: a new production mechanism is a module of :mod:`.production`, a new mediator a class of
:mod:`.models`; the shower (:mod:`.shower`: T_-, T_+, T_gamma) and the combination (:mod:`.yields`) stay.
:mod:`.darkmatter` turns eps limits into y and alpha_D. See docs/physics.md.
"""
