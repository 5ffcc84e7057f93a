"""SQL Server remediation against a live server at PLANMON_TEST_MSSQL_URL (skipped when it is not set).

Needs a database with Query Store READ_WRITE (the compose file's demo database has it) and a login
that may create a table there and force plans (ALTER on the database). It creates a scratch table,
runs a marked query until Query Store has its plan, then: the forcing state reads back as free; a
force placed "by someone else" is seen as foreign (and refuses the rails); planmon's own force goes
through the remediation statements, reads back as forced, and its rollback unforces it.

Not run on the build machines (no SQL Server there): see README "Verified live, and not".
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from planmon.config import Settings
from planmon.engines import get_engine
from planmon.engines.sqlserver import remediation as sqlserver
from planmon.errors import RefusalReason, RemediationRefused
from planmon.model import Action, PlanInfo, RegressionContext, Target
from planmon.remediation import rails

pytestmark = pytest.mark.mssql


@pytest.fixture
def connect(mssql_url: str) -> Any:
    import pymssql
    from sqlalchemy.engine import make_url

    parsed = make_url(mssql_url)

    def open_connection(database: str | None) -> Any:
        connection = pymssql.connect(
            server=parsed.host or "localhost",
            port=str(parsed.port or 1433),
            user=parsed.username,
            password=parsed.password,
            database=database or parsed.database or "master",
            login_timeout=10,
            timeout=math.ceil(Settings().statement_timeout_ms / 1000),
        )
        connection.autocommit(True)
        return connection

    return open_connection


@pytest.fixture
def marked_query(connect: Any) -> Iterator[tuple[int, str]]:
    """(query_id, table) of a marked query Query Store has captured; the table is dropped afterwards."""
    table = f"planmon_rem_{uuid.uuid4().hex[:8]}"
    marker = f"planmon-remediation-test-{table}"
    connection = connect(None)
    cursor = connection.cursor()
    try:
        cursor.execute(f"CREATE TABLE dbo.{table} (id int PRIMARY KEY, c int NOT NULL)")
        cursor.execute(f"CREATE INDEX ix_c ON dbo.{table} (c)")
        cursor.execute(
            f"INSERT INTO dbo.{table} (id, c) SELECT TOP (5000) ROW_NUMBER() OVER (ORDER BY (SELECT 1)), "
            "ABS(CHECKSUM(NEWID())) % 100 FROM sys.all_objects a CROSS JOIN sys.all_objects b"
        )
        for value in range(20):
            cursor.execute(f"SELECT COUNT(*) FROM dbo.{table} WHERE c = %d /* {marker} */", (value,))
            cursor.fetchall()
        cursor.execute("EXEC sys.sp_query_store_flush_db")
        cursor.execute(
            "SELECT TOP (1) q.query_id FROM sys.query_store_query AS q JOIN sys.query_store_query_text AS t"
            " ON t.query_text_id = q.query_text_id WHERE t.query_sql_text LIKE %s",
            (f"%{marker}%",),
        )
        row = cursor.fetchone()
        if row is None:
            pytest.skip("Query Store did not capture the test query (is it READ_WRITE in this database?)")
        yield int(row[0]), table
    finally:
        cursor.execute(f"DROP TABLE IF EXISTS dbo.{table}")
        connection.close()


def _target() -> Target:
    now = datetime(2026, 11, 20)
    return Target(1, "live", "sqlserver", "m", None, {}, (), True, "approve", "f", now, now)  # type: ignore[arg-type]


def _context(query_id: int, plan_id: int) -> RegressionContext:
    return RegressionContext(
        regression={"id": 1, "kind": "plan_change", "query_id": 1},
        target=_target(),
        database_name="",
        query_key=str(query_id),
        query_text=None,
        baseline_plan=PlanInfo(1, str(plan_id), None),
        current_plan=PlanInfo(2, "0", None),
    )


def _state(connect: Any, query_id: int, **kwargs: Any) -> sqlserver.QueryStoreState:
    connection = connect(None)
    try:
        return sqlserver.read_state(connection, query_id, **kwargs)
    finally:
        connection.close()


def test_force_read_back_foreign_force_and_rollback(connect: Any, marked_query: tuple[int, str]) -> None:
    query_id, _ = marked_query
    state = _state(connect, query_id)
    assert state.plans and not any(p.is_forced for p in state.plans)
    plan_id = state.plans[0].plan_id

    def run(statements: Any) -> None:
        get_engine("sqlserver").run_statements(
            connect,
            None,
            statements,
            lock_timeout_ms=5000,
            statement_timeout_ms=30_000,
            target="live",
        )

    # a force placed by someone else: seen as foreign, and the rails refuse to act on the query
    force = sqlserver.force_plan(_context(query_id, plan_id), state, plan_id)
    run(force.statements)
    try:
        foreign = _state(connect, query_id)
        assert foreign.foreign_forces()[0].startswith(f"plan {plan_id} forced (MANUAL)")
        with pytest.raises(RemediationRefused) as refused:
            rails.check(
                rails.RailInput(
                    _target(),
                    Action.ANALYZE,
                    datetime(2026, 11, 25, 12),
                    0,
                    2,
                    foreign_forces=foreign.foreign_forces(),
                )
            )
        assert refused.value.reason is RefusalReason.FORCED_BY_OTHERS
        # the same force as planmon's own: it holds, and no failure is reported
        ours = _state(connect, query_id, planmon_forced=[plan_id])
        assert ours.foreign_forces() == [] or all(
            "automatic plan correction" in r for r in ours.foreign_forces()
        )
        assert sqlserver.force_outcome(state.plan(plan_id), ours.plan(plan_id)) == (True, "forced")
    finally:
        run(force.rollback)
    after = _state(connect, query_id)
    assert not any(p.is_forced for p in after.plans)
