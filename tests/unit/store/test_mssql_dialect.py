"""SQL Server: the repository's DDL and upserts compiled for the mssql dialect (snapshot), and live.

No SQL Server runs on the build machines: the snapshot and sqlglot's T-SQL parser check the SQL here;
the live test runs wherever PLANMON_TEST_MSSQL_URL points at a server (docker-compose.yml has one).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlglot
from sqlalchemy import DateTime, Table
from sqlalchemy.dialects import mssql
from sqlalchemy.dialects.mssql import pymssql
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import RUNTIME_STATS_COLUMNS, RUNTIME_STATS_KEY, CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.retention import RetentionStore
from planmon.store.schema import metadata, runtime_stats
from planmon.store.upsert import Merge, mssql_merge_sql, mssql_merge_statement

SNAPSHOT = Path(__file__).resolve().parents[2] / "fixtures" / "store" / "mssql_schema.sql"


def mssql_script() -> str:
    dialect = mssql.dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        indexes = sorted(table.indexes, key=lambda index: str(index.name))
        statements.extend(str(CreateIndex(index).compile(dialect=dialect)).strip() for index in indexes)
    columns = list(RUNTIME_STATS_COLUMNS)
    rules = {name: Merge.REPLACE for name in columns if name not in RUNTIME_STATS_KEY}
    statements.append(
        mssql_merge_sql(runtime_stats, columns=columns, key=RUNTIME_STATS_KEY, rules=rules, dialect=dialect)
    )
    return ";\n\n".join(s.rstrip(";") for s in statements) + ";\n"


def test_mssql_ddl_and_merge_match_the_snapshot() -> None:
    script = mssql_script()
    if os.environ.get("PLANMON_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(script)
    assert script == SNAPSHOT.read_text(), "run with PLANMON_UPDATE_SNAPSHOTS=1 and review the diff"


def test_mssql_statements_parse_as_tsql() -> None:
    parsed = sqlglot.parse(mssql_script().replace(":", "@"), read="tsql")
    assert len([p for p in parsed if p is not None]) >= len(metadata.tables) + 1


def test_merge_binds_values_and_holds_the_key_range() -> None:
    merge = mssql_merge_sql(
        runtime_stats,
        columns=["plan_id", "interval_start", "execution_type", "executions"],
        key=RUNTIME_STATS_KEY,
        rules={},
        dialect=mssql.dialect(),
    )
    assert "WITH (HOLDLOCK)" in merge
    assert "CAST(:executions AS BIGINT) AS executions" in merge and "'" not in merge


@pytest.mark.mssql
def test_live_sql_server_repository_round_trip(mssql_url: str) -> None:
    url = make_url(mssql_url)
    if url.drivername == "mssql":
        url = url.set(drivername="mssql+pymssql")
    repository = Repository(create_repository_engine(url))
    collection = CollectionStore(repository)
    try:
        repository.init_schema()
        name = f"live-{datetime.now():%H%M%S%f}"
        target_id = repository.add_target(TargetSpec(name=name, engine="sqlserver", conn_id="c")).id
        query_id = collection.upsert_queries(target_id, [QueryRecord("1")])[("", "1")]
        plan_id = collection.upsert_plans(target_id, [PlanRecord("1", "1", body=b"<x/>")])["1"]
        start = datetime(2026, 1, 1)
        rows = [
            {
                "target_id": target_id,
                "plan_id": plan_id,
                "query_id": query_id,
                "executions": 5,
                "interval_start": start + timedelta(hours=h),
                "interval_end": start + timedelta(hours=h + 1),
            }
            for h in range(3)
        ]
        collection.upsert_runtime_stats(rows)
        collection.upsert_runtime_stats(rows)
        assert len(collection.runtime_stats(start, start + timedelta(days=1), target_ids=[target_id])) == 3
        # the purge's DELETE TOP (n) batches: the first hour is older than 30 days
        retention = RetentionStore(repository)
        deleted = retention.purge(now=start + timedelta(days=30, hours=1), retention_days=30, batch_rows=1)
        assert deleted["runtime_stats"] >= 1
        assert len(collection.runtime_stats(start, start + timedelta(days=1), target_ids=[target_id])) == 2
        repository.remove_target(name)
    finally:
        repository.close()


def _migration_sql(revision_file: str, direction: str) -> str:
    """The T-SQL an Alembic migration sends to SQL Server (offline mode: no server needed)."""
    import importlib.util
    import io

    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from planmon.store.migrate import MIGRATIONS_DIR

    spec = importlib.util.spec_from_file_location("migration", MIGRATIONS_DIR / "versions" / revision_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="mssql", opts={"as_sql": True, "output_buffer": buffer})
    with Operations.context(context):
        getattr(module, direction)()
    return buffer.getvalue()


def test_migration_0007_rekeys_runtime_stats_in_place_on_sql_server() -> None:
    upgrade = _migration_sql("0007_runtime_stats_partitions.py", "upgrade")
    statements = [s.strip() for s in upgrade.split("GO") if s.strip()]
    assert statements == [
        "DROP INDEX ix_runtime_stats_query_id_interval_start ON runtime_stats;",
        "ALTER TABLE runtime_stats DROP CONSTRAINT uq_runtime_stats_plan_id_interval_start_execution_type;",
        "ALTER TABLE runtime_stats DROP CONSTRAINT pk_runtime_stats;",
        "ALTER TABLE runtime_stats DROP COLUMN id;",
        "ALTER TABLE runtime_stats ADD CONSTRAINT pk_runtime_stats "
        "PRIMARY KEY (plan_id, interval_start, execution_type);",
        "CREATE INDEX ix_runtime_stats_interval_start ON runtime_stats (interval_start);",
        "CREATE INDEX ix_runtime_stats_rollup_interval_start ON runtime_stats_rollup (interval_start);",
    ]
    downgrade = _migration_sql("0007_runtime_stats_partitions.py", "downgrade")
    assert "ALTER TABLE runtime_stats ADD id BIGINT NOT NULL IDENTITY;" in downgrade
    for script in (upgrade, downgrade):
        parsed = sqlglot.parse(script.replace("GO\n", ""), read="tsql")
        assert all(statement is not None for statement in parsed)


def test_migration_0008_narrows_both_stats_tables_in_place_on_sql_server() -> None:
    upgrade = _migration_sql("0008_runtime_stats_narrower.py", "upgrade")
    statements = [s.strip() for s in upgrade.split("GO") if s.strip()]
    assert statements == [
        "ALTER TABLE runtime_stats DROP COLUMN source;",
        "ALTER TABLE runtime_stats_rollup DROP COLUMN source;",
        "ALTER TABLE runtime_stats_rollup DROP CONSTRAINT pk_runtime_stats_rollup;",
        "ALTER TABLE runtime_stats_rollup ADD CONSTRAINT pk_runtime_stats_rollup "
        "PRIMARY KEY (interval_start, grain, plan_id, execution_type);",
    ]
    downgrade = _migration_sql("0008_runtime_stats_narrower.py", "downgrade")
    assert "UPDATE runtime_stats SET source = (SELECT target.engine FROM target" in downgrade
    assert "ALTER TABLE runtime_stats ALTER COLUMN source VARCHAR(32) NOT NULL;" in downgrade
    for script in (upgrade, downgrade):
        parsed = sqlglot.parse(script.replace("GO\n", ""), read="tsql")
        assert all(statement is not None for statement in parsed)


def test_purge_batches_are_one_server_side_statement_on_sql_server() -> None:
    from planmon.store.partitions import _batch_delete

    statement = _batch_delete(
        "mssql",
        runtime_stats,
        time_column="interval_start",
        cutoff=datetime(2026, 1, 1),
        batch_rows=5000,
        condition=None,
    )
    sql = str(statement.compile(dialect=mssql.dialect()))
    assert " ".join(sql.split()) == (
        "DELETE TOP (5000) FROM runtime_stats WHERE runtime_stats.interval_start < :interval_start_1"
    )
    assert sqlglot.parse_one(sql.replace(":", "@"), read="tsql") is not None


def test_migration_0009_adds_the_capture_statistics_and_renames_old_statuses_on_sql_server() -> None:
    upgrade = _migration_sql("0009_capture_statistics_and_run_statuses.py", "upgrade")
    statements = [s.strip() for s in upgrade.split("GO") if s.strip()]
    assert statements == [
        "ALTER TABLE plan_capture ADD stdev_us_at_capture FLOAT NULL;",
        "ALTER TABLE plan_capture ADD rows_mean_at_capture FLOAT NULL;",
        "ALTER TABLE plan_capture ADD work_mean_at_capture FLOAT NULL;",
        "UPDATE collection_run SET status = 'degraded' WHERE status = 'partial';",
        "UPDATE collection_run SET status = 'error' WHERE status = 'failed';",
    ]


# -- datetimes and NULLs as SQL Server reads them ---------------------------------------------------------

MOMENT = datetime(2026, 2, 1, 13, 4, 5, 678000)  # 1 February: swapped day and month would be 2 January


def _processed(compiled: object, dialect: object) -> dict[str, object]:
    """The values the driver gets, after each bind's type processed it (as an execution does)."""
    values = {}
    for name, bind in compiled.binds.items():  # type: ignore[attr-defined]
        processor = bind.type.bind_processor(dialect)
        values[name] = processor(bind.value) if processor else bind.value
    return values


def _datetime_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(getattr(c.type, "impl", c.type), DateTime)]


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # primary keys left out on purpose
@pytest.mark.parametrize("table", [t for t in metadata.sorted_tables if _datetime_columns(t)], ids=str)
def test_every_datetime_the_store_sends_is_iso_8601_with_t(table: Table) -> None:
    """'YYYY-MM-DD hh:mm:ss' is read by DATEFORMAT into DATETIME (British/German logins: day and month
    swapped, or error 242); only the ISO 8601 T form is read the same under every setting."""
    dialect = pymssql.dialect()
    columns = _datetime_columns(table)
    insert = table.insert().values({name: MOMENT for name in columns}).compile(dialect=dialect)
    where = table.select().where(table.c[columns[0]] >= MOMENT).compile(dialect=dialect)
    for compiled in (insert, where):
        processed = _processed(compiled, dialect)
        sent = [v for name, v in processed.items() if name.rsplit("_", 1)[0] in columns or name in columns]
        assert sent and all(v == "2026-02-01T13:04:05.678" for v in sent), sent


def test_the_merge_types_every_source_value_and_binds_through_the_column_types() -> None:
    dialect = pymssql.dialect()
    columns = list(RUNTIME_STATS_COLUMNS)
    rules = {name: Merge.REPLACE for name in columns if name not in RUNTIME_STATS_KEY}
    statement = mssql_merge_statement(
        runtime_stats, columns=columns, key=RUNTIME_STATS_KEY, rules=rules, dialect=dialect
    )
    compiled = statement.compile(dialect=dialect)
    source = re.search(r"USING \(SELECT (.*?)\) AS source", str(compiled)).group(1)  # type: ignore[union-attr]
    items = [item.strip() for item in re.split(r",\s*(?=CAST\()", source)]
    assert len(items) == len(columns) and all(item.startswith("CAST(") for item in items)
    assert "AS DATETIME) AS interval_start" in source  # a NULL is typed, ISO text is read as such
    assert "AS FLOAT) AS cpu_us_mean" in source
    processor = compiled.binds["interval_start"].type.bind_processor(dialect)
    assert processor(MOMENT) == "2026-02-01T13:04:05.678" and processor(None) is None


def test_json_and_text_columns_are_cast_so_a_null_is_never_an_int() -> None:
    from planmon.store.schema import plan

    columns = [
        "target_id",
        "plan_key",
        "query_id",
        "summary",
        "body",
        "first_seen",
        "last_seen",
        "shape_hash",
    ]
    sql = mssql_merge_sql(
        plan,
        columns=columns,
        key=["target_id", "plan_key"],
        rules={"summary": Merge.KEEP, "body": Merge.KEEP, "shape_hash": Merge.KEEP},
        dialect=mssql.dialect(),
    )
    assert "CAST(:summary AS NVARCHAR(max)) AS summary" in sql
    assert "CAST(:body AS VARBINARY(max)) AS body" in sql
    assert "CAST(:shape_hash AS NVARCHAR(max)) AS shape_hash" in sql
    assert "COALESCE(target.summary, source.summary)" in sql
    parsed = sqlglot.parse_one(sql.replace(":", "@"), read="tsql")
    assert parsed is not None
    statement = mssql_merge_statement(
        plan, columns=columns, key=["target_id", "plan_key"], rules={}, dialect=mssql.dialect()
    )
    compiled = statement.compile(dialect=pymssql.dialect())
    json_processor = compiled.binds["summary"].type.bind_processor(pymssql.dialect())
    assert json_processor({"cost": 1}) == '{"cost": 1}'  # serialised by the column type, not left a dict


def test_migration_0010_adds_the_variant_and_replica_columns_in_place_on_sql_server() -> None:
    upgrade = _migration_sql("0010_query_variants_and_replica_groups.py", "upgrade")
    statements = [s.strip() for s in upgrade.split("GO") if s.strip()]
    assert statements == [
        "ALTER TABLE query ADD parent_query_key VARCHAR(200) NULL;",
        "ALTER TABLE query ADD dispatcher_plan_key VARCHAR(200) NULL;",
        "ALTER TABLE query ADD replica_group_id BIGINT NULL;",
    ]
    downgrade = _migration_sql("0010_query_variants_and_replica_groups.py", "downgrade")
    assert "ALTER TABLE query DROP COLUMN parent_query_key;" in downgrade
    for script in (upgrade, downgrade):
        assert all(s is not None for s in sqlglot.parse(script.replace("GO\n", ""), read="tsql"))
