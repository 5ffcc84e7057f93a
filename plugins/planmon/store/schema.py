"""The repository's tables (SQLAlchemy Core), the single source of truth for its shape.

Alembic migrations in ``store/migrations`` create exactly this; ``tests/unit/store/test_migrations.py``
checks that the migrated schema and this metadata never drift apart.

Conventions:
- every table has a natural key that upserts target: a unique constraint beside a surrogate ``id``,
  or, for the runtime-stats tables that nothing refers to, the primary key itself (no id);
- timestamps are UTC, stored without time zone (SQLite and SQL Server have no portable tz type);
- times measured on monitored servers are microseconds (Query Store's unit), memory is KB;
- credentials never appear here: a target names an Airflow connection id;
- foreign keys have no ON DELETE actions: SQL Server refuses cascades that reach a table along more
  than one path, so the repository deletes children explicitly, in dependency order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamp(TypeDecorator[datetime]):
    """A UTC timestamp without zone (``DATETIME`` / ``TIMESTAMP``); on SQL Server it is sent as ISO 8601 text.

    pymssql sends a datetime as ``'YYYY-MM-DD hh:mm:ss.mmm'``, which SQL Server reads into a ``DATETIME``
    by the session's DATEFORMAT (a British or German login swaps day and month, or fails with error 242).
    ``YYYY-MM-DDThh:mm:ss.mmm`` is read the same under every language and DATEFORMAT; the column type
    stays DATETIME, so no migration rewrites a table. Other backends get the datetime itself.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "mssql" and isinstance(value, datetime):
            return value.isoformat(sep="T", timespec="milliseconds")
        return value


# Id columns: BIGINT everywhere, but SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAME = 128  # object names: targets, probes, connection ids
KEY = 200  # engine identities as text (query_id, queryid, DIGEST, plan hashes)

target = Table(
    "target",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False),
    Column("engine", String(16), nullable=False),
    Column("conn_id", String(NAME), nullable=False),
    Column("environment", String(64), nullable=True),
    Column("tags", JSON, nullable=False, default=dict),
    Column("databases", JSON, nullable=False, default=list),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("remediation_mode", String(16), nullable=False, default="propose"),
    Column("remediation_conn_id", String(NAME), nullable=True),
    # Remediation rails of this target (planmon.remediation.rails.RemediationPolicy): action
    # allow-list, maintenance windows, approvers, max actions per hour. NULL: the defaults.
    Column("remediation_policy", JSON, nullable=True),
    # When cumulative counters were last read, and whether that reading was complete (under the row
    # limit): a statement missing from a complete reading did not exist then, so it counts from zero.
    Column("counters_read_at", Timestamp, nullable=True),
    Column("counters_complete", Boolean, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("name"),
)

query = Table(
    "query",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("database_name", String(NAME), nullable=False, default=""),
    Column("query_key", String(KEY), nullable=False),  # engine identity: query_id / queryid / DIGEST
    Column("query_hash", String(KEY), nullable=True),  # SQL Server query_hash, for grouping
    Column("query_text", Text, nullable=True),  # literals obfuscated before storing
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    # SQL Server 2022+ parameter-sensitive plan optimisation: a variant (its own query_key) names its
    # parent query and the parent's dispatcher plan, which records no runtime statistics (migration 0010)
    Column("parent_query_key", String(KEY), nullable=True),
    Column("dispatcher_plan_key", String(KEY), nullable=True),
    # SQL Server 2025 / Azure: the Query Store replica group whose statistics are stored for the query
    Column("replica_group_id", BigInteger, nullable=True),
    UniqueConstraint("target_id", "database_name", "query_key"),
)

plan = Table(
    "plan",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("query_id", Id, ForeignKey("query.id"), nullable=False),
    Column("plan_key", String(KEY), nullable=False),  # engine plan identity (plan_id, shape hash, ...)
    Column("shape_hash", String(64), nullable=True),
    Column("engine_plan_hash", String(KEY), nullable=True),
    Column("body_format", String(16), nullable=True),  # showplan_xml / pg_json / mysql_json
    Column("body", LargeBinary, nullable=True),  # zlib-compressed plan document, stored once
    Column("summary", JSON, nullable=False, default=dict),  # parsed summary: cost, dop, findings ids
    Column("is_forced", Boolean, nullable=False, default=False),
    Column("forcing_type", String(16), nullable=True),  # NONE / MANUAL / AUTO
    Column("force_failure_count", Integer, nullable=True),
    # The count before its last change, and when a collection saw it change: detection reports a
    # rise inside the analysed window (the level alone means nothing: it travels with restores).
    Column("force_failure_count_previous", Integer, nullable=True),
    Column("force_failure_changed_at", Timestamp, nullable=True),
    Column("last_force_failure_reason", String(64), nullable=True),
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    UniqueConstraint("target_id", "plan_key"),
    Index(None, "query_id"),
)

# One row per plan, collected interval and execution type: the repository's largest table. No
# surrogate id: nothing refers to a row, and the natural key is the primary key every write upserts on
# (ADR 0005). On PostgreSQL it is range-partitioned by interval_start, one partition per UTC day
# (planmon.store.partitions), which the retention drops whole.
runtime_stats = Table(
    "runtime_stats",
    metadata,
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("plan_id", Id, ForeignKey("plan.id"), primary_key=True, autoincrement=False),
    Column("query_id", Id, ForeignKey("query.id"), nullable=False),
    Column("interval_start", Timestamp, primary_key=True),
    Column("interval_end", Timestamp, nullable=False),
    # 0 regular, 3 aborted, 4 exception (Query Store); other engines: 0
    Column("execution_type", Integer, primary_key=True, autoincrement=False, default=0),
    Column("executions", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("cpu_us_mean", Float, nullable=True),
    Column("cpu_us_stdev", Float, nullable=True),
    Column("cpu_us_min", Float, nullable=True),
    Column("cpu_us_max", Float, nullable=True),
    Column("duration_us_mean", Float, nullable=True),
    Column("duration_us_stdev", Float, nullable=True),
    Column("duration_us_min", Float, nullable=True),
    Column("duration_us_max", Float, nullable=True),
    Column("logical_reads_mean", Float, nullable=True),  # pages (SQL Server) / shared blocks (PostgreSQL)
    Column("logical_reads_stdev", Float, nullable=True),
    Column("physical_reads_mean", Float, nullable=True),
    Column("rows_mean", Float, nullable=True),  # rows returned
    Column("rows_examined_mean", Float, nullable=True),  # MySQL rows examined
    Column("memory_kb_mean", Float, nullable=True),
    # No per-row source: the engine that produced a row is its target's (migration 0008 dropped the
    # column, which repeated target.engine in every row).
    # analysis reads a batch of targets over a time range (planmon.store.stats)
    Index(None, "target_id", "interval_start"),
    # the retention purge and the roll-up delete by time range (a partition's range on PostgreSQL)
    Index(None, "interval_start"),
    postgresql_partition_by="RANGE (interval_start)",
)

# Runtime stats rolled up as they age (planmon.store.stats.roll_up): one row per plan, grain, bucket
# and execution type with the value columns of runtime_stats, pooled exactly (execution-weighted
# means, pooled standard deviations, min of mins, max of maxes), so every reader can take a rollup
# row for a runtime_stats row of a longer interval. Two columns keep what pooling would lose:
# ``source_rows`` (the fine intervals it holds) and ``metric_mean_sq`` (execution-weighted mean of
# the squared per-interval metric means), so the detector's between-interval variance and interval
# counts over the baseline come out the same from rollups as from the rows they replaced.
ROLLUP_GRAINS = ("hour", "day")
_ROLLUP_OWN = frozenset({"target_id", "plan_id", "query_id", "interval_start", "execution_type"})
runtime_stats_rollup = Table(
    "runtime_stats_rollup",
    metadata,
    # No surrogate id: nothing refers to a rollup row, and the natural key is what every write and
    # read uses (an id and its index would add about a fifth to each row).
    Column("plan_id", Id, ForeignKey("plan.id"), nullable=False, autoincrement=False),
    Column("grain", String(8), nullable=False),  # hour / day
    Column("interval_start", Timestamp, nullable=False),
    Column("execution_type", Integer, nullable=False, autoincrement=False),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("query_id", Id, ForeignKey("query.id"), nullable=False),
    *(
        Column(column.name, column.type, nullable=column.nullable)
        for column in runtime_stats.columns
        if column.name not in _ROLLUP_OWN
    ),
    Column("source_rows", Integer, nullable=False),
    Column("metric_mean_sq", Float, nullable=True),
    # The key leads with time: the roll-up writes a bucket at a time, oldest first, so its entries
    # append at the right of the index and pages stay full (50 bytes a row, where the plan-first key
    # of 0006-0007 split pages half-empty at 67).
    PrimaryKeyConstraint("interval_start", "grain", "plan_id", "execution_type"),
    Index(None, "target_id", "interval_start"),  # analysis reads a batch of targets over a time range
    # the purge's batches walk this one: 7 bytes a row (deduplicated), where walking the 44-byte key
    # measured the purge at 2.2x a plain DELETE instead of 1.8x
    Index(None, "interval_start"),
)

collection_run = Table(
    "collection_run",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("interval_start", Timestamp, nullable=False),
    Column("interval_end", Timestamp, nullable=False),
    # ok / degraded / error / not_backfillable (0009 rewrote the partial and failed of older runs)
    Column("status", String(16), nullable=False),
    Column("aspects", JSON, nullable=False, default=dict),  # aspect -> {status, hint, rows}
    Column("rows_collected", BigInteger, nullable=False, default=0),
    Column("plans_captured", Integer, nullable=False, default=0),
    Column("duration_ms", Float, nullable=True),
    Column("error", Text, nullable=True),  # scrubbed of secrets
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    UniqueConstraint("target_id", "interval_start", "interval_end"),
)

probe = Table(
    "probe",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False),
    Column("definition", JSON, nullable=False),  # the validated YAML definition
    Column("source_file", String(512), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("name"),
)

probe_result = Table(
    "probe_result",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("probe_id", Id, ForeignKey("probe.id"), nullable=False),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("run_at", Timestamp, nullable=False),  # the run's logical time: the natural key
    Column("value", Float, nullable=True),
    Column("status", String(16), nullable=False),  # ok / warning / critical / error / timeout / refused
    Column("duration_ms", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("plan_shape_hash", String(64), nullable=True),
    UniqueConstraint("probe_id", "target_id", "run_at"),
    Index(None, "run_at"),
)

regression = Table(
    "regression",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("query_id", Id, ForeignKey("query.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # open / resolved
    # The open regression of a (target, query, kind) has open_key = 'open'; closed ones hold their
    # own id, so the unique constraint below allows exactly one open regression per triple on every
    # backend (a portable stand-in for a partial unique index).
    Column("open_key", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("baseline_plan_id", Id, ForeignKey("plan.id"), nullable=True),
    Column("current_plan_id", Id, ForeignKey("plan.id"), nullable=True),
    Column("baseline_mean", Float, nullable=True),
    Column("current_mean", Float, nullable=True),
    Column("ratio", Float, nullable=True),
    Column("impact", Float, nullable=True),  # extra CPU (or duration) seconds per hour
    Column("p_value", Float, nullable=True),
    Column("evidence", JSON, nullable=False, default=dict),
    Column("diff", JSON, nullable=True),
    Column("first_detected", Timestamp, nullable=False),
    Column("last_detected", Timestamp, nullable=False),
    Column("resolved_at", Timestamp, nullable=True),
    UniqueConstraint("target_id", "query_id", "kind", "open_key"),
    Index(None, "status", "severity"),
)

alert = Table(
    "alert",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dedup_key", String(KEY), nullable=False),  # e.g. regression:<id>:<severity>
    Column("regression_id", Id, ForeignKey("regression.id"), nullable=True),
    Column("probe_result_id", Id, ForeignKey("probe_result.id"), nullable=True),
    Column("channel", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending / sent / failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("payload", JSON, nullable=False, default=dict),
    Column("created_at", Timestamp, nullable=False),
    Column("sent_at", Timestamp, nullable=True),
    UniqueConstraint("dedup_key", "channel"),
)

remediation = Table(
    "remediation",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("regression_id", Id, ForeignKey("regression.id"), nullable=False),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    # The regressed query (no FK: the ledger of what helped a query outlives purged regressions).
    Column("query_id", Id, nullable=True),
    Column("action", String(64), nullable=False),
    Column(
        "state", String(24), nullable=False
    ),  # proposed/refused/approved/rejected/applied/kept/rolled_back/failed
    Column("sql_text", Text, nullable=False),
    Column("rollback_sql", Text, nullable=True),
    Column("expected_effect", Text, nullable=True),
    Column("evidence", JSON, nullable=False, default=dict),
    Column("approved_by", String(NAME), nullable=True),
    Column("approved_at", Timestamp, nullable=True),
    Column("applied_at", Timestamp, nullable=True),
    Column("outcome", String(24), nullable=True),  # kept / rolled_back
    Column("outcome_reason", Text, nullable=True),
    Column("verification", JSON, nullable=True),  # post-apply vs regressed vs baseline moments
    Column("dag_run_id", String(250), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # 'open' while proposed/approved/applied, the row's own id once final: with the unique constraint
    # below, at most one open remediation per regression and action on every backend (as regression)
    Column("open_key", String(32), nullable=False, server_default="open"),
    Index(None, "target_id", "created_at"),
    Index(None, "regression_id"),
    Index(None, "query_id", "action"),
    UniqueConstraint("regression_id", "action", "open_key"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(NAME), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_id", Id, nullable=True),  # no FK: the log outlives what it describes
    Column("subject", String(KEY), nullable=True),  # e.g. "remediation:12"
    Column("details", JSON, nullable=False, default=dict),
    Index(None, "at"),
)

counter_snapshot = Table(
    "counter_snapshot",
    metadata,
    # The last reading of an engine's cumulative counters per statement (pg_stat_statements,
    # performance_schema digests, sys.dm_exec_query_stats): the next collection's delta starts here.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("database_name", String(NAME), nullable=False),
    Column("query_key", String(KEY), nullable=False),
    Column("taken_at", Timestamp, nullable=False),
    Column("executions", Float, nullable=False),
    Column("errors", Float, nullable=True),
    Column("cpu_us_total", Float, nullable=True),
    Column("duration_us_total", Float, nullable=True),
    Column("duration_us_sum_squares", Float, nullable=True),
    Column("logical_reads_total", Float, nullable=True),
    Column("physical_reads_total", Float, nullable=True),
    Column("rows_total", Float, nullable=True),
    Column("rows_examined_total", Float, nullable=True),
    Column("counters_reset_at", Timestamp, nullable=True),
    UniqueConstraint("target_id", "database_name", "query_key"),
)

plan_capture = Table(
    "plan_capture",
    metadata,
    # Plan-capture bookkeeping per statement: the hourly budget, the statistics at the last capture
    # (a marked shift re-captures at once) and failures (backed off, never retried every cycle).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("database_name", String(NAME), nullable=False),
    Column("query_key", String(KEY), nullable=False),
    Column("window_start", Timestamp, nullable=True),  # start of the current budget hour
    Column("captures_in_window", Integer, nullable=False, default=0),
    Column("last_captured_at", Timestamp, nullable=True),
    Column("last_plan_key", String(KEY), nullable=True),
    Column("mean_us_at_capture", Float, nullable=True),
    Column("stdev_us_at_capture", Float, nullable=True),  # 0009: the statistics a shift is judged on
    Column("rows_mean_at_capture", Float, nullable=True),
    Column("work_mean_at_capture", Float, nullable=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("retry_after", Timestamp, nullable=True),
    UniqueConstraint("target_id", "database_name", "query_key"),
)

index_snapshot = Table(
    "index_snapshot",
    metadata,
    # Index definitions of the tables captured plans touch, kept with first/last seen so a dropped
    # index can be recreated from the definition it had in the baseline.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("target.id"), nullable=False),
    Column("database_name", String(NAME), nullable=False),
    Column("table_name", String(KEY), nullable=False),
    Column("index_name", String(KEY), nullable=False),
    Column("definition", Text, nullable=False),
    Column("definition_hash", String(64), nullable=False),
    Column("is_unique", Boolean, nullable=False, default=False),
    Column("is_primary", Boolean, nullable=False, default=False),
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    UniqueConstraint("target_id", "database_name", "table_name", "index_name", "definition_hash"),
)

setting = Table(
    "setting",
    metadata,
    Column("key", String(NAME), primary_key=True),
    Column("value", String(1024), nullable=False),
    Column("updated_at", Timestamp, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
)

# Settings kept in the repository (runtime-adjustable), with their defaults.
DEFAULT_SETTINGS = {"retention_days": "30"}
