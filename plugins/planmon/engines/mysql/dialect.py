"""MySQL 8 / MariaDB 10.6+ dialect: backtick quoting, error numbers, and how a session is set up
for each purpose (collector adapter, probe session and remediation runner use this one place).

Sessions by purpose (the statement timeout is MariaDB's ``max_statement_time``, in seconds, or MySQL's
``max_execution_time``, in ms and for SELECT only):

- collect: the statement timeout, then ``SET SESSION TRANSACTION READ ONLY``;
- probe: the statement timeout and a short ``innodb_lock_wait_timeout``; each probe statement runs in
  ``START TRANSACTION READ ONLY`` and is rolled back;
- remediate: ``lock_wait_timeout`` (whole seconds) and MariaDB's ``max_statement_time``; MySQL has no
  server-side limit for DDL, so that SET fails there and is skipped (flavour not asked first).
"""

from __future__ import annotations

import math

import mysql.connector

from planmon.config import Settings
from planmon.engines._base import Dialect
from planmon.engines.base import HookSpec, Purpose, SessionPolicy, SessionStep
from planmon.errors import EngineErrorReason, scrub_secrets
from planmon.sql import MARKER

MARIADB, MYSQL = "mariadb", "mysql"
AIRFLOW_HOOK = HookSpec(
    hook="airflow.providers.mysql.hooks.mysql:MySqlHook",
    conn_id_argument="mysql_conn_id",
    database_argument="schema",
    # mysql-connector-python needs no build headers; a connection's extra may name another client
    extra_defaults={"client": "mysql-connector-python"},
)
DRIVER_ERRORS = (mysql.connector.Error, OSError)
# The planmon alias keeps it recognisable in DIGEST_TEXT (adapter.py, rule 1).
VERSION_QUERY = "/* planmon */ SELECT planmon.version FROM (SELECT VERSION() AS version) AS planmon"

_UNREACHABLE = frozenset({2002, 2003, 2005, 2006, 2013, 2055})
_AUTHENTICATION = frozenset({1045, 1251, 1698, 2059, 2061})
_PERMISSION_DENIED = frozenset({1044, 1142, 1143, 1227, 1370})
_TIMEOUT = frozenset({3024, 1969})  # MySQL max_execution_time, MariaDB max_statement_time
HINTS = {
    EngineErrorReason.UNREACHABLE: "check the host and port of the target's Airflow connection, "
    "that the server runs and that the Airflow worker may reach it",
    EngineErrorReason.AUTHENTICATION: "check the user and password of the target's Airflow connection",
    EngineErrorReason.PERMISSION_DENIED: "GRANT SELECT ON performance_schema.* and PROCESS to planmon's user",
    EngineErrorReason.TIMEOUT: "the statement ran longer than PLANMON_STATEMENT_TIMEOUT_MS",
}


def quote_identifier(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def flavor_of(version: str) -> str:
    return MARIADB if "mariadb" in version.lower() else MYSQL


def error_reason(errno: int | None) -> EngineErrorReason:
    """The EngineError reason of a MySQL/MariaDB error number (client errors 2xxx included)."""
    for errnos, reason in (
        (_UNREACHABLE, EngineErrorReason.UNREACHABLE),
        (_AUTHENTICATION, EngineErrorReason.AUTHENTICATION),
        (_PERMISSION_DENIED, EngineErrorReason.PERMISSION_DENIED),
        (_TIMEOUT, EngineErrorReason.TIMEOUT),
    ):
        if errno in errnos:
            return reason
    return EngineErrorReason.QUERY_FAILED


def _timeout_step(policy: SessionPolicy, flavor: str | None) -> SessionStep:
    if flavor == MARIADB:
        return SessionStep(
            f"{MARKER} SET SESSION max_statement_time = %(seconds)s",
            {"seconds": policy.statement_timeout_ms / 1000},
        )
    return SessionStep(
        f"{MARKER} SET SESSION max_execution_time = %(milliseconds)s",
        {"milliseconds": policy.statement_timeout_ms},
    )


def session_setup(policy: SessionPolicy, flavor: str | None) -> tuple[SessionStep, ...]:
    if policy.purpose is Purpose.COLLECT:
        return (_timeout_step(policy, flavor), SessionStep(f"{MARKER} SET SESSION TRANSACTION READ ONLY"))
    if policy.purpose is Purpose.PROBE:
        lock_seconds = max(1, math.ceil(policy.lock_timeout_ms / 1000))
        return (
            _timeout_step(policy, flavor),
            SessionStep(f"{MARKER} SET SESSION innodb_lock_wait_timeout = %(s)s", {"s": lock_seconds}),
        )
    return (
        SessionStep("SET SESSION lock_wait_timeout = %s", (max(1, policy.lock_timeout_ms // 1000),)),
        SessionStep(
            "SET SESSION max_statement_time = %s", (policy.statement_timeout_ms / 1000.0,), optional=True
        ),
    )


class MySqlDialect(Dialect):
    name = "mysql"
    airflow_hook = AIRFLOW_HOOK

    def quote_identifier(self, identifier: str) -> str:
        return quote_identifier(identifier)

    def is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, mysql.connector.Error)

    def error_reason(self, exc: BaseException) -> EngineErrorReason:
        errno = getattr(exc, "errno", None)
        reason = error_reason(errno if isinstance(errno, int) else None)
        if reason is EngineErrorReason.QUERY_FAILED and isinstance(exc, OSError):
            return EngineErrorReason.UNREACHABLE
        return reason

    def error_message(self, exc: BaseException) -> str:
        message = getattr(exc, "msg", None) or str(exc)
        return scrub_secrets(" ".join(str(message).split()))

    def error_hint(
        self, reason: EngineErrorReason, database: str | None = None, settings: Settings | None = None
    ) -> str | None:
        return HINTS.get(reason)

    def failure_summary(self, exc: BaseException, *, action: str, database: str | None) -> str:
        return f"{action} failed: {exc}"  # the error number and SQLSTATE are what MySQL DBAs search for

    def session_setup(self, policy: SessionPolicy, *, flavor: str | None = None) -> tuple[SessionStep, ...]:
        return session_setup(policy, flavor)

    def prepare_connection(self, connection: object, policy: SessionPolicy) -> None:
        # read-only sessions keep the driver's transaction handling (they set READ ONLY themselves)
        if policy.purpose is Purpose.REMEDIATE:
            super().prepare_connection(connection, policy)


DIALECT = MySqlDialect()
