"""Frozen records shared by every layer: targets and what is collected from them.

They carry no behaviour beyond validation of their own fields; the store reads and writes them,
engines produce them, analysis consumes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from planmon.errors import ConfigError

EngineName = Literal["sqlserver", "postgres", "mysql"]
ENGINE_NAMES: tuple[EngineName, ...] = ("sqlserver", "postgres", "mysql")
RemediationMode = Literal["off", "propose", "approve", "auto"]
REMEDIATION_MODES: tuple[RemediationMode, ...] = ("off", "propose", "approve", "auto")


class RegressionKind(StrEnum):
    """What kind of regression a detection is (docs/detection.md "Kinds"); stored by its value."""

    PLAN_CHANGE = "plan_change"
    SAME_PLAN = "same_plan"
    PARAMETER_SENSITIVE = "parameter_sensitive"
    ERROR_PRONE = "error_prone"
    FORCED_PLAN_FAILURE = "forced_plan_failure"


class Severity(StrEnum):
    """How much a regression costs, least first: members compare by rank with ``rank``."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self)


KINDS: tuple[RegressionKind, ...] = tuple(RegressionKind)
SEVERITIES: tuple[Severity, ...] = tuple(Severity)  # least severe first

# How the domain reaches credentials without importing Airflow: a connection id -> the connection
# (host, port, login, password, schema, conn_type, extra_dejson). planmon.airflow.connections gives
# Airflow's lookup to the store and alerting; tests give recorded connections.
ConnectionLookup = Callable[[str], Any]

_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What a DBA registers: a monitored database reached through an Airflow connection id."""

    name: str
    engine: str
    conn_id: str
    environment: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    databases: tuple[str, ...] = ()
    enabled: bool = True
    remediation_mode: str = "propose"
    remediation_conn_id: str | None = None

    def validate(self) -> TargetSpec:
        """Return self, or raise ConfigError naming the bad field and what it accepts."""
        if not _TARGET_NAME.match(self.name):
            raise ConfigError(
                f"target name {self.name!r} is not valid",
                hint="use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit",
            )
        if self.engine not in ENGINE_NAMES:
            raise ConfigError(
                f"unknown engine {self.engine!r} for target {self.name!r}",
                hint=f"use one of: {', '.join(ENGINE_NAMES)}",
            )
        if not self.conn_id.strip():
            raise ConfigError(f"target {self.name!r} needs an Airflow connection id (--conn-id)")
        if self.remediation_mode not in REMEDIATION_MODES:
            raise ConfigError(
                f"unknown remediation mode {self.remediation_mode!r} for target {self.name!r}",
                hint=f"use one of: {', '.join(REMEDIATION_MODES)}",
            )
        return self


@dataclass(frozen=True, slots=True)
class Target:
    """A registered target as stored (``id`` is the repository's)."""

    id: int
    name: str
    engine: EngineName
    conn_id: str
    environment: str | None
    tags: dict[str, str]
    databases: tuple[str, ...]
    enabled: bool
    remediation_mode: RemediationMode
    remediation_conn_id: str | None
    created_at: datetime
    updated_at: datetime
    remediation_policy: dict[str, Any] = field(default_factory=dict)  # see remediation.rails

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "engine": self.engine,
            "conn_id": self.conn_id,
            "environment": self.environment,
            "tags": dict(self.tags),
            "databases": list(self.databases),
            "enabled": self.enabled,
            "remediation_mode": self.remediation_mode,
            "remediation_conn_id": self.remediation_conn_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "remediation_policy": dict(self.remediation_policy),
        }


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """A query as an engine identifies it, with its text (literals already obfuscated)."""

    query_key: str
    database_name: str = ""
    query_hash: str | None = None
    query_text: str | None = None


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A plan of a query; ``body`` is the raw plan document (the store compresses it)."""

    plan_key: str
    query_key: str
    database_name: str = ""
    shape_hash: str | None = None
    engine_plan_hash: str | None = None
    body_format: str | None = None
    body: bytes | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    is_forced: bool = False
    forcing_type: str | None = None
    force_failure_count: int | None = None
    last_force_failure_reason: str | None = None


# The detector's sums over the baseline window's rows of one plan, as the repository computes them
# (planmon.store.stats) and planmon.analysis.detect reads them. n: regular executions with a metric value;
# s1 = sum(n * mean), s2 = sum(n * (stdev^2 + mean^2)), sm2 = sum(n * mean^2) (between-interval
# variance); intervals: rows with n > 0; failed: errors of regular rows plus every aborted or
# failed execution; executions: all; r1, x1: sum(n * logical reads / rows examined) where known
# (NULL where never known); cpu_rows: rows whose metric is CPU (the metric is duration elsewhere).
BASELINE_MOMENT_COLUMNS: tuple[str, ...] = (
    "target_id",
    "query_id",
    "plan_id",
    "n",
    "s1",
    "s2",
    "sm2",
    "intervals",
    "failed",
    "executions",
    "r1",
    "x1",
    "cpu_rows",
)
