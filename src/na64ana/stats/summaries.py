"""What the visible-band (:mod:`.band`) and the coupling (:mod:`.coupling`, ALP) yields summaries share:
the strict pydantic base, the counting fields of one channel and the summary-level checks (correlated
uncertainties, masses, unique run names, all-or-none blinding). Written once here, not per summary."""

from __future__ import annotations

import math
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator


class StrictModel(BaseModel):
    """Unknown keys are errors (a misspelt field never silently becomes a default)."""

    model_config = ConfigDict(extra="forbid")


class CountingChannel(StrictModel):
    """One counting channel (a run, or a run in one signal region): exposure, background, observation."""

    name: str = Field(min_length=1)
    eot: float = Field(gt=0)
    eot_unc: float = Field(0.0, ge=0, lt=1)
    efficiency_unc: float = Field(0.0, ge=0, lt=1)
    background: float = Field(ge=0)
    background_unc: float = Field(0.0, ge=0)
    observed: StrictInt | None = Field(ge=0)

    @model_validator(mode="after")
    def _bkg(self) -> Self:
        if self.background == 0 and self.background_unc != 0:
            raise ValueError("background = 0 needs background_unc = 0")
        return self


class CountingSummaryChecks(StrictModel):
    """Checks of a summary with ``correlated``, ``masses_GeV`` and ``runs`` (of :class:`CountingChannel`)."""

    @field_validator("correlated", check_fields=False)
    @classmethod
    def _rel(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not (math.isfinite(x) and 0 <= x < 1):
                raise ValueError(f"relative uncertainty '{k}' must be in [0, 1)")
        return v

    @field_validator("masses_GeV", check_fields=False)
    @classmethod
    def _masses(cls, v: list[float]) -> list[float]:
        if any(not (math.isfinite(m) and m > 0) for m in v):
            raise ValueError("masses must be finite and > 0 GeV")
        return v

    @field_validator("runs", check_fields=False)
    @classmethod
    def _runs(cls, v: list[Any]) -> list[Any]:
        names = [r.name for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"run names must be unique, got {names}")
        if len({r.observed is None for r in v}) > 1:
            raise ValueError("either every run is blinded (observed: null) or none")
        return v

    @property
    def blinded(self) -> bool:
        return bool(getattr(self, "runs")[0].observed is None)  # noqa: B009 -- declared by the subclass
