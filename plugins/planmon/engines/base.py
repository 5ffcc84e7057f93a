"""The contract every engine adapter implements, and the records adapters hand to the collector.

An adapter reads one monitored server (one target) through a DB-API connection it is given; it
never writes to the server, never changes its settings and never creates extensions. Everything it
returns is plain data; the collector (``planmon.collect``) decides what to store.

Units: times in microseconds, memory in KB, timestamps UTC without tzinfo.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from planmon.model import EngineName


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
    objects: tuple[str, ...] = ()  # qualified tables the plan touches (for index snapshots)


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
    table: str  # schema.table
    index_name: str
    definition: str  # CREATE INDEX ... as the engine reports it
    is_unique: bool = False
    is_primary: bool = False


class EngineAdapter(Protocol):
    """What every engine module provides as ``Adapter`` (``planmon.engines.get_engine(name)``).

    Constructed once per target and collection run as
    ``Adapter(connect, target_name=..., databases=(...), settings=...)`` where ``connect(database)``
    opens a DB-API connection (``None``: the connection's default database) and ``databases`` are
    the target's listed databases (empty: all the adapter can see). ``close()`` closes every
    connection it opened. Connection failures raise ``EngineError`` with a reason
    (UNREACHABLE, AUTHENTICATION, TIMEOUT, PERMISSION_DENIED) and a scrubbed message.
    """

    engine: EngineName

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

    def index_definitions(self, database_name: str, tables: Iterable[str]) -> list[IndexDefinition]:
        """Definitions of the indexes on these tables (``schema.table``)."""
        ...

    def statements_sent(self) -> int:
        """How many statements this adapter sent to the server so far (for budgets and benchmarks)."""
        ...


ConnectionFactory = Callable[[str | None], Any]
"""Opens a DB-API connection to the target (argument: database name, None for the default)."""
