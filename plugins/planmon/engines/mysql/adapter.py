"""MySQL 8 / MariaDB 10.6+ adapter: performance_schema digests, EXPLAIN FORMAT=JSON, information_schema.

Runtime statistics are the cumulative counters of ``events_statements_summary_by_digest`` (one row per
schema and digest); the collector turns two readings into a delta, so ``backfillable`` is False. Plans
are ``EXPLAIN FORMAT=JSON`` of a sample text of the digest (MySQL 8: ``QUERY_SAMPLE_TEXT``; MariaDB: the
latest ``SQL_TEXT`` in ``events_statements_history_long``); ``ANALYZE`` is never run (it executes).

Leaving planmon's own statements out of the statistics. performance_schema drops comments from
``DIGEST_TEXT``, so the ``/* planmon */`` marker cannot be seen there. Three rules, each exact:

1. Every planmon query (``include/sql/mysql/*.sql``) starts ``/* planmon */ SELECT planmon.``: the
   alias is an identifier, so it survives digesting, and the statistics query drops digest texts that
   start with ``SELECT `planmon` .``. This works across sessions, for earlier runs' statements, and
   without any history consumer (tests/unit/engines/test_mysql_sql.py enforces the prefix).
2. ``EXPLAIN`` statements are dropped: they are planmon's plan captures, and an EXPLAIN has no plan
   of its own to watch.
3. What planmon's sessions send that is not a query (the driver's and planmon's ``SET`` statements) is
   found by digest: right after a session is set up, the digests of this connection's statements are
   read from ``events_statements_history`` (its own THREAD_ID) and dropped from the result. Their texts
   are fixed, so their digests are the same in every run and on every planmon connection.

SQL lives in ``include/sql/mysql``; values are bound. Two exceptions, both in this module: the session
``SET`` statements (the read-only guard refuses SET by design) and ``EXPLAIN FORMAT=JSON <sample>``,
where the recorded sample text is what is explained; it is checked first (one statement, of a kind
EXPLAIN accepts, no executable comments) because the driver allows several statements per call.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import SqlglotError

from planmon.engines._base import AdapterBase, number
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
from planmon.engines.mysql.dialect import (
    DIALECT,
    DRIVER_ERRORS,
    MARIADB,
    MYSQL,
    quote_identifier,
)
from planmon.errors import EngineError, EngineErrorReason, PlanParseError
from planmon.model import EngineName, QualifiedName
from planmon.plans.normalize import strip_literals
from planmon.plans.parse import parse_plan
from planmon.sql import MARKER, load_sql

log = logging.getLogger(__name__)

ENGINE = "mysql"
PICOSECONDS_PER_MICROSECOND = 1_000_000
OWN_QUERY_DIGEST_PREFIX = "SELECT `planmon` ."  # how every planmon query's DIGEST_TEXT starts

_EXPLAIN = f"{MARKER} EXPLAIN FORMAT=JSON "

# ``:name`` placeholders (what sqlglot reads in the files) become the driver's ``%(name)s``;
# quoted strings and identifiers are matched first so that nothing inside them is touched.
_PLACEHOLDER = re.compile(r"'(?:[^'\\]|\\.|'')*'|`[^`]*`|(?<![\w:]):([A-Za-z_]\w*)")
_EXPLAINABLE = frozenset({"SELECT", "WITH", "INSERT", "REPLACE", "UPDATE", "DELETE", "TABLE", "VALUES", "("})
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!")

HINT_PERFORMANCE_SCHEMA_OFF = "performance_schema is OFF: set performance_schema=ON in my.cnf and restart"
HINT_DIGEST_CONSUMER = (
    "enable the statements_digest consumer: UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' "
    "WHERE NAME IN ('global_instrumentation', 'statements_digest'), and "
    "performance-schema-consumer-statements-digest=ON in my.cnf to keep it after a restart"
)
# Where the digest table keeps no sample text (MariaDB, MySQL before 8.0.3), the text to EXPLAIN comes
# from events_statements_history_long, which is fed from events_statements_current, which needs
# thread_instrumentation: every consumer of that chain must be on, or history_long stays empty.
SAMPLE_TEXT_CONSUMERS = (
    "thread_instrumentation",
    "events_statements_current",
    "events_statements_history_long",
)


def sample_consumers_hint(missing: Sequence[str]) -> str:
    """What to run (now, and in my.cnf for after a restart) to turn on the consumers plans need."""
    names = ", ".join(f"'{name}'" for name in missing)  # consumer names from SAMPLE_TEXT_CONSUMERS only
    options = " ".join(f"performance-schema-consumer-{name.replace('_', '-')}=ON" for name in missing)
    # a hint for the DBA to run, never run by planmon
    enable = f"UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ({names})"  # noqa: S608
    return (
        f"plans need the performance_schema consumer(s) {', '.join(missing)}: the digest table keeps no "
        "sample text here, so statement texts come from events_statements_history_long, which "
        f"events_statements_current feeds; run {enable}; and put {options} in my.cnf to keep them after a "
        "restart"
    )


HINT_HISTORY_LONG_CONSUMER = sample_consumers_hint(("events_statements_history_long",))
HINT_GRANT = "GRANT SELECT ON performance_schema.* TO planmon's user"
HINT_DIGEST_TABLE_FULL = (
    "the digest table is full and new statements are not tracked: raise performance_schema_digests_size "
    "(restart needed) or TRUNCATE performance_schema.events_statements_summary_by_digest"
)


def pyformat(sql: str) -> str:
    """``:name`` placeholders of a planmon SQL file as mysql-connector's ``%(name)s``."""
    return _PLACEHOLDER.sub(lambda m: f"%({m.group(1)})s" if m.group(1) else m.group(0), sql)


def unexplainable_reason(sql_text: str) -> str | None:
    """Why a recorded statement text must not be put behind EXPLAIN, or None when it may.

    The driver runs several statements sent in one call, so the text must be exactly one statement,
    of a kind EXPLAIN accepts, without executable comments (``/*! ... */`` is code to the server).
    """
    if _EXECUTABLE_COMMENT.search(sql_text):
        return "the sample text holds an executable comment (/*! */), which planmon does not EXPLAIN"
    try:
        tokens = sqlglot.tokenize(sql_text, read="mysql")
    except SqlglotError:
        return "the sample text cannot be read (truncated by performance_schema_max_sql_text_length?)"
    if not tokens:
        return "the sample text is empty"
    if any(token.token_type is TokenType.SEMICOLON for token in tokens[:-1]):
        return "the sample text holds more than one statement"
    if tokens[0].text.upper() not in _EXPLAINABLE:
        return (
            f"a {tokens[0].text.upper()} statement has no plan (EXPLAIN takes SELECT, INSERT, UPDATE, DELETE)"
        )
    return None


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the adapter needs to know about the server before choosing its queries."""

    version: str
    is_mariadb: bool
    performance_schema: bool
    digests_size: int
    has_cpu_time: bool  # SUM_CPU_TIME in the digest table (MySQL 8.0.28+)
    has_sample_text: bool  # QUERY_SAMPLE_TEXT in the digest table (MySQL 8.0.3+)

    @property
    def flavor(self) -> str:
        return MARIADB if self.is_mariadb else MYSQL


class Adapter(AdapterBase):
    """Reads one MySQL 8 / MariaDB 10.6+ target through connections opened lazily by ``connect``."""

    engine: ClassVar[EngineName] = "mysql"
    dialect = DIALECT
    _driver_errors = DRIVER_ERRORS
    # a dropped schema or one without access: asked once per run (connection-level failures end it)
    _unusable_reasons = frozenset(EngineErrorReason) - {
        EngineErrorReason.UNREACHABLE,
        EngineErrorReason.AUTHENTICATION,
        EngineErrorReason.TIMEOUT,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server: ServerInfo | None = None
        self._own_digests: set[str] = set()

    # -- capabilities ---------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Probe performance_schema, its consumers, permissions, EXPLAIN and information_schema once."""
        server = self._server_info()
        details: dict[str, Any] = {
            "flavor": server.flavor,
            "version": server.version,
            "performance_schema": server.performance_schema,
            "performance_schema_digests_size": server.digests_size,
            "cpu_time": server.has_cpu_time,
        }
        consumers, runtime = self._consumers(server)
        if runtime.state is AspectState.OK:
            runtime = self._digest_table_status(server, details)
        aspects = {
            Aspect.RUNTIME_STATS: runtime,
            Aspect.QUERY_TEXT: runtime,
            Aspect.PLANS: self._plans_status(server, consumers, runtime),
            Aspect.FORCING_STATE: AspectStatus(
                AspectState.NOT_APPLICABLE, hint="MySQL and MariaDB cannot force a plan; planmon only watches"
            ),
            Aspect.OBJECT_DEFINITIONS: self._object_definitions_status(),
        }
        log.info(
            "target %s: %s %s, %s",
            self.target_name,
            server.flavor,
            server.version,
            ", ".join(f"{aspect.value}={status.state.value}" for aspect, status in aspects.items()),
        )
        return Capabilities(
            server_version=server.version, aspects=aspects, backfillable=False, details=details
        )

    def _consumers(self, server: ServerInfo) -> tuple[dict[str, bool], AspectStatus]:
        if not server.performance_schema:
            return {}, AspectStatus(AspectState.UNAVAILABLE, hint=HINT_PERFORMANCE_SCHEMA_OFF)
        rows, status = self._probe("consumers")
        consumers = {_text(row["name"]): _text(row["enabled"]).upper() == "YES" for row in rows}
        if status.state is AspectState.OK and not (
            consumers.get("global_instrumentation") and consumers.get("statements_digest")
        ):
            status = AspectStatus(AspectState.UNAVAILABLE, hint=HINT_DIGEST_CONSUMER)
        return consumers, status

    def _digest_table_status(self, server: ServerInfo, details: dict[str, Any]) -> AspectStatus:
        """Is the digest table readable, and is it full (then new statements go untracked)?"""
        rows, status = self._probe("digest_table_status")
        if status.state is not AspectState.OK or not rows:
            return status
        digest_rows = int(rows[0]["digest_rows"])
        lost = rows[0]["digest_lost"]
        details["digest_table_rows"] = digest_rows
        details["performance_schema_digest_lost"] = None if lost is None else int(lost)
        full = server.digests_size > 0 and digest_rows >= server.digests_size
        details["digest_table_full"] = full
        if full or (lost is not None and int(lost) > 0):
            details["warning"] = HINT_DIGEST_TABLE_FULL
            log.warning(
                "target %s: digest table holds %d of %d digests, %s lost",
                self.target_name,
                digest_rows,
                server.digests_size,
                lost,
            )
        return status

    def _plans_status(
        self, server: ServerInfo, consumers: Mapping[str, bool], runtime: AspectStatus
    ) -> AspectStatus:
        if runtime.state is not AspectState.OK:  # digests and sample texts come from performance_schema
            return runtime
        probe = load_sql(ENGINE, "explain_probe").removeprefix(MARKER).strip()
        try:
            self._explain(probe, None)
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            return _status_of(exc)
        missing = [name for name in SAMPLE_TEXT_CONSUMERS if not consumers.get(name)]
        if not server.has_sample_text and missing:
            return AspectStatus(AspectState.UNAVAILABLE, hint=sample_consumers_hint(missing))
        return OK

    def _object_definitions_status(self) -> AspectStatus:
        database = self.databases[0] if self.databases else "information_schema"
        _, status = self._probe("index_columns", {"database": database, "tables": "[]"})
        return status

    def _probe(
        self, name: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], AspectStatus]:
        """Run a capability probe; a refusal or failure becomes the aspect's status, not an exception."""
        try:
            return self._query(name, params), OK
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            return [], _status_of(exc)

    # -- runtime statistics ---------------------------------------------------------------------

    def runtime_stats(self, start: datetime, end: datetime) -> list[StatementStats]:
        """Cumulative digest counters as of now (the window is the collector's business), top N by time."""
        server = self._server_info()
        limit = self.settings.collect_row_limit
        rows = self._query(
            "digest_stats_cpu" if server.has_cpu_time else "digest_stats",
            {"databases": json.dumps(list(self.databases)), "row_limit": limit + len(self._own_digests)},
        )
        stats = [_statement_stats(row) for row in rows if _text(row["digest"]) not in self._own_digests][
            :limit
        ]
        log.info(
            "target %s: %d digests read (cumulative, window %s..%s), %d own statement digests left out",
            self.target_name,
            len(stats),
            start.isoformat(),
            end.isoformat(),
            len(self._own_digests),
        )
        return stats

    # -- plans ----------------------------------------------------------------------------------

    def plans(
        self, statements: Sequence[StatementStats]
    ) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
        """EXPLAIN FORMAT=JSON of each statement's sample text, in its schema (samples: one query)."""
        if not statements:
            return [], []
        samples = self._samples(sorted({statement.query_key for statement in statements}))
        captured: list[CapturedPlan] = []
        failed: list[PlanCaptureFailure] = []
        for done, statement in enumerate(statements):
            if self.past_deadline():
                self._deadline_stop(len(statements) - done)  # the rest is neither captured nor failed
                break
            sample = samples.get((statement.query_key, statement.database_name)) or samples.get(
                (statement.query_key, None)
            )
            outcome = self._capture(statement, sample)
            if isinstance(outcome, CapturedPlan):
                captured.append(outcome)
            else:
                failed.append(outcome)
        log.info(
            "target %s: %d plans captured, %d could not be", self.target_name, len(captured), len(failed)
        )
        return captured, failed

    def _samples(self, digests: list[str]) -> dict[tuple[str, str | None], str]:
        """Sample texts by (digest, schema), plus (digest, None) for any schema."""
        server = self._server_info()
        name = "digest_samples" if server.has_sample_text else "history_samples"
        rows = self._query(name, {"digests": json.dumps(digests)})
        samples: dict[tuple[str, str | None], str] = {}
        for row in rows:
            text = _text(row["sql_text"])
            digest = _text(row["digest"])
            samples[(digest, _text(row["schema_name"]))] = text
            samples.setdefault((digest, None), text)
        return samples

    def _capture(self, statement: StatementStats, sample: str | None) -> CapturedPlan | PlanCaptureFailure:
        key, database = statement.query_key, statement.database_name
        if sample is None:
            return PlanCaptureFailure(key, database, "no sample text of this digest is kept any more")
        refused = unexplainable_reason(sample)
        if refused is not None:
            return PlanCaptureFailure(key, database, refused)
        try:
            body = self._explain(sample, database or None)
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            return PlanCaptureFailure(key, database, exc.message)
        return CapturedPlan(
            query_key=key,
            database_name=database,
            body=body,
            body_format="mysql_json",
            plan_key=None,
            objects=plan_objects(body, sample, database),
        )

    def _explain(self, sql_text: str, database: str | None) -> bytes:
        """The JSON plan of ``sql_text`` in ``database``; the text is explained, never executed."""
        rows = self._execute(self._connection(database), _EXPLAIN + sql_text, action="EXPLAIN")
        if not rows:
            raise EngineError("EXPLAIN returned no plan", reason=EngineErrorReason.QUERY_FAILED)
        document = next(iter(rows[0].values()))
        return _text(document).encode("utf-8")

    # -- object definitions ---------------------------------------------------------------------

    def index_definitions(self, database_name: str, tables: Iterable[QualifiedName]) -> list[IndexDefinition]:
        """CREATE INDEX / ADD PRIMARY KEY definitions of the indexes on ``tables`` of one schema
        (a table without schema is taken to be in ``database_name``; others are left out)."""
        names = sorted(
            {table.name for table in tables if table.schema in (None, database_name) and table.name}
        )
        if not names:
            return []
        rows = self._query("index_columns", {"database": database_name, "tables": json.dumps(names)})
        definitions = build_index_definitions(database_name, rows)
        log.info(
            "target %s: %d index definitions on %d tables of %s",
            self.target_name,
            len(definitions),
            len(names),
            database_name,
        )
        return definitions

    # -- connections and statements -------------------------------------------------------------

    def _server_info(self) -> ServerInfo:
        self._connection(None)  # the first connection reads the server information
        assert self._server is not None
        return self._server

    def _set_up(self, connection: Any, database: str | None) -> None:
        if self._server is None:
            self._server = self._read_server_info(connection)
        super()._set_up(connection, database)  # statement timeout, read-only transactions
        if database is None and self._server.performance_schema:
            self._learn_own_digests(connection)

    def _flavor(self) -> str | None:
        return None if self._server is None else self._server.flavor

    def _read_server_info(self, connection: Any) -> ServerInfo:
        row = self._execute(connection, load_sql(ENGINE, "server_info"), action="reading the server version")[
            0
        ]
        version = _text(row["version"])
        return ServerInfo(
            version=version,
            is_mariadb="mariadb" in f"{version} {_text(row['version_comment'])}".lower(),
            performance_schema=bool(int(row["performance_schema"] or 0)),
            digests_size=int(row["digests_size"] or 0),
            has_cpu_time=bool(int(row["has_cpu_time"])),
            has_sample_text=bool(int(row["has_sample_text"])),
        )

    def _learn_own_digests(self, connection: Any) -> None:
        """Remember the digests this session's statements so far (driver and session SETs) carry."""
        try:
            rows = self._execute(
                connection, load_sql(ENGINE, "own_statement_digests"), action="reading own digests"
            )
        except EngineError as exc:
            self._raise_if_connection_level(exc)
            log.info("target %s: own statement digests unknown (%s)", self.target_name, exc.message)
            return
        self._own_digests.update(_text(row["digest"]) for row in rows)

    def _query(
        self, name: str, params: Mapping[str, Any] | None = None, *, database: str | None = None
    ) -> list[dict[str, Any]]:
        sql = load_sql(ENGINE, name)
        return self._execute(
            self._connection(database), pyformat(sql) if params else sql, params, action=name
        )


def _status_of(exc: EngineError) -> AspectStatus:
    if exc.reason is EngineErrorReason.PERMISSION_DENIED:
        return AspectStatus(AspectState.PERMISSION_DENIED, hint=HINT_GRANT, detail=exc.message)
    return AspectStatus(AspectState.ERROR, hint=exc.hint, detail=exc.message)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _microseconds(picoseconds: Any) -> float | None:
    return None if picoseconds is None else float(picoseconds) / PICOSECONDS_PER_MICROSECOND


def _statement_stats(row: Mapping[str, Any]) -> StatementStats:
    """One digest row as cumulative counters (times in microseconds; rows = sent + affected)."""
    digest_text = row["digest_text"]
    return StatementStats(
        query_key=_text(row["digest"]),
        database_name=_text(row["schema_name"]),
        executions=float(row["executions"]),
        errors=float(row["errors"]),
        cpu_us_total=_microseconds(row["cpu_time_sum"]),
        duration_us_total=_microseconds(row["timer_wait_sum"]),
        duration_us_min=_microseconds(row["timer_wait_min"]),
        duration_us_max=_microseconds(row["timer_wait_max"]),
        rows_examined_total=number(row["rows_examined"]),
        rows_total=float(row["rows_sent"] or 0) + float(row["rows_affected"] or 0),
        query_text=None if digest_text is None else strip_literals(_text(digest_text)),
        cumulative=True,
        counters_reset_at=None,  # unknown: the collector treats a counter that went down as a reset
    )


def plan_objects(body: bytes, sql_text: str, database_name: str) -> tuple[QualifiedName, ...]:
    """(database, table) of every table a captured plan touches (database None: unknown).

    MySQL plans name tables by their alias, so aliases are resolved through the statement text.
    """
    try:
        plan = parse_plan(body, engine="mysql")
    except PlanParseError as exc:
        log.info("captured plan could not be parsed for its tables: %s", exc.message)
        return ()
    aliases = _table_aliases(sql_text, database_name)
    tables: set[QualifiedName] = set()
    for statement in plan.statements:
        for node in statement.nodes():
            if node.object is not None:
                table = node.object.table
                tables.add(aliases.get(table, QualifiedName(database_name or None, table)))
    return tuple(sorted(tables, key=QualifiedName.key))


def _table_aliases(sql_text: str, database_name: str) -> dict[str, QualifiedName]:
    try:
        tree = sqlglot.parse_one(sql_text, read="mysql")
    except SqlglotError:
        return {}
    return {
        table.alias_or_name: QualifiedName(table.db or database_name or None, table.name)
        for table in tree.find_all(exp.Table)
    }


def build_index_definitions(database_name: str, rows: Iterable[Mapping[str, Any]]) -> list[IndexDefinition]:
    """Group information_schema.STATISTICS rows (ordered by table, index, key part) into definitions."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((_text(row["table_name"]), _text(row["index_name"])), []).append(row)
    definitions = []
    for (table, index_name), parts in grouped.items():
        if any(part["column_name"] is None for part in parts):  # functional key part (MySQL 8.0.13+)
            log.info(
                "index %s on %s.%s has an expression key part: left out", index_name, database_name, table
            )
            continue
        definitions.append(_index_definition(database_name, table, index_name, parts))
    return definitions


def _index_definition(
    database_name: str, table: str, index_name: str, parts: list[Mapping[str, Any]]
) -> IndexDefinition:
    columns = ", ".join(_key_part(part) for part in parts)
    target = QualifiedName(database_name, table).quoted(quote_identifier)
    unique = not int(parts[0]["non_unique"])
    index_type = _text(parts[0]["index_type"]).upper()
    if index_name == "PRIMARY":
        definition = f"ALTER TABLE {target} ADD PRIMARY KEY ({columns})"
    else:
        kind = "UNIQUE " if unique else {"FULLTEXT": "FULLTEXT ", "SPATIAL": "SPATIAL "}.get(index_type, "")
        using = " USING HASH" if index_type == "HASH" else ""
        definition = f"CREATE {kind}INDEX {quote_identifier(index_name)} ON {target} ({columns}){using}"
    return IndexDefinition(
        database_name=database_name,
        qualified_table=QualifiedName(database_name, table),
        index_name=index_name,
        definition=definition,
        is_unique=unique,
        is_primary=index_name == "PRIMARY",
    )


def _key_part(part: Mapping[str, Any]) -> str:
    text = quote_identifier(_text(part["column_name"]))
    if part["sub_part"] is not None:
        text += f"({int(part['sub_part'])})"
    if _text(part["collation"]).upper() == "D":
        text += " DESC"
    return text
