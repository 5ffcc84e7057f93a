"""A probe definition as planmon stores and runs it: the record the probe files validate into.

Loading the files (YAML, sources, uniqueness) is ``planmon.probes.definitions``; the store keeps
and returns these records, so they live here with planmon's other records.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from planmon.model import ENGINE_NAMES, EngineName, Target
from planmon.yaml_fields import OneOrMany, TextMapping

ProbeKind = Literal["health", "performance", "custom"]
ResultType = Literal["scalar", "rowcount", "dataset"]
Operator = Literal[">", ">=", "<", "<=", "=", "!="]
Severity = Literal["warning", "critical"]

PROBE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
MAX_TIMEOUT_SECONDS = 3600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSelector(_Strict):
    """Which targets a probe runs on. Empty: every enabled target whose engine the probe has SQL for.

    A target is selected when its name is in ``names``, or its environment is in ``environments``,
    or it carries every tag in ``tags`` (any one criterion suffices).
    """

    names: Annotated[tuple[str, ...], OneOrMany] = ()
    environments: Annotated[tuple[str, ...], OneOrMany] = ()
    tags: Annotated[dict[str, str], TextMapping] = Field(default_factory=dict)

    @property
    def everything(self) -> bool:
        return not (self.names or self.environments or self.tags)

    def matches(self, target: Target) -> bool:
        if self.everything:
            return True
        if target.name in self.names or (target.environment or "") in self.environments:
            return True
        return bool(self.tags) and all(target.tags.get(k) == v for k, v in self.tags.items())


class ProbeDefinition(_Strict):
    """One probe: a read-only query, how its result becomes a number, and the thresholds on it."""

    name: str
    description: str | None = None
    kind: ProbeKind = "custom"
    targets: TargetSelector = Field(default_factory=TargetSelector)
    # One SQL text for every engine, or one per engine (``postgres:``, ``mysql:``, ``sqlserver:``):
    # a probe runs only on targets whose engine it has SQL for.
    sql: dict[EngineName, str]
    database: str | None = None  # run in this database instead of the connection's default one
    result: ResultType = "scalar"
    value_column: str | None = None  # dataset: the column holding each row's value (default: the last)
    operator: Operator = ">"
    warning: float | None = None
    critical: float | None = None
    severity: Severity = "warning"  # "critical": a plan change of this probe alerts on its own
    schedule: str = "*/5 * * * *"
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_TIMEOUT_SECONDS)
    capture_plan: bool = False
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not PROBE_NAME.match(value):
            raise ValueError("use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit")
        return value

    @field_validator("sql", mode="before")
    @classmethod
    def _sql_for_every_engine(cls, value: Any) -> Any:
        if isinstance(value, str):
            return dict.fromkeys(ENGINE_NAMES, value)
        return value

    @field_validator("sql")
    @classmethod
    def _sql_not_empty(cls, value: dict[EngineName, str]) -> dict[EngineName, str]:
        if not value:
            raise ValueError("give the probe's SQL, as text or as one text per engine")
        empty = [engine for engine, text in value.items() if not text.strip()]
        if empty:
            raise ValueError(f"the SQL for {', '.join(empty)} is empty")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a five-field cron expression, e.g. '*/5 * * * *'")
        return value

    @field_validator("warning", "critical")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("a threshold must be a finite number")
        return value

    @model_validator(mode="after")
    def _thresholds_consistent(self) -> ProbeDefinition:
        if self.warning is None and self.critical is None:
            raise ValueError("set a warning or a critical threshold (or both)")
        if self.warning is not None and self.critical is not None:
            # The critical threshold must be at least as far "into the breach" as the warning one.
            if self.operator in (">", ">=") and self.critical < self.warning:
                raise ValueError(f"with operator {self.operator!r}, critical must be >= warning")
            if self.operator in ("<", "<=") and self.critical > self.warning:
                raise ValueError(f"with operator {self.operator!r}, critical must be <= warning")
        if self.value_column is not None and self.result != "dataset":
            raise ValueError("value_column only applies to result: dataset")
        return self

    def sql_for(self, engine: str) -> str | None:
        return next((text for name, text in self.sql.items() if name == engine), None)

    def applies_to(self, target: Target) -> bool:
        return self.enabled and self.sql_for(target.engine) is not None and self.targets.matches(target)

    @property
    def plan_change_alerts(self) -> bool:
        """Critical probes: a change of their captured plan shape is alerted before runtime regresses."""
        return self.capture_plan and self.severity == "critical"

    def as_stored(self) -> dict[str, Any]:
        """The definition as JSON for the ``probe`` table."""
        return self.model_dump(mode="json")
