"""The SQL Server adapter against a fake DB-API server answering with recorded result sets.

No SQL Server runs here. The fake recognises which include/sql/sqlserver file was sent (by its text),
checks that the statement pymssql would send still parses as T-SQL, and answers with a recorded result
set from tests/fixtures/engines/sqlserver. Two kinds of fixture live there:

- ``view.<view>.json``: rows of a documented view or function with *all* its documented columns (checked
  below against the column lists copied from Microsoft's documentation);
- ``result.<sql file>.<case>.json``: the output of one SQL file's SELECT list (checked against the list that
  sqlglot reads from the file, and, column by column, against the view fixtures the values come from).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from pymssql import _mssql
from pymssql.exceptions import OperationalError
from sqlglot import exp

from planmon.config import Settings
from planmon.engines import get_engine
from planmon.engines.base import Aspect, AspectState, StatementStats
from planmon.engines.sqlserver.adapter import Adapter, decode_readonly_reason
from planmon.engines.sqlserver.dialect import classify_driver_error
from planmon.errors import EngineError, EngineErrorReason
from planmon.model import QualifiedName
from planmon.sql import MARKER, load_sql, sql_root

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "engines" / "sqlserver"
SQL_NAMES = sorted(path.stem for path in (sql_root() / "sqlserver").glob("*.sql"))


def _metric(name: str, kinds: Sequence[str] = ("avg", "last", "min", "max", "stdev")) -> list[str]:
    return [f"{kind}_{name}" for kind in kinds]


# Column lists as Microsoft documents them (MicrosoftDocs/sql-docs, docs/relational-databases/...; the page
# named in each comment). The newest page version read lists the columns of SQL Server 2022.
DOCUMENTED_COLUMNS: dict[str, list[str]] = {
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-runtime-stats-transact-sql
    # (ms.date 09/19/2022; *_num_physical_io_reads is documented without a stdev column)
    "sys.query_store_runtime_stats": [
        "runtime_stats_id",
        "plan_id",
        "runtime_stats_interval_id",
        "execution_type",
        "execution_type_desc",
        "first_execution_time",
        "last_execution_time",
        "count_executions",
        *_metric("duration"),
        *_metric("cpu_time"),
        *_metric("logical_io_reads"),
        *_metric("logical_io_writes"),
        *_metric("physical_io_reads"),
        *_metric("clr_time"),
        *_metric("dop"),
        *_metric("query_max_used_memory"),
        *_metric("rowcount"),
        *_metric("num_physical_io_reads", ("avg", "last", "min", "max")),
        *_metric("log_bytes_used"),
        *_metric("tempdb_space_used"),
        *_metric("page_server_io_reads"),
        "replica_group_id",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-runtime-stats-interval-transact-sql
    "sys.query_store_runtime_stats_interval": [
        "runtime_stats_interval_id",
        "start_time",
        "end_time",
        "comment",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-plan-transact-sql
    # (ms.date 09/19/2022: has_compile_replay_script .. plan_type_desc are SQL Server 2022+)
    "sys.query_store_plan": [
        "plan_id",
        "query_id",
        "plan_group_id",
        "engine_version",
        "compatibility_level",
        "query_plan_hash",
        "query_plan",
        "is_online_index_plan",
        "is_trivial_plan",
        "is_parallel_plan",
        "is_forced_plan",
        "is_natively_compiled",
        "force_failure_count",
        "last_force_failure_reason",
        "last_force_failure_reason_desc",
        "count_compiles",
        "initial_compile_start_time",
        "last_compile_start_time",
        "last_execution_time",
        "avg_compile_duration",
        "last_compile_duration",
        "plan_forcing_type",
        "plan_forcing_type_desc",
        "has_compile_replay_script",
        "is_optimized_plan_forcing_disabled",
        "plan_type",
        "plan_type_desc",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-transact-sql
    "sys.query_store_query": [
        "query_id",
        "query_text_id",
        "context_settings_id",
        "object_id",
        "batch_sql_handle",
        "query_hash",
        "is_internal_query",
        "query_parameterization_type",
        "query_parameterization_type_desc",
        "initial_compile_start_time",
        "last_compile_start_time",
        "last_execution_time",
        "last_compile_batch_sql_handle",
        "last_compile_batch_offset_start",
        "last_compile_batch_offset_end",
        "count_compiles",
        "avg_compile_duration",
        "last_compile_duration",
        "avg_bind_duration",
        "last_bind_duration",
        "avg_bind_cpu_time",
        "last_bind_cpu_time",
        "avg_optimize_duration",
        "last_optimize_duration",
        "avg_optimize_cpu_time",
        "last_optimize_cpu_time",
        "avg_compile_memory_kb",
        "last_compile_memory_kb",
        "max_compile_memory_kb",
        "is_clouddb_internal_query",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-text-transact-sql
    "sys.query_store_query_text": [
        "query_text_id",
        "query_sql_text",
        "statement_sql_handle",
        "is_part_of_encrypted_module",
        "has_restricted_text",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-database-query-store-options-transact-sql
    "sys.database_query_store_options": [
        "desired_state",
        "desired_state_desc",
        "actual_state",
        "actual_state_desc",
        "readonly_reason",
        "current_storage_size_mb",
        "flush_interval_seconds",
        "interval_length_minutes",
        "max_storage_size_mb",
        "stale_query_threshold_days",
        "max_plans_per_query",
        "query_capture_mode",
        "query_capture_mode_desc",
        "capture_policy_execution_count",
        "capture_policy_total_compile_cpu_time_ms",
        "capture_policy_total_execution_cpu_time_ms",
        "capture_policy_stale_threshold_hours",
        "size_based_cleanup_mode",
        "size_based_cleanup_mode_desc",
        "wait_stats_capture_mode",
        "wait_stats_capture_mode_desc",
        "actual_state_additional_info",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-db-tuning-recommendations-transact-sql
    "sys.dm_db_tuning_recommendations": [
        "name",
        "type",
        "reason",
        "valid_since",
        "last_refresh",
        "state",
        "is_executable_action",
        "is_revertable_action",
        "execute_action_start_time",
        "execute_action_duration",
        "execute_action_initiated_by",
        "execute_action_initiated_time",
        "revert_action_start_time",
        "revert_action_duration",
        "revert_action_initiated_by",
        "revert_action_initiated_time",
        "score",
        "details",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-query-stats-transact-sql
    # (ms.date 05/30/2019; pdw_node_id is Azure Synapse only, *_page_server_reads Hyperscale only)
    "sys.dm_exec_query_stats": [
        "sql_handle",
        "statement_start_offset",
        "statement_end_offset",
        "plan_generation_num",
        "plan_handle",
        "creation_time",
        "last_execution_time",
        "execution_count",
        *_metric("worker_time", ("total", "last", "min", "max")),
        *_metric("physical_reads", ("total", "last", "min", "max")),
        *_metric("logical_writes", ("total", "last", "min", "max")),
        *_metric("logical_reads", ("total", "last", "min", "max")),
        *_metric("clr_time", ("total", "last", "min", "max")),
        *_metric("elapsed_time", ("total", "last", "min", "max")),
        "query_hash",
        "query_plan_hash",
        *_metric("rows", ("total", "last", "min", "max")),
        "statement_sql_handle",
        "statement_context_id",
        *_metric("dop", ("total", "last", "min", "max")),
        *_metric("grant_kb", ("total", "last", "min", "max")),
        *_metric("used_grant_kb", ("total", "last", "min", "max")),
        *_metric("ideal_grant_kb", ("total", "last", "min", "max")),
        *_metric("reserved_threads", ("total", "last", "min", "max")),
        *_metric("used_threads", ("total", "last", "min", "max")),
        *_metric("columnstore_segment_reads", ("total", "last", "min", "max")),
        *_metric("columnstore_segment_skips", ("total", "last", "min", "max")),
        *_metric("spills", ("total", "last", "min", "max")),
        "pdw_node_id",
        *_metric("page_server_reads", ("total", "last", "min", "max")),
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-variant
    # (SQL Server 2022 (16.x)+; the dispatcher plan records no runtime statistics)
    "sys.query_store_query_variant": ["query_variant_query_id", "parent_query_id", "dispatcher_plan_id"],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-hints-transact-sql
    # (SQL Server 2022 (16.x)+; source 0 is a user's hint, non-zero system-generated)
    "sys.query_store_query_hints": [
        "query_hint_id",
        "query_id",
        "replica_group_id",
        "query_hint_text",
        "last_query_hint_failure_reason",
        "last_query_hint_failure_reason_desc",
        "query_hint_failure_count",
        "source",
        "source_desc",
        "comment",
    ],
    # https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-replicas
    # (SQL Server 2025 (17.x), Azure SQL Database; role_type 1 primary, 2 secondary, ...)
    "sys.query_store_replicas": ["replica_group_id", "role_type", "replica_name"],
    # https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-text-query-plan-transact-sql
    "sys.dm_exec_text_query_plan": ["dbid", "objectid", "number", "encrypted", "query_plan"],
    # https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-sql-text-transact-sql
    "sys.dm_exec_sql_text": ["dbid", "objectid", "number", "encrypted", "text"],
}

# Catalog views the SQL also reads, with the documented columns it uses (checked on each page, not copied
# whole): sys-databases-transact-sql, sys-indexes-transact-sql, sys-index-columns-transact-sql,
# sys-columns-transact-sql, sys-tables-transact-sql, schemas-catalog-views-sys-schemas.
DOCUMENTED_SUBSETS: dict[str, list[str]] = {
    "sys.databases": [
        "name",
        "database_id",
        "state_desc",
        "is_query_store_on",
        "is_read_only",
        "is_distributor",
    ],
    "sys.indexes": [
        "object_id",
        "name",
        "index_id",
        "type",
        "type_desc",
        "is_unique",
        "is_primary_key",
        "is_hypothetical",
        "is_disabled",
        "has_filter",
        "filter_definition",
    ],
    "sys.index_columns": [
        "object_id",
        "index_id",
        "index_column_id",
        "column_id",
        "key_ordinal",
        "is_descending_key",
        "is_included_column",
    ],
    "sys.columns": ["object_id", "name", "column_id"],
    "sys.tables": ["object_id", "name", "schema_id"],
    "sys.schemas": ["schema_id", "name"],
}


# --- fixtures ----------------------------------------------------------------------------------------------


def _read(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _driver_value(value: Any, column: str, payload: Mapping[str, Any]) -> Any:
    """A JSON value as pymssql returns it: datetimes and binary(n) columns converted back."""
    if value is None:
        return None
    if column in payload.get("datetime_columns", ()):
        return datetime.fromisoformat(value)
    if column in payload.get("binary_columns", ()):
        return bytes.fromhex(value[2:])
    return value


class ResultSet:
    """A recorded result set: column names and rows of driver values."""

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.columns = list(columns)
        self.rows = [tuple(row) for row in rows]

    @classmethod
    def recorded(cls, sql: str, case: str) -> ResultSet:
        payload = _read(f"result.{sql}.{case}")
        assert payload["sql"] == sql
        columns = payload["columns"]
        rows = [
            [_driver_value(v, c, payload) for v, c in zip(row, columns, strict=True)]
            for row in payload["rows"]
        ]
        return cls(columns, rows)

    def replace(self, column: str, match: Mapping[str, Any], value: Any) -> ResultSet:
        """A copy where ``column`` is ``value`` in the rows whose columns equal ``match``."""
        index = self.columns.index(column)
        rows = []
        for row in self.rows:
            named = dict(zip(self.columns, row, strict=True))
            matches = all(named[key] == wanted for key, wanted in match.items())
            rows.append((*row[:index], value, *row[index + 1 :]) if matches else row)
        return ResultSet(self.columns, rows)


_PLACEHOLDERS = re.compile(r"%\(\w+\)s(?:, %\(\w+\)s)*|(?<![@\w])@[A-Za-z_]\w*")


def _shape(text: str) -> str:
    return _PLACEHOLDERS.sub("?", text)


SHAPES = {_shape(load_sql("sqlserver", name)): name for name in SQL_NAMES}

Answer = str | ResultSet | Exception


class FakeServer:
    """Answers each planmon SQL file with a recorded result set (per database where a key says so).

    ``answers`` maps a SQL file name, or (name, database), to a case name of ``result.<name>.<case>.json``,
    a ResultSet, or an exception to raise (a pymssql error, as the driver would).
    """

    def __init__(
        self,
        answers: Mapping[str | tuple[str, str | None], Answer],
        *,
        connect_error: Exception | None = None,
    ):
        self.answers = dict(answers)
        self.connect_error = connect_error
        self.session_error: Exception | None = None
        self.connections: list[FakeConnection] = []
        self.sent: list[
            tuple[str | None, str, str, dict[str, Any] | None]
        ] = []  # database, name, text, params

    def connect(self, database: str | None) -> FakeConnection:
        if self.connect_error is not None:
            raise self.connect_error
        connection = FakeConnection(self, database)
        self.connections.append(connection)
        return connection

    def answer(self, name: str, database: str | None) -> ResultSet:
        answer = self.answers.get((name, database), self.answers.get(name))
        if answer is None:
            raise AssertionError(f"the test gave no answer for {name}.sql in {database}")
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, ResultSet) else ResultSet.recorded(name, answer)

    def executed(self, name: str) -> list[tuple[str | None, str, dict[str, Any] | None]]:
        return [(database, text, params) for database, sent, text, params in self.sent if sent == name]


class FakeCursor:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, operation: str, params: dict[str, Any] | None = None) -> None:
        server, database = self.connection.server, self.connection.database
        rendered = (_mssql.substitute_params(operation, params) if params else operation.encode()).decode()
        if operation.startswith(f"{MARKER} SET "):
            server.sent.append((database, "session", operation, params))
            if server.session_error is not None:
                raise server.session_error
            self.description = None
            return
        name = SHAPES.get(_shape(operation))
        assert name is not None, f"not a planmon SQL file: {operation[:120]}"
        server.sent.append((database, name, operation, params))
        sqlglot.parse_one(rendered, read="tsql")  # what pymssql sends is still valid T-SQL
        result = server.answer(name, database)
        self.description = tuple((column, None, None, None, None, None, None) for column in result.columns)
        self._rows = list(result.rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def close(self) -> None:
        return None


class FakeConnection:
    def __init__(self, server: FakeServer, database: str | None) -> None:
        self.server = server
        self.database = database
        self.closed = False
        self.autocommit_set: bool | None = None

    def autocommit(self, status: bool) -> None:
        self.autocommit_set = status

    def cursor(self) -> FakeCursor:
        assert not self.closed
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True


QUERY_STORE_SALES: dict[str | tuple[str, str | None], Answer] = {
    "server_properties": "sql2022",
    "database_permissions": "granted",
    "query_store_options": "read_write",
    "tuning_recommendations_count": "three",
    "query_store_runtime_stats": "sales",
    "query_store_plans": "sales",
    "query_store_query_variants": "none",
    "tuning_recommendations": "sales",
    "index_columns": "orders",
}
WINDOW = (datetime(2026, 11, 23, 7, 0), datetime(2026, 11, 23, 7, 15))


def _adapter(server: FakeServer, databases: Sequence[str] = ("Sales",), **settings: Any) -> Iterator[Adapter]:
    adapter = Adapter(
        server.connect, target_name="orders-prod", databases=databases, settings=Settings(**settings)
    )
    try:
        yield adapter
    finally:
        adapter.close()


@pytest.fixture
def sales() -> Iterator[tuple[Adapter, FakeServer]]:
    server = FakeServer(QUERY_STORE_SALES)
    for adapter in _adapter(server):
        yield adapter, server


def _record(stats: Sequence[StatementStats], plan_key: str, execution_type: int) -> StatementStats:
    [found] = [s for s in stats if s.plan_key == plan_key and s.execution_type == execution_type]
    return found


# --- the fixtures themselves ---------------------------------------------------------------------------


@pytest.mark.parametrize("view", sorted(DOCUMENTED_COLUMNS))
def test_view_fixture_has_exactly_the_documented_columns(view: str) -> None:
    payload = _read(f"view.{view}")
    assert payload["view"] == view
    assert payload["rows"], "a view fixture shows at least one row"
    for row in payload["rows"]:
        assert list(row) == DOCUMENTED_COLUMNS[view]


def _sources(tree: exp.Expression) -> dict[str, str]:
    """Alias -> documented view or function name (``sys.x``) of every source in the statement."""
    sources: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        if table.db.lower() == "sys":
            sources[table.alias_or_name] = f"sys.{table.name.lower()}"
    for lateral in tree.find_all(exp.Lateral):
        call = lateral.this
        if isinstance(call, exp.Dot) and isinstance(call.expression, exp.Anonymous):
            sources[lateral.alias] = f"sys.{call.expression.name.lower()}"
    return sources


@pytest.mark.parametrize("name", SQL_NAMES)
def test_sql_reads_only_documented_columns(name: str) -> None:
    tree = sqlglot.parse_one(load_sql("sqlserver", name), read="tsql")
    sources = _sources(tree)
    documented = {**DOCUMENTED_COLUMNS, **DOCUMENTED_SUBSETS}
    for column in tree.find_all(exp.Column):
        view = sources.get(column.table)
        if view is None:
            continue  # a CTE's own output column
        assert view in documented, f"{name}: no documented column list for {view}"
        assert column.name in documented[view], f"{name}: {view} documents no column {column.name}"


RESULT_FIXTURES = sorted(path.stem for path in FIXTURES.glob("result.*.json"))


@pytest.mark.parametrize("fixture", RESULT_FIXTURES)
def test_result_fixture_is_the_select_list_of_its_sql(fixture: str) -> None:
    payload = _read(fixture)
    tree = sqlglot.parse_one(load_sql("sqlserver", payload["sql"]), read="tsql")
    assert payload["columns"] == tree.named_selects
    sources = _sources(tree)
    for position, select in enumerate(tree.selects):
        view = sources.get(select.table) if isinstance(select, exp.Column) else None
        if view is None or not (FIXTURES / f"view.{view}.json").exists():
            continue
        recorded = {json.dumps(row[select.name]) for row in _read(f"view.{view}")["rows"]}
        for row in payload["rows"]:
            assert json.dumps(row[position]) in recorded, (
                f"{select.name}={row[position]!r} is not in view.{view}"
            )


# --- the adapter ---------------------------------------------------------------------------------------


def test_adapter_is_found_by_engine_name() -> None:
    assert get_engine("sqlserver").adapter_type is Adapter
    assert Adapter.engine == "sqlserver"


def test_in_memory_and_flushed_rows_are_pooled(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, _ = sales
    stats = adapter.runtime_stats(*WINDOW)
    regular = _record(stats, "11", 0)
    # rows 1001 (n=10, cpu 100 +- 10) and 1002 (n=30, cpu 200 +- 20) of the same key:
    #   mean = (10*100 + 30*200)/40 = 175
    #   variance = (10*(10^2 + 100^2) + 30*(20^2 + 200^2))/40 - 175^2 = 1313000/40 - 30625 = 2200
    assert regular.executions == 40
    assert regular.cpu_us_total == 7000
    assert regular.cpu_us_mean == 175
    assert regular.cpu_us_stdev == pytest.approx(math.sqrt(2200))
    assert (regular.cpu_us_min, regular.cpu_us_max) == (80, 260)
    #   duration: mean (10*200 + 30*300)/40 = 275; variance (10*40400 + 30*90900)/40 - 275^2 = 2650
    assert regular.duration_us_mean == 275
    assert regular.duration_us_stdev == pytest.approx(math.sqrt(2650))
    assert (regular.duration_us_min, regular.duration_us_max) == (150, 390)
    assert (regular.logical_reads_total, regular.logical_reads_mean) == (2600, 65)
    assert regular.physical_reads_total == 20
    assert regular.rows_total == 200
    assert regular.memory_kb_mean == (10 * 16 + 30 * 32) / 40 * 8  # 8-KB pages -> KB
    assert regular.errors == 0
    assert (regular.interval_start, regular.interval_end) == (
        datetime(2026, 11, 23, 7),
        datetime(2026, 11, 23, 8),
    )
    assert (regular.query_key, regular.database_name) == ("7", "Sales")
    assert regular.query_hash == "0x1A2B3C4D5E6F7081"
    assert regular.cumulative is False


def test_a_single_row_keeps_its_own_moments(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, _ = sales
    other = _record(adapter.runtime_stats(*WINDOW), "13", 0)
    assert (other.executions, other.cpu_us_mean, other.cpu_us_stdev) == (100, 10, pytest.approx(1.0))


def test_runtime_stats_sql_gets_the_window_and_limit_as_bound_values(
    sales: tuple[Adapter, FakeServer],
) -> None:
    adapter, server = sales
    adapter.runtime_stats(*WINDOW)
    [(database, text, params)] = server.executed("query_store_runtime_stats")
    assert database == "Sales"
    # ISO 8601 with T: read the same under every login language / DATEFORMAT (a space is not)
    assert params == {
        "row_limit": 5000,
        "window_start": "2026-11-23T07:00:00.000",
        "window_end": "2026-11-23T07:15:00.000",
    }
    assert "2026" not in text and "5000" not in text


def test_query_text_has_no_literals(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, _ = sales
    text = _record(adapter.runtime_stats(*WINDOW), "11", 0).query_text or ""
    assert text.startswith("SELECT o.OrderId")
    assert "42" not in text and "open" not in text


def test_aborted_and_exception_executions_are_errors(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, _ = sales
    stats = adapter.runtime_stats(*WINDOW)
    aborted, exception = _record(stats, "11", 3), _record(stats, "12", 4)
    assert (aborted.executions, aborted.errors) == (2, 2)
    assert (exception.executions, exception.errors) == (1, 1)
    assert _record(stats, "11", 0).errors == 0


def test_row_limit_keeps_the_plans_with_most_cpu() -> None:
    server = FakeServer(QUERY_STORE_SALES)
    for adapter in _adapter(server, collect_row_limit=2):
        stats = adapter.runtime_stats(*WINDOW)
    # CPU in the window: plan 11 = 1000 + 6000 + 10000, plan 13 = 1000, plan 12 = 300
    assert {s.plan_key for s in stats} == {"11", "13"}
    assert server.executed("query_store_runtime_stats")[0][2]["row_limit"] == 2  # type: ignore[index]


def test_empty_window_is_refused(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, _ = sales
    with pytest.raises(ValueError, match="must not be empty"):
        adapter.runtime_stats(WINDOW[1], WINDOW[0])


def test_query_store_read_write_capabilities(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, _ = sales
    capabilities = adapter.capabilities()
    assert capabilities.server_version == "16.0.4135.4"
    assert capabilities.backfillable is True
    for aspect in Aspect:
        assert capabilities.available(aspect), aspect
    assert capabilities.aspects[Aspect.RUNTIME_STATS].hint is None
    details = capabilities.details
    assert details["runtime_stats_source"] == "query_store"
    assert details["edition"] == "Developer Edition (64-bit)"
    sales_state = details["databases"]["Sales"]
    assert sales_state["query_store"]["actual_state_desc"] == "READ_WRITE"
    assert sales_state["automatic_tuning"] == {"readable": True, "recommendations": 3}
    json.dumps(details, default=str)  # plain data


def test_query_store_read_only_at_size_limit_is_read_with_a_hint() -> None:
    server = FakeServer({**QUERY_STORE_SALES, "query_store_options": "read_only_size_limit"})
    for adapter in _adapter(server, databases=("Archive",)):
        capabilities = adapter.capabilities()
        stats = adapter.runtime_stats(*WINDOW)
    status = capabilities.aspects[Aspect.RUNTIME_STATS]
    assert status.state is AspectState.OK
    assert status.hint is not None
    assert (
        "Query Store is READ_ONLY in database [Archive] because it reached max_storage_size_mb" in status.hint
    )
    assert "(1024 of 1024 MB)" in status.hint
    assert "ALTER DATABASE [Archive] SET QUERY_STORE (MAX_STORAGE_SIZE_MB" in status.hint
    assert "clean up" in status.hint
    assert capabilities.details["databases"]["Archive"]["readonly_reasons"] == [
        "it reached max_storage_size_mb"
    ]
    assert capabilities.backfillable is True
    assert stats and all(s.database_name == "Archive" for s in stats)


def test_readonly_reason_bits_are_decoded() -> None:
    assert decode_readonly_reason(0) == []
    assert decode_readonly_reason(65536 | 8) == [
        "the database is a secondary replica",
        "it reached max_storage_size_mb",
    ]
    assert decode_readonly_reason(1 << 30) == [f"undocumented reason bits {1 << 30}"]


PLAN_CACHE_ONLY: dict[str | tuple[str, str | None], Answer] = {
    "server_properties": "sql2022",
    "database_permissions": "granted",
    "query_store_options": "off",
    "tuning_recommendations_count": "three",
    "plan_cache_stats": "default",
    "plan_cache_plans": "default",
}


def test_query_store_off_everywhere_falls_back_to_the_plan_cache() -> None:
    server = FakeServer(PLAN_CACHE_ONLY)
    for adapter in _adapter(server, databases=("Legacy",)):
        capabilities = adapter.capabilities()
        stats = adapter.runtime_stats(*WINDOW)
    status = capabilities.aspects[Aspect.RUNTIME_STATS]
    assert status.state is AspectState.OK
    assert "sys.dm_exec_query_stats" in (status.hint or "")
    assert "Query Store is OFF in database [Legacy]: ALTER DATABASE [Legacy] SET QUERY_STORE = ON" in (
        status.hint or ""
    )
    assert status.detail == "source: sys.dm_exec_query_stats (cumulative)"
    assert capabilities.details["runtime_stats_source"] == "plan_cache"
    assert capabilities.backfillable is False
    assert capabilities.aspects[Aspect.FORCING_STATE].state is AspectState.UNAVAILABLE
    assert not server.executed("query_store_runtime_stats")
    [(database, _, params)] = server.executed("plan_cache_stats")
    assert database is None  # server-wide, on the default connection
    assert params == {"row_limit": 5000, "all_databases": 0, "databases_0": "Legacy"}
    assert all(s.cumulative for s in stats)
    # two cached plans of one query hash: one reading per query (the collector keys readings by query_key),
    # counters summed, plan_key the plan that used the most CPU (7000 us against 1000 us)
    [orders] = [s for s in stats if s.query_key == "0x1A2B3C4D5E6F7081"]
    assert orders.plan_key == "0x0102030405060708"
    assert orders.query_key == orders.query_hash == "0x1A2B3C4D5E6F7081"
    assert (orders.executions, orders.cpu_us_total, orders.duration_us_total) == (50, 8000, 12500)
    assert (orders.cpu_us_min, orders.cpu_us_max) == (80, 260)
    assert (orders.logical_reads_total, orders.physical_reads_total, orders.rows_total) == (3100, 20, 250)
    assert orders.counters_reset_at is None  # unknown for a sum over plans that come and go separately
    assert len(stats) == 2
    assert orders.interval_start is None and orders.cpu_us_mean is None
    assert "42" not in (orders.query_text or "")


def test_plan_cache_plans_are_read_as_text_by_plan_hash() -> None:
    server = FakeServer(PLAN_CACHE_ONLY)
    for adapter in _adapter(server, databases=("Legacy",)):
        plans, failures = adapter.plans(adapter.runtime_stats(*WINDOW))
    [plan] = plans
    assert plan.plan_key == plan.engine_plan_hash == "0x0102030405060708"
    assert plan.body.startswith(b"<ShowPlanXML") and plan.body_format == "showplan_xml"
    assert plan.objects == (QualifiedName("dbo", "Orders"),)
    assert [f.reason for f in failures] == ["the plan belongs to an encrypted module"]
    [(_, text, params)] = server.executed("plan_cache_plans")
    assert "xml" not in text.lower()
    assert set(params or {}) == {"query_plan_hashes_0", "query_plan_hashes_1"}
    rendered = _mssql.substitute_params(text, params)
    assert b"IN (0x0102030405060708, 0x2122232425262728)" in rendered  # binary literals, not quoted bytes


def test_permission_denied_everywhere_says_what_to_grant() -> None:
    server = FakeServer(
        {"server_properties": "sql2022_no_view_server_state", "database_permissions": "denied"}
    )
    for adapter in _adapter(server):
        capabilities = adapter.capabilities()
        with pytest.raises(EngineError) as raised:
            adapter.runtime_stats(*WINDOW)
    status = capabilities.aspects[Aspect.RUNTIME_STATS]
    assert status.state is AspectState.PERMISSION_DENIED
    assert "GRANT VIEW SERVER STATE" in (status.hint or "")
    assert "GRANT VIEW DATABASE STATE" in (status.hint or "")
    assert capabilities.details["databases"]["Sales"]["problem"]["status"] == "permission_denied"
    assert not server.executed("query_store_options")  # never ran into error 229
    assert raised.value.reason is EngineErrorReason.PERMISSION_DENIED
    assert "GRANT VIEW" in (raised.value.hint or "")


def test_permission_error_from_the_driver_becomes_a_status_not_a_crash() -> None:
    denied = OperationalError(
        229,
        b"The SELECT permission was denied on the object 'database_query_store_options', database "
        b"'mssqlsystemresource', schema 'sys'.DB-Lib error message 20018, severity 14:\n"
        b"General SQL Server error",
    )
    server = FakeServer(
        {
            **QUERY_STORE_SALES,
            "server_properties": "sql2022_no_view_server_state",
            "query_store_options": denied,
        }
    )
    for adapter in _adapter(server):
        capabilities = adapter.capabilities()
    status = capabilities.aspects[Aspect.RUNTIME_STATS]
    assert status.state is AspectState.PERMISSION_DENIED
    problem = capabilities.details["databases"]["Sales"]["problem"]
    assert problem["status"] == "permission_denied"
    assert "VIEW DATABASE STATE" in problem["hint"]
    assert "SELECT permission was denied" in problem["detail"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            OperationalError(18456, b"Login failed for user 'planmon'.DB-Lib error message 20018"),
            "authentication",
        ),
        (
            OperationalError(
                20009,
                b"DB-Lib error message 20009, severity 9:\nUnable to connect: Adaptive Server is "
                b"unavailable or does not exist (db.example)\nNet-Lib error during Connection refused (111)",
            ),
            "unreachable",
        ),
        (
            OperationalError(
                20003, b"DB-Lib error message 20003, severity 6:\nAdaptive Server connection timed out"
            ),
            "timeout",
        ),
    ],
)
def test_connection_failures_are_engine_errors_with_a_reason(error: Exception, reason: str) -> None:
    server = FakeServer({}, connect_error=error)
    for adapter in _adapter(server):
        with pytest.raises(EngineError) as raised:
            adapter.capabilities()
    assert raised.value.reason.value == reason
    assert raised.value.target == "orders-prod"
    assert raised.value.hint


def test_lock_timeout_is_a_timeout_with_a_hint(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, server = sales
    adapter.capabilities()
    server.answers["query_store_runtime_stats"] = OperationalError(
        1222, b"Lock request time out period exceeded.DB-Lib error message 20018, severity 16"
    )
    with pytest.raises(EngineError) as raised:
        adapter.runtime_stats(*WINDOW)
    assert raised.value.reason is EngineErrorReason.TIMEOUT
    assert "PLANMON_STATEMENT_TIMEOUT_MS" in (raised.value.hint or "")


def test_one_failing_database_does_not_lose_the_others() -> None:
    broken = OperationalError(208, b"Invalid object name 'sys.query_store_runtime_stats'.")
    server = FakeServer({**QUERY_STORE_SALES, ("query_store_runtime_stats", "Archive"): broken})
    for adapter in _adapter(server, databases=("Archive", "Sales")):
        stats = adapter.runtime_stats(*WINDOW)
    assert stats and {s.database_name for s in stats} == {"Sales"}


def _nested_showplan(levels: int) -> str:
    """A showplan whose operators nest ``levels`` deep (Nested Loops over ... over an Index Seek)."""
    body = (
        f'<RelOp NodeId="{levels}" PhysicalOp="Index Seek" LogicalOp="Index Seek" EstimateRows="1" '
        'EstimatedTotalSubtreeCost="0.003"><IndexScan><Object Database="[Sales]" Schema="[dbo]" '
        'Table="[Orders]" Index="[IX_Orders_CustomerId]" IndexKind="NonClustered"/></IndexScan></RelOp>'
    )
    for node in reversed(range(levels)):
        body = (
            f'<RelOp NodeId="{node}" PhysicalOp="Nested Loops" LogicalOp="Inner Join" EstimateRows="1" '
            f'EstimatedTotalSubtreeCost="1"><NestedLoops Optimized="0">{body}</NestedLoops></RelOp>'
        )
    return (
        '<ShowPlanXML xmlns="http://schemas.microsoft.com/sqlserver/2004/07/showplan" Version="1.564" '
        'Build="16.0.4135.4"><BatchSequence><Batch><Statements><StmtSimple StatementText="SELECT 1" '
        f'StatementType="SELECT"><QueryPlan>{body}</QueryPlan></StmtSimple></Statements></Batch></BatchSequence>'
        "</ShowPlanXML>"
    )


def _xml_depth(text: str) -> int:
    depth = deepest = 0
    for tag in re.finditer(r"<(/?)[^>]*?(/?)>", text):
        if tag.group(1):
            depth -= 1
        elif not tag.group(2):
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def test_plan_deeper_than_128_levels_is_read_as_text_and_never_cast() -> None:
    deep = _nested_showplan(150)
    assert _xml_depth(deep) > 2 * 128  # beyond what CAST(... AS xml) accepts (error 6335)
    plans = ResultSet.recorded("query_store_plans", "sales").replace("query_plan", {"plan_id": 11}, deep)
    server = FakeServer({**QUERY_STORE_SALES, "query_store_plans": plans})
    for adapter in _adapter(server):
        captured, failures = adapter.plans(adapter.runtime_stats(*WINDOW))
    [plan] = [p for p in captured if p.plan_key == "11"]
    assert plan.body == deep.encode("utf-8")
    assert plan.objects == (QualifiedName("dbo", "Orders"),)
    assert not failures
    for _, text, params in server.executed("query_store_plans"):
        tree = sqlglot.parse_one(_mssql.substitute_params(text, params).decode(), read="tsql")
        assert not [c for c in tree.find_all(exp.Cast, exp.TryCast) if c.to.is_type(exp.DataType.Type.XML)]
        assert not re.search(r"(?i)\bxml\b", text)


def test_plans_carry_their_forcing_state(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, server = sales
    stats = adapter.runtime_stats(*WINDOW)
    missing = StatementStats(query_key="9", database_name="Sales", plan_key="99")
    other_db = StatementStats(query_key="9", database_name="Legacy", plan_key="5")
    captured, failures = adapter.plans([*stats, missing, other_db])
    by_plan = {plan.plan_key: plan for plan in captured}
    assert set(by_plan) == {"11", "12", "13"}
    auto = by_plan["11"]
    assert (auto.query_key, auto.database_name, auto.body_format) == ("7", "Sales", "showplan_xml")
    assert (auto.is_forced, auto.forcing_type) == (True, "AUTO")
    assert (auto.force_failure_count, auto.last_force_failure_reason) == (2, "NO_INDEX")
    assert auto.engine_plan_hash == "0x0102030405060708"
    assert auto.objects == (QualifiedName("dbo", "Orders"),)
    unforced = by_plan["12"]
    assert (unforced.is_forced, unforced.forcing_type, unforced.last_force_failure_reason) == (
        False,
        None,
        None,
    )
    manual = by_plan["13"]
    assert (manual.is_forced, manual.forcing_type, manual.force_failure_count) == (True, "MANUAL", 0)
    assert sorted(f.reason for f in failures) == [
        "Query Store is not readable in this database",
        "plan_id 99 is no longer in Query Store",
    ]
    [(_, _, params)] = server.executed("query_store_plans")
    assert sorted((params or {}).values()) == [11, 12, 13, 99]  # one statement, set-based


def test_sql_server_2016_reads_plans_without_plan_forcing_type_desc() -> None:
    server = FakeServer(
        {**QUERY_STORE_SALES, "server_properties": "sql2016", "query_store_plans_2016": "sales"}
    )
    for adapter in _adapter(server):
        capabilities = adapter.capabilities()
        captured, _ = adapter.plans(adapter.runtime_stats(*WINDOW))
    assert capabilities.details["databases"]["Sales"]["automatic_tuning"]["readable"] is False
    assert not server.executed("tuning_recommendations_count")
    assert not server.executed("query_store_plans") and server.executed("query_store_plans_2016")
    manual = next(plan for plan in captured if plan.plan_key == "13")
    assert (manual.is_forced, manual.forcing_type) == (True, "MANUAL")
    with pytest.raises(EngineError) as raised:
        adapter.tuning_recommendations("Sales")
    assert raised.value.reason is EngineErrorReason.FEATURE_UNAVAILABLE


def test_tuning_recommendations_are_parsed(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, _ = sales
    [recommendation] = adapter.tuning_recommendations("Sales")
    assert recommendation["type"] == "FORCE_LAST_GOOD_PLAN"
    assert recommendation["current_state"] == "Active"
    assert recommendation["state_reason"] == "AutomaticTuningOptionNotEnabled"
    assert recommendation["state"] == {"currentValue": "Active", "reason": "AutomaticTuningOptionNotEnabled"}
    assert (
        recommendation["query_id"],
        recommendation["regressed_plan_id"],
        recommendation["recommended_plan_id"],
    ) == (
        7,
        12,
        11,
    )
    assert recommendation["regressed_plan"] == {
        "execution_count": 120,
        "aborted_count": 3,
        "cpu_time_average": 4210.5,
        "cpu_time_stddev": 312.25,
    }
    assert recommendation["recommended_plan"]["cpu_time_average"] == 175.0
    assert recommendation["script"] == "exec sp_query_store_force_plan @query_id = 7, @plan_id = 11"
    assert recommendation["details"]["implementationDetails"]["method"] == "TSql"
    assert recommendation["valid_since"] == datetime(2026, 11, 23, 6, 40)
    assert "errors" not in recommendation
    json.dumps(recommendation, default=str)


def test_index_definitions_are_rendered_as_create_index(sales: tuple[Adapter, FakeServer]) -> None:
    adapter, server = sales
    definitions = adapter.index_definitions(
        "Sales", [QualifiedName("dbo", "Orders"), QualifiedName(None, "Orders")]
    )
    by_name = {d.index_name: d for d in definitions}
    assert (
        by_name["PK_Orders"].definition
        == "CREATE UNIQUE CLUSTERED INDEX [PK_Orders] ON [dbo].[Orders] ([OrderId] ASC)"
    )
    assert (by_name["PK_Orders"].is_primary, by_name["PK_Orders"].is_unique) == (True, True)
    assert by_name["IX_Orders_CustomerId"].definition == (
        "CREATE NONCLUSTERED INDEX [IX_Orders_CustomerId] ON [dbo].[Orders] "
        "([CustomerId] ASC, [OrderDate] DESC) INCLUDE ([Total], [Status]) WHERE ([Status]<>N'archived')"
    )
    assert all(d.table == "dbo.Orders" and d.database_name == "Sales" for d in definitions)
    [(database, _, params)] = server.executed("index_columns")
    assert (database, params) == ("Sales", {"tables_0": "[dbo].[Orders]"})


def test_sessions_are_prepared_once_and_all_closed() -> None:
    server = FakeServer(QUERY_STORE_SALES)
    adapter = Adapter(server.connect, target_name="orders-prod", databases=("Sales",), settings=Settings())
    adapter.capabilities()
    adapter.runtime_stats(*WINDOW)
    assert [c.database for c in server.connections] == [None, "Sales"]
    sessions = [(database, params) for database, name, _, params in server.sent if name == "session"]
    assert sessions == [(None, {"lock_timeout_ms": 30_000}), ("Sales", {"lock_timeout_ms": 30_000})]
    setup = next(text for _, name, text, _ in server.sent if name == "session")
    assert "READ UNCOMMITTED" in setup and "LOCK_TIMEOUT" in setup
    assert all(c.autocommit_set is True for c in server.connections)
    assert adapter.statements_sent() == len(server.sent)
    adapter.close()
    assert all(c.closed for c in server.connections)


def test_databases_are_discovered_when_the_target_lists_none() -> None:
    server = FakeServer(
        {
            **QUERY_STORE_SALES,
            "databases": "three",
            ("query_store_options", "Archive"): "read_only_size_limit",
            ("query_store_options", "Legacy"): "off",
        }
    )
    for adapter in _adapter(server, databases=()):
        capabilities = adapter.capabilities()
        stats = adapter.runtime_stats(*WINDOW)
    assert list(capabilities.details["databases"]) == ["Archive", "Legacy", "Sales"]
    hint = capabilities.aspects[Aspect.RUNTIME_STATS].hint or ""
    assert "[Archive] because it reached max_storage_size_mb" in hint
    assert "Query Store is OFF in database [Legacy]" in hint
    assert capabilities.aspects[Aspect.RUNTIME_STATS].detail == "Query Store readable in 2 of 3 database(s)"
    assert {database for database, _, _ in server.executed("query_store_runtime_stats")} == {
        "Archive",
        "Sales",
    }
    assert {s.database_name for s in stats} == {"Archive", "Sales"}


@pytest.mark.parametrize(
    ("number", "text", "reason"),
    [
        (18456, b"Login failed for user 'planmon'.", EngineErrorReason.AUTHENTICATION),
        (
            229,
            b"The SELECT permission was denied on the object 'query_store_plan'.",
            EngineErrorReason.PERMISSION_DENIED,
        ),
        (
            297,
            b"The user does not have permission to perform this action.",
            EngineErrorReason.PERMISSION_DENIED,
        ),
        (
            300,
            b"VIEW SERVER STATE permission was denied on object 'server', database 'master'.",
            EngineErrorReason.PERMISSION_DENIED,
        ),
        (4060, b'Cannot open database "Sales" requested by the login.', EngineErrorReason.PERMISSION_DENIED),
        (1222, b"Lock request time out period exceeded.", EngineErrorReason.TIMEOUT),
        (
            20003,
            b"DB-Lib error message 20003, severity 6: Adaptive Server connection timed out",
            EngineErrorReason.TIMEOUT,
        ),
        (20009, b"DB-Lib error message 20009, severity 9: Unable to connect", EngineErrorReason.UNREACHABLE),
        (208, b"Invalid object name 'sys.query_store_plan'.", EngineErrorReason.QUERY_FAILED),
    ],
)
def test_driver_errors_are_classified(number: int, text: bytes, reason: EngineErrorReason) -> None:
    assert classify_driver_error(OperationalError(number, text)) is reason


def test_dblib_number_in_the_text_classifies_an_unnumbered_error() -> None:
    error = OperationalError(
        b"DB-Lib error message 20009, severity 9:\nUnable to connect: Adaptive Server is unavailable"
    )
    assert classify_driver_error(error) is EngineErrorReason.UNREACHABLE
    assert classify_driver_error(TimeoutError("read timed out")) is EngineErrorReason.TIMEOUT


def test_driver_messages_are_scrubbed() -> None:
    secret = "pass" + "word=" + "x" * 12  # built at run time: no credential-looking literal in the sources
    server = FakeServer({}, connect_error=OperationalError(20009, f"Unable to connect ({secret})".encode()))
    for adapter in _adapter(server):
        with pytest.raises(EngineError) as raised:
            adapter.capabilities()
    assert "x" * 12 not in str(raised.value)
    assert "***" in str(raised.value)


def test_a_session_that_cannot_be_prepared_is_closed_not_used() -> None:
    server = FakeServer(QUERY_STORE_SALES)
    server.session_error = OperationalError(
        20047, b"DB-Lib error message 20047, severity 9: DBPROCESS is dead"
    )
    for adapter in _adapter(server):
        with pytest.raises(EngineError) as raised:
            adapter.capabilities()
    assert raised.value.reason is EngineErrorReason.UNREACHABLE
    assert [connection.closed for connection in server.connections] == [True]
