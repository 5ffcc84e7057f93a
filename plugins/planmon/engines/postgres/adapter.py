"""PostgreSQL adapter: pg_stat_statements counters, EXPLAIN plans and pg_indexes definitions.

Runtime statistics are pg_stat_statements' cumulative counters as of now (``cumulative=True``); the
collector turns two readings into a delta and treats a counter that went down, or a newer
``counters_reset_at``, as a reset. Plans are ``EXPLAIN (VERBOSE, FORMAT JSON)`` of the statement's
normalised text in its own database, inside a read-only transaction that is always rolled back, never
``ANALYZE``: statements with ``$n`` parameters get their generic plan (``GENERIC_PLAN`` on 16+,
``PREPARE`` + ``plan_cache_mode = force_generic_plan`` + ``EXPLAIN EXECUTE`` on 13-15).

Every statement planmon sends starts with the ``/* planmon */`` marker, so pg_stat_statements files
them under that text and ``runtime_stats`` leaves them out. The queries live in
``include/sql/postgres``; only the EXPLAIN wrappers and transaction control are built here (see
:func:`explain_steps`). planmon never creates the extension nor changes server settings.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import psycopg

from planmon.engines._base import AdapterBase, number, plan_document
from planmon.engines.base import (
    OK,
    Aspect,
    AspectState,
    AspectStatus,
    Capabilities,
    CapturedPlan,
    IndexDefinition,
    PlanCaptureFailure,
    StatementStats,
)
from planmon.engines.postgres.dialect import (
    BEGIN,
    DIALECT,
    ROLLBACK,
    driver_message,
    engine_error,
    error_reason,
)
from planmon.errors import EngineError, EngineErrorReason, PlanParseError
from planmon.model import EngineName, QualifiedName
from planmon.plans.normalize import strip_literals
from planmon.plans.parse import parse_plan
from planmon.sql import MARKER, load_sql

log = logging.getLogger(__name__)

MIN_VERSION_NUM = 130000  # total_exec_time and friends
STATEMENTS_INFO_VERSION_NUM = 140000  # pg_stat_statements_info (extension 1.9)
GENERIC_PLAN_VERSION_NUM = 160000  # EXPLAIN (GENERIC_PLAN)
PREPARED_NAME = "planmon_stmt"

# pg_stat_statements entries that are not worth tracking: transaction control and session commands
# (PostgreSQL ARE syntax: \y is a word boundary). Leading comments are skipped.
UTILITY_PATTERN = (
    r"^\s*(/\*([^*]|\*+[^*/])*\*+/\s*|--[^\n]*\n\s*)*"
    r"(begin|start\s+transaction|commit|end|rollback|abort|savepoint|release|prepare\s+transaction"
    r"|set|reset|show|discard|deallocate|listen|unlisten|notify|checkpoint)\y"
)
# PostgreSQL 18's pg_stat_statements keeps a statement's text from its first token on, without the
# comments before it: planmon's statements carry the marker after their first keyword too (the SQL
# files repeat it there), and their entries are told apart by the marker anywhere in the text.
MARKER_PATTERN = "%" + MARKER + "%"

_LEADING_COMMENTS = re.compile(r"^\s*(?:(?:/\*(?:[^*]|\*+[^*/])*\*+/|--[^\n]*(?:\n|$))\s*)*")
_EXPLAINABLE = re.compile(r"(?:select|with|values|table|insert|update|delete|merge)\b|\(", re.IGNORECASE)
_PARAMETER = re.compile(r"(?<![\w$])\$(\d+)(?!\w)")
_MORE_AFTER_SEMICOLON = re.compile(r";\s*\S")


# ---------------------------------------------------------------------------------------------
# EXPLAIN of captured statements


@dataclass(frozen=True, slots=True)
class ExplainSteps:
    """The statements that EXPLAIN one captured statement, sent inside BEGIN READ ONLY ... ROLLBACK.

    ``prepare`` runs first when set; ``deallocate`` runs after the rollback (prepared statements are
    not transactional) and only when ``prepare`` succeeded.
    """

    explain: str
    prepare: tuple[str, ...] = ()
    deallocate: str | None = None


def parameter_count(text: str) -> int:
    """The highest ``$n`` placeholder in a normalised statement (0: none)."""
    return max((int(found) for found in _PARAMETER.findall(text)), default=0)


def unexplainable_reason(text: str) -> str | None:
    """Why ``text`` must not be handed to EXPLAIN (None: it may).

    Only plannable statements are explained; pg_stat_statements stores one statement per entry, so a
    semicolon followed by more text is refused rather than trusted.
    """
    comments = _LEADING_COMMENTS.match(text)
    body = text[comments.end() :] if comments else text
    if not _EXPLAINABLE.match(body):
        keyword = body.split(None, 1)[0].upper() if body.strip() else "(empty)"
        return f"{keyword} statements have no plan to explain"
    if _MORE_AFTER_SEMICOLON.search(body):
        return "the text holds more than one statement"
    return None


def explain_steps(text: str, server_version_num: int) -> ExplainSteps:
    """How to get the plan of ``text`` on this server version, as statements to send.

    The statement text is formatted into the EXPLAIN: it is the thing being explained, so it cannot be
    a bound value. It is the text pg_stat_statements recorded for one statement (constants already
    replaced by $n; never the literal-stripped text planmon stores), is refused by
    :func:`unexplainable_reason` unless it is one plannable statement, and runs without ANALYZE in a
    read-only transaction that is rolled back: nothing of it executes. Nothing is quoted into it.
    """
    parameters = parameter_count(text)
    if parameters == 0:
        return ExplainSteps(explain=f"EXPLAIN {MARKER} (VERBOSE, FORMAT JSON) {text}")
    if server_version_num >= GENERIC_PLAN_VERSION_NUM:
        return ExplainSteps(explain=f"EXPLAIN {MARKER} (GENERIC_PLAN, VERBOSE, FORMAT JSON) {text}")
    nulls = ", ".join(["NULL"] * parameters)
    return ExplainSteps(
        prepare=(load_sql("postgres", "generic_plan_mode"), f"PREPARE {MARKER} {PREPARED_NAME} AS {text}"),
        explain=f"EXPLAIN {MARKER} (VERBOSE, FORMAT JSON) EXECUTE {PREPARED_NAME}({nulls})",
        deallocate=f"DEALLOCATE {MARKER} {PREPARED_NAME}",
    )


def plan_objects(body: bytes) -> tuple[QualifiedName, ...]:
    """(schema, table) of every table the plan touches, in first-seen order."""
    plan = parse_plan(body, engine="postgres")
    seen: dict[QualifiedName, None] = {}
    for statement in plan.statements:
        for node in statement.nodes():
            if node.object is not None and node.object.table:
                seen.setdefault(QualifiedName(node.object.schema, node.object.table), None)
    return tuple(seen)


# ---------------------------------------------------------------------------------------------
# Capabilities


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """One row of ``server_info.sql`` plus what ``statements_info.sql`` said, if it ran."""

    row: Mapping[str, Any]
    info: Mapping[str, Any] | None = None
    info_error: BaseException | None = None

    @property
    def version_num(self) -> int:
        return int(self.row["server_version_num"])

    @property
    def preloaded(self) -> bool:
        """pg_stat_statements is in shared_preload_libraries (or its settings exist, when hidden)."""
        if getattr(self.info_error, "sqlstate", None) == "55000":
            return False
        libraries = self.row["shared_preload_libraries"]
        if libraries is None:
            return self.row["pgss_max"] is not None
        return "pg_stat_statements" in _library_names(libraries)

    @property
    def hint_plan_installed(self) -> bool:
        loaded = " ".join(
            str(self.row[k] or "") for k in ("shared_preload_libraries", "session_preload_libraries")
        )
        return bool(self.row["hint_plan_installed"]) or "pg_hint_plan" in _library_names(loaded)


def _library_names(setting: str) -> set[str]:
    return {
        part.strip().strip('"').rsplit("/", 1)[-1] for part in re.split(r"[,\s]+", setting) if part.strip()
    }


def _version_tuple(version: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version or ""))


def _too_old(server: ServerInfo) -> AspectStatus | None:
    if server.version_num >= MIN_VERSION_NUM:
        return None
    version = server.row["server_version"]
    return AspectStatus(AspectState.UNAVAILABLE, f"PostgreSQL {version} is too old: planmon needs 13+")


def _not_preloaded(server: ServerInfo) -> AspectStatus | None:
    if server.preloaded:
        return None
    return AspectStatus(
        AspectState.UNAVAILABLE, "pg_stat_statements is not in shared_preload_libraries: add it and restart"
    )


def _no_extension(server: ServerInfo) -> AspectStatus | None:
    if server.row["pgss_version"] is not None:
        return None
    database = server.row["database_name"]
    return AspectStatus(
        AspectState.UNAVAILABLE, f"CREATE EXTENSION pg_stat_statements in database {database}"
    )


def _not_on_search_path(server: ServerInfo) -> AspectStatus | None:
    if server.row["pgss_visible"]:
        return None
    schema, role = server.row["pgss_schema"], server.row["user_name"]
    return AspectStatus(
        AspectState.ERROR,
        f"pg_stat_statements is installed in schema {schema}, which is not on the search_path of role "
        f"{role}: ALTER ROLE {role} SET search_path to include it",
    )


def _not_tracking(server: ServerInfo) -> AspectStatus | None:
    if (server.row["pgss_track"] or "").lower() != "none":
        return None
    return AspectStatus(
        AspectState.UNAVAILABLE, "pg_stat_statements.track is none: set it to top or all and reload"
    )


def _info_failed(server: ServerInfo) -> AspectStatus | None:
    if server.info_error is None:
        return None
    detail = driver_message(server.info_error)
    return AspectStatus(AspectState.ERROR, "pg_stat_statements_info could not be read", detail)


def _cannot_read_all(server: ServerInfo) -> AspectStatus | None:
    if server.row["reads_all_stats"]:
        return None
    role = server.row["user_name"]
    return AspectStatus(
        AspectState.PERMISSION_DENIED,
        f"GRANT pg_read_all_stats TO {role}: without it the statements of other roles show "
        "<insufficient privilege>",
    )


# In the order a DBA has to fix them: the first one that applies is reported.
_RUNTIME_STATS_CHECKS = (
    _too_old,
    _not_preloaded,
    _no_extension,
    _not_on_search_path,
    _not_tracking,
    _info_failed,
    _cannot_read_all,
)


def runtime_stats_status(server: ServerInfo) -> AspectStatus:
    """RUNTIME_STATS: OK, or the first problem a DBA has to fix, with the hint to fix it."""
    for check in _RUNTIME_STATS_CHECKS:
        status = check(server)
        if status is not None:
            return status
    return OK


def build_capabilities(server: ServerInfo) -> Capabilities:
    """Capabilities from the probe results (no I/O: unit-testable)."""
    runtime = runtime_stats_status(server)
    # ok either way; the detail says when plans are EXPLAIN's estimates rather than executed ones
    plans = AspectStatus(AspectState.OK, detail=executed_plans_unavailable(server))
    if runtime.state is not AspectState.OK:
        plans = AspectStatus(
            runtime.state, f"plans need statement texts from pg_stat_statements: {runtime.hint}"
        )
    forcing_hint = "PostgreSQL has no plan forcing"
    if server.hint_plan_installed:
        forcing_hint += "; pg_hint_plan is installed: hints are the way to steer a plan"
    aspects = {
        Aspect.RUNTIME_STATS: runtime,
        Aspect.QUERY_TEXT: runtime,  # the text comes from the same view, under the same permission
        Aspect.PLANS: plans,
        Aspect.FORCING_STATE: AspectStatus(AspectState.NOT_APPLICABLE, forcing_hint),
        Aspect.OBJECT_DEFINITIONS: OK,
    }
    return Capabilities(
        server_version=str(server.row["server_version"]),
        aspects=aspects,
        backfillable=False,
        details=_details(server),
    )


EXECUTED_PLANS_VERSION_NUM = 150000  # the jsonlog log destination
EXECUTED_PLANS_TAIL_BYTES = 8 * 1024 * 1024  # of the current server log, read per plan capture


def auto_explain_document(message: str) -> bytes | None:
    """The plan document of one auto_explain log message ("duration: 1.2 ms  plan:\\n{...}") in
    EXPLAIN (FORMAT JSON)'s shape, without the statement text (it holds the executed literals); None
    for what is not an execution's plan (an EXPLAIN, which auto_explain logs too)."""
    _, marker, document = message.partition("plan:\n")
    if not marker:
        return None
    try:
        plan = json.loads(document)
    except ValueError:
        return None
    if not isinstance(plan, dict) or not isinstance(plan.get("Plan"), dict):
        return None
    text = str(plan.pop("Query Text", "") or "")
    if MARKER in text or text.lstrip().upper().startswith("EXPLAIN"):
        return None  # an EXPLAIN (planmon's generic plan among them) logs an estimate, not an execution
    return json.dumps([plan]).encode()


def executed_plans_unavailable(server: ServerInfo) -> str | None:
    """Why the plans auto_explain logged cannot be read here, or None when they can."""
    row = server.row
    if server.version_num < EXECUTED_PLANS_VERSION_NUM:
        return "executed plans need PostgreSQL 15+ (jsonlog); plans are EXPLAIN's estimates"
    if row.get("auto_explain_format") is None:
        return "auto_explain is not loaded (shared_preload_libraries): plans are EXPLAIN's estimates"
    if row.get("auto_explain_format") != "json":
        return "auto_explain.log_format is not json: plans are EXPLAIN's estimates"
    if "jsonlog" not in str(row.get("log_destination") or "") or row.get("logging_collector") != "on":
        return "the server log is not jsonlog with logging_collector on: plans are EXPLAIN's estimates"
    if not row.get("reads_server_log"):
        return (
            "planmon's login cannot read the server log (EXECUTE on pg_current_logfile, pg_stat_file, "
            "pg_read_file): plans are EXPLAIN's estimates"
        )
    return None


def _details(server: ServerInfo) -> dict[str, Any]:
    row = server.row
    details: dict[str, Any] = {
        "server_version_num": server.version_num,
        "stats_database": row["database_name"],
        "pg_stat_statements_version": row["pgss_version"],
        "pg_stat_statements_max": int(row["pgss_max"]) if row["pgss_max"] else None,
        "pg_stat_statements_track": row["pgss_track"],
        "generic_plans": "explain_generic_plan"
        if server.version_num >= GENERIC_PLAN_VERSION_NUM
        else "prepare_force_generic_plan",
    }
    details["executed_plans"] = executed_plans_unavailable(server) or "auto_explain"
    if server.info is not None:
        details["pg_stat_statements_dealloc"] = int(server.info["dealloc"])
        details["pg_stat_statements_reset"] = _utc(server.info["stats_reset"])
    return details


def _utc(value: datetime | None) -> datetime | None:
    """UTC without tzinfo, the unit of every timestamp planmon stores."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# The adapter


class Adapter(AdapterBase):
    """Reads one PostgreSQL target through connections from ``connect`` (one per database, lazily)."""

    engine: ClassVar[EngineName] = "postgres"
    dialect = DIALECT
    _driver_errors = (psycopg.Error,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server: ServerInfo | None = None
        self._capabilities: Capabilities | None = None
        # (database, queryid) -> normalised text as pg_stat_statements has it, for EXPLAIN
        self._texts: dict[tuple[str, str], str] = {}

    # -- connections and statements ------------------------------------------------------------

    def _resolve_database(self, database: str | None) -> str | None:
        if self._server is not None and database == self._server.row["database_name"]:
            return None  # the stats connection already reads that database
        return database

    def _set_up(self, connection: Any, database: str | None) -> None:
        super()._set_up(connection, database)
        log.info(
            "postgres target %s: connected to %s (read-only, timeout %d ms)",
            self.target_name,
            f"database {database}" if database else "the default database",
            self.policy.statement_timeout_ms,
        )

    def _cursor_execute(self, cursor: Any, sql: str, params: Any) -> None:
        cursor.execute(sql, params, prepare=False)  # no server-side prepared statements of our own

    def _query(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        database: str | None = None,
        action: str = "",
    ) -> list[dict[str, Any]]:
        return self._execute(
            self._connection(database), load_sql("postgres", name), params, action=action or f"reading {name}"
        )

    # -- capabilities --------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Probe the server once per adapter (version, pg_stat_statements, permissions)."""
        if self._capabilities is None:
            self._server = self._probe_server()
            self._capabilities = build_capabilities(self._server)
            log.info(
                "postgres target %s: PostgreSQL %s, %s",
                self.target_name,
                self._capabilities.server_version,
                ", ".join(
                    f"{aspect}={status.state}" for aspect, status in self._capabilities.aspects.items()
                ),
            )
        return self._capabilities

    def _require(self, aspect: Aspect) -> None:
        """Raise EngineError (with the capability's hint) unless ``aspect`` is available."""
        status = self.capabilities().aspects[aspect]
        if status.state is AspectState.OK:
            return
        reason = (
            EngineErrorReason.PERMISSION_DENIED
            if status.state is AspectState.PERMISSION_DENIED
            else EngineErrorReason.FEATURE_UNAVAILABLE
        )
        raise EngineError(f"cannot read {aspect}", reason=reason, target=self.target_name, hint=status.hint)

    def _probe_server(self) -> ServerInfo:
        connection = self._connection(None)
        (row,) = self._execute(connection, load_sql("postgres", "server_info"), action="probing the server")
        if not _has_statements_info(row):
            return ServerInfo(row)
        try:
            (info,) = self._send(connection, load_sql("postgres", "statements_info"))
        except psycopg.Error as exc:
            if _connection_lost(connection):
                raise engine_error(
                    exc, target=self.target_name, action="reading pg_stat_statements_info"
                ) from exc
            return ServerInfo(row, info_error=exc)  # 55000: not preloaded; reported per aspect
        return ServerInfo(row, info=info)

    # -- runtime statistics --------------------------------------------------------------------

    def runtime_stats(self, start: datetime, end: datetime) -> list[StatementStats]:
        """pg_stat_statements counters as of now (cumulative: ``start``/``end`` cannot select a window).

        Raises EngineError (FEATURE_UNAVAILABLE / PERMISSION_DENIED, with the capability's hint) rather
        than returning a partial or empty list that would look like "nothing ran".
        """
        self._require(Aspect.RUNTIME_STATS)
        began = time.monotonic()
        connection = self._connection(None)
        reset_at = self._stats_reset(connection)
        rows = self._execute(
            connection,
            load_sql("postgres", "runtime_stats"),
            {
                "marker_pattern": MARKER_PATTERN,
                "utility_pattern": UTILITY_PATTERN,
                "databases": list(self.databases),
                "limit": self.settings.collect_row_limit,
            },
            action="reading pg_stat_statements",
        )
        stats = [self._statement_stats(row, reset_at) for row in rows]
        log.info(
            "postgres target %s: read %d statements from pg_stat_statements (limit %d) in %.2fs",
            self.target_name,
            len(stats),
            self.settings.collect_row_limit,
            time.monotonic() - began,
        )
        return stats

    def _stats_reset(self, connection: psycopg.Connection[Any]) -> datetime | None:
        if self._server is None or not _has_statements_info(self._server.row):
            return None
        rows = self._execute(
            connection, load_sql("postgres", "statements_info"), action="reading pg_stat_statements_info"
        )
        return _utc(rows[0]["stats_reset"]) if rows else None

    def _statement_stats(self, row: Mapping[str, Any], reset_at: datetime | None) -> StatementStats:
        text = str(row["query_text"])
        self._texts[(row["database_name"], row["query_key"])] = text
        ms_to_us = 1000.0
        return StatementStats(
            query_key=row["query_key"],
            database_name=row["database_name"],
            interval_end=_utc(row["read_at"]),  # when the counters were read
            executions=float(row["calls"]),
            duration_us_total=float(row["total_exec_ms"]) * ms_to_us,
            duration_us_sum_squares=float(row["exec_ms_sum_squares"]) * ms_to_us * ms_to_us,
            duration_us_min=float(row["min_exec_ms"]) * ms_to_us,
            duration_us_max=float(row["max_exec_ms"]) * ms_to_us,
            logical_reads_total=number(row["shared_blks_accessed"]),
            physical_reads_total=number(row["shared_blks_read"]),
            rows_total=number(row["rows"]),
            query_text=strip_literals(text),
            cumulative=True,
            counters_reset_at=reset_at,
        )

    # -- plans ---------------------------------------------------------------------------------

    def plans(
        self, statements: Sequence[StatementStats]
    ) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
        """EXPLAIN each statement in its own database; failures are returned, not raised.

        Raises EngineError when PLANS is not available (the texts come from pg_stat_statements) and on
        connection-level problems (server unreachable, connection lost).
        Statements left when the per-run deadline passes are skipped (neither captured nor failed).
        """
        self._require(Aspect.PLANS)
        details = self.capabilities().details
        server_version_num = details["server_version_num"]
        began, sent_before = time.monotonic(), self._sent
        executed = self._executed_plans(statements) if details.get("executed_plans") == "auto_explain" else {}
        texts = self._statement_texts(
            [s for s in statements if (s.database_name, s.query_key) not in executed]
        )
        captured: list[CapturedPlan] = []
        failed: list[PlanCaptureFailure] = []
        for database, group in _by_database(statements):
            for statement in [s for s in group if (database, s.query_key) in executed]:
                body = executed[(database, statement.query_key)]
                captured.append(
                    CapturedPlan(
                        query_key=statement.query_key,
                        database_name=database,
                        body=body,
                        body_format="pg_json",
                        objects=self._objects(body, statement.query_key),
                        source="executed",
                    )
                )
            rest = [s for s in group if (database, s.query_key) not in executed]
            for outcome in self._capture_database(database, rest, texts, server_version_num):
                if isinstance(outcome, CapturedPlan):
                    captured.append(outcome)
                else:
                    failed.append(outcome)
        log.info(
            "postgres target %s: %d plans captured, %d failed, %d skipped, %d statements sent in %.2fs",
            self.target_name,
            len(captured),
            len(failed),
            len(statements) - len(captured) - len(failed),
            self._sent - sent_before,
            time.monotonic() - began,
        )
        return captured, failed

    def _executed_plans(self, statements: Sequence[StatementStats]) -> dict[tuple[str, str], bytes]:
        """The newest plan auto_explain logged for each statement since its interval began (the
        server log's last EXECUTED_PLANS_TAIL_BYTES): a plan the executions really ran. A log that
        cannot be read leaves EXPLAIN to do the work (logged, not raised)."""
        starts = [s.interval_start for s in statements if s.interval_start is not None]
        since = min(starts) if starts else datetime.now(UTC) - timedelta(hours=1)
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        keys = sorted({s.query_key for s in statements})
        try:
            rows = self._query(
                "executed_plans",
                {"queryids": keys, "since": since, "max_bytes": EXECUTED_PLANS_TAIL_BYTES},
                action="reading executed plans from the server log",
            )
        except EngineError as exc:
            log.warning("postgres target %s: executed plans not read: %s", self.target_name, exc.message)
            return {}
        plans: dict[tuple[str, str], bytes] = {}
        for row in rows:  # oldest first: the newest of a statement wins
            body = auto_explain_document(str(row["message"] or ""))
            if body is not None:
                plans[(str(row["database_name"]), str(row["query_key"]))] = body
        return plans

    def _statement_texts(self, statements: Sequence[StatementStats]) -> dict[tuple[str, str], str]:
        """Explainable texts of ``statements``: read by runtime_stats, else fetched in one query."""
        missing = {s.query_key for s in statements if (s.database_name, s.query_key) not in self._texts}
        queryids = [int(key) for key in missing if re.fullmatch(r"-?\d+", key)]
        if queryids:
            rows = self._query(
                "statement_texts",
                {"queryids": queryids},
                action="reading statement texts from pg_stat_statements",
            )
            for row in rows:
                self._texts.setdefault((row["database_name"], row["query_key"]), str(row["query_text"]))
        return self._texts

    def _capture_database(
        self,
        database: str,
        statements: list[StatementStats],
        texts: Mapping[tuple[str, str], str],
        server_version_num: int,
    ) -> Iterator[CapturedPlan | PlanCaptureFailure]:
        try:
            connection = self._connection(database or None)
        except EngineError as exc:
            if exc.reason not in (EngineErrorReason.AUTHENTICATION, EngineErrorReason.PERMISSION_DENIED):
                raise
            log.warning(
                "postgres target %s: no plans from database %s: %s", self.target_name, database, exc.message
            )
            for statement in statements:
                yield PlanCaptureFailure(statement.query_key, database, exc.message)
            return
        for done, statement in enumerate(statements):
            if self.past_deadline():
                self._deadline_stop(len(statements) - done)  # the rest is neither captured nor failed
                return
            text = texts.get((database, statement.query_key))
            yield self._capture(connection, statement, text, server_version_num)

    def _capture(
        self,
        connection: psycopg.Connection[Any],
        statement: StatementStats,
        text: str | None,
        server_version_num: int,
    ) -> CapturedPlan | PlanCaptureFailure:
        key, database = statement.query_key, statement.database_name
        if text is None:
            return PlanCaptureFailure(key, database, "the statement is no longer in pg_stat_statements")
        refusal = unexplainable_reason(text)
        if refusal is not None:
            return PlanCaptureFailure(key, database, refusal)
        try:
            value = self._explain(connection, explain_steps(text, server_version_num))
        except psycopg.Error as exc:
            if _connection_lost(connection):
                raise engine_error(
                    exc, target=self.target_name, action=f"explaining in database {database}"
                ) from exc
            reason = f"{error_reason(exc).value}: {driver_message(exc)}"
            log.info(
                "postgres target %s: no plan for query %s in %s (%s)", self.target_name, key, database, reason
            )
            return PlanCaptureFailure(key, database, reason)
        body = plan_document(value)
        return CapturedPlan(
            query_key=key,
            database_name=database,
            body=body,
            body_format="pg_json",
            objects=self._objects(body, key),
            source="generic" if parameter_count(text) else "explained",
        )

    def _explain(self, connection: psycopg.Connection[Any], steps: ExplainSteps) -> Any:
        """Run ``steps`` in a read-only transaction that is always rolled back; the plan document."""
        prepared = False
        self._send(connection, BEGIN)
        try:
            for sql in steps.prepare:
                self._send(connection, sql)
            prepared = steps.deallocate is not None
            rows = self._send(connection, steps.explain)
        finally:
            self._send(connection, ROLLBACK)
            if prepared and steps.deallocate is not None:
                self._send(connection, steps.deallocate)
        return next(iter(rows[0].values()))

    def _objects(self, body: bytes, key: str) -> tuple[QualifiedName, ...]:
        try:
            return plan_objects(body)
        except PlanParseError as exc:
            log.warning(
                "postgres target %s: plan of query %s not parsed: %s", self.target_name, key, exc.message
            )
            return ()

    # -- object definitions --------------------------------------------------------------------

    def index_definitions(self, database_name: str, tables: Iterable[QualifiedName]) -> list[IndexDefinition]:
        """The indexes of ``tables`` (no schema: a table of that name in any schema), one query."""
        wanted = sorted(set(tables), key=QualifiedName.key)
        if not wanted:
            return []
        rows = self._query(
            "index_definitions",
            {"schemas": [table.schema for table in wanted], "tables": [table.name for table in wanted]},
            database=database_name or None,
            action=f"reading index definitions in database {database_name}",
        )
        log.info(
            "postgres target %s: %d index definitions for %d tables in %s",
            self.target_name,
            len(rows),
            len(wanted),
            database_name,
        )
        return [
            IndexDefinition(
                database_name=database_name,
                qualified_table=QualifiedName(row["schema_name"], row["table_name"]),
                index_name=row["index_name"],
                definition=row["definition"],
                is_unique=bool(row["is_unique"]),
                is_primary=bool(row["is_primary"]),
            )
            for row in rows
        ]


def _has_statements_info(row: Mapping[str, Any]) -> bool:
    """pg_stat_statements_info exists: PostgreSQL 14+ and the extension at 1.9+, on the search_path."""
    return (
        int(row["server_version_num"]) >= STATEMENTS_INFO_VERSION_NUM
        and _version_tuple(row["pgss_version"]) >= (1, 9)
        and bool(row["pgss_visible"])
    )


def _connection_lost(connection: psycopg.Connection[Any]) -> bool:
    return bool(connection.broken or connection.closed)


def _by_database(statements: Sequence[StatementStats]) -> list[tuple[str, list[StatementStats]]]:
    groups: dict[str, list[StatementStats]] = {}
    for statement in statements:
        groups.setdefault(statement.database_name, []).append(statement)
    return list(groups.items())
