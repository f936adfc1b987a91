"""Searches as data: which campaign, selection, signal model and interpretation make one NA64 result.

Why: a search (the 2016 A' search, its 2016-2018 update, the re-analysis with resonant annihilation, and
later L_mu - L_tau, B-L or ALPs on the same data) differs from another only in these choices, so it is a
TOML file validated by a strict schema, not a copy of the pipeline. Every output can record the
definition's stable :attr:`SearchDefinition.hash`. Definitions shipped with the package live beside this
module (``searches/*.toml``); :func:`load` also takes a path. Format and schema: docs/searches.md.

Examples:
    >>> from na64ana import searches
    >>> "invisible_2016_2018" in searches.available()
    True
    >>> s = searches.load("invisible_2016_2018")
    >>> s.campaigns, s.selection, s.signal.production, s.statistics.cl
    (['prl2019'], 'invisible', ['brem'], 0.9)
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import published
from ..errors import InputError, from_validation
from ..physics import models, yields
from ..physics.models import VectorMediator
from ..physics.production import MECHANISMS
from ..physics.yields import SignalYields

__all__ = ["DarkMatterInterpretation", "Interpretation", "MassGrid", "Reference", "SearchDefinition",
           "SignalModel", "Statistics", "available", "json_schema", "load", "search_path"]

_NAME = r"^[a-z][a-z0-9_]*$"
_ARXIV = re.compile(r"^arXiv:\d{4}\.\d{4,5}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reference(_Strict):
    """A publication the search reproduces: a source id of published.toml [sources] or an arXiv id."""

    source: str = Field(description="a key of published.toml [sources] (e.g. 'S003') or 'arXiv:NNNN.NNNNN'")
    citation: str = Field(min_length=1, description="journal reference / title as printed")

    @field_validator("source")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in published.table()["sources"] and not _ARXIV.match(v):
            known = ", ".join(sorted(published.table()["sources"]))
            raise ValueError(f"unknown source id '{v}' (use one of {known} or 'arXiv:NNNN.NNNNN')")
        return v


class SignalModel(_Strict):
    """The signal: a registered mediator model, how it is produced and how it decays."""

    model: str = Field(description="name in na64ana.physics.models (e.g. 'dark_photon')")
    parameters: dict[str, float | str] = Field(
        default_factory=dict, description="model parameters except the limited coupling (e.g. alpha_d, dm)")
    production: (Annotated[list[Literal["brem", "annihilation"]], Field(min_length=1)]
                 | Annotated[list[Literal["primakoff"]], Field(min_length=1)]) = Field(
        description="production mechanisms summed into the signal (na64ana.physics.production); "
                    "[\"primakoff\"] alone for ALPs")
    decay: Literal["invisible", "visible", "photons"] = Field(description="decay mode the selection targets")
    beam: Literal["e-", "e+"] = "e-"
    cross_section: Literal["etl", "ww"] = Field("etl", description="bremsstrahlung total: ETL (WW/k) or WW")

    @field_validator("model")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in models.available():
            raise ValueError(f"unknown model '{v}' (choose one of {', '.join(models.available())})")
        return v

    @field_validator("production")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("production mechanisms must be distinct")
        if any(m not in (*MECHANISMS, "primakoff") for m in v):
            raise ValueError(f"production mechanisms must be from {', '.join(MECHANISMS)}, primakoff")
        return v


class DarkMatterInterpretation(_Strict):
    """Light-DM reading of an eps limit: y = eps^2 alpha_D (m_chi/m_A')^4 and alpha_D lower limits."""

    alpha_d: list[float] = Field(min_length=1, description="alpha_D benchmarks for the y limits")
    ratio: float = Field(gt=1.0, description="m_A'/m_chi (3 by convention, S001 Sec. X)")
    relic: list[Literal["pseudodirac", "majorana", "scalar"]] = Field(
        default_factory=list, description="relic-target kinds compared with / turned into alpha_D limits")

    @field_validator("alpha_d")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not (0 < a <= 1) for a in v):
            raise ValueError("alpha_D benchmarks must be in (0, 1]")
        return v


class Interpretation(_Strict):
    """Which coupling the limit is on, and the optional dark-matter translation."""

    coupling: Literal["eps", "g", "g_agg"] = Field(description="the limited coupling")
    dark_matter: DarkMatterInterpretation | None = None


class MassGrid(_Strict):
    """Masses of the limit scan: ``n`` points between ``min_GeV`` and ``max_GeV`` (log or linear)."""

    min_GeV: float = Field(gt=0)
    max_GeV: float = Field(gt=0)
    n: int = Field(ge=1)
    spacing: Literal["log", "linear"] = "log"

    @model_validator(mode="after")
    def _order(self) -> MassGrid:
        if self.max_GeV < self.min_GeV:
            raise ValueError("max_GeV must be >= min_GeV")
        return self

    def values(self) -> np.ndarray:
        f = np.geomspace if self.spacing == "log" else np.linspace
        return f(self.min_GeV, self.max_GeV, self.n)


class Statistics(_Strict):
    """Limit-setting options (na64ana.stats)."""

    cl: float = Field(gt=0, lt=1, description="confidence level")
    method: Literal["exact", "toys", "asymptotic"] = "exact"
    masses: MassGrid


class SearchDefinition(_Strict):
    """One search: campaign(s) + selection + signal model + interpretation + statistics (docs/searches.md)."""

    name: str = Field(pattern=_NAME)
    title: str = Field(min_length=1)
    references: list[Reference] = Field(min_length=1)
    campaigns: list[str] = Field(min_length=1, description="campaign names of datasets.json")
    selection: str = Field(pattern=_NAME, description="selection name (selections/<name>.toml)")
    signal: SignalModel
    interpretation: Interpretation
    statistics: Statistics

    @field_validator("campaigns")
    @classmethod
    def _campaign_names(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not re.match(r"^[A-Za-z0-9_]+$", c)]
        if bad or len(set(v)) != len(v):
            raise ValueError(f"campaigns must be distinct names of letters, digits and '_', got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SearchDefinition:
        cls = _model_class(self.signal.model)
        if self.interpretation.coupling != cls.limited_coupling:
            raise ValueError(f"model '{self.signal.model}' is limited on '{cls.limited_coupling}', "
                             f"not '{self.interpretation.coupling}'")
        if self.interpretation.dark_matter is not None and self.signal.decay != "invisible":
            raise ValueError("a dark-matter interpretation needs the invisible decay")
        if ("primakoff" in self.signal.production) != (self.interpretation.coupling == "g_agg"):
            raise ValueError("primakoff production makes ALPs (coupling g_agg) and only ALPs")
        return self

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the validated definition (defaults filled in; stable)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def mediator(self, **coupling: float) -> VectorMediator:
        """The signal model with its parameters (and e.g. ``eps=...`` for the limited coupling)."""
        return models.get(self.signal.model, **{**self.signal.parameters, **coupling})

    def masses(self) -> np.ndarray:
        """The mass grid of the limit scan (GeV)."""
        return self.statistics.masses.values()

    def signal_yields(self, coupling: float, masses: np.ndarray | list[float] | None = None, *,
                      e0: float = 100.0, emiss_min: float = 50.0, target: str = "ecal") -> SignalYields:
        """Signal per EOT by production mechanism for the limited coupling = ``coupling`` (invisible decay).

        Examples:
            >>> from na64ana import searches
            >>> s = searches.load("invisible_2016_2018_annihilation")
            >>> y = s.signal_yields(1e-4, [0.25])
            >>> bool(y["annihilation"][0] > 10 * y["brem"][0])
            True
        """
        if self.signal.decay != "invisible":
            raise InputError(f"search '{self.name}': only invisible-decay yields are built",
                             field="signal.decay")
        model = self.mediator(**{self.interpretation.coupling: coupling})
        return yields.model_signal_yield(model, self.masses() if masses is None else masses,
                                         mechanisms=self.signal.production, beam=self.signal.beam, e0=e0,
                                         emiss_min=emiss_min, xsec=self.signal.cross_section, target=target)


def _model_class(name: str) -> type[VectorMediator]:
    return type(models.get(name))


def search_path(name_or_path: str | Path) -> Path:
    """A search file: a path to a .toml, or the name of one shipped in na64ana.searches."""
    p = Path(name_or_path)
    if p.suffix == ".toml":
        return p
    return Path(str(resources.files("na64ana.searches").joinpath(f"{name_or_path}.toml")))


def available() -> tuple[str, ...]:
    """Names of the search definitions shipped with the package."""
    return tuple(sorted(p.name.removesuffix(".toml") for p in resources.files("na64ana.searches").iterdir()
                        if p.name.endswith(".toml")))


def load(name_or_path: str | Path) -> SearchDefinition:
    """Read and validate a search definition; any problem -> one-line InputError naming file and field.

    Examples:
        >>> from na64ana import searches
        >>> s = searches.load("invisible_2016_2018_annihilation")
        >>> s.signal.production
        ['brem', 'annihilation']
    """
    path = search_path(name_or_path)
    if not path.exists():
        known = ", ".join(available())
        raise InputError(f"search definition not found (shipped: {known})", file=str(path))
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", file=str(path)) from None
    try:
        search = SearchDefinition.model_validate(raw)
    except ValidationError as err:
        raise _validation_error(err, str(path)) from None
    try:
        search.mediator()
    except InputError as err:
        raise InputError(err.message, file=str(path), field=f"signal.parameters.{err.field}") from None
    if path.stem != search.name:
        raise InputError(f"name '{search.name}' must be the file name '{path.stem}'", file=str(path),
                         field="name")
    return search


def _validation_error(err: ValidationError, file: str) -> InputError:
    """:func:`na64ana.errors.from_validation`, with the field path kept whole.

    from_validation drops location parts that *start* with a union tag such as "int", which would also drop
    "interpretation"; here only pydantic's tags (a type name, possibly with [...]) are dropped.
    """
    out = from_validation(err, file=file)
    tags = {"float", "int", "str", "bool", "list", "dict", "tuple"}
    loc = [str(p) for p in err.errors()[0]["loc"]]
    field = ".".join(p for p in loc if p not in tags and "[" not in p)
    return InputError(out.message, file=file, field=field or None)


def json_schema() -> dict[str, object]:
    """The JSON schema of a search definition (pydantic), as embedded in docs/searches.md."""
    return SearchDefinition.model_json_schema()
