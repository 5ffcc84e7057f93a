"""SQL Server adapter: runtime statistics and plans from Query Store, or from the plan cache when it is off.

Every statement comes from ``include/sql/sqlserver`` (read-only, marked ``/* planmon */``) and is sent
through a DB-API connection the caller opens (pymssql via Airflow's MsSqlHook in production). Query Store
is read per database (its views are database-scoped); the plan-cache fallback is one server-wide read of
cumulative counters. Nothing here writes to the server or changes its settings.

Session choices, made once per connection:
- ``READ UNCOMMITTED``: planmon reads statistics, not business data. Query Store views and catalog views
  read internal tables that Query Store's own flush/cleanup and DDL (index rebuilds) lock; committed reads
  would queue planmon behind them and make it part of the blocking it is meant to watch. A dirty read of a
  statistics row costs nothing: the next run reads it again. This is what the established DMV collectors do.
- ``LOCK_TIMEOUT`` (= the statement timeout): the schema-stability locks that even dirty reads take still
  wait behind schema changes; a lock wait ends with error 1222 (TIMEOUT) instead of hanging the run.
- ``DEADLOCK_PRIORITY LOW``: if planmon ever deadlocks with the workload, planmon is the victim.
- T-SQL has no per-session statement timeout: the query timeout belongs to the connection (pymssql
  ``connect(timeout=...)``). When the caller left it at 0 (none), the pymssql connection's
  ``query_timeout`` is set to ``statement_timeout_ms`` so no statement runs unbounded.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from planmon.engines._base import AdapterBase, number
from planmon.engines.base import (
    OK,
    Aspect,
    AspectState,
    AspectStatus,
    Capabilities,
    CapturedPlan,
    EngineAdapter,
    IndexDefinition,
    PlanCaptureFailure,
    StatementStats,
)
from planmon.engines.sqlserver.dialect import (
    DIALECT,
    PERMISSION_HINT,
    bind,
    quote_name,
)
from planmon.errors import EngineError, EngineErrorReason, PlanParseError
from planmon.model import EngineName, QualifiedName
from planmon.plans.normalize import strip_literals
from planmon.plans.parse import parse_plan
from planmon.sql import load_sql

log = logging.getLogger(__name__)

ENGINE: EngineName = "sqlserver"
DEFAULT_SCHEMA = "dbo"
QUERY_STORE = "query_store"
PLAN_CACHE = "plan_cache"
NO_SOURCE = "none"

ERROR_EXECUTION_TYPES = frozenset({3, 4})  # 3 aborted by the client, 4 aborted by an exception
PAGE_KB = 8  # Query Store reports memory grants in 8-KB pages
_IN_LIST_CHUNK = 500  # values per IN (...) list: keeps each statement (and its compile) small
_READABLE_STATES = frozenset({"READ_WRITE", "READ_ONLY", "READ_CAPTURE_SECONDARY"})
_SQL_SERVER_2017 = 14
_SQL_SERVER_2022 = 16  # sys.query_store_query_variant (parameter-sensitive plan optimisation)
_SQL_SERVER_2025 = 17  # replica_group_id in runtime stats, sys.query_store_replicas
_AZURE_SQL_DATABASE = 5  # SERVERPROPERTY('EngineEdition'); ProductVersion says 12 there
_AZURE_SQL_MANAGED_INSTANCE = 8
_PRIMARY_ROLE = 1  # sys.query_store_replicas.role_type

# readonly_reason bits of sys.database_query_store_options and their documented meaning.
READ_ONLY_REASONS: tuple[tuple[int, str], ...] = (
    (1, "the database is read-only"),
    (2, "the database is in single-user mode"),
    (4, "the database is in emergency mode"),
    (8, "the database is a secondary replica"),
    (65536, "it reached max_storage_size_mb"),
    (131072, "the number of distinct statements reached Query Store's internal memory limit"),
    (262144, "in-memory items waiting to be flushed reached the internal memory limit (temporary)"),
    (524288, "the database reached its disk size limit"),
)
_SIZE_LIMIT_BIT = 65536

_T = TypeVar("_T")


# --- small helpers --------------------------------------------------------------------------------------


def hex_hash(value: object) -> str | None:
    """A binary(8) hash as ``0x`` + upper-case hex, the way SSMS shows it."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex().upper()
    text = str(value)
    return text if text.lower().startswith("0x") else "0x" + text.upper()


def utc_naive(value: object) -> datetime | None:
    """A datetimeoffset/datetime from the driver as naive UTC (the contract's timestamps)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _chunks(values: Sequence[_T], size: int = _IN_LIST_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def decode_readonly_reason(value: int | None) -> list[str]:
    """The documented meanings of the bits set in ``readonly_reason`` (unknown bits are named as such)."""
    if not value:
        return []
    reasons = [text for bit, text in READ_ONLY_REASONS if value & bit]
    unknown = value & ~sum(bit for bit, _ in READ_ONLY_REASONS)
    if unknown:
        reasons.append(f"undocumented reason bits {unknown}")
    return reasons


# --- runtime statistics: aggregation --------------------------------------------------------------------


@dataclass(slots=True)
class Moments:
    """Count-weighted moments of one metric over rows that describe the same executions' population.

    Query Store keeps, for the open interval, a flushed row and in-memory row(s) per key; each row has its
    own count, mean and standard deviation. Pooled: mean = sum(n*avg)/sum(n), variance =
    sum(n*(stdev^2 + avg^2))/sum(n) - mean^2. Averaging the averages would weigh a 1-execution row like a
    10,000-execution one.
    """

    count: float = 0.0
    total: float = 0.0
    sum_squares: float = 0.0
    minimum: float | None = None
    maximum: float | None = None

    def add(
        self,
        count: float,
        mean: float | None,
        stdev: float | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> None:
        if count <= 0 or mean is None:
            return
        self.count += count
        self.total += count * mean
        self.sum_squares += count * ((stdev or 0.0) ** 2 + mean**2)
        if minimum is not None:
            self.minimum = minimum if self.minimum is None else min(self.minimum, minimum)
        if maximum is not None:
            self.maximum = maximum if self.maximum is None else max(self.maximum, maximum)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def stdev(self) -> float | None:
        mean = self.mean
        if mean is None:
            return None
        variance = self.sum_squares / self.count - mean**2
        return math.sqrt(max(variance, 0.0))  # rounding can leave a tiny negative for constant metrics


@dataclass(slots=True)
class _RuntimeKey:
    """One (plan, interval, execution type) of Query Store, with the moments of its rows."""

    row: Mapping[str, Any]  # the first row: identity, interval and text columns
    executions: float = 0.0
    cpu: Moments = field(default_factory=Moments)
    duration: Moments = field(default_factory=Moments)
    logical_reads: Moments = field(default_factory=Moments)
    physical_reads: Moments = field(default_factory=Moments)
    rows: Moments = field(default_factory=Moments)
    memory_pages: Moments = field(default_factory=Moments)

    def add(self, row: Mapping[str, Any]) -> None:
        count = float(row.get("count_executions") or 0)
        self.executions += count
        self.cpu.add(
            count,
            number(row.get("avg_cpu_time")),
            number(row.get("stdev_cpu_time")),
            number(row.get("min_cpu_time")),
            number(row.get("max_cpu_time")),
        )
        self.duration.add(
            count,
            number(row.get("avg_duration")),
            number(row.get("stdev_duration")),
            number(row.get("min_duration")),
            number(row.get("max_duration")),
        )
        self.logical_reads.add(count, number(row.get("avg_logical_io_reads")))
        self.physical_reads.add(count, number(row.get("avg_physical_io_reads")))
        self.rows.add(count, number(row.get("avg_rowcount")))
        self.memory_pages.add(count, number(row.get("avg_query_max_used_memory")))

    def to_stats(self, database_name: str) -> StatementStats:
        row = self.row
        execution_type = int(row.get("execution_type") or 0)
        group = row.get("replica_group_id")
        memory_pages = self.memory_pages.mean
        text = row.get("query_sql_text")
        return StatementStats(
            query_key=str(row["query_id"]),
            database_name=database_name,
            plan_key=str(row["plan_id"]),
            interval_start=utc_naive(row.get("start_time")),
            interval_end=utc_naive(row.get("end_time")),
            execution_type=execution_type,
            executions=self.executions,
            errors=self.executions if execution_type in ERROR_EXECUTION_TYPES else 0.0,
            cpu_us_total=self.cpu.total if self.cpu.count else None,
            cpu_us_mean=self.cpu.mean,
            cpu_us_stdev=self.cpu.stdev,
            cpu_us_min=self.cpu.minimum,
            cpu_us_max=self.cpu.maximum,
            duration_us_total=self.duration.total if self.duration.count else None,
            duration_us_mean=self.duration.mean,
            duration_us_stdev=self.duration.stdev,
            duration_us_min=self.duration.minimum,
            duration_us_max=self.duration.maximum,
            logical_reads_total=self.logical_reads.total if self.logical_reads.count else None,
            logical_reads_mean=self.logical_reads.mean,
            physical_reads_total=self.physical_reads.total if self.physical_reads.count else None,
            rows_total=self.rows.total if self.rows.count else None,
            memory_kb_mean=None if memory_pages is None else memory_pages * PAGE_KB,
            query_text=None if text is None else strip_literals(str(text)),
            query_hash=hex_hash(row.get("query_hash")),
            replica_group_id=None if group is None else int(group),
        )


def aggregate_runtime_rows(rows: Iterable[Mapping[str, Any]], *, database_name: str) -> list[StatementStats]:
    """Rows of ``query_store_runtime_stats.sql`` -> one StatementStats per (plan, interval, execution type).

    In-memory and flushed rows of the same key are combined (see :class:`Moments`); execution types 3 and
    4 count as errors. Rows of different replica groups (SQL Server 2025, Azure) are never pooled.
    """
    keys: dict[tuple[Any, Any, Any, Any], _RuntimeKey] = {}
    for row in rows:
        key = (
            row["plan_id"],
            row["runtime_stats_interval_id"],
            row["execution_type"],
            row.get("replica_group_id"),
        )
        if key not in keys:
            keys[key] = _RuntimeKey(row=row)
        keys[key].add(row)
    return [entry.to_stats(database_name) for entry in keys.values()]


def without_temporary_ids(rows: Iterable[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """Rows whose query_id and plan_id are real, and how many were left out.

    With Query Store for secondary replicas a query or plan first seen on a secondary carries a negative
    id until the primary persists it: a placeholder that names nothing once persisted, so planmon neither
    stores nor forces it (the next run reads the persisted id).
    """
    read = list(rows)
    kept = [row for row in read if int(row["query_id"]) >= 0 and int(row["plan_id"]) >= 0]
    return kept, len(read) - len(kept)


def primary_replica_group(
    replica_rows: Sequence[Mapping[str, Any]], stats_rows: Sequence[Mapping[str, Any]]
) -> int | None:
    """The replica group whose runtime statistics planmon reads: the one group seen in the primary role.

    A replica has a row per role it was observed in, so after a failover two groups were primary; then,
    and when sys.query_store_replicas says nothing, the lowest group id of the statistics read is taken
    (the caller notes the groups it left out). None: the rows carry no replica group.
    """
    primaries = sorted(
        {int(r["replica_group_id"]) for r in replica_rows if r.get("role_type") == _PRIMARY_ROLE}
    )
    if len(primaries) == 1:
        return primaries[0]
    groups = sorted({int(r["replica_group_id"]) for r in stats_rows if r.get("replica_group_id") is not None})
    candidates = [g for g in groups if g in primaries] or groups
    return candidates[0] if candidates else (primaries[0] if primaries else None)


def top_plans_by_cpu(stats: Sequence[StatementStats], limit: int) -> list[StatementStats]:
    """Keep every record of the ``limit`` plans with the most CPU over the window, across databases."""
    totals: dict[tuple[str, str | None], float] = {}
    for record in stats:
        key = (record.database_name, record.plan_key)
        totals[key] = totals.get(key, 0.0) + (record.cpu_us_total or 0.0)
    if len(totals) <= limit:
        return list(stats)
    kept = set(sorted(totals, key=lambda key: totals[key], reverse=True)[:limit])
    return [record for record in stats if (record.database_name, record.plan_key) in kept]


def plan_cache_stats(rows: Iterable[Mapping[str, Any]], *, row_limit: int) -> list[StatementStats]:
    """Rows of ``plan_cache_stats.sql`` -> cumulative counters per (database, query hash).

    A query hash can have several cached plans (plan hashes, plan handles, statements); their counters are
    summed so that one reading per query describes all its executions: the collector keeps one counter
    reading per (database, query_key) and turns two readings into a delta, which would be wrong if two
    records of one query hash overwrote each other. ``plan_key`` is the plan hash that used the most CPU.
    ``counters_reset_at`` stays unknown (None): plans of one query enter and leave the cache separately, so
    no single time says when the sum restarted; a drop in executions is what shows a reset.
    """
    groups: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row.get("database_name") or ""), hex_hash(row["query_hash"])), []).append(row)
    stats = [
        _cumulative_stats(database, query_hash, members) for (database, query_hash), members in groups.items()
    ]
    stats.sort(key=lambda record: record.cpu_us_total or 0.0, reverse=True)
    return stats[:row_limit]


def _sum(rows: Sequence[Mapping[str, Any]], column: str) -> float:
    return float(sum(float(row.get(column) or 0) for row in rows))


def _extreme(rows: Sequence[Mapping[str, Any]], column: str, pick: Callable[..., Any]) -> float | None:
    values = [float(row[column]) for row in rows if row.get(column) is not None]
    return float(pick(values)) if values else None


def _dominant_plan(rows: Sequence[Mapping[str, Any]]) -> str | None:
    cpu_by_plan: dict[str | None, float] = {}
    for row in rows:
        plan_hash = hex_hash(row.get("query_plan_hash"))
        cpu_by_plan[plan_hash] = cpu_by_plan.get(plan_hash, 0.0) + float(row.get("total_worker_time") or 0)
    return max(cpu_by_plan, key=lambda plan_hash: cpu_by_plan[plan_hash]) if cpu_by_plan else None


def _cumulative_stats(
    database_name: str, query_hash: str | None, rows: Sequence[Mapping[str, Any]]
) -> StatementStats:
    text = next((row["statement_text"] for row in rows if row.get("statement_text")), None)
    return StatementStats(
        query_key=query_hash or "",
        database_name=database_name,
        plan_key=_dominant_plan(rows),
        executions=_sum(rows, "execution_count"),
        cpu_us_total=_sum(rows, "total_worker_time"),
        cpu_us_min=_extreme(rows, "min_worker_time", min),
        cpu_us_max=_extreme(rows, "max_worker_time", max),
        duration_us_total=_sum(rows, "total_elapsed_time"),
        duration_us_min=_extreme(rows, "min_elapsed_time", min),
        duration_us_max=_extreme(rows, "max_elapsed_time", max),
        logical_reads_total=_sum(rows, "total_logical_reads"),
        physical_reads_total=_sum(rows, "total_physical_reads"),
        rows_total=_sum(rows, "total_rows"),
        query_text=None if text is None else strip_literals(str(text)),
        query_hash=query_hash,
        cumulative=True,
    )


# --- plans, recommendations, indexes: row mapping -------------------------------------------------------


def plan_objects(body: bytes, *, database_name: str) -> tuple[QualifiedName, ...]:
    """(schema, table) of every table of ``database_name`` the plan reads or writes (temp tables left out).

    A plan planmon cannot parse is still kept (its body is the evidence); it just names no objects.
    """
    try:
        plan = parse_plan(body, engine=ENGINE)
    except PlanParseError as exc:
        log.warning("plan of database %s could not be parsed for its objects: %s", database_name, exc)
        return ()
    tables: set[QualifiedName] = set()
    for statement in plan.statements:
        for node in statement.nodes():
            ref = node.object
            if ref is None or not ref.schema or not ref.table or ref.table.startswith("#"):
                continue
            if ref.database and ref.database.lower() != database_name.lower():
                continue
            tables.add(QualifiedName(ref.schema, ref.table))
    return tuple(sorted(tables, key=QualifiedName.key))


def _none_if_none(value: object) -> str | None:
    """Query Store spells "no value" as NONE in its *_desc columns."""
    return None if value is None or str(value).upper() == "NONE" else str(value)


def captured_plan_from_query_store(row: Mapping[str, Any], *, database_name: str) -> CapturedPlan:
    body = str(row["query_plan"]).encode("utf-8")
    forced = bool(row.get("is_forced_plan"))
    forcing_type = _none_if_none(row.get("plan_forcing_type_desc"))
    if forced and forcing_type is None and "plan_forcing_type_desc" not in row:
        forcing_type = "MANUAL"  # SQL Server 2016: no automatic tuning, so every forced plan is a user's
    failures = row.get("force_failure_count")
    return CapturedPlan(
        query_key=str(row["query_id"]),
        database_name=database_name,
        body=body,
        body_format="showplan_xml",
        plan_key=str(row["plan_id"]),
        engine_plan_hash=hex_hash(row.get("query_plan_hash")),
        is_forced=forced,
        forcing_type=forcing_type,
        force_failure_count=None if failures is None else int(failures),
        last_force_failure_reason=_none_if_none(row.get("last_force_failure_reason_desc")),
        objects=plan_objects(body, database_name=database_name),
    )


def _json_document(text: object, *, what: str) -> tuple[Any, str | None]:
    """(parsed document, None) or (None, why it could not be parsed)."""
    if text is None:
        return None, None
    try:
        return json.loads(str(text)), None
    except ValueError as exc:
        return None, f"{what} is not valid JSON ({exc})"


def recommendation_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row of sys.dm_db_tuning_recommendations as plain data, its JSON columns parsed.

    ``state`` and ``details`` keep the documents as SQL Server wrote them; the flattened keys
    (``current_state``, ``query_id``, ``regressed_plan_id``, ``recommended_plan_id``, per-plan stats,
    ``script``) are what remediation reads first. A document that is not JSON is kept as text with an error.
    """
    state, state_error = _json_document(row.get("state"), what="state")
    details, details_error = _json_document(row.get("details"), what="details")
    force = (details or {}).get("planForceDetails") or {}
    implementation = (details or {}).get("implementationDetails") or {}
    recommendation: dict[str, Any] = {
        "name": row.get("name"),
        "type": row.get("type"),
        "reason": row.get("reason"),
        "score": row.get("score"),
        "valid_since": utc_naive(row.get("valid_since")),
        "last_refresh": utc_naive(row.get("last_refresh")),
        "is_executable_action": bool(row.get("is_executable_action")),
        "is_revertable_action": bool(row.get("is_revertable_action")),
        "execute_action_initiated_by": row.get("execute_action_initiated_by"),
        "execute_action_initiated_time": utc_naive(row.get("execute_action_initiated_time")),
        "revert_action_initiated_by": row.get("revert_action_initiated_by"),
        "revert_action_initiated_time": utc_naive(row.get("revert_action_initiated_time")),
        "state": state,
        "details": details,
        "current_state": (state or {}).get("currentValue"),
        "state_reason": (state or {}).get("reason"),
        "query_id": force.get("queryId"),
        "regressed_plan_id": force.get("regressedPlanId"),
        "recommended_plan_id": force.get("recommendedPlanId"),
        "regressed_plan": _plan_stats(force, "regressedPlan"),
        "recommended_plan": _plan_stats(force, "recommendedPlan"),
        "script": implementation.get("script"),
    }
    errors = [error for error in (state_error, details_error) if error]
    if errors:
        recommendation["errors"] = errors
        recommendation["raw"] = {"state": row.get("state"), "details": row.get("details")}
    return recommendation


def _plan_stats(force: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {
        "execution_count": force.get(f"{prefix}ExecutionCount"),
        "aborted_count": force.get(f"{prefix}AbortedCount"),
        "cpu_time_average": force.get(f"{prefix}CpuTimeAverage"),
        "cpu_time_stddev": force.get(f"{prefix}CpuTimeStddev"),
    }


def index_definitions_from_rows(
    rows: Iterable[Mapping[str, Any]], *, database_name: str
) -> list[IndexDefinition]:
    """Rows of ``index_columns.sql`` -> one CREATE INDEX statement per index (key order, INCLUDE, WHERE)."""
    indexes: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (str(row["schema_name"]), str(row["table_name"]), int(row["index_id"]))
        indexes.setdefault(key, []).append(row)
    return [_index_definition(columns, database_name) for columns in indexes.values()]


def _index_definition(columns: Sequence[Mapping[str, Any]], database_name: str) -> IndexDefinition:
    first = columns[0]
    keys = sorted(
        (row for row in columns if not row["is_included_column"] and int(row["key_ordinal"] or 0) > 0),
        key=lambda row: int(row["key_ordinal"]),
    )
    included = sorted(
        (row for row in columns if row["is_included_column"]), key=lambda row: int(row["index_column_id"])
    )
    key_list = ", ".join(
        f"{quote_name(str(row['column_name']))} {'DESC' if row['is_descending_key'] else 'ASC'}"
        for row in keys
    )
    kind = "CLUSTERED" if str(first["type_desc"]).upper() == "CLUSTERED" else "NONCLUSTERED"
    unique = "UNIQUE " if first["is_unique"] else ""
    table = f"{quote_name(str(first['schema_name']))}.{quote_name(str(first['table_name']))}"
    ddl = f"CREATE {unique}{kind} INDEX {quote_name(str(first['index_name']))} ON {table} ({key_list})"
    if included:
        ddl += " INCLUDE (" + ", ".join(quote_name(str(row["column_name"])) for row in included) + ")"
    if first["has_filter"] and first.get("filter_definition"):
        ddl += f" WHERE {first['filter_definition']}"
    return IndexDefinition(
        database_name=database_name,
        qualified_table=QualifiedName(str(first["schema_name"]), str(first["table_name"])),
        index_name=str(first["index_name"]),
        definition=ddl,
        is_unique=bool(first["is_unique"]),
        is_primary=bool(first["is_primary_key"]),
    )


# --- capabilities ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class DatabaseState:
    """What the probe found in one database: permission, Query Store options, automatic tuning."""

    name: str
    view_database_state: bool | None = None
    options: dict[str, Any] | None = None
    problem: AspectStatus | None = None  # why Query Store cannot be read here (None: it can)
    tuning: dict[str, Any] = field(default_factory=dict)

    @property
    def actual_state(self) -> str:
        return str((self.options or {}).get("actual_state_desc") or "UNKNOWN")

    @property
    def query_store_readable(self) -> bool:
        return self.problem is None and self.actual_state in _READABLE_STATES

    def as_dict(self) -> dict[str, Any]:
        return {
            "view_database_state": self.view_database_state,
            "query_store": dict(self.options) if self.options else None,
            "query_store_readable": self.query_store_readable,
            "readonly_reasons": decode_readonly_reason((self.options or {}).get("readonly_reason")),
            "problem": None if self.problem is None else self.problem.as_dict(),
            "automatic_tuning": dict(self.tuning),
        }


@dataclass(slots=True)
class ServerProbe:
    """The server as probed once per run; decides where runtime stats and plans are read from."""

    product_version: str
    edition: str | None
    engine_edition: int | None
    major_version: int
    view_server_state: bool
    databases: list[DatabaseState]

    @property
    def query_store_databases(self) -> list[str]:
        return [state.name for state in self.databases if state.query_store_readable]

    @property
    def has_query_variants(self) -> bool:
        """sys.query_store_query_variant exists: SQL Server 2022+, Azure SQL Database / Managed Instance."""
        return self.major_version >= _SQL_SERVER_2022 or self.engine_edition in (
            _AZURE_SQL_DATABASE,
            _AZURE_SQL_MANAGED_INSTANCE,
        )

    @property
    def has_replica_groups(self) -> bool:
        """runtime stats carry replica_group_id: SQL Server 2025+, Azure SQL Database."""
        return self.major_version >= _SQL_SERVER_2025 or self.engine_edition == _AZURE_SQL_DATABASE

    @property
    def source(self) -> str:
        if self.query_store_databases:
            return QUERY_STORE
        return PLAN_CACHE if self.view_server_state else NO_SOURCE


def query_store_problem(database: str, options: Mapping[str, Any] | None) -> AspectStatus | None:
    """Why Query Store of ``database`` cannot be read, with the statement that fixes it (None: readable)."""
    name = quote_name(database)
    if options is None:
        return AspectStatus(
            AspectState.UNAVAILABLE,
            hint=f"sys.database_query_store_options returned nothing in database {name}: "
            f"ALTER DATABASE {name} SET QUERY_STORE = ON",
        )
    actual = str(options.get("actual_state_desc") or "UNKNOWN")
    if actual == "OFF":
        return AspectStatus(
            AspectState.UNAVAILABLE,
            hint=f"Query Store is OFF in database {name}: ALTER DATABASE {name} SET QUERY_STORE = ON",
            detail=f"desired_state_desc={options.get('desired_state_desc')}",
        )
    if actual == "ERROR":
        return AspectStatus(
            AspectState.ERROR,
            hint=f"Query Store is in ERROR state in database {name}: run EXEC "
            f"sys.sp_query_store_consistency_check there (SQL Server 2017+), "
            f"else ALTER DATABASE {name} SET QUERY_STORE CLEAR ALL",
        )
    if actual not in _READABLE_STATES:
        return AspectStatus(AspectState.UNAVAILABLE, hint=f"Query Store is {actual} in database {name}")
    return None


def read_only_hint(database: str, options: Mapping[str, Any] | None) -> str | None:
    """For a READ_ONLY Query Store (still readable, but recording nothing new): why, and what to do."""
    if not options or options.get("actual_state_desc") != "READ_ONLY":
        return None
    name = quote_name(database)
    if options.get("desired_state_desc") == "READ_ONLY":
        return (
            f"Query Store is READ_ONLY in database {name} because it was set so: new executions are not "
            f"recorded; ALTER DATABASE {name} SET QUERY_STORE (OPERATION_MODE = READ_WRITE)"
        )
    reason = int(options.get("readonly_reason") or 0)
    if reason & _SIZE_LIMIT_BIT:
        return (
            f"Query Store is READ_ONLY in database {name} because it reached max_storage_size_mb "
            f"({options.get('current_storage_size_mb')} of {options.get('max_storage_size_mb')} MB): "
            f"raise it (ALTER DATABASE {name} SET QUERY_STORE (MAX_STORAGE_SIZE_MB = ...)) or clean up "
            "(sys.sp_query_store_remove_query, a lower STALE_QUERY_THRESHOLD_DAYS, "
            "SIZE_BASED_CLEANUP_MODE = AUTO); new executions are not being recorded"
        )
    reasons = "; ".join(decode_readonly_reason(reason)) or f"readonly_reason {reason}"
    return f"Query Store is READ_ONLY in database {name} because {reasons}: new executions are not recorded"


def _database_notes(probe: ServerProbe) -> list[str]:
    notes: list[str] = []
    for state in probe.databases:
        if state.problem is not None and state.problem.hint:
            notes.append(state.problem.hint)
        hint = read_only_hint(state.name, state.options)
        if hint:
            notes.append(hint)
    return notes


def runtime_stats_status(probe: ServerProbe) -> AspectStatus:
    """RUNTIME_STATS (and PLANS, QUERY_TEXT): Query Store where readable, else the plan cache, else why."""
    notes = _database_notes(probe)
    readable = probe.query_store_databases
    if readable:
        return AspectStatus(
            AspectState.OK,
            hint="; ".join(notes) or None,
            detail=f"Query Store readable in {len(readable)} of {len(probe.databases)} database(s)",
        )
    if probe.view_server_state:
        fix = f" ({'; '.join(notes)})" if notes else ""
        return AspectStatus(
            AspectState.OK,
            hint="Query Store is off or unreadable in every monitored database, so cumulative plan-cache "
            "counters (sys.dm_exec_query_stats) are read instead: no history, no backfill, nothing once a "
            f"plan leaves the cache{fix}",
            detail="source: sys.dm_exec_query_stats (cumulative)",
        )
    denied = [
        state
        for state in probe.databases
        if state.problem and state.problem.state is AspectState.PERMISSION_DENIED
    ]
    if denied and len(denied) == len(probe.databases):
        return AspectStatus(AspectState.PERMISSION_DENIED, hint=PERMISSION_HINT)
    return AspectStatus(
        AspectState.UNAVAILABLE,
        hint="; ".join([*notes, "the plan-cache fallback needs VIEW SERVER STATE"]),
    )


def forcing_state_status(probe: ServerProbe) -> AspectStatus:
    if probe.query_store_databases:
        return OK
    return AspectStatus(
        AspectState.UNAVAILABLE,
        hint="plan forcing state lives in Query Store, which no monitored database can be read from: "
        "ALTER DATABASE [db] SET QUERY_STORE = ON",
    )


_STATE_OF_REASON = {
    EngineErrorReason.PERMISSION_DENIED: AspectState.PERMISSION_DENIED,
    EngineErrorReason.FEATURE_UNAVAILABLE: AspectState.UNAVAILABLE,
}


# --- the adapter ----------------------------------------------------------------------------------------


class Adapter(AdapterBase):
    """Reads one SQL Server target (``planmon.engines.base.EngineAdapter``)."""

    engine: ClassVar[EngineName] = ENGINE
    dialect = DIALECT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._probe: ServerProbe | None = None
        self._notes: list[str] = []

    def runtime_stats_notes(self) -> list[str]:
        return list(self._notes)

    # connections and statements

    def _connect_action(self, database: str | None) -> str:
        return "connecting"  # the error names the database

    def _setup_action(self, database: str | None) -> str:
        return "session setup"

    def _query(
        self, name: str, params: Mapping[str, Any] | None = None, *, database: str | None = None
    ) -> list[dict[str, Any]]:
        """Run ``include/sql/sqlserver/<name>.sql`` in ``database`` (None: the default one) -> rows."""
        text, bound = bind(load_sql(ENGINE, name), params or {})
        connection = self._connection(database)
        started = time.monotonic()
        rows = self._execute(connection, text, bound, action=f"{name}.sql", database=database)
        log.debug(
            "target %s: %s.sql in %s -> %d rows in %.3fs",
            self.target_name,
            name,
            database or "(default database)",
            len(rows),
            time.monotonic() - started,
        )
        return rows

    # capabilities

    def capabilities(self) -> Capabilities:
        probe = self._run_probe()
        self._probe = probe
        runtime = runtime_stats_status(probe)
        aspects = {
            Aspect.RUNTIME_STATS: runtime,
            Aspect.PLANS: runtime,
            Aspect.QUERY_TEXT: runtime,
            Aspect.FORCING_STATE: forcing_state_status(probe),
            Aspect.OBJECT_DEFINITIONS: OK,
        }
        log.info(
            "target %s: SQL Server %s, Query Store readable in %d of %d database(s), runtime stats from %s, "
            "VIEW SERVER STATE %s",
            self.target_name,
            probe.product_version,
            len(probe.query_store_databases),
            len(probe.databases),
            probe.source,
            "held" if probe.view_server_state else "missing",
        )
        return Capabilities(
            server_version=probe.product_version,
            aspects=aspects,
            backfillable=bool(probe.query_store_databases),
            details={
                "edition": probe.edition,
                "engine_edition": probe.engine_edition,
                "major_version": probe.major_version,
                "view_server_state": probe.view_server_state,
                "runtime_stats_source": probe.source,
                "automatic_tuning_readable": any(state.tuning.get("readable") for state in probe.databases),
                "databases": {state.name: state.as_dict() for state in probe.databases},
            },
        )

    def _ensure_probe(self) -> ServerProbe:
        if self._probe is None:
            self._probe = self._run_probe()
        return self._probe

    def _run_probe(self) -> ServerProbe:
        server = self._query("server_properties", database=None)[0]
        version = str(server.get("product_version") or "0")
        major = int(version.split(".", maxsplit=1)[0] or 0)
        view_server_state = bool(server.get("has_view_server_state")) or bool(
            server.get("has_view_server_performance_state")
        )
        states = [self._probe_database(state, major) for state in self._database_states()]
        return ServerProbe(
            product_version=version,
            edition=server.get("edition"),
            engine_edition=server.get("engine_edition"),
            major_version=major,
            view_server_state=view_server_state,
            databases=states,
        )

    def _database_states(self) -> list[DatabaseState]:
        if self.databases:
            return [DatabaseState(name) for name in self.databases]
        states = []
        for row in self._query("databases", database=None):
            state = DatabaseState(str(row["name"]))
            if row.get("has_db_access") == 0:
                state.problem = AspectStatus(
                    AspectState.PERMISSION_DENIED,
                    hint=f"the login cannot open database {quote_name(state.name)}: "
                    f"CREATE USER [user] FOR LOGIN [login] there, then GRANT VIEW DATABASE STATE",
                )
            states.append(state)
        return states

    def _probe_database(self, state: DatabaseState, major: int) -> DatabaseState:
        if state.problem is not None:
            return state
        try:
            permission = self._query("database_permissions", database=state.name)[0]
            # either grant reads Query Store; the 2022 one is NULL (unknown name) before SQL Server 2022
            state.view_database_state = bool(permission.get("has_view_database_state")) or bool(
                permission.get("has_view_database_performance_state")
            )
            if not state.view_database_state:
                state.problem = AspectStatus(
                    AspectState.PERMISSION_DENIED,
                    hint=f"GRANT VIEW DATABASE STATE TO [user] in database {quote_name(state.name)} "
                    "(Query Store views need it; on SQL Server 2022+ VIEW DATABASE PERFORMANCE STATE "
                    "is enough)",
                )
                return state
            options = self._query("query_store_options", database=state.name)
            state.options = options[0] if options else None
            state.problem = query_store_problem(state.name, state.options)
            state.tuning = self._probe_tuning(state.name, major)
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            state.problem = AspectStatus(
                _STATE_OF_REASON.get(exc.reason, AspectState.ERROR), hint=exc.hint, detail=exc.message
            )
        return state

    def _probe_tuning(self, database: str, major: int) -> dict[str, Any]:
        """Whether automatic tuning recommendations are readable here (a detail; never fails the probe)."""
        if major < _SQL_SERVER_2017:
            return {"readable": False, "why": "automatic tuning exists from SQL Server 2017"}
        try:
            count = self._query("tuning_recommendations_count", database=database)[0].get(
                "recommendation_count"
            )
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            return {"readable": False, "why": exc.message, "hint": exc.hint}
        return {"readable": True, "recommendations": int(count or 0)}

    # runtime statistics

    def runtime_stats(self, start: datetime, end: datetime) -> list[StatementStats]:
        if start >= end:
            raise ValueError(f"the window must not be empty: start {start} is not before end {end}")
        probe = self._ensure_probe()
        limit = self.settings.collect_row_limit
        self._notes = []
        if probe.source == QUERY_STORE:
            params = {"window_start": utc_naive(start), "window_end": utc_naive(end), "row_limit": limit}
            stats = self._per_database(
                probe.query_store_databases,
                functools.partial(self._query_store_stats, probe, params),
            )
            return top_plans_by_cpu(stats, limit)
        if probe.source == PLAN_CACHE:
            names = [state.name for state in probe.databases]
            cache_params: dict[str, object] = {
                "row_limit": limit,
                "all_databases": 0 if self.databases else 1,
                "databases": names or [""],
            }
            rows = self._query("plan_cache_stats", cache_params, database=None)
            log.info(
                "target %s: %d plan-cache counter rows (Query Store unreadable)", self.target_name, len(rows)
            )
            return plan_cache_stats(rows, row_limit=limit)
        raise self._no_source_error(probe, "runtime statistics")

    def _query_store_stats(
        self, probe: ServerProbe, params: Mapping[str, Any], database: str
    ) -> list[StatementStats]:
        """One database's runtime stats: real ids only, one replica group, variants related to parents."""
        name = "query_store_runtime_stats_2025" if probe.has_replica_groups else "query_store_runtime_stats"
        rows, temporary = without_temporary_ids(self._query(name, params, database=database))
        if temporary:
            self._notes.append(
                f"database {database}: {temporary} row(s) with a temporary (negative) query or plan id "
                "from a secondary replica skipped"
            )
        if probe.has_replica_groups:
            rows = self._one_replica_group(database, rows)
        stats = aggregate_runtime_rows(rows, database_name=database)
        return self._with_variants(database, stats) if probe.has_query_variants else stats

    def _one_replica_group(self, database: str, rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        try:
            replicas = self._query("query_store_replicas", database=database)
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            replicas = []
        group = primary_replica_group(replicas, rows)
        kept = [
            row
            for row in rows
            if row.get("replica_group_id") is None or int(row["replica_group_id"]) == group
        ]
        if len(kept) < len(rows):
            others = sorted(
                {int(row["replica_group_id"]) for row in rows} - {group} if group is not None else set()
            )
            self._notes.append(
                f"database {database}: runtime stats of replica group {group} kept; {len(rows) - len(kept)} "
                f"row(s) of replica group(s) {', '.join(map(str, others))} skipped (never pooled)"
            )
        return kept

    def _with_variants(self, database: str, stats: list[StatementStats]) -> list[StatementStats]:
        """Each variant's statistics name its parent query and dispatcher plan (2022+; a failure is noted)."""
        query_ids = sorted({int(s.query_key) for s in stats if s.query_key.isdigit()})
        relations: dict[str, tuple[str, str]] = {}
        try:
            for chunk in _chunks(query_ids):
                for row in self._query(
                    "query_store_query_variants", {"query_ids": list(chunk)}, database=database
                ):
                    relations[str(row["query_variant_query_id"])] = (
                        str(row["parent_query_id"]),
                        str(row["dispatcher_plan_id"]),
                    )
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            self._notes.append(f"database {database}: query variants not read ({exc.message})")
            return stats
        return [
            replace(
                s, parent_query_key=relations[s.query_key][0], dispatcher_plan_key=relations[s.query_key][1]
            )
            if s.query_key in relations
            else s
            for s in stats
        ]

    def _no_source_error(self, probe: ServerProbe, what: str) -> EngineError:
        status = runtime_stats_status(probe)
        reason = (
            EngineErrorReason.PERMISSION_DENIED
            if status.state is AspectState.PERMISSION_DENIED
            else EngineErrorReason.FEATURE_UNAVAILABLE
        )
        return EngineError(
            f"{what} cannot be read: no database has a readable Query Store and VIEW SERVER STATE is missing",
            reason=reason,
            target=self.target_name,
            hint=status.hint,
        )

    def _per_database(self, databases: Sequence[str], read: Callable[[str], list[_T]]) -> list[_T]:
        """``read`` each database; one failing database is logged and skipped unless all of them fail."""
        results: list[_T] = []
        failures: list[EngineError] = []
        for database in databases:
            started = time.monotonic()
            try:
                found = read(database)
            except EngineError as exc:
                self._raise_if_connection_level(exc)
                log.warning("target %s: database %s skipped: %s", self.target_name, database, exc)
                failures.append(exc)
                continue
            log.info(
                "target %s: database %s -> %d records in %.2fs",
                self.target_name,
                database,
                len(found),
                time.monotonic() - started,
            )
            results.extend(found)
        if failures and len(failures) == len(databases):
            raise failures[0]
        return results

    # plans

    def plans(
        self, statements: Sequence[StatementStats]
    ) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
        probe = self._ensure_probe()
        if probe.source == QUERY_STORE:
            return self._query_store_plans(probe, statements)
        if probe.source == PLAN_CACHE:
            return self._plan_cache_plans(statements)
        error = self._no_source_error(probe, "plans")
        return [], [PlanCaptureFailure(s.query_key, s.database_name, error.message) for s in statements]

    def _query_store_plans(
        self, probe: ServerProbe, statements: Sequence[StatementStats]
    ) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
        failures: list[PlanCaptureFailure] = []
        wanted: dict[str, dict[int, StatementStats]] = {}
        readable = set(probe.query_store_databases)
        for statement in statements:
            if statement.database_name not in readable:
                failures.append(_failure(statement, "Query Store is not readable in this database"))
            elif not (statement.plan_key or "").isdigit():
                failures.append(_failure(statement, "no Query Store plan_id to read the plan by"))
            else:
                wanted.setdefault(statement.database_name, {})[int(statement.plan_key or 0)] = statement
        name = "query_store_plans" if probe.major_version >= _SQL_SERVER_2017 else "query_store_plans_2016"
        captured: list[CapturedPlan] = []
        for database, by_plan in wanted.items():
            rows, asked = self._chunked(sorted(by_plan), functools.partial(self._plans_of, name, database))
            found = {int(row["plan_id"]): row for row in rows}
            for plan_id, statement in by_plan.items():
                row = found.get(plan_id)
                if plan_id not in asked:
                    continue  # the deadline passed first: neither captured nor failed
                if row is None:
                    failures.append(_failure(statement, f"plan_id {plan_id} is no longer in Query Store"))
                elif row.get("query_plan") is None:
                    failures.append(
                        _failure(statement, f"Query Store holds no plan text for plan_id {plan_id}")
                    )
                else:
                    captured.append(captured_plan_from_query_store(row, database_name=database))
        return captured, failures

    def _plans_of(self, name: str, database: str, plan_ids: Sequence[int]) -> list[dict[str, Any]]:
        return self._query(name, {"plan_ids": list(plan_ids)}, database=database)

    def _chunked(
        self, keys: Sequence[_T], read: Callable[[Sequence[_T]], list[dict[str, Any]]]
    ) -> tuple[list[dict[str, Any]], set[_T]]:
        """``read`` the keys a chunk at a time until the collection deadline passes: (rows, keys asked)."""
        rows: list[dict[str, Any]] = []
        asked: set[_T] = set()
        for chunk in _chunks(keys):
            if self.past_deadline():
                self._deadline_stop(len(keys) - len(asked))
                break
            rows.extend(read(chunk))
            asked.update(chunk)
        return rows, asked

    def _plan_cache_plans(
        self, statements: Sequence[StatementStats]
    ) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
        failures: list[PlanCaptureFailure] = []
        wanted: dict[bytes, StatementStats] = {}
        for statement in statements:
            try:
                wanted[bytes.fromhex((statement.plan_key or "")[2:])] = statement
            except ValueError:
                failures.append(
                    _failure(statement, f"plan key {statement.plan_key!r} is not a query_plan_hash")
                )
        rows, asked = self._chunked(
            sorted(wanted),
            # bytearray: pymssql sends it as a 0x... binary literal (bytes may go out as a quoted string)
            lambda chunk: self._query(
                "plan_cache_plans", {"query_plan_hashes": [bytearray(h) for h in chunk]}, database=None
            ),
        )
        found = {bytes(row["query_plan_hash"]): row for row in rows if row.get("query_plan_hash") is not None}
        captured: list[CapturedPlan] = []
        for plan_hash, statement in wanted.items():
            row = found.get(plan_hash)
            if plan_hash not in asked:
                continue  # the deadline passed first: neither captured nor failed
            if row is not None and row.get("encrypted"):
                failures.append(_failure(statement, "the plan belongs to an encrypted module"))
            elif row is None or row.get("query_plan") is None:
                failures.append(_failure(statement, "the plan has left the plan cache"))
            else:
                body = str(row["query_plan"]).encode("utf-8")
                captured.append(
                    CapturedPlan(
                        query_key=statement.query_key,
                        database_name=statement.database_name,
                        body=body,
                        body_format="showplan_xml",
                        plan_key=statement.plan_key,
                        engine_plan_hash=hex_hash(row["query_plan_hash"]),
                        objects=plan_objects(body, database_name=statement.database_name),
                    )
                )
        return captured, failures

    # automatic tuning and indexes

    def tuning_recommendations(self, database: str) -> list[dict[str, Any]]:
        """Automatic plan correction's recommendations in ``database``, JSON columns parsed (plain dicts)."""
        probe = self._ensure_probe()
        if probe.major_version < _SQL_SERVER_2017:
            raise EngineError(
                f"automatic tuning recommendations do not exist in SQL Server {probe.product_version}",
                reason=EngineErrorReason.FEATURE_UNAVAILABLE,
                target=self.target_name,
                hint="sys.dm_db_tuning_recommendations exists from SQL Server 2017",
            )
        return [
            recommendation_from_row(row) for row in self._query("tuning_recommendations", database=database)
        ]

    def index_definitions(self, database_name: str, tables: Iterable[QualifiedName]) -> list[IndexDefinition]:
        """Definitions of the indexes on ``tables`` (no schema: dbo), matched by their bracket-quoted
        names (``QUOTENAME(schema) + '.' + QUOTENAME(table)``), so no name is split on a dot."""
        names = sorted(
            {QualifiedName(t.schema or DEFAULT_SCHEMA, t.name).quoted(quote_name) for t in tables if t.name}
        )
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(names):
            rows.extend(self._query("index_columns", {"tables": list(chunk)}, database=database_name))
        return index_definitions_from_rows(rows, database_name=database_name)


def _failure(statement: StatementStats, reason: str) -> PlanCaptureFailure:
    return PlanCaptureFailure(statement.query_key, statement.database_name, reason)


if TYPE_CHECKING:

    def _implements_the_contract(adapter: Adapter) -> EngineAdapter:
        return adapter  # mypy checks Adapter against the EngineAdapter protocol here
