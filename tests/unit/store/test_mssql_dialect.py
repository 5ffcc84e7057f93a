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
from planmon.store.connection import create_repository_engine
from planmon.store.repository import RUNTIME_STATS_COLUMNS, RUNTIME_STATS_KEY
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
    try:
        repository.init_schema()
        name = f"live-{datetime.now():%H%M%S%f}"
        target_id = repository.add_target(TargetSpec(name=name, engine="sqlserver", conn_id="c")).id
        query_id = repository.upsert_queries(target_id, [QueryRecord("1")])[("", "1")]
        plan_id = repository.upsert_plans(target_id, [PlanRecord("1", "1", body=b"<x/>")])["1"]
        start = datetime(2026, 1, 1)
        rows = [
            {
                "target_id": target_id,
                "plan_id": plan_id,
                "query_id": query_id,
                "executions": 5,
                "source": "t",
                "interval_start": start + timedelta(hours=h),
                "interval_end": start + timedelta(hours=h + 1),
            }
            for h in range(3)
        ]
        repository.upsert_runtime_stats(rows)
        repository.upsert_runtime_stats(rows)
        assert len(repository.runtime_stats(start, start + timedelta(days=1), target_ids=[target_id])) == 3
        repository.remove_target(name)
    finally:
        repository.close()
