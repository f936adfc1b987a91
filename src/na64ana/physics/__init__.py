"""Physics of the A' signal: cross sections, thick-target yields, dark-matter translation (GeV units)."""
