"""The SQL Server probe session on a recording stand-in for pymssql (no SQL Server here): lock and
query timeouts set, SHOWPLAN_XML switched off again even when compiling fails, driver timeouts
recorded as ``timeout``, and the plan's shape hash taken from the showplan."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pymssql
import pytest

from planmon.model import Target
from planmon.model.probes import ProbeDefinition
from planmon.probes.runner import run_probe

PLAN = (Path(__file__).parents[2] / "fixtures" / "plans" / "sqlserver" / "KeyLookup.sqlplan").read_bytes()


class Cursor:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple[str]] | None = None
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str) -> None:
        self.connection.sent.append(sql)
        if sql == "SET SHOWPLAN_XML ON":
            self.connection.showplan = True
            return
        if sql == "SET SHOWPLAN_XML OFF":
            self.connection.showplan = False
            return
        if sql.lstrip().startswith("/* planmon */ SET"):
            self.description = None
            return
        if self.connection.fail_with is not None:
            raise self.connection.fail_with
        if self.connection.showplan:
            self.description, self.rows = (
                [("Microsoft SQL Server 2005 XML Showplan",)],
                [(PLAN.decode("utf-8"),)],
            )
        else:
            self.description, self.rows = [("n",)], [(7,)]

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        return self.rows[:size]

    def close(self) -> None:
        pass


class DriverConnection:
    query_timeout = 0


class Connection:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.sent: list[str] = []
        self.showplan = False
        self.fail_with = fail_with
        self.autocommit_on: bool | None = None
        self._conn = DriverConnection()
        self.closed = False

    def autocommit(self, value: bool) -> None:
        self.autocommit_on = value

    def cursor(self) -> Cursor:
        return Cursor(self)

    def close(self) -> None:
        self.closed = True


TARGET = Target(
    id=1, name="mssql", engine="sqlserver", conn_id="c", environment=None, tags={}, databases=(),
    enabled=True,
    remediation_mode="propose", remediation_conn_id=None, created_at=datetime(2026, 1, 1),
    updated_at=datetime(2026, 1, 1),
)  # fmt: skip


def run(connection: Connection, **fields: Any) -> Any:
    definition = ProbeDefinition.model_validate(
        {"name": "p", "sql": "SELECT COUNT(*) FROM dbo.Orders", "operator": ">", "critical": 5, **fields}
    )
    return run_probe(definition, TARGET, lambda _db: connection, default_timeout_seconds=30, max_rows=100)


def test_run_sets_timeouts_and_evaluates() -> None:
    connection = Connection()
    outcome = run(connection, timeout_seconds=2.5)
    assert (outcome.status, outcome.value) == ("critical", 7.0)
    assert connection._conn.query_timeout == 3  # the driver's query timeout, whole seconds, rounded up
    assert connection.autocommit_on is True
    assert (
        connection.sent[0]
        == "/* planmon */ SET NOCOUNT ON; SET LOCK_TIMEOUT 1000; SET DEADLOCK_PRIORITY LOW;"
    )
    assert connection.sent[-1] == "/* planmon */ SELECT COUNT(*) FROM dbo.Orders"
    assert connection.closed


def test_capture_plan_uses_showplan_and_switches_it_off() -> None:
    connection = Connection()
    outcome = run(connection, capture_plan=True)
    assert outcome.plan_shape_hash and len(outcome.plan_shape_hash) >= 16
    assert connection.sent[1:4] == ["SET SHOWPLAN_XML ON", "/* planmon */ SELECT COUNT(*) FROM dbo.Orders",
                                    "SET SHOWPLAN_XML OFF"]  # fmt: skip
    assert outcome.value == 7.0  # the probe itself ran after the plan, with SHOWPLAN off


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (pymssql.OperationalError(20003, b"DB-Lib error message 20003, severity 6: timed out"), "timeout",
         "exceeded its timeout of 30000 ms"),
        (pymssql.OperationalError(1222, b"Lock request time out period exceeded."), "timeout", "exceeded"),
        (pymssql.ProgrammingError(208, b"Invalid object name 'dbo.Orders'."), "error",
         "Invalid object name 'dbo.Orders'"),
    ],
)  # fmt: skip
def test_driver_errors_become_outcomes(error: Exception, status: str, text: str) -> None:
    connection = Connection(fail_with=error)
    outcome = run(connection, capture_plan=True)
    assert outcome.status == status and text in outcome.error
    assert not connection.showplan  # SHOWPLAN_XML OFF was sent although compiling failed
    assert outcome.plan_error and outcome.plan_error.startswith("no plan:")


def test_sqlserver_writes_are_refused_before_connecting() -> None:
    connection = Connection()
    outcome = run(connection, sql="EXEC sp_configure 'show advanced options', 1")
    assert outcome.status == "refused"
    assert connection.sent == []
