"""PostgreSQL's dialect: identifier quoting, driver error classification and scrubbing, and how a
session is set up for each purpose. Used by the collector adapter, the probe session and the
remediation runner alike, so each of these is written once.

Sessions by purpose:

- collect: ``session_setup.sql`` (statement timeout, a short lock timeout, application_name, read-only
  transactions by default), autocommit; EXPLAINs run inside ``BEGIN READ ONLY ... ROLLBACK``;
- probe: autocommit; each probe statement runs in ``BEGIN READ ONLY`` with transaction-local timeouts
  and ``standard_conforming_strings`` on (:data:`PROBE_TRANSACTION`), rolled back;
- remediate: session ``lock_timeout`` and ``statement_timeout`` (bound values), autocommit, writes.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from planmon.config import Settings
from planmon.engines._base import Dialect
from planmon.engines.base import HookSpec, Purpose, SessionPolicy, SessionStep
from planmon.errors import EngineError, EngineErrorReason, scrub_secrets
from planmon.sql import MARKER, load_sql

AIRFLOW_HOOK = HookSpec(
    hook="airflow.providers.postgres.hooks.postgres:PostgresHook",
    conn_id_argument="postgres_conn_id",
    database_argument="database",
)
BEGIN = f"BEGIN {MARKER} READ ONLY"  # the marker after the first keyword (adapter.MARKER_PATTERN)
ROLLBACK = f"ROLLBACK {MARKER}"
# standard_conforming_strings on: the server then reads backslashes in '...' as the probe guard's
# parser (pglast) does. Off (a role or database setting), 'a\', ' ... ' would hide code in what the
# guard reads as a string.
PROBE_TRANSACTION = (
    f"SELECT {MARKER} set_config('statement_timeout', %(timeout)s, true), "
    "set_config('lock_timeout', %(lock)s, true), set_config('application_name', 'planmon', true), "
    "set_config('standard_conforming_strings', 'on', true)"
)


def quote_identifier(identifier: str) -> str:
    """``identifier`` double-quoted by psycopg's rules (no connection needed)."""
    return sql.Identifier(identifier).as_string(None)


def session_setup(policy: SessionPolicy) -> tuple[SessionStep, ...]:
    """The statements that set a session up for ``policy`` (probes set theirs per transaction)."""
    if policy.purpose is Purpose.COLLECT:
        return (
            SessionStep(
                load_sql("postgres", "session_setup"),
                {
                    "statement_timeout": str(policy.statement_timeout_ms),
                    "lock_timeout": str(policy.lock_timeout_ms),
                },
            ),
        )
    if policy.purpose is Purpose.REMEDIATE:
        return (
            SessionStep("SELECT set_config('lock_timeout', %s, false)", (f"{policy.lock_timeout_ms}ms",)),
            SessionStep(
                "SELECT set_config('statement_timeout', %s, false)", (f"{policy.statement_timeout_ms}ms",)
            ),
        )
    return ()


# -- errors -------------------------------------------------------------------------------------

_SQLSTATE_REASONS: dict[str, EngineErrorReason] = {
    "57014": EngineErrorReason.TIMEOUT,  # query_canceled (statement_timeout)
    "55P03": EngineErrorReason.TIMEOUT,  # lock_not_available (lock_timeout)
    "42501": EngineErrorReason.PERMISSION_DENIED,
    "28P01": EngineErrorReason.AUTHENTICATION,
    "28000": EngineErrorReason.AUTHENTICATION,
    "3D000": EngineErrorReason.AUTHENTICATION,  # the login names a database that does not exist
}
# Connection failures carry no SQLSTATE in libpq: recognise them by message.
_MESSAGE_REASONS: tuple[tuple[re.Pattern[str], EngineErrorReason], ...] = (
    (
        re.compile(
            r"password authentication failed|authentication failed|role \S+ does not exist"
            r"|database \S+ does not exist|no pg_hba\.conf entry|password is required",
            re.IGNORECASE,
        ),
        EngineErrorReason.AUTHENTICATION,
    ),
    (
        re.compile(
            r"connection refused|could not translate host name|name or service not known|timeout expired"
            r"|no route to host|network is unreachable|could not connect|server closed the connection"
            r"|connection timed out|connection is closed|consuming input failed",
            re.IGNORECASE,
        ),
        EngineErrorReason.UNREACHABLE,
    ),
)
HINTS: dict[EngineErrorReason, str] = {
    EngineErrorReason.UNREACHABLE: "check the Airflow connection's host and port and that the server runs",
    EngineErrorReason.AUTHENTICATION: "check the login, password and database of the Airflow connection",
    EngineErrorReason.TIMEOUT: "raise PLANMON_STATEMENT_TIMEOUT_MS or look for sessions holding locks",
    EngineErrorReason.PERMISSION_DENIED: "GRANT pg_read_all_stats TO the monitoring role",
}


def error_reason(exc: BaseException) -> EngineErrorReason:
    """How a psycopg error failed: by SQLSTATE when the server sent one, else by libpq's message."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _SQLSTATE_REASONS:
        return _SQLSTATE_REASONS[sqlstate]
    message = str(exc)
    for pattern, reason in _MESSAGE_REASONS:
        if pattern.search(message):
            return reason
    if sqlstate is None and isinstance(exc, psycopg.OperationalError):
        return EngineErrorReason.UNREACHABLE  # a failure with no server answer is a connection problem
    return EngineErrorReason.QUERY_FAILED


def driver_message(exc: BaseException) -> str:
    """The driver's message on one line, secrets scrubbed.

    For server errors only the primary message: the full text adds a ``LINE 1: ...`` excerpt of the
    statement, which belongs neither in logs nor in a remembered capture failure.
    """
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    return scrub_secrets(" ".join(str(primary or exc).split()))


def engine_error(exc: BaseException, *, target: str | None, action: str) -> EngineError:
    """An :class:`EngineError` for a psycopg error that happened while doing ``action``."""
    return DIALECT.engine_error(exc, target=target, action=action)


class PostgresDialect(Dialect):
    name = "postgres"
    airflow_hook = AIRFLOW_HOOK

    def quote_identifier(self, identifier: str) -> str:
        return quote_identifier(identifier)

    def is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error)

    def error_reason(self, exc: BaseException) -> EngineErrorReason:
        return error_reason(exc)

    def error_message(self, exc: BaseException) -> str:
        return driver_message(exc)

    def error_hint(
        self, reason: EngineErrorReason, database: str | None = None, settings: Settings | None = None
    ) -> str | None:
        return HINTS.get(reason)

    def session_setup(self, policy: SessionPolicy, *, flavor: str | None = None) -> tuple[SessionStep, ...]:
        return session_setup(policy)


DIALECT = PostgresDialect()


_LEADING = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_FIRST_WORD = re.compile(r"\A[A-Za-z]+")


def marked(sql: str) -> str:
    """``sql`` with planmon's marker right after its first keyword (``SELECT /* planmon */ ...``):
    PostgreSQL 18's pg_stat_statements drops the comments before a statement, so a leading marker
    would not tell planmon's own entries apart (adapter.MARKER_PATTERN). Leading comments go."""
    body = _LEADING.sub("", sql, count=1)
    word = _FIRST_WORD.match(body)
    if word is None:
        return f"{MARKER} {body}"  # not a keyword first: the server will say what is wrong with it
    return f"{body[: word.end()]} {MARKER}{body[word.end() :]}"
