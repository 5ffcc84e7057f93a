"""The PostgreSQL probe session: each probe statement in ``BEGIN READ ONLY`` (the server refuses
writes, also inside functions) with transaction-local timeouts, always rolled back; its plan is
``EXPLAIN (VERBOSE, FORMAT JSON)`` as the collector sends it, never ANALYZE."""

from __future__ import annotations

from typing import Any

from planmon.engines._base import fetch_limited, plan_document, quietly
from planmon.engines.base import ProbePrivileges, SessionPolicy
from planmon.engines.postgres.adapter import explain_steps
from planmon.engines.postgres.dialect import BEGIN, PROBE_TRANSACTION, ROLLBACK, marked
from planmon.engines.postgres.probe_privileges import read_privileges


class PostgresProbeSession:
    def __init__(self, connection: Any, policy: SessionPolicy) -> None:
        self.connection = connection
        self.policy = policy
        self._privileges: ProbePrivileges | None = None

    def privileges(self) -> ProbePrivileges:
        if self._privileges is None:
            with self.connection.cursor() as cursor:
                self._begin(cursor)
                try:
                    self._privileges = read_privileges(cursor)
                finally:
                    quietly(cursor.execute, ROLLBACK)
        return self._privileges

    def _begin(self, cursor: Any) -> None:
        cursor.execute(BEGIN)
        cursor.execute(
            PROBE_TRANSACTION,
            {"timeout": str(self.policy.statement_timeout_ms), "lock": str(self.policy.lock_timeout_ms)},
        )

    def run(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        with self.connection.cursor() as cursor:
            self._begin(cursor)
            try:
                cursor.execute(marked(sql), prepare=False)
                result = fetch_limited(cursor, max_rows)
            except BaseException:
                quietly(cursor.execute, ROLLBACK)  # the probe's error is what counts
                raise
            cursor.execute(ROLLBACK)
            return result

    def explain(self, sql: str) -> bytes:
        steps = explain_steps(sql, int(self.connection.info.server_version))
        with self.connection.cursor() as cursor:
            self._begin(cursor)
            try:
                for statement in steps.prepare:
                    cursor.execute(statement)
                cursor.execute(steps.explain, prepare=False)
                row = cursor.fetchone()
            finally:
                quietly(cursor.execute, ROLLBACK)
                if steps.deallocate is not None and steps.prepare:
                    quietly(cursor.execute, steps.deallocate)
        return plan_document(row[0] if row else None)

    def close(self) -> None:
        self.connection.close()
