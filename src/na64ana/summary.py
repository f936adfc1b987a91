"""The yields summary (issue 5 contract): everything the limit setting needs, writable by hand.

```
{"analysis": str, "beam_energy_GeV": 100, "emiss_min_GeV": 50, "cross_section": "etl"|"ww", "cl": 0.9,
 "correlated": {"xsec": 0.10},
 "runs": [{"name": "I", "eot": 2.3e10, "eot_unc": 0.02,
           "efficiency": 0.7 | {"mass_GeV": [...], "value": [...]}, "efficiency_unc": 0.09,
           "background": 0.043, "background_unc": 0.017, "observed": 0,
           "shape": {...optional...}}, ...],
 "masses_GeV": [...]}
```
Relative uncertainties except ``background_unc`` (absolute). ``correlated``: relative signal uncertainties
shared by all runs. Extensions (optional): ``notes`` (free text / per-field provenance), per-run ``notes``
and ``shape`` = several E_ECAL bins per run: ``{"edges_GeV": [...], "signal_fraction": [...] or
{"mass_GeV": [...], "value": [[...], ...]}, "background": [...], "observed": [...]}`` (the per-run
background and observed are then the bin sums).

Decisions on bad input (every failure is an :class:`InputError` naming the field):
* Any symmetric ``background_unc`` is valid (issue 14): the background is a log-normal with kappa =
  1 + unc/value, defined for every width (300% is kappa = 4). Asymmetric ``background_unc_up`` /
  ``background_unc_down`` give (hi, lo) = (1 + up/b, 1 - down/b) (``0.1 +0.3 -0.09`` is (4, 0.1)), so
  ``down`` must be below the background. ``background_shape_unc_up/down`` (absolute) is the part COMMON to
  all runs (the upstream shape choice): one shared nuisance; ``background_unc`` is then the run's own part.
  ``background = 0`` needs zero uncertainties (no background sample).
* efficiency must be in (0, 1]; EOT > 0; observed a non-negative integer (2.0 is refused: counts are ints).
* ``observed: null`` means *blinded*: the box has not been opened. Only expected limits are computed
  (``eps_obs`` is null and the point says ``"blinded": true``); a summary mixes blinded and open runs never.
* Mass-dependent efficiencies are interpolated linearly in log10(mass) and held constant outside the
  tabulated range (NA64 quotes light -> heavy values only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from . import blinding
from .bookkeeping import provenance
from .datasets import Campaign, read_json
from .datasets import load as load_datasets
from .errors import InputError, from_validation
from .physics.yields import signal_yield
from .records import BackgroundTable, EfficiencyRun, EfficiencyTable, RunOutput

DEFAULT_ANALYSIS = "unnamed summary"
SUMMARY_DEFAULTED = ("analysis", "beam_energy_GeV", "emiss_min_GeV", "cross_section", "cl", "correlated")
RUN_DEFAULTED = ("eot_unc", "efficiency_unc", "background_unc")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MassCurve(_Strict):
    """A quantity tabulated in A' mass (GeV)."""

    mass_GeV: list[float] = Field(min_length=1)
    value: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> MassCurve:
        if len(self.mass_GeV) != len(self.value):
            raise ValueError("mass_GeV and value must have the same length")
        if any(m <= 0 for m in self.mass_GeV) or list(self.mass_GeV) != sorted(self.mass_GeV):
            raise ValueError("mass_GeV must be positive and increasing")
        return self

    def at(self, mass: float | np.ndarray) -> np.ndarray:
        lm = np.log10(np.asarray(self.mass_GeV))
        return np.interp(np.log10(mass), lm, np.asarray(self.value))


class Shape(_Strict):
    """Optional per-run E_ECAL binning: the run is then several bins in the likelihood."""

    edges_GeV: list[float] = Field(min_length=2)
    signal_fraction: list[float] | MassCurveShape = Field(description="signal share per bin (sums to 1)")
    background: list[float]
    observed: list[StrictInt]

    @model_validator(mode="after")
    def _lengths(self) -> Shape:
        nb = len(self.edges_GeV) - 1
        fr = self.signal_fraction
        lens = {len(self.background), len(self.observed)}
        lens |= {len(fr)} if isinstance(fr, list) else {len(v) for v in fr.value}
        if lens != {nb}:
            raise ValueError(f"every per-bin list must have {nb} entries (len(edges_GeV) - 1)")
        if any(x < 0 for x in self.background) or any(x < 0 for x in self.observed):
            raise ValueError("background and observed per bin must be >= 0")
        return self

    def fractions(self, mass: float) -> np.ndarray:
        fr = self.signal_fraction
        if isinstance(fr, list):
            f = np.asarray(fr, dtype=float)
        else:
            vals = np.asarray(fr.value, dtype=float)
            lm = np.log10(fr.mass_GeV)
            f = np.array([np.interp(math.log10(mass), lm, vals[:, j]) for j in range(vals.shape[1])])
        return f / f.sum()


class MassCurveShape(_Strict):
    mass_GeV: list[float] = Field(min_length=1)
    value: list[list[float]] = Field(min_length=1)


Shape.model_rebuild()


class Run(_Strict):
    name: str = Field(min_length=1)
    eot: float = Field(gt=0, description="electrons on target")
    eot_unc: float = Field(0.0, ge=0, lt=1, description="relative EOT uncertainty (default 0: none, stated "
                           "by na64ana limits and the report)")
    efficiency: float | MassCurve
    efficiency_unc: float = Field(0.0, ge=0, lt=1, description="relative signal-efficiency uncertainty "
                                  "(default 0: none, stated by na64ana limits and the report)")
    background: float = Field(ge=0, description="expected background events in the signal box")
    background_unc: float | None = Field(None, ge=0, description="ABSOLUTE background uncertainty "
                                         "(symmetric; or give background_unc_up and background_unc_down; "
                                         "neither: 0, stated by na64ana limits and the report)")
    background_unc_up: float | None = Field(None, ge=0, description="ABSOLUTE upward background uncertainty")
    background_unc_down: float | None = Field(None, ge=0,
                                              description="ABSOLUTE downward background uncertainty "
                                              "(below the background: a log-normal stays > 0)")
    background_shape_unc_up: float | None = Field(None, ge=0, description="ABSOLUTE upward background "
                                                  "uncertainty COMMON to all runs (e.g. the side-band shape "
                                                  "choice): one nuisance shared by every run giving it; "
                                                  "background_unc(_up/_down) is then the run's own part")
    background_shape_unc_down: float | None = Field(None, ge=0, description="ABSOLUTE downward background "
                                                    "uncertainty common to all runs (below the background)")
    observed: StrictInt | None = Field(ge=0, description="events observed in the box (an integer); "
                                       "null = blinded (expected limits only)")
    emiss_min_GeV: float | None = Field(None, gt=0, description="this run's E_miss threshold (E0 - box edge);"
                                        " "
                                        "overrides the top-level emiss_min_GeV")
    region: str | None = Field(None, min_length=1, description="signal region (searches with several)")
    shape: Shape | None = None
    notes: str | dict[str, str] | None = None

    @field_validator("efficiency")
    @classmethod
    def _eff_range(cls, v: float | MassCurve) -> float | MassCurve:
        vals = [v] if isinstance(v, float | int) else v.value
        if any(not (0 < x <= 1) for x in vals):
            raise ValueError("efficiency must be in (0, 1]")
        return v

    @model_validator(mode="after")
    def _bkg(self) -> Run:
        up, down = self.background_unc_up, self.background_unc_down
        if (up is None) != (down is None):
            raise ValueError("background_unc_up: give both background_unc_up and background_unc_down")
        if up is not None and self.background_unc is not None:
            raise ValueError("background_unc: give background_unc or background_unc_up/down, not both")
        if self.background == 0 and any(x for x in (self.background_unc, up, down)):
            raise ValueError("background_unc: a zero background must have zero uncertainty")
        if down is not None and self.background > 0 and down >= self.background:
            raise ValueError(f"background_unc_down: must be below the background ({down:g} >= "
                             f"{self.background:g}): a log-normal never reaches zero")
        s_up, s_down = self.background_shape_unc_up, self.background_shape_unc_down
        if (s_up is None) != (s_down is None):
            raise ValueError("background_shape_unc_up: give both background_shape_unc_up and "
                             "background_shape_unc_down")
        if s_down is not None and (s_up or s_down) and self.background <= 0:
            raise ValueError("background_shape_unc_up: a zero background must have zero uncertainty")
        if s_down is not None and self.background > 0 and s_down >= self.background:
            raise ValueError(f"background_shape_unc_down: must be below the background ({s_down:g} >= "
                             f"{self.background:g}): a log-normal never reaches zero")
        if self.shape is not None and self.observed is not None:
            if sum(self.shape.observed) != self.observed:
                raise ValueError("observed: must equal the sum of shape.observed")
            if not math.isclose(sum(self.shape.background), self.background, rel_tol=1e-6, abs_tol=1e-12):
                raise ValueError("background: must equal the sum of shape.background")
        return self

    def background_kappa(self) -> float | dict[str, float] | None:
        """The run's own background normsys: relative width r (kappa = 1 + r) for a symmetric uncertainty,
        ``{"hi": 1 + up/b, "lo": 1 - down/b}`` for ``b +up -down`` (pyhf code1: the factor is hi^theta above
        and lo^-theta below, so theta = +-1 gives b + up and b - down exactly: 0.1 +0.3 -0.09 is (4, 0.1);
        :func:`na64ana.stats.cls.asymmetric_kappa`), None without background. Any up is allowed (no cap)."""
        if self.background <= 0:
            return None
        if self.background_unc_up is not None and self.background_unc_down is not None:
            return {"hi": 1.0 + self.background_unc_up / self.background,
                    "lo": 1.0 - self.background_unc_down / self.background}
        return float(self.background_unc or 0.0) / self.background

    def background_shape_kappa(self) -> dict[str, float] | None:
        """The normsys (hi, lo) of the background uncertainty common to all runs
        (``background_shape_unc_up/down``), None when not given or zero."""
        up, down = self.background_shape_unc_up, self.background_shape_unc_down
        if self.background <= 0 or up is None or down is None or (up == 0 and down == 0):
            return None
        return {"hi": 1.0 + up / self.background, "lo": 1.0 - down / self.background}

    def efficiency_at(self, mass: float | np.ndarray) -> np.ndarray:
        if isinstance(self.efficiency, MassCurve):
            return self.efficiency.at(mass)
        return np.full(np.shape(mass), float(self.efficiency))


class Summary(_Strict):
    analysis: str = Field(DEFAULT_ANALYSIS, min_length=1, description="free label of the analysis (shown on "
                          "the report and the plots)")
    beam_energy_GeV: float = Field(100.0, gt=0, description="beam energy (GeV)")
    emiss_min_GeV: float = Field(50.0, gt=0, description="missing-energy threshold of the signal box (GeV)")
    cross_section: Literal["etl", "ww"] = Field("etl", description="A' production cross section: exact tree "
                                                "level or Weizsaecker-Williams")
    cl: float = Field(0.9, gt=0, lt=1, description="confidence level of the limits")
    correlated: dict[str, float] = Field(default_factory=dict, description="relative signal uncertainties "
                                         "shared by all runs (default {}: none)")
    runs: list[Run] = Field(min_length=1)
    masses_GeV: list[float] = Field(min_length=1, description="A' masses to scan (GeV)")
    notes: str | dict[str, Any] | None = None
    beam_particle: Literal["e-", "e+"] = Field("e-", description="beam particle")
    production: list[Literal["brem", "annihilation"]] | None = Field(
        None, min_length=1, description="production mechanisms summed per run (default ['brem'] for an "
        "electron beam; required for a positron beam)")
    alpha_D: float | None = Field(None, description="dark coupling alpha_D (> 0; y and the annihilation "
                                  "width)")
    dm: Literal["fermion", "scalar"] | None = Field(None, description="dark-matter spin")
    mass_ratio: float | None = Field(None, description="m_A'/m_chi (default 3; > 2: the decay A' -> chi chi "
                                     "must be open)")
    model: dict[str, Any] | None = Field(None, description="{'name': 'dark_photon' | 'lmu_ltau' | 'b_l' | "
                                         "'vector' | 'alp_photon', ...parameters} (default: the dark photon; "
                                         "checked by na64ana.stats.coupling.from_spec)")
    signature: Literal["invisible"] = Field("invisible", description="'invisible' here; a 'visible' "
                                            "summary is read by na64ana.stats.band")

    @field_validator("alpha_D")
    @classmethod
    def _alpha_d(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError("alpha_D must be > 0")
        return v

    @field_validator("mass_ratio")
    @classmethod
    def _ratio(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and v > 2):
            raise ValueError("mass_ratio = m_A'/m_chi must be > 2 (m_chi < m_A'/2: A' -> chi chi open)")
        return v

    @field_validator("correlated")
    @classmethod
    def _rel(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not 0 <= x < 1:
                raise ValueError(f"correlated.{k}: relative uncertainty must be in [0, 1)")
        return v

    @field_validator("masses_GeV")
    @classmethod
    def _masses(cls, v: list[float]) -> list[float]:
        if any(m <= 0 for m in v):
            raise ValueError("masses must be positive")
        return v

    @field_validator("runs")
    @classmethod
    def _runs(cls, v: list[Run]) -> list[Run]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"run names must be unique (repeated: {', '.join(dup)})")
        if len({r.observed is None for r in v}) > 1:
            raise ValueError("observed must be null (blinded) for all runs or for none")
        return v

    @model_validator(mode="after")
    def _energies(self) -> Summary:
        if self.emiss_min_GeV >= self.beam_energy_GeV:
            raise ValueError("emiss_min_GeV: must be below beam_energy_GeV")
        for i, r in enumerate(self.runs):
            if r.emiss_min_GeV is not None and r.emiss_min_GeV >= self.beam_energy_GeV:
                raise ValueError(f"runs.{i}.emiss_min_GeV: must be below beam_energy_GeV "
                                 f"({r.emiss_min_GeV:g} >= {self.beam_energy_GeV:g})")
        if self.beam_particle == "e+" and self.production is None:
            raise ValueError("production: required for a positron beam (e.g. [\"brem\", \"annihilation\"])")
        return self

    def assumed_defaults(self) -> dict[str, Any]:
        """The contract fields this summary did not give, with the value assumed (``runs.<name>.<field>``
        for per-run ones): ``na64ana limits`` logs them and the report states them, so the reader of a
        hand-written summary's limits sees what was assumed. Only the defaults of the minimal contract are
        listed (not the optional extensions such as ``notes``, ``shape`` or ``model``)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in SUMMARY_DEFAULTED
                               if k not in self.model_fields_set}
        for r in self.runs:
            for k in RUN_DEFAULTED:
                if k == "background_unc":
                    if r.background_unc is None and r.background_unc_up is None:
                        out[f"runs.{r.name}.background_unc"] = 0.0
                elif k not in r.model_fields_set:
                    out[f"runs.{r.name}.{k}"] = getattr(r, k)
        return out

    @property
    def mechanisms(self) -> list[str]:
        """Production mechanisms summed per run (default: bremsstrahlung)."""
        return list(self.production or ["brem"])

    @property
    def ratio(self) -> float:
        """m_A'/m_chi (default: the published convention, 3)."""
        return float(self.mass_ratio) if self.mass_ratio is not None else 3.0

    @property
    def model_name(self) -> str:
        return str((self.model or {}).get("name", "dark_photon"))

    def run_emiss_min(self, run: Run) -> float:
        """The run's E_miss threshold (its own, else the summary's)."""
        return float(run.emiss_min_GeV if run.emiss_min_GeV is not None else self.emiss_min_GeV)


    @property
    def blinded(self) -> bool:
        """True when the box is not opened (``observed`` null): only expected limits are meaningful."""
        return self.runs[0].observed is None


def validate(data: Any, *, file: str | None = None) -> Summary:
    """Validate a summary dict; any failure is one InputError naming the field path."""
    try:
        summ = Summary.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, file=file) from None
    if summ.model is not None:
        from .stats.coupling import from_spec  # the model registry imports this module

        from_spec(summ.model, masses=summ.masses_GeV, e0=summ.beam_energy_GeV, file=file)
    return summ


def load(path: str | Path) -> Summary:
    """Read and validate a summary JSON file (strictly: a repeated key or NaN is an error, see
    :func:`na64ana.datasets.read_json`)."""
    return validate(read_json(path), file=str(Path(path)))


def signal_shares(summary: Summary, mass: float) -> list[np.ndarray]:
    """Per run: EOT x efficiency(mass) x bin fractions, i.e. signal events per unit (yield per EOT)."""
    out = []
    for r in summary.runs:
        base = r.eot * float(r.efficiency_at(mass))
        out.append(base * (r.shape.fractions(mass) if r.shape else np.ones(1)))
    return out


MAX_REL_BKG_UNC = None  # no cap any more (issue 14): kept so that callers passing max_rel_bkg_unc still work
FILE = "summary.json"


def compute(*, analysis: str, campaign: Campaign, background: BackgroundTable, efficiency: EfficiencyTable,
            observed: Mapping[str, int | None] | None, masses_GeV: Sequence[float],
            cross_section: str = "etl", cl: float = 0.9, max_rel_bkg_unc: float | None = MAX_REL_BKG_UNC
            ) -> Summary:
    """The summary written by the analysis chain (the one builder: demo, ``na64ana summary`` and the
    closure study): EOT per run from datasets.json, efficiency vs mass from the signal MC
    (efficiency.json), background and its uncertainty from background.json, observed box counts
    (``{run: count}``, null when blinded, so only expected limits are computed).

    The EOT is the one processed: when the run stage skipped bad input files, background.json (made from
    that run output) records their EOT as ``eot_skipped``; it is subtracted and the run's notes say so.
    The efficiency uncertainty is the run's published relative one (datasets.json).

    A background uncertainty >= the value is kept (the log-normal with kappa = 1 + r is defined for any r;
    issue 14) and noted in the run's notes; ``max_rel_bkg_unc`` is ignored (kept for old callers).
    """
    bkg = background.by_run
    runs: list[dict[str, Any]] = []
    skipped_runs: list[str] = []
    for name, run in campaign.runs.items():
        if name not in bkg or name not in efficiency.runs:
            missing = "background.json" if name not in bkg else "efficiency.json"
            raise InputError(f"run '{name}' is missing", file=missing, field="runs")
        b, e = bkg[name], efficiency.runs[name]
        value, unc = float(b.total.value), float(b.total.unc)
        run_notes = {"background": "background.json total (side-band-C fit + published components)",
                     "efficiency": "signal MC through the invisible selection (efficiency.json)",
                     "efficiency_unc": "published relative efficiency uncertainty (datasets.json)"}
        shape: dict[str, float] = {}
        if b.nuisances is not None:  # issue 14 item 2: the run's own part + the shape shared by all runs
            unc = float(b.nuisances.uncorrelated)
            run_notes["background_unc"] = ("the run's own part: upstream fit statistics and the other "
                                           "components in quadrature (background.json "
                                           "nuisances.uncorrelated)")
            if value > 0 and (b.nuisances.shape_up > 0 or b.nuisances.shape_down > 0):
                shape = {"background_shape_unc_up": float(b.nuisances.shape_up),
                         "background_shape_unc_down": float(b.nuisances.shape_down)}
                run_notes["background_shape_unc_up"] = (
                    "upstream shape (alternative functions and HCAL thresholds, log space; background.json "
                    f"nuisances): kappa {b.nuisances.shape_kappa_up:.3g} / {b.nuisances.shape_kappa_down:.3g}"
                    " on the upstream, ONE nuisance common to all runs")
        if value > 0 and unc >= value:  # kept as is: the log-normal with kappa = 1 + r is defined for any r
            run_notes["background_unc"] = (f"{unc / value:.0%} of the value: a wide log-normal "
                                           "(kappa = 1 + r), not capped (issue 14)")
        if b.validation.message:
            run_notes["background_validation"] = b.validation.message
        eot, skipped = run.eot, float(b.eot_skipped or 0.0)
        if skipped > 0:
            eot -= skipped
            files = b.skipped_files
            run_notes["eot"] = (f"datasets.json EOT {run.eot:.6g} minus {skipped:.6g} EOT of {len(files)} "
                                f"input file(s) skipped as unreadable by the run stage ({', '.join(files)}; "
                                "background.json eot_skipped)")
            skipped_runs.append(name)
        box = (observed or {}).get(name)
        runs.append({"name": name, "eot": eot, "eot_unc": run.eot_unc,
                     "efficiency": {"mass_GeV": list(e.mass_GeV), "value": list(e.efficiency)},
                     "efficiency_unc": run.efficiency_unc, "background": value, "background_unc": unc,
                     **shape, "observed": None if box is None else int(box), "notes": run_notes})
    return validate({
        "analysis": analysis, "beam_energy_GeV": campaign.beam_energy_GeV,
        "emiss_min_GeV": campaign.emiss_min_GeV, "cross_section": cross_section, "cl": cl,
        "correlated": {"xsec": campaign.xsec_unc}, "runs": runs, "masses_GeV": [float(m) for m in masses_GeV],
        "notes": "written by the na64ana chain; observed = null means blinded"
                 + (f"; EOT of run(s) {', '.join(skipped_runs)} reduced by skipped input files (see "
                    "their notes)" if skipped_runs else "")}, file=FILE)


def to_json(summary: Summary) -> dict[str, Any]:
    """The summary as written to summary.json (the keys that were set)."""
    return summary.model_dump(mode="json", exclude_unset=True)


def default_analysis(campaign: str, datasets_file: str | Path) -> str:
    """The summary's ``analysis`` label: the campaign and whether its data are simulated."""
    camp = load_datasets(datasets_file).campaign(campaign, file=str(datasets_file))
    simulated = all(f.seed is not None for r in camp.runs.values() for f in r.files)
    return f"na64ana {campaign} ({'simulated' if simulated else f'data: {Path(datasets_file).name}'})"


def run_stage(run_dir: str | Path, background: str | Path, efficiency: str | Path, datasets_file: str | Path,
              out: str | Path, *, masses_GeV: Sequence[float], analysis: str | None = None,
              campaign: str | None = None, cross_section: str = "etl", cl: float = 0.9,
              search: Any = None, efficiencies: Mapping[str, str | Path] | None = None) -> Summary:
    """The summary stage: read the run output (observed box counts of the campaign data, null when
    blinded), background.json and efficiency.json (files or their stage folders) and the datasets file;
    write ``out/summary.json`` and its provenance (every file read, with hashes; the blinding). ``out`` may
    be the results folder holding the stage folders (as in ``na64ana demo``). ``search`` (a dark-photon
    :class:`na64ana.searches.SearchDefinition`): the summary is made the search's (:func:`for_search`);
    ``efficiencies`` ``{mechanism: efficiency.json or folder}`` of its other production mechanisms."""
    clock = provenance.Clock()
    run_dir = Path(run_dir)
    bfile = Path(background) / BackgroundTable.file_name if Path(background).is_dir() else Path(background)
    efile = Path(efficiency) / EfficiencyTable.file_name if Path(efficiency).is_dir() else Path(efficiency)
    bkg, eff, run_out = BackgroundTable.load(bfile), EfficiencyTable.load(efile), RunOutput.load(run_dir)
    cname = campaign or bkg.campaign or eff.campaign
    camp = load_datasets(datasets_file).campaign(cname, file=str(datasets_file))
    observed = {run: run_out.regions.keys[key].signal_box for run, key in run_out.campaign_keys().items()
                if key in run_out.regions.keys}
    summ = compute(analysis=analysis or default_analysis(cname, datasets_file), campaign=camp,
                   background=bkg, efficiency=eff, observed=observed, masses_GeV=masses_GeV,
                   cross_section=cross_section, cl=cl)
    extra_files = [Path(f) / EfficiencyTable.file_name if Path(f).is_dir() else Path(f)
                   for f in (efficiencies or {}).values()]
    if search is not None:
        tabs = {"brem": eff, **{m: EfficiencyTable.load(f)
                                for m, f in zip(efficiencies or {}, extra_files, strict=True)}}
        summ = for_search(summ, camp, search, efficiencies=tabs)
    out = provenance.prepare_results_dir(out, stage="summary")
    provenance.write_json(out / FILE, to_json(summ))
    provenance.write(out, "summary", inputs=[bfile, efile, *extra_files, run_dir / "regions.json",
                                             run_dir / "cutflows", datasets_file],
                     outputs=[FILE], blinding=blinding.state(summ.blinded), metrics=clock.metrics(),
                     campaign=cname, masses_GeV=[float(m) for m in masses_GeV],
                     **({"search": search.name, "search_hash": search.hash} if search is not None else {}))
    return summ


def from_results(*, analysis: str, campaign: Campaign, background: Mapping[str, Any] | BackgroundTable,
                 efficiency: Mapping[str, Any] | EfficiencyTable, regions: Mapping[str, Any] | None,
                 masses_GeV: Sequence[float], cross_section: str = "etl", cl: float = 0.9,
                 max_rel_bkg_unc: float | None = MAX_REL_BKG_UNC) -> dict[str, Any]:
    """:func:`compute` on plain dicts (background.json, efficiency.json, regions.json keyed by run name);
    returns the summary dict (kept for notebooks). Of a hand-made efficiency dict only ``runs.<run>.mass_GeV``
    and ``efficiency`` are used (and required)."""
    bkg = background if isinstance(background, BackgroundTable) else BackgroundTable.validate_data(background)
    if isinstance(efficiency, EfficiencyTable):
        eff = efficiency
    else:
        curves = {r: MassCurve.model_validate({"mass_GeV": d["mass_GeV"], "value": d["efficiency"]})
                  for r, d in efficiency["runs"].items()}
        eff = EfficiencyTable.model_construct(campaign="", runs={
            r: EfficiencyRun.model_construct(mass_GeV=c.mass_GeV, efficiency=c.value)
            for r, c in curves.items()})
    observed = {name: (regions or {}).get(name, {}).get("signal_box") for name in campaign.runs}
    return to_json(compute(analysis=analysis, campaign=campaign, background=bkg, efficiency=eff,
                           observed=observed, masses_GeV=masses_GeV, cross_section=cross_section, cl=cl,
                           max_rel_bkg_unc=max_rel_bkg_unc))


# ------------------------------------------------------------------------------------------------------
# Searches: the summary of a search definition from the simulated chain (pipeline ``demo --search``)

#: search kinds of :func:`search_kind` -> what their summary is
SEARCH_KINDS = ("dark_photon", "alp", "visible")
X17_MASS_GeV = 0.0167  # the visible-mode efficiency is taken at the signal-MC mass nearest to X17


def search_kind(search: Any) -> str:
    """'visible' (A' -> e+e- behind the WCAL: a band in eps), 'alp' (Primakoff ALPs: a closed region in
    g_agg) or 'dark_photon' (the invisible-mode summary) for a :class:`na64ana.searches.SearchDefinition`."""
    if search.signal.decay == "visible":
        return "visible"
    if search.signal.model == "alp_photon":
        return "alp"
    if search.signal.model != "dark_photon":
        raise InputError(f"search '{search.name}': model '{search.signal.model}' is limited from the "
                         "dark-photon summary (na64ana limits on a summary with its model block), not run "
                         "here",
                         field="signal.model")
    return "dark_photon"


def combined_efficiency(masses_GeV: Sequence[float], tables: Mapping[str, EfficiencyTable], run: str, *,
                        beam: str, e0: float, emiss_min: float, cross_section: str = "etl") -> MassCurve:
    """The run's efficiency at ``masses_GeV`` for a signal summed over production mechanisms, each with its
    own signal-MC efficiency (``{mechanism: efficiency.json}``): eff = sum_k eff_k Y_k / sum_k Y_k with
    Y_k the mechanism's yield per EOT through the run's E_miss window, so that EOT x eff x (Y_brem + Y_ann)
    is the sum of the mechanisms' expected signals. A mechanism with no yield at a mass does not enter it;
    where none has a yield the bremsstrahlung efficiency is kept."""
    masses = sorted({float(m) for m in masses_GeV})
    ys = signal_yield(masses, 1.0, mechanisms=list(tables), beam=beam, e0=e0, emiss_min=emiss_min,
                      xsec=cross_section)
    num = np.zeros(len(masses))
    den = np.zeros(len(masses))
    for mech, tab in tables.items():
        if run not in tab.runs:
            raise InputError(f"run '{run}' is missing from the {mech} efficiency table",
                             file="efficiency.json", field="runs")
        r = tab.runs[run]
        eff = MassCurve(mass_GeV=list(r.mass_GeV), value=list(r.efficiency)).at(np.asarray(masses))
        y = np.asarray(ys[mech], dtype=float)
        num += eff * y
        den += y
    brem = tables.get("brem") or next(iter(tables.values()))
    r0 = brem.runs[run]
    fallback = MassCurve(mass_GeV=list(r0.mass_GeV), value=list(r0.efficiency)).at(np.asarray(masses))
    value = np.where(den > 0, num / np.where(den > 0, den, 1.0), fallback)
    return MassCurve(mass_GeV=masses, value=[float(v) for v in value])


def for_search(summ: Summary, campaign: Campaign, search: Any, *,
               efficiencies: Mapping[str, EfficiencyTable] | None = None) -> Summary:
    """The chain's dark-photon summary made the search's: the campaign's beam particle, the search's
    production mechanisms, each run's own E_miss threshold (its box edge) and, with several mechanisms,
    the per-run efficiency summed over their signal MC (:func:`combined_efficiency`, ``efficiencies``
    ``{mechanism: table}``, at the summary's scan masses plus the brem MC masses)."""
    data = to_json(summ)
    mechs = list(search.signal.production)
    data["beam_particle"] = campaign.beam
    data["production"] = mechs
    notes = data.get("notes")
    extra = {"search": f"{search.name} ({search.title})", "production": ", ".join(mechs)}
    data["notes"] = {**notes, **extra} if isinstance(notes, dict) else {"notes": notes or "", **extra}
    for r in data["runs"]:
        run = campaign.runs[r["name"]]
        r["emiss_min_GeV"] = campaign.emiss_min(run)
        if len(mechs) > 1:
            missing = [m for m in mechs if m not in (efficiencies or {})]
            if missing:
                raise InputError(f"no signal-MC efficiency for production {missing[0]} of search "
                                 f"'{search.name}'", file="efficiency.json", field="production")
            tabs = {m: (efficiencies or {})[m] for m in mechs}
            masses = [*data["masses_GeV"], *tabs[mechs[0]].runs[r["name"]].mass_GeV]
            curve = combined_efficiency(masses, tabs, r["name"], beam=campaign.beam,
                                        e0=campaign.beam_energy_GeV, emiss_min=campaign.emiss_min(run),
                                        cross_section=data.get("cross_section", "etl"))
            r["efficiency"] = curve.model_dump()
            r.setdefault("notes", {})["efficiency"] = (
                f"signal MC of {' + '.join(mechs)} through the invisible selection, each mechanism's "
                "efficiency weighted by its yield through the run's E_miss window (efficiency*.json)")
    return validate(data, file=FILE)


def _published_background(key: str) -> tuple[float, str]:
    from . import published

    ent = published.entry(key)
    return float(ent["value"]), str(ent.get("source", ""))


def compute_alp(*, analysis: str, campaign: Campaign, efficiency: EfficiencyTable,
                observed: Mapping[str, Mapping[str, int | None]] | None, masses_GeV: Sequence[float],
                cl: float = 0.9, background_key: str = "mediators.alp_2016_2018.background",
                background_rel_unc: float = 0.35) -> dict[str, Any]:
    """The ALP summary (``model: alp_photon``) of the chain: one channel per signal region with the runs
    combined, as the published analysis (the exact CLs enumerates every channel: 2 channels instead of
    2 x runs): the EOT summed (datasets.json), the region efficiency vs mass of the ALP signal MC
    (efficiency.json entries ``"<run> <region>"``) averaged with EOT weights, as its relative uncertainty;
    observed counts per run and processor region (``{run: {region: count}}``, null when blinded) summed.
    [APPROX] Background: the published total (``background_key`` of published.toml) split equally over the
    two regions, with a relative uncertainty ``background_rel_unc`` (no side-band method for the ALP
    regions in na64ana yet)."""
    from .stats.coupling import AlpSummary  # the statistics import this module

    total, source = _published_background(background_key)
    eot_all = sum(r.eot for r in campaign.runs.values())
    regions = {"hcal": "hcal_decay", "beyond": "beyond"}
    runs: list[dict[str, Any]] = []
    for region, proc_region in regions.items():
        curves: list[tuple[float, MassCurve]] = []
        for name, run in campaign.runs.items():
            entry = efficiency.runs.get(f"{name} {region}")
            if entry is None:
                raise InputError(f"run '{name}' region '{region}' is missing", file="efficiency.json",
                                 field="runs")
            curves.append((run.eot, MassCurve(mass_GeV=list(entry.mass_GeV), value=list(entry.efficiency))))
        grid = sorted({m for _, c in curves for m in c.mass_GeV})
        eff = np.zeros(len(grid))
        for w, c in curves:
            eff += w * c.at(np.asarray(grid)) / eot_all
        eff_unc = sum(r.eot * r.efficiency_unc for r in campaign.runs.values()) / eot_all
        eot_unc = sum(r.eot * r.eot_unc for r in campaign.runs.values()) / eot_all
        counts = [(observed or {}).get(name, {}).get(proc_region) for name in campaign.runs]
        obs = None if any(c is None for c in counts) else int(sum(c for c in counts if c is not None))
        b = total / len(regions)
        runs.append({"name": f"{' + '.join(campaign.runs)} {region}", "region": region, "eot": eot_all,
                     "eot_unc": eot_unc,
                     "efficiency": {"mass_GeV": grid, "value": [min(max(float(v), 1e-6), 1.0) for v in eff]},
                     "efficiency_unc": eff_unc, "background": b, "background_unc": background_rel_unc * b,
                     "observed": obs,
                     "notes": {"efficiency": f"ALP signal MC in region {proc_region} through the alp "
                                             "selection, runs averaged with EOT weights (efficiency.json; "
                                             "clipped to (0, 1])",
                               "background": f"APPROX: published total {total:g} ({source}) split equally "
                                             f"over the regions, {background_rel_unc:.0%} uncertainty"}})
    data = {"analysis": analysis, "model": {"name": "alp_photon"},
            "beam_energy_GeV": campaign.beam_energy_GeV, "cl": cl, "correlated": {"xsec": campaign.xsec_unc},
            "runs": runs, "masses_GeV": [float(m) for m in masses_GeV],
            "notes": "written by the na64ana chain (ALP search); observed = null means blinded"}
    try:
        AlpSummary.model_validate({k: v for k, v in data.items() if k != "model"})
    except ValidationError as exc:
        raise from_validation(exc, file=FILE) from None
    return data


def compute_visible(*, analysis: str, campaigns: Mapping[str, Campaign],
                    efficiencies: Mapping[str, EfficiencyTable],
                    observed: Mapping[str, int | None] | None, masses_GeV: Sequence[float],
                    cl: float = 0.9) -> dict[str, Any]:
    """The visible-mode summary (``signature: visible``) of the chain over its campaigns: per run the
    setup and EOT (datasets.json), the efficiency of the visible signal MC at the simulated mass nearest to
    X17 (one number per run, as the summary contract has), the observed box count (null when blinded).
    [APPROX] Background: the run's published estimate (datasets.json; the K0 side bands of the simulated
    run are not turned into an estimate yet)."""
    from .stats import band

    runs: list[dict[str, Any]] = []
    xsec = 0.0
    for cname, camp in campaigns.items():
        xsec = max(xsec, camp.xsec_unc)
        tab = efficiencies[cname]
        for name, run in camp.runs.items():
            if name not in tab.runs:
                raise InputError(f"run '{name}' is missing", file="efficiency.json", field="runs")
            e = tab.runs[name]
            i = e.index(X17_MASS_GeV)
            if run.background is None:
                raise InputError("a visible-mode run needs its background estimate",
                                 file="datasets.json", field=f"campaigns.{cname}.runs.{name}.background")
            runs.append({"name": name, "setup": run.setup, "eot": run.eot, "eot_unc": run.eot_unc,
                         "efficiency": min(max(e.efficiency[i], 1e-6), 1.0),
                         "efficiency_unc": run.efficiency_unc, "background": run.background,
                         "background_unc": run.background_unc or 0.0, "observed": (observed or {}).get(name),
                         "notes": {"efficiency": f"visible signal MC at m = {e.mass_GeV[i] * 1e3:g} MeV "
                                                 f"through the visible selection ({cname} efficiency.json)",
                                   "background": "APPROX: the run's published estimate (datasets.json)"}})
    data = {"analysis": analysis, "signature": "visible", "cl": cl, "correlated": {"xsec": xsec},
            "runs": runs, "masses_GeV": [float(m) for m in masses_GeV],
            "notes": "written by the na64ana chain (visible mode); observed = null means blinded"}
    band.validate_summary(data, file=FILE)
    return data


def run_search_stage(search: Any, parts: Sequence[Mapping[str, Any]], out: str | Path, *,
                     masses_GeV: Sequence[float], analysis: str | None = None) -> dict[str, Any]:
    """The summary stage of an ALP or visible-mode search (:func:`search_kind`): ``parts`` one per
    campaign ``{"campaign", "datasets", "run_dir", "efficiency"}`` (the data datasets.json, the run output,
    the efficiency folder or file); writes ``out/summary.json`` + provenance; returns the summary dict."""
    clock = provenance.Clock()
    kind = search_kind(search)
    if kind == "dark_photon":
        raise InputError("the dark-photon summary is run_stage's", field="search")
    camps: dict[str, Campaign] = {}
    effs: dict[str, EfficiencyTable] = {}
    observed: dict[str, Any] = {}
    inputs: list[Path] = []
    for p in parts:
        cname, dfile, run_dir = str(p["campaign"]), Path(p["datasets"]), Path(p["run_dir"])
        efile = Path(p["efficiency"])
        efile = efile / EfficiencyTable.file_name if efile.is_dir() else efile
        camps[cname] = load_datasets(dfile).campaign(cname, file=str(dfile))
        effs[cname] = EfficiencyTable.load(efile)
        run_out = RunOutput.load(run_dir)
        for rname, key in run_out.campaign_keys().items():
            counts = run_out.regions.keys[key].counts if key in run_out.regions.keys else {}
            observed[rname] = counts if kind == "alp" else counts.get("signal_box")
        inputs += [efile, run_dir / "regions.json", run_dir / "cutflows", dfile]
    label = analysis or f"na64ana {search.name} (simulated {', '.join(camps)})"
    if kind == "alp":
        if len(camps) != 1:
            raise InputError("the ALP summary is built from one campaign", field="campaigns")
        (cname,) = camps
        data = compute_alp(analysis=label, campaign=camps[cname], efficiency=effs[cname], observed=observed,
                           masses_GeV=masses_GeV, cl=search.statistics.cl)
    else:
        data = compute_visible(analysis=label, campaigns=camps, efficiencies=effs, observed=observed,
                               masses_GeV=masses_GeV, cl=search.statistics.cl)
    is_blinded = all(r["observed"] is None for r in data["runs"])
    out = provenance.prepare_results_dir(out, stage="summary")
    provenance.write_json(out / FILE, data)
    provenance.write(out, "summary", inputs=inputs, outputs=[FILE], blinding=blinding.state(is_blinded),
                     metrics=clock.metrics(), campaign=",".join(camps), search=search.name,
                     search_hash=search.hash, kind=kind, masses_GeV=[float(m) for m in masses_GeV])
    return data
