"""Bookkeeping shared by every stage: output folders and their provenance (:mod:`.provenance`, which also
verifies a folder against its record), the blinding audit of a results folder (:mod:`.audit`) and where
the repository's files and scratch outputs are (:mod:`.locations`).
"""
