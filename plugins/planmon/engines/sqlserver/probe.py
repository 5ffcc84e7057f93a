"""The SQL Server probe session. T-SQL has **no read-only transaction**: the guard has refused writes,
and the target's connection should be a login that can only read (docs/probes.md). The plan is
``SET SHOWPLAN_XML ON`` (the statement is compiled, not run)."""

from __future__ import annotations

from typing import Any

from planmon.engines._base import fetch_limited, plan_document
from planmon.engines.base import ProbePrivileges, SessionPolicy
from planmon.engines.sqlserver.dialect import DIALECT
from planmon.engines.sqlserver.probe_privileges import read_privileges
from planmon.sql import MARKER


class SqlServerProbeSession:
    def __init__(self, connection: Any, policy: SessionPolicy) -> None:
        self.connection = connection
        self._privileges: ProbePrivileges | None = None
        cursor = connection.cursor()
        try:
            for step in DIALECT.session_setup(policy):
                cursor.execute(step.sql)
        finally:
            cursor.close()

    def privileges(self) -> ProbePrivileges:
        if self._privileges is None:
            self._privileges = read_privileges(self.connection)
        return self._privileges

    def run(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"{MARKER} {sql}")
            return fetch_limited(cursor, max_rows)
        finally:
            cursor.close()

    def explain(self, sql: str) -> bytes:
        cursor = self.connection.cursor()
        try:
            cursor.execute("SET SHOWPLAN_XML ON")  # must be alone in its batch
            try:
                cursor.execute(f"{MARKER} {sql}")
                row = cursor.fetchone()
            finally:
                cursor.execute("SET SHOWPLAN_XML OFF")
        finally:
            cursor.close()
        return plan_document(row[0] if row else None)

    def close(self) -> None:
        self.connection.close()
