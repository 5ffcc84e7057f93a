"""How one probe statement is sent to each engine: read-only transaction, statement timeout, EXPLAIN.

- PostgreSQL: ``BEGIN READ ONLY`` (the server refuses writes, also inside functions), rolled back;
  ``statement_timeout`` and a short ``lock_timeout`` set for the transaction only (``set_config(...,
  true)``); plan: ``EXPLAIN (VERBOSE, FORMAT JSON)`` as the collector sends it, never ANALYZE.
- MariaDB / MySQL: ``START TRANSACTION READ ONLY``, rolled back; MariaDB ``max_statement_time``
  (seconds), MySQL ``max_execution_time`` (ms, SELECT only); plan: ``EXPLAIN FORMAT=JSON``.
- SQL Server: **no read-only transaction** (T-SQL has none): the guard and a least-privilege login are
  the protection; ``SET LOCK_TIMEOUT`` + the driver's query timeout; plan: ``SET SHOWPLAN_XML ON``
  (the statement is compiled, not run).

Every statement carries the ``/* planmon */`` marker, so the collector leaves probe statements out of
the workload it analyses. The probe text is sent as is (it is the thing to run and has passed the
read-only guard); planmon's own values are bound.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

import mysql.connector
import psycopg

from planmon.engines import mysql as mysql_engine
from planmon.engines import postgres as postgres_engine
from planmon.engines import sqlserver as sqlserver_engine
from planmon.engines.base import ConnectionFactory
from planmon.errors import EngineErrorReason, scrub_secrets
from planmon.sql import MARKER

LOCK_TIMEOUT_CAP_MS = 1000  # a probe never queues long behind another session's lock
# The planmon alias keeps it recognisable in DIGEST_TEXT (engines/mysql.py, rule 1).
_MYSQL_VERSION = "/* planmon */ SELECT planmon.version FROM (SELECT VERSION() AS version) AS planmon"


class ProbeSession(Protocol):
    """One connection to one target, set up for probes; ``close`` releases it."""

    def run(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """(column names, rows, truncated) of ``sql`` run read-only under the statement timeout."""
        ...

    def explain(self, sql: str) -> bytes:
        """The estimated plan document of ``sql`` (nothing of it executes)."""
        ...

    def close(self) -> None: ...


def _fetch(cursor: Any, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    if cursor.description is None:
        return [], [], False
    columns = [str(column[0]) for column in cursor.description]
    rows = [tuple(row) for row in cursor.fetchmany(max_rows + 1)]
    return columns, rows[:max_rows], len(rows) > max_rows


def _document(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


# -- PostgreSQL -------------------------------------------------------------------------------------


class PostgresSession:
    def __init__(self, connection: Any, timeout_ms: int) -> None:
        self.connection = connection
        self.connection.autocommit = True  # transactions are begun and rolled back explicitly
        self.timeout_ms = timeout_ms

    def _begin(self, cursor: Any) -> None:
        cursor.execute(f"{MARKER} BEGIN READ ONLY")
        cursor.execute(
            f"{MARKER} SELECT set_config('statement_timeout', %(timeout)s, true), "
            "set_config('lock_timeout', %(lock)s, true), set_config('application_name', 'planmon', true)",
            {"timeout": str(self.timeout_ms), "lock": str(min(self.timeout_ms, LOCK_TIMEOUT_CAP_MS))},
        )

    def run(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        with self.connection.cursor() as cursor:
            self._begin(cursor)
            try:
                cursor.execute(f"{MARKER} {sql}", prepare=False)
                result = _fetch(cursor, max_rows)
            except BaseException:
                _quietly(cursor.execute, f"{MARKER} ROLLBACK")  # the probe's error is what counts
                raise
            cursor.execute(f"{MARKER} ROLLBACK")
            return result

    def explain(self, sql: str) -> bytes:
        steps = postgres_engine.explain_steps(sql, int(self.connection.info.server_version))
        with self.connection.cursor() as cursor:
            self._begin(cursor)
            try:
                for statement in steps.prepare:
                    cursor.execute(statement)
                cursor.execute(steps.explain, prepare=False)
                row = cursor.fetchone()
            finally:
                _quietly(cursor.execute, f"{MARKER} ROLLBACK")
                if steps.deallocate is not None and steps.prepare:
                    _quietly(cursor.execute, steps.deallocate)
        return _document(row[0] if row else None)

    def close(self) -> None:
        self.connection.close()


def postgres_failure(exc: BaseException) -> tuple[EngineErrorReason, str] | None:
    if not isinstance(exc, psycopg.Error):
        return None
    return postgres_engine.error_reason(exc), postgres_engine.driver_message(exc)


# -- MariaDB / MySQL --------------------------------------------------------------------------------


class MySqlSession:
    def __init__(self, connection: Any, timeout_ms: int) -> None:
        self.connection = connection
        self.closed = False
        cursor = connection.cursor()
        try:
            cursor.execute(_MYSQL_VERSION)
            version = str(cursor.fetchone()[0])
            if "mariadb" in version.lower():
                cursor.execute(
                    f"{MARKER} SET SESSION max_statement_time = %(seconds)s", {"seconds": timeout_ms / 1000}
                )
            else:
                cursor.execute(
                    f"{MARKER} SET SESSION max_execution_time = %(milliseconds)s",
                    {"milliseconds": timeout_ms},
                )
            lock_seconds = max(1, math.ceil(min(timeout_ms, LOCK_TIMEOUT_CAP_MS) / 1000))
            cursor.execute(f"{MARKER} SET SESSION innodb_lock_wait_timeout = %(s)s", {"s": lock_seconds})
        finally:
            cursor.close()

    def _statement(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        cursor = self.connection.cursor()
        cursor.execute(f"{MARKER} START TRANSACTION READ ONLY")
        try:
            cursor.execute(sql)
            columns, rows, truncated = _fetch(cursor, max_rows)
        except BaseException:
            _quietly(cursor.execute, f"{MARKER} ROLLBACK")
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
        refusal = mysql_engine.unexplainable_reason(sql)
        if refusal is not None:
            raise ValueError(f"cannot EXPLAIN the probe: {refusal}")
        _columns, rows, _truncated = self._statement(f"{MARKER} EXPLAIN FORMAT=JSON {sql}", 1)
        if not rows:
            raise ValueError("EXPLAIN returned no plan")
        return _document(rows[0][0])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.connection.close()


def _quietly(action: Any, *args: Any) -> None:
    """Run a clean-up step whose failure must not hide the error being raised."""
    with contextlib.suppress(Exception):  # the original error is what the caller reports
        action(*args)


def mysql_failure(exc: BaseException) -> tuple[EngineErrorReason, str] | None:
    if not isinstance(exc, mysql.connector.Error):
        return None
    errno = getattr(exc, "errno", None)
    reason = mysql_engine.error_reason(errno if isinstance(errno, int) else None)
    message = getattr(exc, "msg", None) or str(exc)
    return reason, scrub_secrets(" ".join(str(message).split()))


# -- SQL Server -------------------------------------------------------------------------------------


class SqlServerSession:
    """No read-only transaction exists in T-SQL: the guard has refused writes, and the target's
    connection should be a login that can only read (docs/probes.md)."""

    def __init__(self, connection: Any, timeout_ms: int) -> None:
        self.connection = connection
        autocommit = getattr(connection, "autocommit", None)
        if callable(autocommit):
            autocommit(True)
        driver_connection = getattr(connection, "_conn", None)  # pymssql's _mssql connection
        if driver_connection is not None:
            driver_connection.query_timeout = max(1, math.ceil(timeout_ms / 1000))
        cursor = connection.cursor()
        try:
            cursor.execute(
                f"{MARKER} SET NOCOUNT ON; SET LOCK_TIMEOUT %d; SET DEADLOCK_PRIORITY LOW;"
                % min(timeout_ms, LOCK_TIMEOUT_CAP_MS)
            )
        finally:
            cursor.close()

    def run(self, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"{MARKER} {sql}")
            return _fetch(cursor, max_rows)
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
        return _document(row[0] if row else None)

    def close(self) -> None:
        self.connection.close()


def sqlserver_failure(exc: BaseException) -> tuple[EngineErrorReason, str] | None:
    if type(exc).__module__.split(".")[0] not in ("pymssql", "_mssql"):
        return None
    return sqlserver_engine.classify_driver_error(exc), sqlserver_engine.driver_error_text(exc)


_SESSIONS: dict[str, type[PostgresSession] | type[MySqlSession] | type[SqlServerSession]] = {
    "postgres": PostgresSession,
    "mysql": MySqlSession,
    "sqlserver": SqlServerSession,
}
_FAILURES = {"postgres": postgres_failure, "mysql": mysql_failure, "sqlserver": sqlserver_failure}


def open_session(
    engine: str, connect: ConnectionFactory, timeout_ms: int, database: str | None = None
) -> ProbeSession:
    """A session on ``database`` (None: the connection's own), set up for probes (driver errors propagate)."""
    connection = connect(database)
    try:
        return _SESSIONS[engine](connection, timeout_ms)
    except BaseException:
        connection.close()
        raise


def driver_failure(engine: str, exc: BaseException) -> tuple[EngineErrorReason, str] | None:
    """(reason, scrubbed one-line message) of a driver error of ``engine``; None for anything else."""
    return _FAILURES[engine](exc)


SESSION_ENGINES: Sequence[str] = tuple(_SESSIONS)
