"""SQL Server's dialect: bracket quoting, ``@name`` parameter binding for pymssql, driver error
classification and scrubbing, and how a session is set up for each purpose (the collector adapter,
the probe session and the remediation runner use this one place).

Sessions by purpose (why each setting: ``adapter.py``'s docstring):

- collect: ``NOCOUNT``, ``LOCK_TIMEOUT`` = the statement timeout, ``READ UNCOMMITTED``, ``DEADLOCK_PRIORITY
  LOW``; the driver's query timeout where the caller left none;
- probe: ``NOCOUNT``, a short ``LOCK_TIMEOUT``, ``DEADLOCK_PRIORITY LOW`` and the probe's own query timeout.
  T-SQL has **no read-only transaction**: the guard and a least-privilege login are the protection;
- remediate: ``LOCK_TIMEOUT`` (bound), and the driver's query timeout where the caller left none.

Every session is autocommit. T-SQL has no per-session statement timeout: the query timeout belongs to
the pymssql connection (``query_timeout``, whole seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from planmon.config import Settings
from planmon.engines._base import Dialect, set_autocommit
from planmon.engines.base import HookSpec, Purpose, SessionPolicy, SessionStep
from planmon.errors import EngineErrorReason, scrub_secrets
from planmon.sql import MARKER

AIRFLOW_HOOK = HookSpec(
    hook="airflow.providers.microsoft.mssql.hooks.mssql:MsSqlHook",
    conn_id_argument="mssql_conn_id",
    database_argument="schema",
)

# Session settings, sent once per connection. They live here and not in include/sql because that
# directory only holds read-only queries and the guard refuses SET statements.
_SESSION_SETUP = (
    f"{MARKER} SET NOCOUNT ON; SET LOCK_TIMEOUT %(lock_timeout_ms)s; "
    "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED; SET DEADLOCK_PRIORITY LOW;"
)
_PROBE_SETUP = f"{MARKER} SET NOCOUNT ON; SET LOCK_TIMEOUT %d; SET DEADLOCK_PRIORITY LOW;"

# SQL Server and DB-Library error numbers, by what they mean for a collection.
_AUTHENTICATION_ERRORS = frozenset({18452, 18456, 18486, 18487, 18488})
_PERMISSION_ERRORS = frozenset({229, 262, 297, 300, 916, 4060})
_TIMEOUT_ERRORS = frozenset({-2, 1222, 20003})
_UNREACHABLE_ERRORS = frozenset({20002, 20004, 20006, 20009, 20017, 20047})
_DBLIB_NUMBER = re.compile(r"DB-Lib error message (\d+)")
_PARAMETER = re.compile(r"(?<![@\w])@([A-Za-z_]\w*)")

PERMISSION_HINT = (
    "GRANT VIEW SERVER STATE TO [login]; and in each monitored database GRANT VIEW DATABASE STATE TO [user] "
    "(SQL Server 2022+: VIEW SERVER PERFORMANCE STATE / VIEW DATABASE PERFORMANCE STATE are enough)"
)

# -- binding ------------------------------------------------------------------------------------------


def bind(sql: str, params: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Turn the ``@name`` parameters of a planmon SQL file into pymssql placeholders, values kept apart.

    The files use T-SQL ``@name`` so they stay T-SQL that sqlglot and SSMS can read; pymssql wants
    ``%(name)s``. A list or tuple value becomes one placeholder per element (``IN (@ids)`` ->
    ``IN (%(ids_0)s, %(ids_1)s)``). No value is ever formatted into the text here: pymssql quotes each
    value itself (it has no server-side parameters). The files keep ``@`` out of literals and comments.
    A datetime goes out as an ISO 8601 ``T`` string (:func:`iso_datetime`), the one literal form SQL
    Server reads the same under every login language and DATEFORMAT.
    """
    bound: dict[str, object] = {}

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise ValueError(f"no value given for @{name}")
        value = params[name]
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError(f"@{name} is an empty list")
            keys = [f"{name}_{index}" for index in range(len(value))]
            bound.update(zip(keys, (_sendable(item) for item in value), strict=True))
            return ", ".join(f"%({key})s" for key in keys)
        bound[name] = _sendable(value)
        return f"%({name})s"

    return _PARAMETER.sub(placeholder, sql), bound


def iso_datetime(moment: datetime) -> str:
    """``moment`` as ``YYYY-MM-DDThh:mm:ss.fff`` (naive: the contract's UTC), milliseconds kept.

    pymssql sends a datetime as ``'YYYY-MM-DD hh:mm:ss.mmm'``, which a ``datetime`` (and a comparison
    that converts to it) reads by the session's DATEFORMAT: a British or German login swaps day and
    month or fails with error 242. The ISO 8601 form with ``T`` is read the same under every setting,
    for datetime, datetime2 and datetimeoffset alike.
    """
    return moment.isoformat(sep="T", timespec="milliseconds")


def _sendable(value: object) -> object:
    return iso_datetime(value) if isinstance(value, datetime) else value


# -- error mapping ------------------------------------------------------------------------------------


def driver_error_number(exc: BaseException) -> int | None:
    """The SQL Server (or DB-Library) error number of a pymssql error, when it carries one."""
    args: tuple[Any, ...] = exc.args
    if len(args) == 1 and isinstance(args[0], tuple):
        args = args[0]
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0]
    number = getattr(exc, "number", None)
    return number if isinstance(number, int) else None


def driver_error_text(exc: BaseException) -> str:
    """The driver's message as text (pymssql carries bytes), secrets scrubbed."""
    args: tuple[Any, ...] = exc.args
    if len(args) == 1 and isinstance(args[0], tuple):
        args = args[0]
    parts = [
        part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part)
        for part in args
        if not isinstance(part, int)
    ]
    text = " ".join(" ".join(parts).split()) or type(exc).__name__
    return scrub_secrets(text)


def classify_driver_error(exc: BaseException) -> EngineErrorReason:
    """The EngineErrorReason of a driver error: login, permission, timeout, unreachable or failed query."""
    numbers = [driver_error_number(exc)]
    numbers += [int(found) for found in _DBLIB_NUMBER.findall(driver_error_text(exc))]
    for reason, known in (
        (EngineErrorReason.AUTHENTICATION, _AUTHENTICATION_ERRORS),
        (EngineErrorReason.PERMISSION_DENIED, _PERMISSION_ERRORS),
        (EngineErrorReason.TIMEOUT, _TIMEOUT_ERRORS),
        (EngineErrorReason.UNREACHABLE, _UNREACHABLE_ERRORS),
    ):
        if any(number in known for number in numbers):
            return reason
    if isinstance(exc, TimeoutError):
        return EngineErrorReason.TIMEOUT
    if isinstance(exc, ConnectionError | OSError):
        return EngineErrorReason.UNREACHABLE
    return EngineErrorReason.QUERY_FAILED


def _error_hint(reason: EngineErrorReason, database: str | None, timeout_ms: int) -> str | None:
    where = f" in database {quote_name(database)}" if database else ""
    hints = {
        EngineErrorReason.AUTHENTICATION: (
            "check the login and password of the target's Airflow connection; the SQL Server error log "
            "says why error 18456 was raised (its state number)"
        ),
        EngineErrorReason.PERMISSION_DENIED: (
            f"the login lacks a permission{where}: {PERMISSION_HINT}; a database it cannot open needs "
            "CREATE USER [user] FOR LOGIN [login] there"
        ),
        EngineErrorReason.TIMEOUT: (
            f"the statement ran longer than {timeout_ms} ms or waited for a lock (LOCK_TIMEOUT){where}: "
            "raise PLANMON_STATEMENT_TIMEOUT_MS or lower PLANMON_COLLECT_ROW_LIMIT"
        ),
        EngineErrorReason.UNREACHABLE: (
            "check the host, port and firewall of the target's Airflow connection and that SQL Server "
            "accepts TCP connections"
        ),
    }
    return hints.get(reason)


def quote_name(name: str) -> str:
    """``name`` as a bracket-quoted T-SQL identifier (``]`` doubled), for DDL and hints."""
    return "[" + name.replace("]", "]]") + "]"


def session_setup(policy: SessionPolicy) -> tuple[SessionStep, ...]:
    if policy.purpose is Purpose.COLLECT:
        return (SessionStep(_SESSION_SETUP, {"lock_timeout_ms": policy.statement_timeout_ms}),)
    if policy.purpose is Purpose.PROBE:
        # sent as text: planmon's own integer, formatted as one (the probe's driver call takes no values)
        return (SessionStep(_PROBE_SETUP % int(policy.lock_timeout_ms)),)
    return (SessionStep("SET LOCK_TIMEOUT %s", (policy.lock_timeout_ms,)),)


def set_query_timeout(connection: Any, policy: SessionPolicy) -> None:
    """pymssql's query timeout (whole seconds, rounded up): a probe's own timeout always, otherwise
    only where the caller left none (0), so no statement runs unbounded."""
    driver_connection = getattr(connection, "_conn", None)  # pymssql's _mssql connection
    if driver_connection is None or not hasattr(driver_connection, "query_timeout"):
        return
    if policy.purpose is Purpose.PROBE or driver_connection.query_timeout == 0:
        driver_connection.query_timeout = max(1, math.ceil(policy.statement_timeout_ms / 1000))


class SqlServerDialect(Dialect):
    name = "sqlserver"
    airflow_hook = AIRFLOW_HOOK

    def quote_identifier(self, identifier: str) -> str:
        return quote_name(identifier)

    def is_driver_error(self, exc: BaseException) -> bool:
        return type(exc).__module__.split(".")[0] in ("pymssql", "_mssql")

    def error_reason(self, exc: BaseException) -> EngineErrorReason:
        return classify_driver_error(exc)

    def error_message(self, exc: BaseException) -> str:
        return driver_error_text(exc)

    def error_hint(
        self, reason: EngineErrorReason, database: str | None = None, settings: Settings | None = None
    ) -> str | None:
        return _error_hint(reason, database, settings.statement_timeout_ms if settings else 0)

    def failure_summary(self, exc: BaseException, *, action: str, database: str | None) -> str:
        where = f" (database {database})" if database else ""
        return f"{action}{where} failed: {driver_error_text(exc)}"

    def session_setup(self, policy: SessionPolicy, *, flavor: str | None = None) -> tuple[SessionStep, ...]:
        return session_setup(policy)

    def prepare_connection(self, connection: Any, policy: SessionPolicy) -> None:
        set_autocommit(connection)  # plain reads: no implicit transaction left open between statements
        set_query_timeout(connection, policy)


DIALECT = SqlServerDialect()
