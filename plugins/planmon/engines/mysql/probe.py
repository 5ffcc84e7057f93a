"""The MySQL / MariaDB probe session: each probe statement in ``START TRANSACTION READ ONLY``,
rolled back, under the session's statement and lock timeouts; its plan is ``EXPLAIN FORMAT=JSON``."""

from __future__ import annotations

from typing import Any

from planmon.engines._base import fetch_limited, plan_document, quietly
from planmon.engines.base import ProbePrivileges, SessionPolicy
from planmon.engines.mysql.adapter import unexplainable_reason
from planmon.engines.mysql.dialect import DIALECT, VERSION_QUERY, flavor_of
from planmon.engines.mysql.probe_privileges import read_privileges
from planmon.sql import MARKER


class MySqlProbeSession:
    def __init__(self, connection: Any, policy: SessionPolicy) -> None:
        self.connection = connection
        self.closed = False
        self._privileges: ProbePrivileges | None = None
        cursor = connection.cursor()
        try:
            cursor.execute(VERSION_QUERY)
            self.flavor = flavor = flavor_of(str(cursor.fetchone()[0]))
            for step in DIALECT.session_setup(policy, flavor=flavor):
                cursor.execute(step.sql, step.params)
        finally:
            cursor.close()

    def privileges(self) -> ProbePrivileges:
        if self._privileges is None:
            self._privileges = read_privileges(self.connection, self.flavor)
        return self._privileges

    def _statement(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        cursor = self.connection.cursor()
        cursor.execute(f"{MARKER} START TRANSACTION READ ONLY")
        try:
            cursor.execute(sql)
            columns, rows, truncated = fetch_limited(cursor, max_rows)
        except BaseException:
            quietly(cursor.execute, f"{MARKER} ROLLBACK")
            raise
        if truncated:
            # Rows are left unread and the driver would read them all before the next statement:
            # closing the connection ends the read-only transaction without fetching them.
            self.close()
        else:
            cursor.execute(f"{MARKER} ROLLBACK")
            cursor.close()
        return columns, rows, truncated

    def run(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        return self._statement(f"{MARKER} {sql}", max_rows)

    def explain(self, sql: str) -> bytes:
        refusal = unexplainable_reason(sql)
        if refusal is not None:
            raise ValueError(f"cannot EXPLAIN the probe: {refusal}")
        _columns, rows, _truncated = self._statement(f"{MARKER} EXPLAIN FORMAT=JSON {sql}", 1)
        if not rows:
            raise ValueError("EXPLAIN returned no plan")
        return plan_document(rows[0][0])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.connection.close()
