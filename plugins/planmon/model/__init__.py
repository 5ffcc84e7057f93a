"""Frozen records shared by every layer: targets, what is collected from them, object names, and
remediations as the store keeps them.

They carry no behaviour beyond validation and (de)serialisation of their own fields; the store reads
and writes them, engines produce them, analysis and remediation consume them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
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
    # slower, but planmon cannot say whether its plan changed: no plan was captured for a side, or
    # (engines whose statistics name no plan) none inside the regressed window (docs/detection.md)
    PLAN_UNKNOWN = "plan_unknown"
    PARAMETER_SENSITIVE = "parameter_sensitive"
    ERROR_PRONE = "error_prone"
    FORCED_PLAN_FAILURE = "forced_plan_failure"


class Severity(StrEnum):
    """How much a regression costs, least first: members compare by rank with ``rank``.

    ``info``: statistically solid but under the impact floor; stored and listed, never alerted or
    proposed for remediation unless a routing rule selects it explicitly (docs/detection.md)."""

    INFO = "info"
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
    parent_query_key: str | None = None  # SQL Server PSP: the parent query of this variant
    dispatcher_plan_key: str | None = None  # SQL Server PSP: the parent's dispatcher plan
    replica_group_id: int | None = None  # SQL Server 2025 / Azure: the replica group its stats come from


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

# The day-aware baseline's sums per query, plan and hour-of-day bucket (planmon.analysis.onset.hour_buckets:
# hour of day in UTC, +24 on Saturdays and Sundays; OTHER_HOURS_BUCKET for the hours the analysed window
# does not cover, and the daily rollups, which have no hour), over the rows the moments count:
# n, s1 = sum(n * mean), sm2 = sum(n * mean^2) as above; rows: intervals held.
HOUR_BUCKETS = 48  # hour of day x (weekday, weekend)
OTHER_HOURS_BUCKET = HOUR_BUCKETS  # the bucket of the hours an analysed window does not cover
BASELINE_BUCKET_COLUMNS: tuple[str, ...] = (
    "target_id", "query_id", "plan_id", "bucket", "n", "s1", "sm2", "rows",
)  # fmt: skip


# -- identifiers ----------------------------------------------------------------------------------

_BARE_KEY_PART = re.compile(r'[^."]+')


@dataclass(frozen=True, slots=True)
class QualifiedName:
    """An object of a monitored database as its catalog names it: ``(schema, name)``, never a dotted
    string. ``schema`` is the PostgreSQL / SQL Server schema or the MySQL database; None when a plan
    names the object without one.

    SQL quoting belongs to the engine (``Engine.quote``). :meth:`key` is the one text form for
    storage and display: ``public.orders`` as before, a part with a dot or a double quote in double
    quotes (``"we""ird.sch".t x``); :meth:`from_key` reads it back without splitting inside a name.
    """

    schema: str | None
    name: str

    @property
    def parts(self) -> tuple[str, ...]:
        return (self.name,) if self.schema is None else (self.schema, self.name)

    def quoted(self, quote_identifier: Callable[[str], str]) -> str:
        """The name for SQL: each part quoted by the dialect's ``quote_identifier``, joined by dots."""
        return ".".join(quote_identifier(part) for part in self.parts)

    def key(self) -> str:
        return ".".join(_key_part(part) for part in self.parts)

    def __str__(self) -> str:
        return self.key()

    @classmethod
    def from_key(cls, key: str) -> QualifiedName:
        """The name :meth:`key` wrote (also the plain ``schema.table`` keys stored before it)."""
        parts = _key_parts(key)
        if len(parts) == 1:
            return cls(None, parts[0])
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        raise ValueError(f"not a [schema.]name key: {key!r}")


def _key_part(part: str) -> str:
    if _BARE_KEY_PART.fullmatch(part) and part == part.strip():
        return part
    return '"' + part.replace('"', '""') + '"'


def _key_parts(key: str) -> list[str]:
    parts: list[str] = []
    position = 0
    while True:
        if key.startswith('"', position):
            end = position + 1
            text = []
            while True:
                quote = key.find('"', end)
                if quote < 0:
                    raise ValueError(f"unterminated quoted name in key {key!r}")
                text.append(key[end:quote])
                if key.startswith('"', quote + 1):
                    text.append('"')
                    end = quote + 2
                    continue
                position = quote + 1
                break
            parts.append("".join(text))
        else:
            dot = key.find(".", position)
            parts.append(key[position:] if dot < 0 else key[position:dot])
            position = len(key) if dot < 0 else dot
        if position >= len(key):
            return parts
        if key[position] != ".":
            raise ValueError(f"a quoted name must be followed by '.' in key {key!r}")
        position += 1


# -- remediation records ----------------------------------------------------------------------------
# A proposal is built by the target's engine (planmon.engines.<engine>.remediation), stored by
# planmon.store.remediations and carried through every later step of planmon.remediation.workflow as
# a Remediation. Statements carry their values as bound parameters, never formatted into the SQL.


class Action(enum.StrEnum):
    """Remediation actions planmon knows; a target's allow-list names these values."""

    FORCE_PLAN = "force_plan"  # SQL Server: force the last good plan through Query Store
    UNFORCE_PLAN = "unforce_plan"  # SQL Server: undo a force planmon placed
    QUERY_STORE_HINT = "query_store_hint"  # SQL Server 2022+: e.g. RECOMPILE for parameter-sensitive
    EVICT_PLAN = "evict_plan"  # SQL Server: DBCC FREEPROCCACHE (plan_handle)
    UPDATE_STATISTICS = "update_statistics"  # SQL Server: UPDATE STATISTICS on the plan's tables
    ANALYZE = "analyze"  # PostgreSQL ANALYZE / MySQL ANALYZE TABLE
    RECREATE_INDEX = "recreate_index"  # PostgreSQL / MySQL: an index of the baseline that is gone


class RemediationState(enum.StrEnum):
    """The remediation state machine (docs/remediation.md)."""

    PROPOSED = "proposed"
    REFUSED = "refused"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPLIED = "applied"
    FAILED = "failed"
    KEPT = "kept"
    ROLLED_BACK = "rolled_back"


_S = RemediationState
# Which states a transition may start from.
TRANSITIONS: Mapping[RemediationState, frozenset[RemediationState]] = {
    _S.REFUSED: frozenset({_S.PROPOSED, _S.APPROVED}),  # rails re-checked at apply time
    _S.APPROVED: frozenset({_S.PROPOSED}),
    _S.REJECTED: frozenset({_S.PROPOSED}),
    _S.APPLIED: frozenset({_S.APPROVED}),
    _S.FAILED: frozenset({_S.APPROVED, _S.APPLIED}),
    _S.KEPT: frozenset({_S.APPLIED}),
    _S.ROLLED_BACK: frozenset({_S.APPLIED}),
}
OPEN_STATES = frozenset({_S.PROPOSED, _S.APPROVED, _S.APPLIED})
FINAL_STATES = frozenset(RemediationState) - OPEN_STATES


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement to run on the target, its values bound as parameters (DB-API ``%s`` style)."""

    sql: str
    params: tuple[Any, ...] = ()
    autocommit: bool = True  # CREATE INDEX CONCURRENTLY and DBCC cannot run inside a transaction

    def as_text(self) -> str:
        """The statement as a DBA reads it: the SQL, and its bound values in a comment."""
        if not self.params:
            return f"{self.sql};"
        values = ", ".join(repr(value) for value in self.params)
        return f"{self.sql};  -- parameters: {values}"

    def as_dict(self) -> dict[str, Any]:
        return {"sql": self.sql, "params": list(self.params), "autocommit": self.autocommit}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Statement:
        return cls(str(value["sql"]), tuple(value.get("params") or ()), bool(value.get("autocommit", True)))


def statements_text(statements: Sequence[Statement]) -> str:
    return "\n".join(statement.as_text() for statement in statements)


@dataclass(frozen=True, slots=True)
class PlanForcing:
    """One Query Store plan's forcing state as it was read when a force was proposed."""

    plan_id: int
    is_forced: bool
    forcing_type: str

    def as_dict(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "is_forced": self.is_forced, "forcing_type": self.forcing_type}


@dataclass(frozen=True, slots=True)
class ForcingSnapshot:
    """SQL Server: the query's plans and automatic plan correction's states right before a proposal."""

    plans: tuple[PlanForcing, ...] = ()
    apc_states: tuple[str, ...] = ()

    def plan(self, plan_id: int) -> PlanForcing | None:
        return next((p for p in self.plans if p.plan_id == plan_id), None)

    def as_dict(self) -> dict[str, Any]:
        return {"plans": [p.as_dict() for p in self.plans], "apc_states": list(self.apc_states)}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ForcingSnapshot:
        plans = tuple(
            PlanForcing(int(p["plan_id"]), bool(p["is_forced"]), str(p.get("forcing_type") or "NONE"))
            for p in value.get("plans") or ()
        )
        return cls(plans, tuple(str(s) for s in value.get("apc_states") or ()))


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a proposal was made, in typed fields (each action fills the ones it has).

    Stored as JSON in ``remediation.evidence`` under the same keys, beside the statements.
    """

    query_id: int | None = None  # SQL Server: the Query Store query_id acted on
    plan_id: int | None = None  # the plan forced or unforced
    forcing_state: ForcingSnapshot | None = None  # read live right before a force was proposed
    undoes: int | None = None  # unforce: the remediation whose force it undoes (None: not planmon's)
    hint: str | None = None  # query_store_hint: the hint set
    previous_hint: str | None = None  # query_store_hint: the user's hint string before (the rollback sets it)
    plan_handle: str | None = None  # evict_plan: 0x... of the plan evicted
    index: str | None = None  # recreate_index: the index the baseline plan used, its table, DDL
    table: QualifiedName | None = None
    captured_definition: str | None = None
    last_seen: str | None = None
    tables: tuple[QualifiedName, ...] = ()  # analyze / update statistics: the plan's tables
    ledger: tuple[str, ...] = ()  # earlier remediations of the query that did not help

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, with only the fields this action has."""
        stored: dict[str, Any] = {}
        for name in _EVIDENCE_SCALARS:
            value = getattr(self, name)
            if value is not None:
                stored[name] = value
        if self.forcing_state is not None:
            stored["forcing_state"] = self.forcing_state.as_dict()
        if self.table is not None:
            stored["table"] = self.table.key()
        if self.tables:
            stored["tables"] = [table.key() for table in self.tables]
        if self.ledger:
            stored["ledger"] = list(self.ledger)
        return stored

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Evidence:
        forcing = value.get("forcing_state")
        table = value.get("table")
        return cls(
            query_id=_optional_int(value.get("query_id")),
            plan_id=_optional_int(value.get("plan_id")),
            forcing_state=ForcingSnapshot.from_dict(forcing) if forcing else None,
            undoes=_optional_int(value.get("undoes")),
            hint=value.get("hint"),
            previous_hint=value.get("previous_hint"),
            plan_handle=value.get("plan_handle"),
            index=value.get("index"),
            table=QualifiedName.from_key(table) if table else None,
            captured_definition=value.get("captured_definition"),
            last_seen=value.get("last_seen"),
            tables=tuple(QualifiedName.from_key(t) for t in value.get("tables") or ()),
            ledger=tuple(str(w) for w in value.get("ledger") or ()),
        )


_EVIDENCE_SCALARS = (
    "query_id", "plan_id", "undoes", "hint", "previous_hint", "plan_handle", "index", "captured_definition",
    "last_seen",
)  # fmt: skip


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A remediation before it is stored: what to run, how to undo it, why, and what should happen."""

    action: Action
    database_name: str
    statements: tuple[Statement, ...]
    rollback: tuple[Statement, ...]
    expected_effect: str
    evidence: Evidence = field(default_factory=Evidence)
    objects: tuple[QualifiedName, ...] = ()  # tables (or indexes) the action touches

    @property
    def sql_text(self) -> str:
        return statements_text(self.statements)

    @property
    def rollback_text(self) -> str | None:
        return statements_text(self.rollback) if self.rollback else None

    def stored_evidence(self) -> dict[str, Any]:
        """Evidence as stored: the statements themselves (for execution) beside what justified them."""
        return {
            **self.evidence.as_dict(),
            "database_name": self.database_name,
            "objects": [name.key() for name in self.objects],
            "statements": [s.as_dict() for s in self.statements],
            "rollback_statements": [s.as_dict() for s in self.rollback],
        }


@dataclass(frozen=True, slots=True)
class Remediation:
    """A stored remediation (a ``remediation`` row) as every step after the proposal reads it."""

    id: int
    regression_id: int
    target_id: int
    query_id: int
    action: Action
    state: RemediationState
    database_name: str
    statements: tuple[Statement, ...]  # exactly what was shown to the approver
    rollback: tuple[Statement, ...]
    evidence: Evidence
    sql_text: str
    rollback_sql: str | None
    expected_effect: str
    objects: tuple[QualifiedName, ...] = ()
    target: str | None = None  # the target's name, when the row was read with it
    approved_by: str | None = None
    approved_at: datetime | None = None
    applied_at: datetime | None = None
    outcome: str | None = None
    outcome_reason: str | None = None
    verification: Mapping[str, Any] | None = None
    dag_run_id: str | None = None
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Remediation:
        stored = dict(row.get("evidence") or {})
        return cls(
            id=int(row["id"]),
            regression_id=int(row["regression_id"]),
            target_id=int(row["target_id"]),
            query_id=int(row["query_id"]),
            action=Action(row["action"]),
            state=RemediationState(row["state"]),
            database_name=str(stored.get("database_name") or ""),
            statements=tuple(Statement.from_dict(s) for s in stored.get("statements") or ()),
            rollback=tuple(Statement.from_dict(s) for s in stored.get("rollback_statements") or ()),
            evidence=Evidence.from_dict(stored),
            sql_text=str(row["sql_text"]),
            rollback_sql=row.get("rollback_sql"),
            expected_effect=str(row.get("expected_effect") or ""),
            objects=tuple(QualifiedName.from_key(o) for o in stored.get("objects") or ()),
            target=row.get("target"),
            approved_by=row.get("approved_by"),
            approved_at=row.get("approved_at"),
            applied_at=row.get("applied_at"),
            outcome=row.get("outcome"),
            outcome_reason=row.get("outcome_reason"),
            verification=row.get("verification"),
            dag_run_id=row.get("dag_run_id"),
            created_at=row.get("created_at"),
        )


# -- what a proposal is built from ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexSnapshot:
    """An index definition captured by collection, with when it was first and last seen."""

    table: QualifiedName
    index_name: str
    definition: str
    is_unique: bool
    is_primary: bool
    first_seen: Any
    last_seen: Any


@dataclass(frozen=True, slots=True)
class PlanInfo:
    """A stored plan of the regressed query: its ids, document and last collected forcing state."""

    plan_id: int | None
    plan_key: str | None
    body: bytes | None
    is_forced: bool = False
    forcing_type: str | None = None
    force_failure_count: int | None = None
    last_force_failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a proposal is predicted to do, measured without changing anything on the target.

    ``available`` False: no prediction (``lines`` says why). ``contradicts``: the measurement says the
    proposal would not help (e.g. the planner would not use the index); ``lines`` holds the warning.
    """

    available: bool
    lines: tuple[str, ...]
    method: str = ""  # hypopg / query_store / none
    contradicts: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def unavailable(cls, reason: str) -> Prediction:
        return cls(available=False, lines=(reason,), method="none")

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "lines": list(self.lines),
            "method": self.method,
            "contradicts": self.contradicts,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class RegressionContext:
    """A regression with everything a proposal is built from (assembled by the store)."""

    regression: Mapping[str, Any]  # the regression table's row
    target: Target
    database_name: str
    query_key: str
    query_text: str | None
    baseline_plan: PlanInfo
    current_plan: PlanInfo
    indexes: Sequence[IndexSnapshot] = ()
    query_plans: Sequence[PlanInfo] = ()  # every stored plan of the query (forcing state)
    ledger: Sequence[Mapping[str, Any]] = field(default_factory=list)  # earlier remediations of the query

    @property
    def regression_id(self) -> int:
        return int(self.regression["id"])

    @property
    def kind(self) -> str:
        return str(self.regression["kind"])
