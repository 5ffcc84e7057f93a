"""The plumbing every engine repeats, written once: the :class:`Engine` base, the collector adapters'
:class:`AdapterBase` (connection cache, statement counting, one fetch loop, closing every connection,
the per-run deadline), and the remediation statement runner.

What differs between engines (driver errors, quoting, which SET statements a session needs) is an
abstract method here and lives in ``engines/<engine>/``. Nothing here imports a driver.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from planmon.config import Settings
from planmon.engines._proposals import IndexInspector
from planmon.engines.base import (
    ConnectionFactory,
    EngineAdapter,
    ForcingState,
    HookSpec,
    ProbeSession,
    SessionPolicy,
    SessionStep,
)
from planmon.errors import EngineError, EngineErrorReason, scrub_secrets
from planmon.model import (
    Action,
    EngineName,
    Prediction,
    Proposal,
    QualifiedName,
    RegressionContext,
    Remediation,
    Statement,
    Target,
)
from planmon.sql import SQLGLOT_DIALECTS

log = logging.getLogger(__name__)


# -- small helpers every engine uses --------------------------------------------------------------


def number(value: Any) -> float | None:
    """A driver's numeric value (int, Decimal, float) as float; NULL stays None."""
    return None if value is None else float(value)


def fetch_dicts(cursor: Any) -> list[dict[str, Any]]:
    """Every row of the cursor's result as a dict by column name (no result set: no rows)."""
    if not cursor.description:
        return []
    columns = [column[0] for column in cursor.description]
    return [
        dict(row) if isinstance(row, Mapping) else dict(zip(columns, row, strict=True))
        for row in cursor.fetchall()
    ]


def fetch_limited(cursor: Any, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """(columns, at most ``max_rows`` rows, whether more were there) of the cursor's result."""
    if cursor.description is None:
        return [], [], False
    columns = [str(column[0]) for column in cursor.description]
    rows = [tuple(row) for row in cursor.fetchmany(max_rows + 1)]
    return columns, rows[:max_rows], len(rows) > max_rows


def plan_document(value: Any) -> bytes:
    """A plan document as the driver hands it over (bytes, text, or JSON already decoded) as bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def quietly(action: Callable[..., Any], *args: Any) -> None:
    """Run a clean-up step whose failure must not hide the error being raised."""
    with contextlib.suppress(Exception):  # the original error is what the caller reports
        action(*args)


def set_autocommit(connection: Any) -> None:
    """Autocommit on: psycopg / mysql-connector take an attribute, pymssql a method."""
    current = getattr(connection, "autocommit", None)
    if callable(current):
        current(True)
    elif hasattr(connection, "autocommit"):
        connection.autocommit = True


def close_all(connections: Iterable[tuple[str | None, Any]], *, target: str) -> None:
    """Close every connection; one that fails to close is logged and the others still close."""
    for database, connection in connections:
        try:
            connection.close()
        except Exception as exc:  # a broken connection: the server drops it anyway
            log.warning("target %s: closing the connection to %s failed: %s", target, database or "-", exc)


# -- the dialect and the engine -------------------------------------------------------------------


class Dialect(abc.ABC):
    """How planmon speaks to one engine: identifier quoting, driver errors, session set-up.

    The collector adapter, the probe session and the remediation runner of an engine all use its
    dialect, so each of these is written once per engine.
    """

    name: ClassVar[EngineName]
    airflow_hook: ClassVar[HookSpec]

    @property
    def sqlglot_dialect(self) -> str:
        """sqlglot's name for this dialect (the read-only guard parses planmon's and probes' SQL with it)."""
        return SQLGLOT_DIALECTS[self.name]

    def __repr__(self) -> str:
        return f"<{self.name} {type(self).__name__}>"

    # -- identifiers -------------------------------------------------------------------------------

    @abc.abstractmethod
    def quote_identifier(self, identifier: str) -> str:
        """One identifier quoted by the dialect's rules (whatever it contains)."""

    def quote(self, name: QualifiedName) -> str:
        """``schema.name`` (or ``name``) with each part quoted: never split on dots."""
        return name.quoted(self.quote_identifier)

    # -- errors ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def is_driver_error(self, exc: BaseException) -> bool:
        """True for an error raised by this engine's driver."""

    @abc.abstractmethod
    def error_reason(self, exc: BaseException) -> EngineErrorReason:
        """How a driver error failed: unreachable, authentication, permission, timeout or query."""

    @abc.abstractmethod
    def error_message(self, exc: BaseException) -> str:
        """The driver's message on one line, secrets scrubbed."""

    def error_hint(
        self, reason: EngineErrorReason, database: str | None = None, settings: Settings | None = None
    ) -> str | None:
        """What a DBA does about a failure of this reason (None: nothing specific)."""
        return None

    def driver_failure(self, exc: BaseException) -> tuple[EngineErrorReason, str] | None:
        """(reason, scrubbed message) of a driver error of this engine; None for anything else."""
        if not self.is_driver_error(exc):
            return None
        return self.error_reason(exc), self.error_message(exc)

    def engine_error(
        self,
        exc: BaseException,
        *,
        target: str | None,
        action: str,
        database: str | None = None,
        settings: Settings | None = None,
    ) -> EngineError:
        """An EngineError (reason, scrubbed message, hint) for a driver error while doing ``action``."""
        reason = self.error_reason(exc)
        return EngineError(
            self.failure_summary(exc, action=action, database=database),
            reason=reason,
            target=target,
            hint=self.error_hint(reason, database, settings),
        )

    def failure_summary(self, exc: BaseException, *, action: str, database: str | None) -> str:
        """``<action> failed: <driver message>`` (EngineError scrubs it again)."""
        return f"{action} failed: {self.error_message(exc)}"

    # -- sessions ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def session_setup(self, policy: SessionPolicy, *, flavor: str | None = None) -> tuple[SessionStep, ...]:
        """The statements that set a session up for ``policy`` (``flavor``: e.g. mariadb / mysql)."""

    def prepare_connection(self, connection: Any, policy: SessionPolicy) -> None:
        """Driver-level settings of a new connection (autocommit; SQL Server: the query timeout)."""
        set_autocommit(connection)


class Engine(Dialect):
    """One engine (think sqlglot's ``Dialect``): everything planmon knows about talking to it.

    ``planmon.engines.get_engine(name)`` returns the one instance of each engine's subclass. Besides
    its dialect (quoting, errors, sessions by purpose) it builds the collector adapter and the probe
    session, proposes remediations and runs them.
    """

    adapter_type: ClassVar[type[EngineAdapter]]
    # SQL Server: who forced which plan is read live (Query Store) before proposing and acting
    has_live_forcing_state: ClassVar[bool] = False
    # True when the engine's statistics name the plan they ran (Query Store plan_id, plan_handle);
    # False when the collector attributes them to the plan it last captured (PostgreSQL, MySQL), so
    # only a capture inside a window says which plan ran in it
    statistics_name_plans: ClassVar[bool] = False

    @property
    def plan_format(self) -> str:
        """The ``engine=`` of ``planmon.plans.parse_plan`` for this engine's plan documents."""
        return self.name

    # -- collection and probes ---------------------------------------------------------------------

    def adapter(
        self,
        connect: ConnectionFactory,
        *,
        target_name: str,
        databases: Sequence[str] = (),
        settings: Settings,
    ) -> EngineAdapter:
        """The collector adapter for one target and run (``close()`` it when done)."""
        return self.adapter_type(connect, target_name=target_name, databases=databases, settings=settings)  # type: ignore[call-arg]

    def probe_session(
        self, connect: ConnectionFactory, timeout_ms: int, database: str | None = None
    ) -> ProbeSession:
        """A session on ``database`` (None: the connection's own) set up for probes; driver errors
        propagate (the probe runner records them as the probe's outcome)."""
        policy = SessionPolicy.probe(timeout_ms)
        connection = connect(database)
        try:
            self.prepare_connection(connection, policy)
            return self.make_probe_session(connection, policy)
        except BaseException:
            connection.close()
            raise

    @abc.abstractmethod
    def make_probe_session(self, connection: Any, policy: SessionPolicy) -> ProbeSession:
        """The probe session on a connection already prepared for ``policy`` (sends its own setup)."""

    @abc.abstractmethod
    def classify_probe(self, sql: str, *, extra_functions: Collection[str] = ()) -> tuple[bool, str]:
        """(accepted, reason) for a user probe's SQL: the engine's allow-list guard
        (``engines/<engine>/probe_guard.py``); ``extra_functions`` are a deployment's reviewed additions."""

    def present_indexes(
        self,
        connect: ConnectionFactory,
        target: Target,
        settings: Settings,
        database: str,
        tables: Sequence[QualifiedName],
    ) -> set[tuple[QualifiedName, str]]:
        """(table, index) present on the target now: a read-only catalog look through ``connect``."""
        adapter = self.adapter(
            connect, target_name=target.name, databases=target.databases, settings=settings
        )
        try:
            return {(d.qualified_table, d.index_name) for d in adapter.index_definitions(database, tables)}
        finally:
            adapter.close()

    # -- remediation -------------------------------------------------------------------------------

    # (context, inspector) -> proposals: ``engines/<engine>/remediation.py``'s ``propose``
    proposer: ClassVar[staticmethod[[RegressionContext, IndexInspector | None], list[Proposal]]]

    def propose(
        self,
        context: RegressionContext,
        *,
        inspector: IndexInspector | None = None,
        forcing_state: ForcingState | None = None,
    ) -> list[Proposal]:
        """Proposals for a regression, in the order a DBA would try them (empty: nothing fits).

        ``inspector`` looks at the target's indexes now; ``forcing_state`` is the query's forcing state
        read live (engines that have plan forcing)."""
        return type(self).proposer(context, inspector)

    def read_forcing_state(
        self, connect: ConnectionFactory, context: RegressionContext, planmon_forced: frozenset[int]
    ) -> ForcingState | None:
        """The query's forcing state read live (engines without plan forcing: None)."""
        return None

    def applied_problem(
        self, applied: Remediation, read_forcing_state: Callable[[], ForcingState | None]
    ) -> str | None:
        """Why an applied action is not in effect (None: it is). SQL Server: a force that is not in
        place or failing, from the state ``read_forcing_state`` reads live when asked."""
        return None

    def rolls_back_failed(self, action: Action) -> bool:
        """True when a failed apply of ``action`` leaves something behind its rollback removes."""
        return False

    def predict(
        self,
        connect: ConnectionFactory | None,
        context: RegressionContext,
        record: Remediation,
        settings: Settings,
    ) -> Prediction:
        """The proposal's predicted effect, measured without changing anything on the target
        (``connect``: the read-only collection connection, None when it does not resolve)."""
        return Prediction.unavailable(f"no prediction is available on {self.name}")

    def collection_sessions(self, connect: ConnectionFactory, settings: Settings) -> ConnectionFactory:
        """``connect`` with each new connection set up as collection sessions are (autocommit, the
        statement and lock timeouts of PLANMON_STATEMENT_TIMEOUT_MS)."""
        policy = SessionPolicy.collect(settings, started=time.monotonic())

        def session(database: str | None) -> Any:
            connection = connect(database)
            try:
                self.prepare_connection(connection, policy)
                for step in self.session_setup(policy):
                    _run_step(connection, step)
            except BaseException:
                connection.close()
                raise
            return connection

        return session

    def run_statements(
        self,
        connect: ConnectionFactory,
        database: str | None,
        statements: Sequence[Statement],
        *,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
        target: str,
    ) -> list[dict[str, Any]]:
        """Run remediation statements in order on one autocommit session inside the timeouts; return
        what ran and how long it took.

        A connection that cannot be opened raises EngineError UNREACHABLE (nothing ran); the first
        failing statement stops the run with QUERY_FAILED (scrubbed); earlier statements stay done.
        """
        policy = SessionPolicy.remediate(
            lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms
        )
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
            self.prepare_connection(connection, policy)
            for step in self.session_setup(policy):
                _run_step(connection, step)
            for statement in statements:
                started = time.monotonic()
                try:
                    _execute(connection, statement.sql, statement.params)
                except Exception as exc:
                    first_line = scrub_secrets(str(exc)).strip().splitlines()[0]
                    raise EngineError(
                        f"remediation statement failed: {first_line}",
                        reason=EngineErrorReason.QUERY_FAILED,
                        target=target,
                    ) from exc
                elapsed = round((time.monotonic() - started) * 1000.0, 1)
                ran.append({"sql": statement.as_text(), "duration_ms": elapsed})
                log.info("target %s: ran remediation statement in %.1f ms", target, elapsed)
        finally:
            close_all([(database, connection)], target=target)
        return ran


def _execute(connection: Any, sql: str, params: Any) -> list[dict[str, Any]]:
    cursor = connection.cursor()
    try:
        if params:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql)
        return fetch_dicts(cursor)
    finally:
        cursor.close()


def _run_step(connection: Any, step: SessionStep) -> None:
    try:
        _execute(connection, step.sql, step.params)
    except Exception:
        if not step.optional:
            raise
        log.info("optional session setting skipped: %s", step.sql)


# -- the collector adapters' plumbing ---------------------------------------------------------------


class AdapterBase(abc.ABC):
    """What every collector adapter shares: one connection per database opened lazily and set up for
    collection, every statement counted, rows fetched as dicts, driver errors turned into
    EngineError, every connection closed, and the per-run deadline.

    Two helpers with one meaning on every engine: ``_execute(connection, sql, params, action=...)``
    sends one statement text; ``_query(name, params, database=...)`` runs one
    ``include/sql/<engine>/<name>.sql`` file. ``_send`` is ``_execute`` without the error mapping.
    """

    engine: ClassVar[EngineName]
    dialect: ClassVar[Dialect]
    _driver_errors: ClassVar[tuple[type[BaseException], ...]] = (Exception,)
    # reasons for which a database that failed to open is not asked again in the same run
    _unusable_reasons: ClassVar[frozenset[EngineErrorReason]] = frozenset()

    def __init__(
        self,
        connect: ConnectionFactory,
        *,
        target_name: str,
        databases: Sequence[str] = (),
        settings: Settings,
    ) -> None:
        self._connect = connect
        self.target_name = target_name
        self.databases = tuple(databases)
        self.settings = settings
        self.policy = SessionPolicy.collect(settings, started=time.monotonic())
        self._connections: dict[str | None, Any] = {}
        self._unusable_databases: dict[str, EngineError] = {}
        self._sent = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def statements_sent(self) -> int:
        """How many statements this adapter sent to the server so far."""
        return self._sent

    def runtime_stats_notes(self) -> list[str]:
        """What the last ``runtime_stats`` read left out on purpose, counted (none by default)."""
        return []

    def close(self) -> None:
        """Close every connection this adapter opened (a failing close is logged, the others close)."""
        connections, self._connections = self._connections, {}
        close_all(connections.items(), target=self.target_name)

    def past_deadline(self) -> bool:
        """True once the per-run deadline passed: optional work (plan capture) stops there."""
        return self.policy.deadline is not None and time.monotonic() > self.policy.deadline

    @staticmethod
    def _raise_if_connection_level(exc: EngineError) -> None:
        """Unreachable or login failures end the run; anything else is one aspect's, database's or
        statement's problem."""
        if exc.reason in (EngineErrorReason.UNREACHABLE, EngineErrorReason.AUTHENTICATION):
            raise exc

    def _deadline_stop(self, skipped: int) -> None:
        log.warning(
            "%s target %s: collection deadline (%ss) passed, plan capture stopped, %d statement(s) skipped",
            self.engine,
            self.target_name,
            self.settings.collect_deadline_seconds,
            skipped,
        )

    # -- connections -----------------------------------------------------------------------------

    def _connection(self, database: str | None) -> Any:
        """The open connection to ``database`` (None: the default), opened and set up on first use."""
        database = self._resolve_database(database)
        if database in self._connections:
            return self._connections[database]
        self._refuse_known_unusable(database)
        try:
            connection = self._connect(database)
        except self._driver_errors as exc:
            error = self._error(exc, database, self._connect_action(database))
            self._remember_unusable(database, error)
            raise error from exc
        try:
            self._set_up(connection, database)
        except BaseException:
            close_all([(database, connection)], target=self.target_name)  # never keep a half set-up session
            raise
        self._connections[database] = connection
        return connection

    def _connect_action(self, database: str | None) -> str:
        return f"connecting to {_where(database)}"

    def _setup_action(self, database: str | None) -> str:
        return f"setting up the session on {_where(database)}"

    def _resolve_database(self, database: str | None) -> str | None:
        """Which cached connection serves ``database`` (PostgreSQL: the stats connection's own)."""
        return database

    def _refuse_known_unusable(self, database: str | None) -> None:
        """Raise again what opening ``database`` raised earlier in this run."""
        if database is not None and database in self._unusable_databases:
            raise self._unusable_databases[database]

    def _remember_unusable(self, database: str | None, error: EngineError) -> None:
        """Remember a database whose connection failed for a reason of its own (dropped, no access),
        when this engine asks once per run (``_unusable_reasons``)."""
        if database is not None and error.reason in self._unusable_reasons:
            self._unusable_databases[database] = error

    def _set_up(self, connection: Any, database: str | None) -> None:
        """Set a new connection up for collection: the dialect's driver settings and session steps."""
        self.dialect.prepare_connection(connection, self.policy)
        self._run_setup(connection, self.dialect.session_setup(self.policy, flavor=self._flavor()), database)

    def _flavor(self) -> str | None:
        """The server flavour the session set-up depends on (MySQL / MariaDB), once known."""
        return None

    def _error(self, exc: BaseException, database: str | None, action: str) -> EngineError:
        """The EngineError (reason, scrubbed message, hint) for a driver error while doing ``action``."""
        return self.dialect.engine_error(
            exc, target=self.target_name, action=action, database=database, settings=self.settings
        )

    # -- statements ------------------------------------------------------------------------------

    def _cursor_execute(self, cursor: Any, sql: str, params: Any) -> None:
        if params:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql)

    def _send(self, connection: Any, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Send one statement (counted) and return its rows as dicts; driver errors propagate."""
        self._sent += 1
        cursor = connection.cursor()
        try:
            self._cursor_execute(cursor, sql, params)
            return fetch_dicts(cursor)
        finally:
            cursor.close()

    def _execute(
        self, connection: Any, sql: str, params: Any = None, *, action: str, database: str | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`_send`, with driver errors turned into EngineError."""
        try:
            return self._send(connection, sql, params)
        except self._driver_errors as exc:
            raise self._error(exc, database, action) from exc

    def _run_setup(self, connection: Any, steps: Sequence[SessionStep], database: str | None) -> None:
        for step in steps:
            try:
                self._send(connection, step.sql, step.params)
            except self._driver_errors as exc:
                if step.optional:
                    continue
                raise self._error(exc, database, self._setup_action(database)) from exc

    @abc.abstractmethod
    def _query(
        self, name: str, params: Mapping[str, Any] | None = None, *, database: str | None = None
    ) -> list[dict[str, Any]]:
        """Run ``include/sql/<engine>/<name>.sql`` in ``database`` with ``params`` bound."""


def _where(database: str | None) -> str:
    return f"database {database}" if database else "the default database"
