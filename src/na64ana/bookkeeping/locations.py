"""Where the repository's files are (datasets.json, examples/) and where scratch outputs go, for
notebooks and scripts started from any folder.

The repository is ``$NA64ANA_REPO`` if set, else the first of the working folder and its parents that
holds a ``datasets.json``, else the checkout this package is installed from (editable install).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError


def repo_root() -> Path:
    """The checkout holding ``datasets.json`` (see the module docstring for the search order)."""
    if os.environ.get("NA64ANA_REPO"):
        root = Path(os.environ["NA64ANA_REPO"]).resolve()
        if not (root / "datasets.json").is_file():
            raise InputError("no datasets.json there", file=str(root), field="NA64ANA_REPO")
        return root
    here = Path.cwd()
    source = Path(__file__).resolve().parents[3]  # src/na64ana/bookkeeping/locations.py -> the checkout
    for cand in (here, *here.parents, source):
        if (cand / "datasets.json").is_file():
            return cand
    raise InputError("no datasets.json in the working folder, its parents or the package checkout; "
                     "set NA64ANA_REPO", field="NA64ANA_REPO")


def scratch_dir(prefix: str) -> Path:
    """``$NA64ANA_NB_OUT`` if set (created), else a fresh temporary folder: never inside the repository."""
    if os.environ.get("NA64ANA_NB_OUT"):
        out = Path(os.environ["NA64ANA_NB_OUT"])
        out.mkdir(parents=True, exist_ok=True)
        return out
    return Path(tempfile.mkdtemp(prefix=f"na64ana-{prefix}-"))
