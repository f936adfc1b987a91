"""``datasets.json``: campaigns, runs with their published conditions (each with its source), and files.

The file is validated on load with pydantic; any failure becomes one :class:`InputError` naming the file
and the field path (e.g. ``datasets.json:campaigns.prl2019.runs.I.eot``). The repository's
``datasets.json`` carries the published conditions with empty file lists; ``na64ana simulate`` writes a
copy with the files filled in (path, tree, entries, EOT, sha256), AGC-style.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InputError, from_validation

DEFAULT_PATH = Path("datasets.json")


class _Strict(BaseModel):
    # strict: a string is not a number and a boolean is not a count; no infinity or NaN (issue #13)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


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
    signal_production: Literal["brem", "annihilation"] | None = Field(
        default=None, description="production mechanism of a signal MC sample (None: bremsstrahlung)")
    signal_ps_threshold_loss: float | None = Field(
        default=None, ge=0, lt=1,
        description="signal MC: fraction of the generated signal events in the box (measured E_ECAL below "
                    "the box edge) that the trigger's preshower threshold E_PS > trigger.ps_min_GeV loses, "
                    "from the generator (written by na64ana simulate; a real MC producer may fill it). The "
                    "efficiency stage corrects it to the published PS-threshold loss (na64ana.efficiency)")


BackgroundComponent = Literal["upstream", "dimuon", "decay_in_flight", "target_interactions", "punch_through"]


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
    setup: str | None = Field(None, description="visible mode: the configuration of this run in "
                              "data/visible_setup.toml (geometry, beam energy); None for invisible runs")
    box_ecal_max_GeV: float | None = Field(None, gt=0, description="signal-box edge E_ECAL < this of the run "
                                           "(None: the campaign's beam_energy_GeV - emiss_min_GeV)")
    background_components: dict[BackgroundComponent, float] | None = Field(
        None, description="expected box background by component (events after all cuts); their sum is "
        "'background'. Used by the simulator instead of the campaign's published table")
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
        for optional in ("box_ecal_max_GeV", "background_components"):
            if getattr(self, optional) is not None:
                needed.add(optional)
        if self.background_components is not None:
            if any(v < 0 for v in self.background_components.values()):
                raise ValueError("background_components must be >= 0")
            total = sum(self.background_components.values())
            if self.background is None or abs(total - self.background) > 1e-3 * max(total, 1e-12):
                raise ValueError(f"background must be the sum of background_components ({total:.6g})")
        missing = sorted(needed - set(self.sources))
        if missing:
            raise ValueError(f"sources missing for {missing}")
        return self

    @property
    def intensity_nominal(self) -> float:
        """Mid-point of the published intensity range (e- per spill)."""
        return 0.5 * (self.intensity_e_per_spill[0] + self.intensity_e_per_spill[1])


class BeamComposition(_Strict):
    """Beam contaminants per beam particle, for a beam other than the e- beam of published.toml [beam]."""

    pion_fraction: float = Field(ge=0, lt=1, description="charged pions per beam particle")
    kaon_fraction: float = Field(ge=0, lt=1, description="charged kaons per beam particle")
    muon_fraction: float = Field(ge=0, lt=1, description="muons per beam particle")
    sources: dict[str, str] = Field(description="source of each fraction, by field name")

    @model_validator(mode="after")
    def _cited(self) -> BeamComposition:
        missing = sorted({"pion_fraction", "kaon_fraction", "muon_fraction"} - set(self.sources))
        if missing:
            raise ValueError(f"sources missing for {missing}")
        return self


class Campaign(_Strict):
    description: str
    source: str
    beam_particle: Literal["e-", "e+"] | None = Field(None, description="beam particle (None: 'e-')")
    beam_composition: BeamComposition | None = Field(
        None, description="beam contaminants (None: the e- beam of published.toml [beam])")
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

    @model_validator(mode="after")
    def _boxes_inside_beam(self) -> Campaign:
        if self.emiss_min_GeV >= self.beam_energy_GeV:
            raise ValueError(f"emiss_min_GeV {self.emiss_min_GeV:g} must be below beam_energy_GeV "
                             f"{self.beam_energy_GeV:g}")
        for name, run in self.runs.items():
            if run.box_ecal_max_GeV is not None and run.box_ecal_max_GeV >= self.beam_energy_GeV:
                raise ValueError(f"runs.{name}.box_ecal_max_GeV {run.box_ecal_max_GeV:g} must be below "
                                 f"beam_energy_GeV {self.beam_energy_GeV:g}")
        return self

    @property
    def total_eot(self) -> float:
        return sum(r.eot for r in self.runs.values())

    @property
    def beam(self) -> Literal["e-", "e+"]:
        """The beam particle ("e-" unless the campaign says otherwise)."""
        return self.beam_particle or "e-"

    def box_ecal_max(self, run: Run) -> float:
        """Signal-box edge E_ECAL < x (GeV) of ``run``: its own value, else E0 - the campaign's emiss_min."""
        if run.box_ecal_max_GeV is not None:
            return float(run.box_ecal_max_GeV)
        return self.beam_energy_GeV - self.emiss_min_GeV

    def emiss_min(self, run: Run) -> float:
        """Lowest missing energy in the box of ``run``: E0 - its box edge (GeV); the campaign's emiss_min_GeV
        (exactly) for runs without their own edge."""
        if run.box_ecal_max_GeV is None:
            return self.emiss_min_GeV
        return self.beam_energy_GeV - float(run.box_ecal_max_GeV)


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


class _Repeated(dict):
    """A JSON object in which a key occurred more than once (``repeated`` holds those keys)."""

    repeated: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    repeated = []
    for k, v in pairs:
        if k in out and k not in repeated:
            repeated.append(k)
        out[k] = v
    if not repeated:
        return out
    marked = _Repeated(out)
    marked.repeated = tuple(repeated)
    return marked


def _find_repeated(node: Any, where: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Path (outermost first) of the first repeated key in a parsed document, or None."""
    if isinstance(node, _Repeated):
        return (*where, node.repeated[0])
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        hit = _find_repeated(v, (*where, str(k)))
        if hit:
            return hit
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not a JSON number")


def read_json(path: str | Path) -> Any:
    """Parse a JSON input file strictly; any problem is an InputError naming the file (and the field).

    Why strict: ``json.loads`` silently keeps the last of two equal keys -- a run listed twice under the
    same name would lose the first one's files and EOT without a word -- and accepts NaN/Infinity, which
    are not JSON and pass ``> 0`` checks (Infinity).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable ({type(exc).__name__}: {exc})", file=str(path)) from None
    try:
        raw = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno})", file=str(path)) from None
    except ValueError as exc:
        raise InputError(f"not valid JSON ({exc})", file=str(path)) from None
    except RecursionError:
        raise InputError("not valid JSON (nested too deeply)", file=str(path)) from None
    _check_raw(raw, str(path))  # before any other recursive walk: depth, infinities, magnitudes
    hit = _find_repeated(raw)
    if hit:
        raise InputError(f"duplicate key '{hit[-1]}' (JSON would silently keep only the last one)",
                         file=str(path), field=".".join(hit))
    return raw


def load(path: str | Path = DEFAULT_PATH) -> Datasets:
    """Load and validate a datasets file. Any problem -> InputError naming the file and field."""
    path = Path(path)
    return validate(read_json(path), file=str(path))


def validate(raw: dict, *, file: str = "datasets.json") -> Datasets:
    """Schema validation plus the cross-entry check no field validator can do (:func:`check_files`)."""
    _check_raw(raw, file)
    try:
        # JSON mode: lists are tuples where the schema says so; strict types, no inf/NaN (see _Strict)
        d = Datasets.model_validate_json(json.dumps(raw))
    except ValidationError as err:
        raise from_validation(err, file=file) from None
    check_files(d, file)
    check_names(d, file)
    return d


#: a run/campaign/sample name becomes a file name of the outputs: no path separator, no '..'
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
#: no published quantity of a campaign comes near this: larger magnitudes are typos or attacks
MAX_MAGNITUDE = 1e30
MAX_DEPTH = 32


def _check_raw(raw: Any, file: str, where: str = "", depth: int = 0) -> None:
    """Non-finite or absurd numbers anywhere (``1e400`` parses as infinity), and absurd nesting."""
    if depth > MAX_DEPTH:
        raise InputError("nested too deeply", file=file, field=where or "(top)")
    if isinstance(raw, float) and (not math.isfinite(raw) or abs(raw) > MAX_MAGNITUDE):
        raise InputError(f"{raw!r} is not a usable number (finite, |x| <= {MAX_MAGNITUDE:g})", file=file,
                         field=where)
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) > MAX_MAGNITUDE:
        raise InputError(f"{raw} is an absurd magnitude", file=file, field=where)
    if isinstance(raw, dict):
        for k, v in raw.items():
            _check_raw(v, file, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            _check_raw(v, file, f"{where}.{i}", depth + 1)


def check_names(d: Datasets, file: str) -> None:
    """Campaign, run and sample names are used in output file names: refuse anything that could leave
    the output folder (``../x``, ``/abs``, separators) as an InputError naming the field."""
    for cname, camp in d.campaigns.items():
        if not _NAME.match(cname) or ".." in cname:
            raise InputError(f"campaign name {cname!r} is not a plain name", file=file,
                             field=f"campaigns.{cname}")
        for rname, run in camp.runs.items():
            if not _NAME.match(rname) or ".." in rname:
                raise InputError(f"run name {rname!r} is not a plain name (letters, digits, _ . + -; "
                                 "no path separator or '..')", file=file,
                                 field=f"campaigns.{cname}.runs.{rname}")
            for i, f in enumerate(run.files):
                if not _NAME.match(f.sample) or ".." in f.sample:
                    raise InputError(f"sample {f.sample!r} is not a plain name", file=file,
                                     field=f"campaigns.{cname}.runs.{rname}.files.{i}.sample")


def check_files(d: Datasets, datasets_file: str | Path) -> None:
    """A file may be listed once per campaign: an InputError naming both field paths otherwise.

    Why: a file listed twice (in one run or in two) would be processed twice and its events and EOT
    counted twice. Entries are the same file when their resolved real paths are equal (symlinks and
    ``..`` included) or when both record the same sha256 (a copy under another name).
    """
    for cname, camp in d.campaigns.items():
        by_path: dict[str, str] = {}
        by_sha: dict[str, str] = {}
        for rname, run in camp.runs.items():
            for i, entry in enumerate(run.files):
                where = f"campaigns.{cname}.runs.{rname}.files.{i}"
                real = os.path.realpath(resolve_path(entry, datasets_file))
                sha = entry.sha256.lower() if entry.sha256 else None
                first, why = by_path.get(real), "the same file"
                if first is None and sha is not None and sha in by_sha:
                    first, why = by_sha[sha], "the same sha256"
                if first is not None:
                    raise InputError(f"{why} as {first} ('{entry.path}' is listed twice: its events and "
                                     "EOT would be counted twice)", file=str(datasets_file), field=where)
                by_path[real] = where
                if sha is not None:
                    by_sha[sha] = where


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
