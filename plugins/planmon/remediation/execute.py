"""Running a remediation's statements on its target, inside lock and statement timeouts.

The connection comes from the target's *remediation* connection id (never the collection one). The
timeouts are session settings, set with bound values before the first statement. Driver errors are
scrubbed of secrets before they are raised or stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from planmon.errors import EngineError, EngineErrorReason, scrub_secrets
from planmon.remediation.model import Statement

log = logging.getLogger(__name__)

Connect = Callable[[str | None], Any]


def _session_timeouts(engine: str, lock_ms: int, statement_ms: int) -> list[Statement]:
    if engine == "postgres":
        return [
            Statement("SELECT set_config('lock_timeout', %s, false)", (f"{lock_ms}ms",)),
            Statement("SELECT set_config('statement_timeout', %s, false)", (f"{statement_ms}ms",)),
        ]
    if engine == "mysql":
        # lock_wait_timeout is in whole seconds; MariaDB's max_statement_time in seconds (MySQL has
        # no server-side limit for DDL: that SET fails there and is skipped)
        return [
            Statement("SET SESSION lock_wait_timeout = %s", (max(1, lock_ms // 1000),)),
            Statement("SET SESSION max_statement_time = %s", (statement_ms / 1000.0,)),
        ]
    if engine == "sqlserver":
        return [Statement("SET LOCK_TIMEOUT %s", (lock_ms,))]
    raise ValueError(f"no session timeouts for engine {engine!r}")


def run_statements(
    engine: str,
    connect: Connect,
    database: str | None,
    statements: Sequence[Statement],
    *,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    target: str,
) -> list[dict[str, Any]]:
    """Run the statements in order on one autocommit connection; return what ran and how long it took.

    The first failure stops the run and raises EngineError (scrubbed); earlier statements stay done.
    """
    try:
        connection = connect(database)
    except Exception as exc:  # driver errors of any kind: scrubbed, with the target named
        raise EngineError(
            f"cannot open the remediation connection: {exc}",
            reason=EngineErrorReason.UNREACHABLE,
            target=target,
        ) from exc
    ran: list[dict[str, Any]] = []
    try:
        _autocommit(connection)
        for setting in _session_timeouts(engine, lock_timeout_ms, statement_timeout_ms):
            _execute(connection, setting, optional=engine == "mysql")
        for statement in statements:
            started = time.monotonic()
            try:
                _execute(connection, statement)
            except Exception as exc:
                raise EngineError(
                    f"remediation statement failed: {scrub_secrets(str(exc)).strip().splitlines()[0]}",
                    reason=EngineErrorReason.QUERY_FAILED,
                    target=target,
                ) from exc
            elapsed = round((time.monotonic() - started) * 1000.0, 1)
            ran.append({"sql": statement.as_text(), "duration_ms": elapsed})
            log.info("target %s: ran remediation statement in %.1f ms", target, elapsed)
    finally:
        try:
            connection.close()
        except Exception:  # closing a broken connection must not hide the real error
            log.debug("closing the remediation connection failed", exc_info=True)
    return ran


def _autocommit(connection: Any) -> None:
    if hasattr(connection, "autocommit"):
        try:
            connection.autocommit = True
        except TypeError:  # pymssql: autocommit(True) is a method
            connection.autocommit(True)


def _execute(connection: Any, statement: Statement, *, optional: bool = False) -> None:
    cursor = connection.cursor()
    try:
        if statement.params:
            cursor.execute(statement.sql, statement.params)
        else:
            cursor.execute(statement.sql)
        if cursor.description is not None:
            cursor.fetchall()
    except Exception:
        if not optional:
            raise
        log.info("optional session setting skipped: %s", statement.sql)
    finally:
        cursor.close()
