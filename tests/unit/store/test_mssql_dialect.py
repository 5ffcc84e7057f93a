"""SQL Server: the repository's DDL and upserts compiled for the mssql dialect (snapshot), and live.

No SQL Server runs on the build machines: the snapshot and sqlglot's T-SQL parser check the SQL here;
the live test runs wherever PLANMON_TEST_MSSQL_URL points at a server (docker-compose.yml has one).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlglot
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import RUNTIME_STATS_COLUMNS, RUNTIME_STATS_KEY, CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.retention import RetentionStore
from planmon.store.schema import metadata, runtime_stats
from planmon.store.upsert import Merge, mssql_merge_sql

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
    assert ":executions AS executions" in merge and "'" not in merge


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
