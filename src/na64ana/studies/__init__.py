"""Studies built from the stages (never copies of them): the box-edge optimisation (:mod:`.optimise`) and
the signal-injection closure test (:mod:`.closure`).
"""
