"""The SQL Server probe session on a recording stand-in for pymssql (no SQL Server here): lock and
query timeouts set, SHOWPLAN_XML switched off again even when compiling fails, driver timeouts
recorded as ``timeout``, the plan's shape hash taken from the showplan, and the login's privilege
check answered with recorded result sets of ``include/sql/sqlserver/probe_privileges.sql``."""

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

# The columns of probe_privileges.sql as pymssql describes them (name first), and recorded rows:
# IS_SRVROLEMEMBER / HAS_PERMS_BY_NAME / IS_ROLEMEMBER return int 1 or 0 (NULL for an unknown name).
PRIVILEGE_COLUMNS = (
    "login_name", "is_sysadmin", "is_securityadmin", "has_control_server", "has_alter_any_connection",
    "has_shutdown", "has_alter_settings", "has_alter_any_login", "is_db_owner", "has_control_database",
)  # fmt: skip
READER = ("planmon_probe", 0, 0, 0, 0, 0, 0, 0, 0, 0)  # VIEW SERVER STATE, db_datareader: nothing excess
SYSADMIN = ("sa", 1, 0, 1, 1, 1, 1, 1, 1, 1)  # sysadmin holds every permission, is dbo everywhere
PROCESSADMIN = ("ops_monitor", 0, 0, 0, 1, 0, 0, 0, 0, 0)  # processadmin: ALTER ANY CONNECTION (KILL)
DB_OWNER = ("app_owner", 0, 0, 0, 0, 0, 0, 0, 1, 1)  # db_owner of the probe's database
UNKNOWN_ROLE = ("planmon_probe", None, 0, 0, 0, 0, 0, 0, None, 0)  # NULL: unknown role, not held


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
        if "IS_SRVROLEMEMBER('sysadmin')" in sql:
            self.description = [(name, 3, None, None, None, None, None) for name in PRIVILEGE_COLUMNS]
            self.rows = [self.connection.login]
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
    def __init__(self, fail_with: Exception | None = None, login: tuple[Any, ...] = READER) -> None:
        self.login = login
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


def run(connection: Connection, *, allow_privileged: bool = False, **fields: Any) -> Any:
    definition = ProbeDefinition.model_validate(
        {"name": "p", "sql": "SELECT COUNT(*) FROM dbo.Orders", "operator": ">", "critical": 5, **fields}
    )
    return run_probe(
        definition,
        TARGET,
        lambda _db: connection,
        default_timeout_seconds=30,
        max_rows=100,
        allow_privileged=allow_privileged,
    )


def probe_statements(connection: Connection) -> list[str]:
    return [sql for sql in connection.sent if "dbo.Orders" in sql]


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
    assert connection.sent[1].startswith(
        "/* planmon */\nSELECT /* planmon */\n    SUSER_SNAME() AS login_name"
    )
    assert connection.sent[-1] == "/* planmon */ SELECT COUNT(*) FROM dbo.Orders"
    assert connection.closed


@pytest.mark.parametrize(
    ("login", "reasons"),
    [
        (SYSADMIN, ["member of sysadmin", "CONTROL SERVER"]),
        (PROCESSADMIN, ["ALTER ANY CONNECTION: kills other sessions (KILL)"]),
        (DB_OWNER, ["member of db_owner in the probe's database", "CONTROL on the probe's database"]),
    ],
)
def test_a_too_powerful_login_is_refused_and_no_probe_statement_is_sent(
    login: tuple[Any, ...], reasons: list[str]
) -> None:
    connection = Connection(login=login)
    outcome = run(connection, capture_plan=True)
    assert outcome.status == "refused"
    assert outcome.error.startswith(f"refused: the probe login {login[0]} is too powerful")
    assert all(reason in outcome.error for reason in reasons)
    assert outcome.error.count(";") == len(reasons) - 1  # sysadmin: the implied flags are not listed
    assert 'docs/probes.md, "The probe login"' in outcome.error
    assert probe_statements(connection) == [] and "SET SHOWPLAN_XML ON" not in connection.sent
    assert outcome.value is None and connection.closed


def test_the_check_runs_once_per_session_and_null_is_not_held() -> None:
    connection = Connection(login=UNKNOWN_ROLE)
    outcome = run(connection, capture_plan=True)
    assert (outcome.status, outcome.value) == ("critical", 7.0)
    assert sum("IS_SRVROLEMEMBER" in sql for sql in connection.sent) == 1
    assert probe_statements(connection) == ["/* planmon */ SELECT COUNT(*) FROM dbo.Orders"] * 2  # plan, run


def test_allow_privileged_runs_a_sysadmin_probe_anyway() -> None:
    connection = Connection(login=SYSADMIN)
    outcome = run(connection, allow_privileged=True)
    assert (outcome.status, outcome.value) == ("critical", 7.0)
    assert probe_statements(connection) == ["/* planmon */ SELECT COUNT(*) FROM dbo.Orders"]


def test_a_failed_check_is_an_error_and_the_probe_does_not_run() -> None:
    connection = Connection(login=SYSADMIN[:3])  # a row short of columns: the check cannot decide
    outcome = run(connection)
    assert outcome.status == "error"
    assert outcome.error.startswith("checking the probe login's privileges failed, the probe was not run")
    assert probe_statements(connection) == []


def test_capture_plan_uses_showplan_and_switches_it_off() -> None:
    connection = Connection()
    outcome = run(connection, capture_plan=True)
    assert outcome.plan_shape_hash and len(outcome.plan_shape_hash) >= 16
    assert connection.sent[2:5] == ["SET SHOWPLAN_XML ON", "/* planmon */ SELECT COUNT(*) FROM dbo.Orders",
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


def test_allow_privileged_runs_even_when_the_check_cannot_be_made(caplog: pytest.LogCaptureFixture) -> None:
    connection = Connection(login=SYSADMIN[:3])
    outcome = run(connection, allow_privileged=True)
    assert (outcome.status, outcome.value) == ("critical", 7.0)
    assert "login check failed" in caplog.text and "running anyway" in caplog.text
