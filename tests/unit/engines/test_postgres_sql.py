"""PostgreSQL collector SQL and the adapter's pure helpers (no server needed).

Every ``include/sql/postgres`` file loads with ``load_sql`` (header, marker, read-only by sqlglot) and
uses only psycopg named placeholders; the EXPLAIN wrappers built in code carry the marker and never
ANALYZE; capabilities and error reasons are derived correctly from probe results.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

from planmon.engines.base import Aspect, AspectState
from planmon.engines.postgres.adapter import (
    MARKER_PATTERN,
    ServerInfo,
    auto_explain_document,
    build_capabilities,
    executed_plans_unavailable,
    explain_steps,
    parameter_count,
    unexplainable_reason,
)
from planmon.engines.postgres.dialect import BEGIN, PROBE_TRANSACTION, ROLLBACK, error_reason, marked
from planmon.errors import EngineErrorReason
from planmon.sql import MARKER, load_sql, sql_root

SQL_DIR = sql_root() / "postgres"
SQL_NAMES = sorted(path.stem for path in SQL_DIR.glob("*.sql"))
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_the_adapter_ships_its_queries() -> None:
    expected = {
        "session_setup",
        "server_info",
        "statements_info",
        "runtime_stats",
        "statement_texts",
        "generic_plan_mode",
        "index_definitions",
    }
    assert expected <= set(SQL_NAMES)


@pytest.mark.parametrize("name", SQL_NAMES)
def test_every_file_loads_read_only_with_marker_and_header(name: str) -> None:
    statement = load_sql("postgres", name)  # raises on a missing header, marker or a write
    assert statement.startswith(MARKER)
    header = (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8").partition(MARKER)[0]
    assert all(line.startswith("--") for line in header.splitlines() if line.strip())


@pytest.mark.parametrize("name", SQL_NAMES)
def test_values_are_bound_never_formatted(name: str) -> None:
    """Only %(name)s placeholders: a stray % would break psycopg, a {} would mean formatting."""
    statement = load_sql("postgres", name)
    assert "%" not in PLACEHOLDER.sub("", statement)
    assert "{" not in statement and "}" not in statement


@pytest.mark.parametrize("name", SQL_NAMES)
def test_marker_is_repeated_after_the_first_keyword(name: str) -> None:
    """PostgreSQL 18's pg_stat_statements drops the comments before a statement: the marker must
    also sit inside it (the live adapter tests check the entries on 15 and 18)."""
    inside = load_sql("postgres", name)[len(MARKER) :].lstrip()
    assert re.match(rf"(?i)(SELECT|WITH)\s+{re.escape(MARKER)}", inside), name


def test_marker_pattern_matches_the_marker_anywhere() -> None:
    assert MARKER_PATTERN == "%/* planmon */%"


@pytest.mark.parametrize(
    ("sql", "sent"),
    [
        ("SELECT 1", "SELECT /* planmon */ 1"),
        (
            "  -- why\n/* note */ WITH a AS (SELECT 1) SELECT * FROM a",
            "WITH /* planmon */ a AS (SELECT 1) SELECT * FROM a",
        ),
        ("select\ncount(*) from t", "select /* planmon */\ncount(*) from t"),
        ("(SELECT 1)", "/* planmon */ (SELECT 1)"),  # not a keyword first: the marker goes before it
    ],
)
def test_probe_statements_carry_the_marker_after_their_first_keyword(sql: str, sent: str) -> None:
    assert marked(sql) == sent


def test_session_and_explain_statements_carry_the_marker_after_their_first_keyword() -> None:
    on_15 = explain_steps("SELECT a FROM t WHERE b = $1", 150000)
    built = [BEGIN, ROLLBACK, PROBE_TRANSACTION, on_15.prepare[1], on_15.explain, on_15.deallocate]
    built += [explain_steps(text, 180000).explain for text in ("SELECT 1", "SELECT a FROM t WHERE b = $1")]
    for statement in built:
        assert statement is not None and re.match(rf"\w+ {re.escape(MARKER)}", statement), statement


# ---------------------------------------------------------------------------------------------
# EXPLAIN of captured statements


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("SELECT 1", 0),
        ("SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)", 3),
        ("SELECT a FROM t WHERE b = $12 OR d = $2::int", 12),
        ("SELECT $$x$$, t$1 FROM t", 0),
    ],
)
def test_parameter_count(text: str, count: int) -> None:
    assert parameter_count(text) == count


def test_statement_without_parameters_is_explained_directly() -> None:
    steps = explain_steps("SELECT a FROM t", 150000)
    assert steps.explain == f"EXPLAIN {MARKER} (VERBOSE, FORMAT JSON) SELECT a FROM t"
    assert steps.prepare == () and steps.deallocate is None


def test_pg16_uses_explain_generic_plan() -> None:
    steps = explain_steps("SELECT a FROM t WHERE b = $1", 160000)
    assert (
        steps.explain == f"EXPLAIN {MARKER} (GENERIC_PLAN, VERBOSE, FORMAT JSON) SELECT a FROM t WHERE b = $1"
    )
    assert steps.prepare == ()


def test_pg13_to_15_prepare_a_forced_generic_plan() -> None:
    steps = explain_steps("SELECT a FROM t WHERE b = $1 AND c = $2", 130000)
    assert steps.prepare == (
        load_sql("postgres", "generic_plan_mode"),
        f"PREPARE {MARKER} planmon_stmt AS SELECT a FROM t WHERE b = $1 AND c = $2",
    )
    assert steps.explain == f"EXPLAIN {MARKER} (VERBOSE, FORMAT JSON) EXECUTE planmon_stmt(NULL, NULL)"
    assert steps.deallocate == f"DEALLOCATE {MARKER} planmon_stmt"
    assert "force_generic_plan" in steps.prepare[0] and "true" in steps.prepare[0]  # SET LOCAL


@pytest.mark.parametrize("version", [130000, 150000, 160000, 170000])
def test_explain_never_analyzes(version: int) -> None:
    steps = explain_steps("SELECT a FROM t WHERE b = $1", version)
    for statement in (*steps.prepare, steps.explain, steps.deallocate or MARKER):
        assert MARKER in statement
        assert "ANALYZE" not in statement.upper()


@pytest.mark.parametrize(
    "text",
    [
        "SELECT a FROM t WHERE b = $1",
        "  /* app: report */ -- note\n WITH x AS (SELECT 1) SELECT * FROM x",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "insert into t values ($1)",
        "UPDATE t SET a = $1 WHERE b = $2",
        "DELETE FROM t WHERE a = $1",
        "VALUES ($1)",
        "TABLE t",
        "/* app */ UPDATE t /* why */ SET a = $1",
    ],
)
def test_plannable_statements_are_explained(text: str) -> None:
    assert unexplainable_reason(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("CREATE TABLE t (a int)", "CREATE statements have no plan"),
        ("/* x */ VACUUM t", "VACUUM statements have no plan"),
        ("ANALYZE t", "ANALYZE statements have no plan"),
        ("SELECT 1; DROP TABLE t", "more than one statement"),
        ("", "(empty)"),
    ],
)
def test_other_statements_are_refused_without_asking_the_server(text: str, reason: str) -> None:
    refusal = unexplainable_reason(text)
    assert refusal is not None and reason in refusal


# ---------------------------------------------------------------------------------------------
# Capabilities from probe results


def server_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "server_version": "15.5",
        "server_version_num": 150005,
        "database_name": "app",
        "user_name": "planmon",
        "shared_preload_libraries": "pg_stat_statements",
        "session_preload_libraries": "",
        "pgss_max": "5000",
        "pgss_track": "top",
        "pgss_version": "1.10",
        "pgss_schema": "public",
        "pgss_visible": True,
        "hint_plan_installed": False,
        "reads_all_stats": True,
        "is_superuser": False,
    }
    row.update(changes)
    return row


def runtime_status(**changes: Any) -> tuple[AspectState, str | None]:
    status = build_capabilities(ServerInfo(server_row(**changes))).aspects[Aspect.RUNTIME_STATS]
    return status.state, status.hint


def test_everything_in_place_is_ok() -> None:
    capabilities = build_capabilities(ServerInfo(server_row()))
    assert capabilities.available(Aspect.RUNTIME_STATS) and capabilities.available(Aspect.PLANS)
    assert not capabilities.backfillable
    assert capabilities.details["generic_plans"] == "prepare_force_generic_plan"


def test_not_preloaded() -> None:
    state, hint = runtime_status(shared_preload_libraries="auto_explain")
    assert state is AspectState.UNAVAILABLE
    assert hint == "pg_stat_statements is not in shared_preload_libraries: add it and restart"


def test_hidden_preload_list_falls_back_to_the_library_settings() -> None:
    assert runtime_status(shared_preload_libraries=None)[0] is AspectState.OK
    assert runtime_status(shared_preload_libraries=None, pgss_max=None)[0] is AspectState.UNAVAILABLE


def test_info_view_failing_with_55000_means_not_loaded() -> None:
    error = psycopg.errors.ObjectNotInPrerequisiteState("pg_stat_statements must be loaded")
    server = ServerInfo(server_row(shared_preload_libraries=None), info_error=error)
    assert server.preloaded is False


def test_extension_missing_names_the_database() -> None:
    assert runtime_status(pgss_version=None) == (
        AspectState.UNAVAILABLE,
        "CREATE EXTENSION pg_stat_statements in database app",
    )


def test_extension_off_the_search_path() -> None:
    state, hint = runtime_status(pgss_visible=False, pgss_schema="extensions")
    assert state is AspectState.ERROR and hint is not None and "schema extensions" in hint


def test_without_pg_read_all_stats() -> None:
    state, hint = runtime_status(reads_all_stats=False)
    assert state is AspectState.PERMISSION_DENIED
    assert hint is not None and hint.startswith("GRANT pg_read_all_stats TO planmon")


def test_too_old_server() -> None:
    assert runtime_status(server_version_num=120010, server_version="12.10")[0] is AspectState.UNAVAILABLE


def test_forcing_hint_mentions_pg_hint_plan_only_when_installed() -> None:
    def forcing_hint(**changes: Any) -> str:
        status = build_capabilities(ServerInfo(server_row(**changes))).aspects[Aspect.FORCING_STATE]
        assert status.state is AspectState.NOT_APPLICABLE
        return status.hint or ""

    assert "pg_hint_plan" not in forcing_hint()
    assert "pg_hint_plan" in forcing_hint(hint_plan_installed=True)
    assert "pg_hint_plan" in forcing_hint(shared_preload_libraries="pg_stat_statements, pg_hint_plan")


def test_pg16_details() -> None:
    capabilities = build_capabilities(ServerInfo(server_row(server_version_num=160002)))
    assert capabilities.details["generic_plans"] == "explain_generic_plan"


# ---------------------------------------------------------------------------------------------
# Error reasons


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            EngineErrorReason.TIMEOUT,
        ),
        (
            psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
            EngineErrorReason.TIMEOUT,
        ),
        (psycopg.errors.InsufficientPrivilege("permission denied"), EngineErrorReason.PERMISSION_DENIED),
        (psycopg.OperationalError("connection failed: Connection refused"), EngineErrorReason.UNREACHABLE),
        (
            psycopg.OperationalError('FATAL:  password authentication failed for user "x"'),
            EngineErrorReason.AUTHENTICATION,
        ),
        (
            psycopg.OperationalError('FATAL:  database "nope" does not exist'),
            EngineErrorReason.AUTHENTICATION,
        ),
        (psycopg.OperationalError("something else entirely"), EngineErrorReason.UNREACHABLE),
        (psycopg.errors.UndefinedTable('relation "t" does not exist'), EngineErrorReason.QUERY_FAILED),
    ],
)
def test_error_reasons(error: BaseException, reason: EngineErrorReason) -> None:
    assert error_reason(error) is reason


# ---------------------------------------------------------------------------------------------
# Executed plans from auto_explain's log


def test_an_auto_explain_message_becomes_a_plan_document_without_its_literals() -> None:
    message = (
        'duration: 9.512 ms  plan:\n{\n  "Query Text": "SELECT sum(total) FROM orders WHERE customer = 1",\n'
        '  "Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Filter": "(customer = 1)"}\n}'
    )
    body = auto_explain_document(message)
    assert body is not None
    (document,) = json.loads(body)
    assert document["Plan"]["Node Type"] == "Seq Scan" and "Query Text" not in document


@pytest.mark.parametrize(
    "message",
    [
        'duration: 0.1 ms  plan:\n{"Query Text": "EXPLAIN SELECT 1", "Plan": {"Node Type": "Result"}}',
        'duration: 0.1 ms  plan:\n{"Query Text": "SELECT /* planmon */ 1", "Plan": {"Node Type": "Result"}}',
        "duration: 0.1 ms  statement: SELECT 1",
        'duration: 0.1 ms  plan:\n{"Query Text": "SELECT 1", "Plan": ',  # cut short
    ],
)
def test_explains_planmon_s_own_statements_and_broken_messages_are_not_executed_plans(message: str) -> None:
    assert auto_explain_document(message) is None


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"server_version_num": 140000}, "15+"),
        ({"auto_explain_format": None}, "not loaded"),
        ({"auto_explain_format": "text"}, "log_format"),
        ({"log_destination": "stderr"}, "jsonlog"),
        ({"logging_collector": "off"}, "jsonlog"),
        ({"reads_server_log": False}, "pg_read_file"),
    ],
)
def test_executed_plans_say_why_they_cannot_be_read(changes: dict[str, Any], why: str) -> None:
    ready = {"auto_explain_format": "json", "log_destination": "stderr,jsonlog", "logging_collector": "on",
             "reads_server_log": True, "server_version_num": 180000}  # fmt: skip
    assert executed_plans_unavailable(ServerInfo(server_row(**ready))) is None
    reason = executed_plans_unavailable(ServerInfo(server_row(**{**ready, **changes})))
    assert reason is not None and why in reason and "EXPLAIN's estimates" in reason
