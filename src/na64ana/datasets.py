"""``datasets.json``: campaigns, runs with their published conditions (each with its source), and files.

The file is validated on load with pydantic; any failure becomes one :class:`InputError` naming the file
and the field path (e.g. ``datasets.json:campaigns.prl2019.runs.I.eot``). The repository's
``datasets.json`` carries the published conditions with empty file lists; ``na64ana simulate`` writes a
copy with the files filled in (path, tree, entries, EOT, sha256), AGC-style.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InputError, from_validation

DEFAULT_PATH = Path("datasets.json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Strict):
    path: str
    tree: str = "events"
    nevents: int = Field(ge=0)
    eot: float = Field(ge=0, description="EOT this file represents (0 for pure MC samples)")
    sha256: str | None = None
    kind: Literal["data", "mc"] = "data"
    sample: str = Field("campaign", description="'campaign' (skim), 'trigger', 'signal', 'dimuon_mc', ...")
    seed: int | None = None
    signal_mass_GeV: float | None = None
    signal_eps: float | None = None


class Run(_Strict):
    year: int
    eot: float = Field(gt=0, description="electrons on target of the run")
    eot_unc: float = Field(0.02, ge=0, lt=1, description="relative EOT uncertainty")
    intensity_e_per_spill: tuple[float, float] = Field(description="[min, max] beam intensity")
    hcal0: bool = Field(description="zero-degree calorimeter HCAL0 installed")
    efficiency: float = Field(gt=0, le=1, description="published signal efficiency (light A')")
    efficiency_heavy: float | None = Field(None, gt=0, le=1, description="published efficiency, heavy A'")
    efficiency_unc: float = Field(ge=0, lt=1, description="relative efficiency uncertainty")
    background: float | None = Field(None, ge=0, description="published expected background in the box")
    background_unc: float | None = Field(None, ge=0, description="absolute uncertainty on background")
    sideband_slope_per_GeV: float | None = None
    sources: dict[str, str] = Field(description="source of every published number above, by field name")
    files: list[FileEntry] = Field(default_factory=list)

    @field_validator("intensity_e_per_spill")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] <= v[1]):
            raise ValueError("must be [min, max] with 0 < min <= max")
        return v

    @model_validator(mode="after")
    def _cited(self) -> Run:
        needed = {"eot", "intensity_e_per_spill", "efficiency"}
        if self.background is not None:
            needed.add("background")
        missing = sorted(needed - set(self.sources))
        if missing:
            raise ValueError(f"sources missing for {missing}")
        return self

    @property
    def intensity_nominal(self) -> float:
        """Mid-point of the published intensity range (e- per spill)."""
        return 0.5 * (self.intensity_e_per_spill[0] + self.intensity_e_per_spill[1])


class Campaign(_Strict):
    description: str
    source: str
    selection: str = Field("invisible", description="selection file in selections/ (without .toml)")
    beam_energy_GeV: float = Field(100.0, gt=0)
    emiss_min_GeV: float = Field(50.0, gt=0)
    xsec_unc: float = Field(0.10, ge=0, lt=1, description="relative signal cross-section uncertainty")
    tree: str = "events"
    branch_map: str | dict[str, str] | None = None
    runs: dict[str, Run]

    @field_validator("runs")
    @classmethod
    def _nonempty(cls, v: dict[str, Run]) -> dict[str, Run]:
        if not v:
            raise ValueError("a campaign needs at least one run")
        return v

    @property
    def total_eot(self) -> float:
        return sum(r.eot for r in self.runs.values())


class Datasets(_Strict):
    schema_version: Literal[1] = 1
    default_campaign: str
    sources: dict[str, str]
    campaigns: dict[str, Campaign]

    @model_validator(mode="after")
    def _default_exists(self) -> Datasets:
        if self.default_campaign not in self.campaigns:
            raise ValueError(f"default_campaign '{self.default_campaign}' is not a campaign")
        return self

    # -- lookups with errors that name the field ------------------------------------------------
    def campaign(self, name: str | None, *, file: str = "datasets.json") -> Campaign:
        name = name or self.default_campaign
        if name not in self.campaigns:
            raise InputError(
                f"unknown campaign '{name}' (known: {', '.join(self.campaigns)})",
                file=file,
                field="campaigns",
            )
        return self.campaigns[name]

    def runs(self, campaign: str | None, runs: list[str] | None = None, *, file: str = "datasets.json"):
        """``{run_name: Run}`` for the requested runs (all when ``runs`` is None), in file order."""
        camp = self.campaign(campaign, file=file)
        if not runs:
            return dict(camp.runs)
        unknown = [r for r in runs if r not in camp.runs]
        if unknown:
            cname = campaign or self.default_campaign
            raise InputError(
                f"unknown run(s) {unknown} (known: {', '.join(camp.runs)})",
                file=file,
                field=f"campaigns.{cname}.runs",
            )
        return {r: camp.runs[r] for r in runs}


def load(path: str | Path = DEFAULT_PATH) -> Datasets:
    """Load and validate a datasets file. Any problem -> InputError naming the file and field."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno})", file=str(path)) from None
    return validate(raw, file=str(path))


def validate(raw: dict, *, file: str = "datasets.json") -> Datasets:
    try:
        return Datasets.model_validate(raw)
    except ValidationError as err:
        raise from_validation(err, file=file) from None


def dump(ds: Datasets, path: str | Path) -> None:
    """Write ``ds`` as pretty JSON (atomically: tmp file + rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(ds.model_dump(mode="json", exclude_none=True), indent=1) + "\n")
    tmp.replace(path)


def sha256sum(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_path(entry: FileEntry, datasets_file: str | Path) -> Path:
    """File paths in datasets.json are relative to the datasets file's folder."""
    p = Path(entry.path)
    return p if p.is_absolute() else Path(datasets_file).resolve().parent / p
