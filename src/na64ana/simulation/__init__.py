"""NA64 event simulator writing ROOT TTrees that follow na64ana.contract."""
