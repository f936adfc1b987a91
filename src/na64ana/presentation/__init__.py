"""Presentation: read a results folder (:mod:`.results`), draw the figures (:mod:`.plots`), write the
report (:mod:`.report`) and the HEPData submission (:mod:`.hepdata`). Nothing here computes physics.
"""
