"""Selection definitions as data (TOML); installed as na64ana.selections."""
