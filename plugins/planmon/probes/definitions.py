"""Probe definitions: the DBA's own check queries, kept as YAML files and validated before they run.

A probe file holds ``probes:``, a list of probe mappings (format with every field: docs/probes.md).
Loading validates the whole file and reports every problem with the file, the probe's position and
name, and the field (``probes.yaml: probes[1] (orders_backlog).warning: ...``), so a DBA can fix it
without guessing. Validation happens when a task or command reads the files, never at DAG import.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from planmon.errors import ConfigError
from planmon.model import ENGINE_NAMES, EngineName, Target
from planmon.yaml_fields import OneOrMany, TextMapping

ProbeKind = Literal["health", "performance", "custom"]
ResultType = Literal["scalar", "rowcount", "dataset"]
Operator = Literal[">", ">=", "<", "<=", "=", "!="]
Severity = Literal["warning", "critical"]

PROBE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
MAX_TIMEOUT_SECONDS = 3600
PROBE_FILE_SUFFIXES = (".yaml", ".yml")


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


def validate_probe(raw: Any, *, source: str, position: str = "probe") -> ProbeDefinition:
    """One probe mapping validated; ConfigError names the source, the probe and every bad field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {position}: a probe is a mapping of fields (name, sql, ...)")
    try:
        return ProbeDefinition.model_validate(dict(raw))
    except ValidationError as exc:
        name = raw.get("name")
        label = f"{position} ({name})" if isinstance(name, str) else position
        raise ConfigError(
            f"{source}: " + "; ".join(_problems(exc, label)),
            hint="docs/probes.md lists every field and what it accepts",
        ) from exc


def _problems(exc: ValidationError, label: str) -> list[str]:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against docs/probes.md)"
        given = error.get("input")
        given_text = f" (got {given!r})" if isinstance(given, str | int | float) and location else ""
        problems.append(f"{label}.{location}: {message}{given_text}" if location else f"{label}: {message}")
    return problems


def load_probe_file(path: Path) -> list[ProbeDefinition]:
    """Every probe of one YAML file (``probes:`` list); ConfigError names the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read probe file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(raw, Mapping) or set(raw) != {"probes"} or not isinstance(raw["probes"], list):
        raise ConfigError(
            f"{path}: a probe file is a mapping with one key, probes:, holding a list of probes",
            hint="see docs/probes.md for an example",
        )
    probes: list[ProbeDefinition] = []
    problems: list[str] = []
    for index, item in enumerate(raw["probes"]):
        try:
            probes.append(validate_probe(item, source=str(path), position=f"probes[{index}]"))
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError("; ".join(problems), hint="docs/probes.md lists every field and what it accepts")
    _check_unique(probes, [str(path)] * len(probes))
    return probes


def probe_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in PROBE_FILE_SUFFIXES and p.is_file())


def load_probe_directory(directory: Path) -> list[tuple[ProbeDefinition, str]]:
    """(probe, source file) for every probe file in ``directory``; every bad file is reported at once."""
    loaded: list[tuple[ProbeDefinition, str]] = []
    problems: list[str] = []
    for path in probe_files(directory):
        try:
            loaded += [(probe, str(path)) for probe in load_probe_file(path)]
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError(
            "invalid probe file(s): " + " | ".join(problems),
            hint="docs/probes.md lists every field and what it accepts",
        )
    _check_unique([probe for probe, _ in loaded], [source for _, source in loaded])
    return loaded


def _check_unique(probes: Sequence[ProbeDefinition], sources: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for probe, source in zip(probes, sources, strict=True):
        if probe.name in seen:
            raise ConfigError(
                f"{source}: probe name {probe.name!r} is already defined in {seen[probe.name]}",
                hint="probe names are unique across the probe directory",
            )
        seen[probe.name] = source
