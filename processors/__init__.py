"""coffea processors for the NA64 analysis (installed as na64ana.processors)."""
