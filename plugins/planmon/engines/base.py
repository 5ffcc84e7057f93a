"""The contract of an engine: the records its collector adapter hands over, the adapter and probe
session protocols, and what a session is opened for.

An engine (``planmon.engines.get_engine(name)``, one package per engine) opens every session planmon
has with a monitored server, for one :class:`Purpose`. Its collector adapter reads one target
through DB-API connections it is given; it never writes to the server, never changes its settings
and never creates extensions. Everything it returns is plain data; the collector
(``planmon.collect``) decides what to store.

Units: times in microseconds, memory in KB, timestamps UTC without tzinfo.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from planmon.config import Settings
from planmon.model import EngineName, QualifiedName


class Aspect(enum.StrEnum):
    """What a collection reads; each one succeeds or fails on its own (ADR 0001)."""

    RUNTIME_STATS = "runtime_stats"
    PLANS = "plans"
    QUERY_TEXT = "query_text"
    FORCING_STATE = "forcing_state"
    OBJECT_DEFINITIONS = "object_definitions"


class AspectState(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"  # the feature is off or missing (Query Store OFF, no pg_stat_statements)
    PERMISSION_DENIED = "permission_denied"
    ERROR = "error"
    # the engine has no such feature at all (plan forcing on PostgreSQL, MySQL): nothing a DBA can
    # turn on, so it never degrades a run; the hint says what the engine offers instead
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class AspectStatus:
    """The outcome of one aspect, with a hint a DBA can act on whenever it is not OK."""

    state: AspectState
    hint: str | None = None
    detail: str | None = None  # scrubbed driver message, when there was one

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.state.value, "hint": self.hint, "detail": self.detail}


OK = AspectStatus(AspectState.OK)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this server can give, probed once per run (``EngineAdapter.capabilities``)."""

    server_version: str
    aspects: Mapping[Aspect, AspectStatus]
    # True when runtime stats can be read for any past window (Query Store); False when only
    # cumulative counters exist (pg_stat_statements, performance_schema, DMVs): those engines
    # can only be collected for "now", and a backfilled interval records that instead of data.
    backfillable: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)  # e.g. Query Store state, max entries

    def available(self, aspect: Aspect) -> bool:
        status = self.aspects.get(aspect)
        return status is not None and status.state is AspectState.OK


@dataclass(frozen=True, slots=True)
class StatementStats:
    """Runtime statistics of one statement (and, where the engine knows it, one plan) in a window.

    Engines with interval statistics (Query Store) report one record per plan, interval and
    execution type. Engines with cumulative counters report the counters themselves
    (``cumulative=True``); the collector turns two readings into a delta.
    """

    query_key: str  # the engine's query identity: query_id / queryid / DIGEST
    database_name: str = ""
    plan_key: str | None = None  # the engine's plan identity when it has one (Query Store plan_id)
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    execution_type: int = 0  # Query Store: 0 regular, 3 aborted, 4 exception
    executions: float = 0.0
    errors: float = 0.0
    cpu_us_total: float | None = None
    cpu_us_mean: float | None = None
    cpu_us_stdev: float | None = None
    cpu_us_min: float | None = None
    cpu_us_max: float | None = None
    duration_us_total: float | None = None
    duration_us_mean: float | None = None
    duration_us_stdev: float | None = None
    duration_us_min: float | None = None
    duration_us_max: float | None = None
    duration_us_sum_squares: float | None = None  # cumulative engines: for variance of deltas
    logical_reads_total: float | None = None  # SQL Server pages, PostgreSQL shared blocks hit+read
    logical_reads_mean: float | None = None
    physical_reads_total: float | None = None
    rows_total: float | None = None
    rows_examined_total: float | None = None  # MySQL
    memory_kb_mean: float | None = None
    query_text: str | None = None  # literals already stripped by the adapter
    query_hash: str | None = None
    cumulative: bool = False
    counters_reset_at: datetime | None = None  # when the engine last reset these counters, if known
    # SQL Server 2022+ parameter-sensitive plan optimisation: this query is a variant of parent_query_key,
    # dispatched by the parent's plan dispatcher_plan_key (which records no runtime statistics)
    parent_query_key: str | None = None
    dispatcher_plan_key: str | None = None
    replica_group_id: int | None = None  # SQL Server 2025 / Azure: the Query Store replica group read


@dataclass(frozen=True, slots=True)
class CapturedPlan:
    """A plan document captured for a statement (EXPLAIN output, Query Store/DMV showplan)."""

    query_key: str
    database_name: str
    body: bytes  # the document as the engine produced it
    body_format: str  # showplan_xml / pg_json / mysql_json
    plan_key: str | None = None  # engine plan identity when it has one; else the shape hash is used
    engine_plan_hash: str | None = None
    is_forced: bool = False
    forcing_type: str | None = None
    force_failure_count: int | None = None
    last_force_failure_reason: str | None = None
    objects: tuple[QualifiedName, ...] = ()  # tables the plan touches (for index snapshots)
    source: str = "engine"  # PLAN_SOURCES: where the document came from


# Where a captured plan came from, stored with it (plan.summary["source"]) and shown with its diff:
# "executed": a plan the engine ran (Query Store, the plan cache, auto_explain's log);
# "generic": EXPLAIN of a statement with $n parameters (PostgreSQL's generic plan): an estimate, and
# the executions (custom plans for their values) may have run another plan;
# "explained": EXPLAIN of a statement without parameters (the plan the planner would choose now).
PLAN_SOURCES = ("executed", "generic", "explained", "engine")
GENERIC_PLAN_NOTE = "estimated generic plan; the executed plan may differ"


@dataclass(frozen=True, slots=True)
class PlanCaptureFailure:
    """A statement whose plan could not be captured; remembered so it is not retried every cycle."""

    query_key: str
    database_name: str
    reason: str  # scrubbed, e.g. "permission denied for table orders"


@dataclass(frozen=True, slots=True)
class IndexDefinition:
    """An index on a table a captured plan touches, as DDL the engine can run again."""

    database_name: str
    qualified_table: QualifiedName  # the table the index is on
    index_name: str
    definition: str  # CREATE INDEX ... as the engine reports it
    is_unique: bool = False
    is_primary: bool = False

    @property
    def table(self) -> str:
        """The table as the repository keys it (``QualifiedName.key``: ``index_snapshot.table_name``)."""
        return self.qualified_table.key()


class EngineAdapter(Protocol):
    """The collector adapter of an engine (``get_engine(name).adapter(...)``).

    Constructed once per target and collection run as
    ``engine.adapter(connect, target_name=..., databases=(...), settings=...)`` where ``connect(database)``
    opens a DB-API connection (``None``: the connection's default database) and ``databases`` are
    the target's listed databases (empty: all the adapter can see). ``close()`` closes every
    connection it opened. Connection failures raise ``EngineError`` with a reason
    (UNREACHABLE, AUTHENTICATION, TIMEOUT, PERMISSION_DENIED) and a scrubbed message.
    """

    engine: ClassVar[EngineName]

    def close(self) -> None: ...

    def capabilities(self) -> Capabilities:
        """Probe features and permissions once per run; never raises for a missing feature."""
        ...

    def runtime_stats(self, start: datetime, end: datetime) -> list[StatementStats]:
        """Statistics for the half-open window [start, end), set-based, top N by CPU, marker-free.

        Engines with cumulative counters return the counters as of now (``cumulative=True``).
        """
        ...

    def plans(
        self, statements: Sequence[StatementStats]
    ) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
        """Capture plans for these statements (the collector chose them within its budget)."""
        ...

    def index_definitions(self, database_name: str, tables: Iterable[QualifiedName]) -> list[IndexDefinition]:
        """Definitions of the indexes on these tables (no schema: any schema, or the engine's default)."""
        ...

    def runtime_stats_notes(self) -> list[str]:
        """What the last ``runtime_stats`` read left out on purpose, counted (empty: nothing)."""
        ...

    def statements_sent(self) -> int:
        """How many statements this adapter sent to the server so far (for budgets and benchmarks)."""
        ...


ConnectionFactory = Callable[[str | None], Any]
"""Opens a DB-API connection to the target (argument: database name, None for the default)."""


@dataclass(frozen=True, slots=True)
class ProbePrivileges:
    """What the probe connection's login may do that a probe must never be able to: each entry names
    the role or privilege and what it allows (``superuser (rolsuper): bypasses every permission
    check``). Empty ``excess``: the login is fit to run probes (docs/probes.md, "The probe login")."""

    login: str
    excess: tuple[str, ...] = ()

    @property
    def too_powerful(self) -> bool:
        return bool(self.excess)


class ProbeSession(Protocol):
    """One connection to one target, set up for probes (``Engine.probe_session``); ``close`` releases it.

    ``privileges()`` reads the login's roles and privileges once per session (the answer is cached):
    the runner asks before any probe statement is sent and refuses to run on a login that can do
    more than read.
    """

    def privileges(self) -> ProbePrivileges:
        """The login's excess privileges, read from the server on the first call only."""
        ...

    def run(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """(column names, rows, truncated) of ``sql`` run read-only under the statement timeout."""
        ...

    def explain(self, sql: str) -> bytes:
        """The estimated plan document of ``sql`` (nothing of it executes)."""
        ...

    def close(self) -> None: ...


class ForcingState(Protocol):
    """An engine's live view of who forced which plan of a query (SQL Server Query Store)."""

    def foreign_forces(self) -> list[str]:
        """Why acting now would override someone else: plans forced by others, APC at work."""
        ...


# -- sessions ---------------------------------------------------------------------------------


class Purpose(enum.StrEnum):
    """What a session with a monitored server is opened for; each engine sets it up accordingly."""

    COLLECT = "collect"  # read-only, statement + lock timeouts, a per-run deadline
    PROBE = "probe"  # read-only transactions per statement, the probe's own timeout
    REMEDIATE = "remediate"  # writes, through the remediation connection, inside lock/statement timeouts


LOCK_TIMEOUT_CAP_MS = 1000  # read-only sessions never queue longer than this behind another's lock


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How one session is set up: purpose, read-only, timeouts (ms) and, for collection, a deadline."""

    purpose: Purpose
    statement_timeout_ms: int
    lock_timeout_ms: int
    deadline: float | None = None  # time.monotonic() after which optional work stops

    @property
    def read_only(self) -> bool:
        return self.purpose is not Purpose.REMEDIATE

    @classmethod
    def collect(cls, settings: Settings, *, started: float) -> SessionPolicy:
        timeout = settings.statement_timeout_ms
        return cls(
            Purpose.COLLECT,
            timeout,
            min(timeout, LOCK_TIMEOUT_CAP_MS),
            deadline=started + settings.collect_deadline_seconds,
        )

    @classmethod
    def probe(cls, timeout_ms: int) -> SessionPolicy:
        return cls(Purpose.PROBE, timeout_ms, min(timeout_ms, LOCK_TIMEOUT_CAP_MS))

    @classmethod
    def remediate(cls, *, lock_timeout_ms: int, statement_timeout_ms: int) -> SessionPolicy:
        return cls(Purpose.REMEDIATE, statement_timeout_ms, lock_timeout_ms)


@dataclass(frozen=True, slots=True)
class SessionStep:
    """One statement that sets a session up; ``optional``: a server that refuses it is fine."""

    sql: str
    params: Mapping[str, Any] | tuple[Any, ...] | None = None
    optional: bool = False


@dataclass(frozen=True, slots=True)
class HookSpec:
    """Which Airflow hook opens this engine's connections (resolved by ``planmon.airflow.connections``;
    engines import no Airflow)."""

    hook: str  # module:Class
    conn_id_argument: str
    database_argument: str
    extra_defaults: Mapping[str, Any] = field(default_factory=dict)  # unless the connection says otherwise
