"""na64ana: the NA64 missing-energy search for invisibly decaying dark photons, end to end.

Data flows one way:
datasets.json + selections/ -> processors/ (coffea) -> histograms & cut flows -> yields summary JSON
-> pyhf statistical model -> limits -> plots / report / HEPData.
"""

__version__ = "0.1.0"
