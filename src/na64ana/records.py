"""Typed stage records: what each stage writes, read back as validated objects (pydantic v2, strict keys).

Every product a stage hands to the next one has a model here, with ``load(path)`` / ``dump(path)``:

| record | file | written by |
|---|---|---|
| :class:`Cutflow` | ``run/cutflows/<key>.json`` | run (:func:`na64ana.processing.stage.run_stage`) |
| :class:`Regions` | ``run/regions.json`` | run |
| :class:`RunOutput` | the run folder (cut flows + regions) | run |
| :class:`BackgroundTable` | ``background/background.json`` | :func:`na64ana.background.run_stage` |
| :class:`EfficiencyTable` | ``efficiency/efficiency.json`` | :func:`na64ana.efficiency.run_stage` |
| :class:`na64ana.summary.Summary` | ``summary.json`` | :func:`na64ana.summary.run_stage` (or by hand) |
| :class:`LimitsRecord` | ``limits/limits.json`` | :func:`na64ana.stats.limits.run_stage` |

Why typed: consumers (summary, plots, report, HEPData, studies) read attributes, so a renamed key is a
validation error where the file is read, not a ``KeyError`` three stages later; the JSON schemas in
``docs/interfaces.md`` are generated from these models (:func:`schemas_markdown`), so the documentation
cannot drift from the code. The on-disk JSON keeps its keys: a record dumps exactly the fields that were
set (``exclude_unset``), so optional keys absent from a file stay absent when it is rewritten.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .blinding import Blinding, SignalBox
from .bookkeeping.provenance import write_json
from .errors import InputError, OutputError, from_validation

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    """Base of the stage records: unknown keys are errors, ``load``/``dump`` keep the on-disk keys."""

    model_config = ConfigDict(extra="forbid")
    file_name: ClassVar[str] = ""

    @classmethod
    def validate_data(cls: type[R], data: Any, *, file: str | None = None) -> R:
        """Validate parsed JSON; a failure is one InputError naming the file and the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise from_validation(exc, file=file) from None

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        """Read and validate a record; ``path`` may be the file or the stage folder holding it."""
        path = Path(path)
        if path.is_dir() and cls.file_name:
            path = path / cls.file_name
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InputError("not found", file=str(path)) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg}, line {exc.lineno})", file=str(path)) from None
        return cls.validate_data(data, file=str(path))

    def to_json(self) -> dict[str, Any]:
        """The on-disk JSON (the keys that were set, nothing else)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def dump(self, path: str | Path) -> Path:
        """Write the record atomically (see :func:`na64ana.bookkeeping.provenance.write_json`)."""
        return write_json(path, self.to_json())


# ------------------------------------------------------------------------------------------------------
# Run outputs (stage 1)


class CutflowRow(Record):
    cut: str
    label: str
    events: int | None
    weighted: float | None
    eff_abs: float | None
    eff_rel: float | None
    blinded: bool = Field(description="true: the row lies in the signal box and its counts are hidden")


class BoxEdges(Record):
    """The signal box as recorded in an output (GeV); :class:`na64ana.blinding.SignalBox` in code."""

    ecal_max: float
    hcal_max: float

    def box(self) -> SignalBox:
        return SignalBox(self.ecal_max, self.hcal_max)


class Cutflow(Record):
    """One dataset key's cut flow: row 0 counts every event read, then one row per cut."""

    campaign: str
    run: str
    key: str
    sample: str
    selection: str
    selection_hash: str
    blinded: bool
    kind: Literal["data", "mc"]
    eot: float
    rows: list[CutflowRow]
    note: str | None = None
    blinded_region: BoxEdges | None = None

    @property
    def is_campaign_data(self) -> bool:
        return self.kind == "data" and self.sample == "campaign"


class RegionCounts(Record):
    """Region counts of one key: ``{region: count or null}`` (null = inside the box, blinded), plus the
    weighted counts (MC) and the EOT normalisation (dimuon benchmark)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, int | None] = Field(init=False)  # region name -> count

    weighted: dict[str, float | None] | None = None
    eot: float | None = None
    rate_per_eot: dict[str, float | None] | None = None

    @property
    def counts(self) -> dict[str, int | None]:
        return dict(self.__pydantic_extra__ or {})

    @property
    def signal_box(self) -> int | None:
        return self.counts.get("signal_box")


class Regions(Record):
    """``regions.json``: region counts per dataset key."""

    model_config = ConfigDict(extra="forbid")
    file_name: ClassVar[str] = "regions.json"
    keys: dict[str, RegionCounts]

    @classmethod
    def validate_data(cls, data: Any, *, file: str | None = None) -> Regions:
        try:
            return cls.model_validate({"keys": data})
        except ValidationError as exc:
            raise from_validation(exc, file=file) from None

    def to_json(self) -> dict[str, Any]:
        return {k: v.to_json() for k, v in self.keys.items()}


class RunOutput(BaseModel):
    """A run folder read as records: the cut flow and region counts of every dataset key."""

    model_config = ConfigDict(extra="forbid")
    cutflows: dict[str, Cutflow]
    regions: Regions

    @classmethod
    def load(cls, run_dir: str | Path) -> RunOutput:
        """Read a complete run output (OutputError if ``run.complete`` is missing)."""
        run_dir = Path(run_dir)
        if not (run_dir / "run.complete").exists():
            raise OutputError("not a complete run output (no run.complete: the run failed or is running)",
                              file=str(run_dir))
        cfs = {}
        for p in sorted((run_dir / "cutflows").glob("*.json")):
            cf = Cutflow.load(p)
            cfs[cf.key] = cf
        return cls(cutflows=cfs, regions=Regions.load(run_dir / "regions.json"))

    def campaign_keys(self) -> dict[str, str]:
        """``{run name: dataset key}`` of the campaign data sample (the keys the search counts)."""
        return {cf.run: key for key, cf in self.cutflows.items() if cf.is_campaign_data}

    @property
    def blinding(self) -> Blinding:
        data = [cf for cf in self.cutflows.values() if cf.kind == "data"]
        if not data:
            return "no-data"
        return "blinded" if any(cf.blinded for cf in data) else "unblinded"


# ------------------------------------------------------------------------------------------------------
# Background


class ValueUnc(Record):
    value: float
    unc: float


class SidebandFit(Record):
    """A side-band fit (:class:`na64ana.background.FitResult`): curve, covariance, data and quality."""

    model: str
    params: list[float]
    cov: list[list[float]]
    fit_range: list[float]
    edges: list[float]
    counts: list[float]
    nll: float
    chi2: float
    ndf: int
    converged: bool
    pulls: list[float]
    reference_energy_GeV: float
    p1: float | None = None
    p2: float | None = None
    p2_unc: float | None = None


class Alternative(Record):
    """One systematic variation of the upstream extrapolation (or the error that stopped it)."""

    value: float | None = None
    model: str | None = None
    fit_range: list[float] | None = None
    chi2: float | None = None
    ndf: int | None = None
    error: str | None = None
    admitted: bool | None = None  # in the shape nuisance (False: rejected by the validation region, or a
    validation_p_value: float | None = None  # fit-range variation kept as information only)


class Upstream(Record):
    """The side-band-C extrapolation: ``stat`` (once), the shape nuisance as an asymmetric log-normal
    (``shape_kappa_up``/``shape_kappa_down``, absolute ``syst_up``/``syst_down``; ``syst`` the larger);
    ``syst_parts``: the largest |alt - nominal| per kind (information)."""

    value: float
    stat: float
    syst: float
    unc: float
    syst_parts: dict[str, float]
    alternatives: dict[str, Alternative]
    shape_kappa_up: float | None = None
    shape_kappa_down: float | None = None
    syst_up: float | None = None
    syst_down: float | None = None


class BackgroundNuisances(Record):
    """How a run's background enters the likelihood (issue 14 item 2): ``uncorrelated`` (absolute,
    symmetric: the upstream fit's statistical error and the other components, in quadrature; one log-normal
    per run) and the upstream shape as one asymmetric log-normal COMMON to all runs (``shape_up``,
    ``shape_down`` absolute on the run's total; ``shape_kappa_up``/``shape_kappa_down`` of the upstream)."""

    uncorrelated: float
    shape_up: float
    shape_down: float
    shape_kappa_up: float
    shape_kappa_down: float


class Component(Record):
    """One background component in the box; ``limit``: an upper limit, counted in the total as value = limit
    with a 100% uncertainty (as the published totals; issue 14 item 4)."""

    value: float
    unc: float | None
    limit: bool
    source: str


class Validation(Record):
    """Exponential shape validated in the high-statistics region (empty when it has no events).

    The verdict (issue 14 item 1; :func:`na64ana.background.validate_shape`): ``flag`` "ok" | "warn" |
    "fail" from the goodness of fit (``p_value``, Poisson deviance on bins merged to >= 5 expected events,
    ``gof_bins`` of them) and the slope agreement with side band C (``slope_diff_sigma``); the limits in
    ``thresholds`` (fail_p_value, warn_p_value, fail_slope_sigma, warn_slope_sigma); ``message`` says it
    in one line. None in records written before the verdict existed."""

    fit: SidebandFit | None = None
    chi2_ndf: float | None = None
    max_abs_pull: float | None = None
    p_value: float | None = None
    slope_diff_sigma: float | None = None
    flag: Literal["ok", "warn", "fail"] | None = None
    thresholds: dict[str, float] | None = None
    fit_range: list[float] | None = None
    gof_bins: int | None = None
    slope: float | None = None
    slope_unc: float | None = None
    sideband_slope: float | None = None
    sideband_slope_unc: float | None = None
    contamination_events: float | None = None
    message: str | None = None


class BackgroundRun(Record):
    run: str
    fit: SidebandFit
    upstream: Upstream
    components: dict[str, Component]
    total: ValueUnc
    validation: Validation
    nuisances: BackgroundNuisances | None = None
    box_ecal_max_GeV: float | None = None
    eot: float | None = None
    eot_skipped: float = 0.0
    skipped_files: list[str] = Field(default_factory=list)


class BackgroundTable(Record):
    """``background.json``: per data run, the background expected in the box and how it was made."""

    file_name: ClassVar[str] = "background.json"
    campaign: str | None
    blinded: bool
    runs: list[BackgroundRun]

    def run(self, name: str) -> BackgroundRun | None:
        return next((r for r in self.runs if r.run == name), None)

    @property
    def by_run(self) -> dict[str, BackgroundRun]:
        return {r.run: r for r in self.runs}

    @property
    def blinding(self) -> Blinding:
        return "blinded" if self.blinded else "unblinded"


# ------------------------------------------------------------------------------------------------------
# Efficiency


class PublishedEfficiency(Record):
    light: float | None = None
    heavy: float | None = None
    rel_unc: float | None = None


class PsThresholdCorrection(Record):
    """How the efficiency stage treats the signal MC's preshower-threshold loss (na64ana.efficiency)."""

    applied: bool = Field(description="false: switched off, the efficiencies are the raw simulated ones "
                          "(the simulated losses are still recorded per mass)")
    published_loss: float = Field(description="published PS-threshold loss of the signal (published.toml)")
    published_loss_unc: float
    source: str
    definition: str = Field(description="the factor, when it applies, and its uncertainty")


class EfficiencyRun(Record):
    """One run: the efficiency and its factors per A' mass (lists aligned with ``mass_GeV``)."""

    mass_GeV: list[float]
    efficiency: list[float]
    unc: list[float]
    unc_stat: list[float]
    syst_rel: float | None
    factors: dict[str, list[float]]
    factors_unc: dict[str, list[float]]
    cuts: dict[str, list[float]]
    n_eff: list[float]
    weighted_pass_per_eot: list[float]
    denominator_per_eot: list[float]
    published: PublishedEfficiency | None = None
    run: str | None = Field(None, description="the run, when an entry is one signal region of it (ALPs)")
    region: str | None = Field(None, description="the signal region of the entry (ALPs: hcal, beyond)")
    ps_threshold_loss_sim: list[float | None] | None = Field(
        None, description="per mass: the signal MC's preshower-threshold loss in the box (datasets.json "
        "signal_ps_threshold_loss; null where the sample does not carry it)")
    ps_threshold_correction: list[float] | None = Field(
        None, description="per mass: the factor applied to the simulated efficiency, (1 - published loss) / "
        "(1 - simulated loss) where the simulated loss exceeds the published one, else 1; it is also the "
        "factor group 'ps_threshold' (the groups still multiply to the efficiency)")
    ps_threshold_correction_unc: list[float] | None = Field(
        None, description="per mass: absolute uncertainty of that factor (published loss uncertainty and "
        "the x -> 1 shape systematic in quadrature; 0 where no factor), included in 'unc'")

    def index(self, mass: float) -> int:
        """Index of the tabulated mass nearest to ``mass`` (in log mass)."""
        return min(range(len(self.mass_GeV)), key=lambda i: abs(math.log(self.mass_GeV[i] / mass)))


class EfficiencyTable(Record):
    """``efficiency.json``: signal efficiency per run and A' mass from the signal MC (no data read)."""

    file_name: ClassVar[str] = "efficiency.json"
    campaign: str
    definition: str | None = None
    emiss_min_GeV: float | None = None
    beam_energy_GeV: float | None = None
    selection_hash: dict[str, str] | None = None
    factor_groups: dict[str, str] | None = None
    hist: str | None = None
    production: str | None = Field(None, description="signal production of the MC: brem (None), "
                                   "annihilation, primakoff or visible")
    emiss_min_by_run_GeV: dict[str, float] | None = Field(
        None, description="the runs' own E_miss thresholds where they differ (per-run box edges)")
    signal_ea_min_fraction: float | None = Field(
        None, description="generation coverage of the signal MC: E_A' generated above this fraction of the "
                          "run's E_miss threshold (None: not recorded)")
    ps_threshold_correction: PsThresholdCorrection | None = Field(
        None, description="the preshower-threshold correction (brem and annihilation signal MC)")
    runs: dict[str, EfficiencyRun]

    @property
    def blinding(self) -> Blinding:
        return "no-data"


# ------------------------------------------------------------------------------------------------------
# Limits


class LimitPoint(Record):
    """One mass of the scan; ``error`` instead of limits when it failed (never a silent NaN)."""

    mass_GeV: float
    error: str | None = None
    workspace: str | None = None
    eps_obs: float | None = None
    eps_exp: float | None = None
    eps_exp_m1: float | None = None
    eps_exp_p1: float | None = None
    eps_exp_m2: float | None = None
    eps_exp_p2: float | None = None
    blinded: bool | None = None
    eps_ref: float | None = None
    yield_per_eot_at_eps_ref: float | None = None
    cls_at_limit: float | None = None
    n_outcomes: int | None = None
    mu_obs: float | None = None
    signal_events_limit: float | None = None
    eps_simple: float | None = None
    n90_simple: float | None = None
    simple_rel_diff: float | None = None
    # production mechanisms (dark photon): expected signal per mechanism at eps_ref, brem-only expectation
    signal_per_mechanism_at_eps_ref: dict[str, float] | None = None
    eps_exp_brem_only: float | None = None
    cls_share_round: float | None = None
    # two-sided limits (visible band): upper edges of the excluded eps band
    eps_obs_upper: float | None = None
    eps_exp_upper: float | None = None
    eps_exp_m1_upper: float | None = None
    eps_exp_p1_upper: float | None = None
    eps_exp_m2_upper: float | None = None
    eps_exp_p2_upper: float | None = None
    # other models: limits on the model's coupling (and the upper edges of a closed region)
    coupling: str | None = None
    coupling_unit: str | None = None
    coupling_obs: float | None = None
    coupling_exp: float | None = None
    coupling_exp_m1: float | None = None
    coupling_exp_p1: float | None = None
    coupling_exp_m2: float | None = None
    coupling_exp_p2: float | None = None
    coupling_obs_upper: float | None = None
    coupling_exp_upper: float | None = None
    coupling_exp_m1_upper: float | None = None
    coupling_exp_p1_upper: float | None = None
    coupling_exp_m2_upper: float | None = None
    coupling_exp_p2_upper: float | None = None
    note: str | None = None
    details: dict[str, Any] | None = None


class SimplifiedCheck(Record):
    description: str
    max_abs_rel_diff: float | None


class YBand(Record):
    y_obs: list[float | None]
    y_exp: list[float | None]
    y_exp_m1: list[float | None]
    y_exp_p1: list[float | None]
    y_exp_m2: list[float | None]
    y_exp_p2: list[float | None]


class YLimits(Record):
    """Upper limits on y(m_chi), one band per alpha_D benchmark under the key ``alpha_d=<value>``."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, YBand] = Field(init=False)
    ratio_mA_over_mchi: float
    m_chi_GeV: list[float]

    @property
    def bands(self) -> dict[str, YBand]:
        return dict(self.__pydantic_extra__ or {})


class AlphaDEntry(Record):
    f: float
    alpha_d_min_obs: list[float | None]
    alpha_d_min_exp: list[float | None]


class AlphaDLimits(Record):
    ratio_mA_over_mchi: float
    m_chi_GeV: list[float]
    pseudodirac: AlphaDEntry
    majorana: AlphaDEntry


class LimitsRecord(Record):
    """``limits.json``: the eps scan, its model description and the dark-matter reading."""

    file_name: ClassVar[str] = "limits.json"
    cl: float
    method: str
    analysis: str
    blinded: bool
    cross_section: str | None = None
    beam_energy_GeV: float | None = None
    emiss_min_GeV: float | None = None
    poi: str | None = None
    normsys: str | None = None
    points: list[LimitPoint]
    simplified_check: SimplifiedCheck | None = None
    n_failed: int
    y_limits: YLimits | None = None
    alpha_d_limits: AlphaDLimits | None = None
    summary_file: str | None = None
    search: Literal["dark_photon", "vector", "alp", "visible"] | None = Field(
        None, description="kind of limit (absent: dark photon, records before the search dispatch)")
    signature: Literal["invisible", "visible"] | None = None
    beam_particle: Literal["e-", "e+"] | None = None
    production: list[str] | None = None
    coupling: str | None = None
    coupling_unit: str | None = None
    model: dict[str, Any] | None = None
    notes: str | None = None
    crosscheck: dict[str, Any] | None = Field(None, description="pyhf toy CLs at the exact limit "
                                              "(na64ana.stats.crosscheck); a failure is a warning")
    warnings: list[str] | None = None
    details: dict[str, Any] | None = None

    @property
    def blinding(self) -> Blinding:
        return "blinded" if self.blinded else "unblinded"


# ------------------------------------------------------------------------------------------------------
# Schemas for docs/interfaces.md

SCHEMA_MODELS: tuple[type[BaseModel], ...] = (Cutflow, Regions, BackgroundTable, EfficiencyTable,
                                              LimitsRecord)
SCHEMA_BEGIN = "<!-- BEGIN GENERATED RECORD SCHEMAS (na64ana.records.schemas_markdown) -->"
SCHEMA_END = "<!-- END GENERATED RECORD SCHEMAS -->"


def schemas_markdown() -> str:
    """The JSON schema of every stage record, as the markdown block embedded in docs/interfaces.md."""
    from .summary import Summary  # local: a cycle, summary imports this module (its typed inputs)

    parts = [SCHEMA_BEGIN, "", "Generated from `na64ana.records` (do not edit by hand; "
             "`python -c 'import na64ana.records as r; r.update_docs()'` rewrites it).", ""]
    models: tuple[type[BaseModel], ...] = (*SCHEMA_MODELS[:4], Summary, SCHEMA_MODELS[4])
    for model in models:
        schema = model.model_json_schema()
        if model is Regions:  # on disk: the mapping itself, not wrapped in "keys"
            schema = {**schema, "properties": schema["properties"]["keys"]}
        parts += [f"### `{model.__name__}`" + (f" (`{getattr(model, 'file_name', '')}`)"
                                              if getattr(model, "file_name", "") else ""), "",
                  "<details><summary>JSON schema</summary>", "", "```json",
                  json.dumps(schema, indent=1, sort_keys=True), "```", "", "</details>", ""]
    parts.append(SCHEMA_END)
    return "\n".join(parts)


def docs_block(text: str) -> str | None:
    """The generated block inside a document, or None."""
    if SCHEMA_BEGIN not in text or SCHEMA_END not in text:
        return None
    return text[text.index(SCHEMA_BEGIN):text.index(SCHEMA_END) + len(SCHEMA_END)]


def update_docs(path: str | Path = "docs/interfaces.md") -> bool:
    """Rewrite the generated block of ``path`` (appended if absent); True if the file changed."""
    path = Path(path)
    text = path.read_text()
    block = schemas_markdown()
    old = docs_block(text)
    if old is not None:
        new = text.replace(old, block)
    else:
        new = text.rstrip("\n") + "\n\n## Stage record schemas\n\n" + block + "\n"
    if new != text:
        path.write_text(new)
    return new != text


# ------------------------------------------------------------------------------------------------------
# Studies (optimise, closure): typed results, not stage records of the chain (not in SCHEMA_MODELS)


class OptimisationMass(Record):
    """One mass of the box-edge optimisation: per cut the expected eps limit, signal and background."""

    mass_GeV: float
    cut_GeV: list[float]
    eps_exp: list[float | None]
    eps_exp_m1: list[float | None]
    eps_exp_p1: list[float | None]
    signal_events: list[float]
    background: list[float]
    background_unc: list[float]
    method: list[str]
    signal_source: list[str]
    sample_eps: float
    optimum_GeV: float | None
    eps_exp_at_optimum: float | None
    eps_exp_at_box: float | None


class OptimisationRecord(Record):
    """``optimisation.json`` of :mod:`na64ana.studies.optimise` (blinded: side band C and signal MC only)."""

    file_name: ClassVar[str] = "optimisation.json"
    campaign: str
    blinded: bool
    cl: float
    box_ecal_max_GeV: float
    signal_mc_coverage_GeV: float
    signal_ea_min_fraction: float | None = Field(
        None, description="the signal MC's generation coverage read from efficiency.json")
    runs: list[str]
    systematics: dict[str, Any]
    method: str
    optimisation: dict[str, OptimisationMass]
    background_fits: dict[str, list[dict[str, Any]]]


class ClosureSample(Record):
    """One simulated campaign of the closure through the chain (injected or null)."""

    summary: str
    observed: dict[str, int | None]
    background: dict[str, float]
    background_unc: dict[str, float]
    # injected sample: the fitted signal strength against the injected one
    eps_ref: float | None = None
    n_ref: float | None = None
    mu_injected: float | None = None
    mu_hat: float | None = None
    mu_hesse_unc: float | None = None
    mu_interval_68: list[float] | None = None
    pull: float | None = None
    agree_2sigma: bool | None = None
    agree_3sigma: bool | None = None
    expected_signal: dict[str, float] | None = None
    eps_fitted: float | None = None
    eps_interval_68: list[float] | None = None
    # null sample: the observed limit against the expected band
    limit: dict[str, Any] | None = None
    within_1sigma: bool | None = None
    within_2sigma: bool | None = None


class ClosureRecord(Record):
    """``closure.json`` of :mod:`na64ana.studies.closure`."""

    file_name: ClassVar[str] = "closure.json"
    campaign: str
    mass_GeV: float
    eps_injected: float
    seed: int | None = None
    eot_scale: float = 1.0
    n_signal_mc: int | None = None
    injected: ClosureSample
    null: ClosureSample
    definition: str = ""
