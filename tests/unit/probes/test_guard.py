"""The probe guard (engines/<engine>/probe_guard.py): the corpus in guard_corpus/ of probes that must
be refused (every class, many disguises, three engines) and real monitoring probes that must pass;
deny families over every allow-list; mutations of refused probes never pass."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from planmon.config import load_settings
from planmon.engines import get_engine
from planmon.engines.postgres import probe_guard as pg_guard
from planmon.model import Target
from planmon.model.probes import ProbeDefinition
from planmon.probes.runner import guard, run_probe
from planmon.sql import load_sql
from planmon.sqlguard import classify

CORPUS = Path(__file__).with_name("guard_corpus")
ENGINES = ("postgres", "mysql", "sqlserver")
CLASSES = {
    "string_executor", "session_signal", "files", "settings", "locks", "sequences", "stats_reset",
    "wal_messages", "other_servers", "writes", "multiple_statements", "unknown_function", "unparseable",
    "lexical",  # what a server reads differently from the guard's parser (MySQL: backslashes, /*! */)
}  # fmt: skip
# What a refusal tells the DBA to do (every reason carries one of these after naming the construct).
ADVICE = (
    "probes may only read", "a probe is exactly one", "remove the", "use a built-in", "use the built-in",
    "use NOLOCK", "cast to a built-in", "write the probe", "probe each server", "end the probe",
)  # fmt: skip


def _refused_cases() -> list[Any]:
    cases = []
    for engine in ENGINES:
        loaded = yaml.safe_load((CORPUS / f"refused_{engine}.yaml").read_text(encoding="utf-8"))
        for index, case in enumerate(loaded["cases"]):
            cases.append(pytest.param(engine, case, id=f"{engine}-{case['class']}-{index}"))
    return cases


def _accepted_cases(filename: str) -> list[Any]:
    loaded = yaml.safe_load((CORPUS / filename).read_text(encoding="utf-8"))
    return [
        pytest.param(engine, sql, id=f"{engine}-{name}")
        for engine, probes in loaded.items()
        for name, sql in probes.items()
    ]


REFUSED = _refused_cases()
ACCEPTED = _accepted_cases("accepted.yaml")
SYNTAX = _accepted_cases("accepted_syntax.yaml")


def classify_probe(engine: str, sql: str) -> tuple[bool, str]:
    return get_engine(engine).classify_probe(sql)


@pytest.mark.parametrize(("engine", "case"), REFUSED)
def test_corpus_probe_is_refused_naming_the_construct(engine: str, case: dict[str, str]) -> None:
    accepted, reason = classify_probe(engine, case["sql"])
    assert not accepted
    assert case["reason"] in reason
    assert any(advice in reason for advice in ADVICE), reason


@pytest.mark.parametrize(("engine", "sql"), ACCEPTED + SYNTAX)
def test_monitoring_probe_is_accepted(engine: str, sql: str) -> None:
    assert classify_probe(engine, sql) == (True, "read-only query")


def test_the_corpus_covers_every_class_on_every_engine_it_applies_to() -> None:
    by_engine: dict[str, set[str]] = {engine: set() for engine in ENGINES}
    for param in REFUSED:
        engine, case = param.values
        assert case["class"] in CLASSES, case
        by_engine[engine].add(case["class"])
    assert len(REFUSED) >= 100 and len(ACCEPTED) >= 50
    assert by_engine["postgres"] == CLASSES - {"lexical"}  # pglast is PostgreSQL's own lexer
    mysql = {"locks", "files", "settings", "sequences", "writes", "unknown_function", "lexical"}
    assert mysql <= by_engine["mysql"]
    sqlserver = {"other_servers", "string_executor", "locks", "writes", "unknown_function"}
    assert sqlserver <= by_engine["sqlserver"]


def test_the_two_attack_probes_of_issue_16_are_refused() -> None:
    in_a_string = (
        "SELECT length(query_to_xml('SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid()', true, false, '')::text)"
    )
    escaped = (
        'SELECT count(*) FILTER (WHERE U&"\\0070g_terminate_backend"(pid)) FROM pg_stat_activity '
        "WHERE pid <> pg_backend_pid()"
    )
    assert classify_probe("postgres", in_a_string) == (
        False,
        "calls query_to_xml(), which executes SQL text or reads whole tables by name "
        "(a query inside a string escapes the guard); probes may only read",
    )
    accepted, reason = classify_probe("postgres", escaped)
    assert not accepted and reason.startswith("calls pg_terminate_backend(), which signals")


@pytest.mark.parametrize(
    "name",
    [
        "query_to_xml", "table_to_xml", "database_to_xmlschema", "dblink_connect_u", "dblink_open",
        "pg_stat_reset_subscription_stats", "pg_ls_logdir", "pg_stat_file", "lo_get", "set_config",
        "pg_logical_emit_message", "pg_notify", "txid_current", "pg_current_xact_id", "nextval",
        "pg_advisory_lock", "pg_terminate_backend", "pg_read_file",
    ],
)  # fmt: skip
def test_no_acting_function_is_on_the_postgres_allow_list(name: str) -> None:
    assert name not in pg_guard.allowed_functions()


def test_the_shipped_postgres_list_holds_no_name_of_a_deny_family() -> None:
    """The generator drops deny-family names; a hand edit that re-adds one still cannot allow it."""
    listed = pg_guard.catalog_functions()
    assert len(listed) > 1500  # the whole catalog's immutable and stable functions, not a sample
    assert [name for name in listed if pg_guard.denied(name, pg_guard.DENY)] == []
    assert {"count", "now", "pg_size_pretty", "pg_wal_lsn_diff", "current_setting"} <= listed


def test_deny_families_win_over_a_deployments_allow_list() -> None:
    extra = ("pg_terminate_backend", "pg_catalog.set_config", "GET_LOCK", "OPENQUERY")
    pg = get_engine("postgres")
    assert not pg.classify_probe("SELECT pg_terminate_backend(1)", extra_functions=extra)[0]
    assert not pg.classify_probe("SELECT pg_catalog.set_config('a', 'b', false)", extra_functions=extra)[0]
    assert not get_engine("mysql").classify_probe("SELECT GET_LOCK('a', 1)", extra_functions=extra)[0]
    sqlserver = get_engine("sqlserver")
    assert not sqlserver.classify_probe("SELECT * FROM OPENQUERY(s, 'x')", extra_functions=extra)[0]


def test_a_deployment_allows_a_reviewed_user_function_by_its_qualified_name() -> None:
    pg = get_engine("postgres")
    assert not pg.classify_probe("SELECT public.orders_health()")[0]
    assert pg.classify_probe("SELECT public.orders_health()", extra_functions=["public.orders_health"])[0]
    assert not pg.classify_probe("SELECT other.orders_health()", extra_functions=["public.orders_health"])[0]
    mysql = get_engine("mysql")
    assert mysql.classify_probe("SELECT shop.health()", extra_functions=["shop.health"])[0]
    xml_method = "SELECT qp.query_plan.value('(//@x)[1]', 'float') FROM sys.dm_exec_query_plan(0x01) AS qp"
    assert not get_engine("sqlserver").classify_probe(xml_method)[0]
    assert get_engine("sqlserver").classify_probe(xml_method, extra_functions=["qp.query_plan.value"])[0]
    assert get_engine("sqlserver").classify_probe("SELECT dbo.health()", extra_functions=["dbo.health"])[0]


def test_the_setting_reaches_the_guard() -> None:
    settings_ = load_settings({"PLANMON_PROBE_ALLOWED_FUNCTIONS": " public.orders_health , shop.health,"})
    assert settings_.probe_extra_functions == ("public.orders_health", "shop.health")
    assert load_settings({}).probe_extra_functions == ()
    probe = ProbeDefinition.model_validate(
        {"name": "health", "sql": "SELECT public.orders_health()", "critical": 1}
    )
    assert guard(probe, "postgres", settings_.probe_extra_functions) is None
    refusal = guard(probe, "postgres")
    assert refusal is not None and refusal.startswith("refused: the SQL calls public.orders_health()")


def test_planmon_session_setup_keeps_the_plain_check() -> None:
    """planmon's own session setup calls set_config on purpose; only probes refuse it."""
    setup = load_sql("postgres", "session_setup")
    assert classify(setup, dialect="postgres")[0]
    bound = re.sub(r"%\(\w+\)s", "'1'", setup)  # the driver's placeholders, as values
    accepted, reason = classify_probe("postgres", bound)
    assert not accepted and "set_config()" in reason


# -- mutations of refused probes: never accepted ---------------------------------------------------

PG_ACTING = (
    "pg_terminate_backend", "pg_cancel_backend", "set_config", "query_to_xml", "pg_advisory_lock",
    "nextval", "pg_stat_reset", "pg_logical_emit_message", "pg_read_file", "lo_get", "dblink_exec",
)  # fmt: skip
SPACES = st.sampled_from([" ", "  ", "\n", "\t", " /* x */ ", " /* a /* nested */ b */ ", " -- c\n"])


def _random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@st.composite
def pg_function_spelling(draw: st.DrawFn, name: str) -> str:
    style = draw(st.sampled_from(["plain", "case", "quoted", "unicode", "uescape"]))
    if style == "plain":
        return name
    if style == "case":
        return _random_case(draw, name)  # unquoted: folded to lower case by the parser
    if style == "quoted":
        return f'"{name}"'
    escaped = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    mark = "\\" if style == "unicode" else "!"
    body = "".join(f"{mark}{ord(c):04x}" if flip else c for c, flip in zip(name, escaped, strict=True))
    return f'U&"{body}"' + (" UESCAPE '!'" if style == "uescape" else "")


@st.composite
def pg_mutated_call(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(PG_ACTING))
    spelled = draw(pg_function_spelling(name))
    schema = draw(st.sampled_from(["", "pg_catalog.", '"pg_catalog".', "PG_CATALOG.", "public.", "x."]))
    gap = draw(SPACES)
    call = f"{schema}{spelled}{gap}(1)"
    wrap = draw(
        st.sampled_from(
            [
                "SELECT {c}",
                "SELECT count(*) FROM (SELECT {c} AS v) AS s",
                "WITH w AS (SELECT {c} AS v) SELECT * FROM w",
                "SELECT count(*) FILTER (WHERE ({c}) IS NOT NULL) FROM pg_class",
                "SELECT CAST({c} AS text)",
                "SELECT ({c})::text",
                "SELECT CASE WHEN true THEN {c} END",
                "SELECT 1 FROM pg_class ORDER BY {c}",
                "SELECT * FROM pg_class AS c, LATERAL (SELECT {c}) AS l",
                "SELECT * FROM {c} AS f",
                "SELECT query_to_xml('SELECT {c}', true, false, '')",
            ]
        )
    )
    return wrap.replace("{c}", call).replace(" ", draw(SPACES), draw(st.integers(0, 3)))


@settings(max_examples=300, deadline=None)
@given(pg_mutated_call())
def test_mutated_postgres_attacks_are_never_accepted(sql: str) -> None:
    assert not classify_probe("postgres", sql)[0], sql


MYSQL_ACTING = (
    "GET_LOCK", "RELEASE_LOCK", "LOAD_FILE", "BENCHMARK", "SYS_EXEC", "MASTER_POS_WAIT", "NEXTVAL",
)  # fmt: skip
TSQL_ACTING = ("OPENQUERY", "OPENROWSET", "OPENDATASOURCE", "OPENXML")


@st.composite
def sqlglot_mutated_call(
    draw: st.DrawFn, names: tuple[str, ...], quotes: tuple[str, str], schema: str
) -> str:
    name = _random_case(draw, draw(st.sampled_from(names)).lower())
    if draw(st.booleans()):
        name = f"{quotes[0]}{name}{quotes[1]}"
    if draw(st.booleans()):
        name = f"{schema}.{name}"
    call = f"{name}{draw(st.sampled_from(['', ' /* x */ ']))}('a', 1)"
    wrap = draw(
        st.sampled_from(
            [
                "SELECT {c}",
                "SELECT COUNT(*) FROM (SELECT {c} AS v) AS s",
                "WITH w AS (SELECT {c} AS v) SELECT * FROM w",
                "SELECT CAST({c} AS CHAR)",
                "SELECT CASE WHEN 1 = 1 THEN {c} END",
                "SELECT 1 FROM t WHERE 1 IN (SELECT {c})",
                "SELECT * FROM {c} AS f",
            ]
        )
    )
    return wrap.replace("{c}", call)


@settings(max_examples=150, deadline=None)
@given(sqlglot_mutated_call(MYSQL_ACTING, ("`", "`"), "sys"))
def test_mutated_mysql_attacks_are_never_accepted(sql: str) -> None:
    assert not classify_probe("mysql", sql)[0], sql


@settings(max_examples=150, deadline=None)
@given(sqlglot_mutated_call(TSQL_ACTING, ("[", "]"), "sys"))
def test_mutated_sqlserver_attacks_are_never_accepted(sql: str) -> None:
    assert not classify_probe("sqlserver", sql)[0], sql


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(ENGINES),
    st.sampled_from(
        [
            "DELETE FROM t",
            "WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * INTO x FROM t",
            "SELECT 1; DROP TABLE t",
            "UPDATE t SET a = 1",
        ]
    ),
    st.data(),
)
def test_mutated_writes_are_never_accepted(engine: str, sql: str, data: st.DataObject) -> None:
    mutated = _random_case(data.draw, sql)
    mutated = mutated.replace(" ", data.draw(SPACES), data.draw(st.integers(0, 4)))
    if data.draw(st.booleans()):
        mutated = f"/* leading */ {mutated}"
    assert not classify_probe(engine, mutated)[0], mutated


WRAPPINGS = (
    "SELECT count(*) FROM ({sql}) AS wrapped",
    "WITH wrapped AS ({sql}) SELECT 1 FROM wrapped",
    "SELECT 1 WHERE EXISTS ({sql})",
    "/* a probe */ {sql}",
    "\n\t{sql}\n",
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REFUSED), st.sampled_from(WRAPPINGS))
def test_corpus_probes_stay_refused_inside_subqueries_ctes_and_comments(param: Any, wrapping: str) -> None:
    engine, case = param.values
    if not re.match(r"\s*(SELECT|WITH|VALUES)\b", case["sql"], re.IGNORECASE) and "{sql})" in wrapping:
        wrapping = "/* a probe */ {sql}"  # (EXECUTE stmt) in a FROM would be a table named execute
    wrapped = wrapping.replace("{sql}", case["sql"])
    assert not classify_probe(engine, wrapped)[0], wrapped


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["SELECT 1", "SELECT name FROM sys.databases", "SELECT COUNT(*) FROM sys.objects o"]),
    st.sampled_from(["DELETE FROM t", "SHUTDOWN", "RECONFIGURE", "CHECKPOINT", "COMMIT", "KILL 52",
                     "UPDATE t SET a = 1", "DROP TABLE t", "TRUNCATE TABLE t", "DBCC FREEPROCCACHE",
                     "PRINT 1"]),
    st.sampled_from([" ", "\n", " /* x */ ", "\r\n\t"]),
    st.data(),
)  # fmt: skip
def test_a_second_sqlserver_statement_without_a_semicolon_is_never_accepted(
    query: str, second: str, gap: str, data: st.DataObject
) -> None:
    """SQL Server needs no ';' between statements: whatever follows a SELECT may be a statement."""
    sql = f"{query}{gap}{_random_case(data.draw, second)}"
    assert not classify_probe("sqlserver", sql)[0], sql


@pytest.mark.parametrize("engine", ENGINES)
def test_a_probe_nested_beyond_the_parsers_depth_is_refused_not_an_error(engine: str) -> None:
    deep = "SELECT " + "(SELECT " * 400 + "1" + ")" * 400
    assert classify_probe(engine, deep) == (
        False,
        "is nested too deeply for the guard to read; write the probe with fewer nested levels",
    )


@pytest.mark.parametrize(
    ("engine", "sql"),
    [
        ("sqlserver", "SELECT * FROM OPENQUERY(remote, 'EXEC sp_who')"),
        ("sqlserver", "SELECT 1 SHUTDOWN"),
        ("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"),
        ("mysql", "SELECT GET_LOCK('x', 1)"),
    ],
)
def test_a_refused_probe_never_connects_to_the_target(engine: str, sql: str) -> None:
    """The guard runs before a connection exists: on SQL Server nothing else stands in the way."""

    def no_connection(database: str | None) -> Any:
        raise AssertionError(f"the probe connected to {database!r}")

    target = Target(
        id=1, name="t", engine=engine, conn_id="c", environment=None, tags={}, databases=(), enabled=True,
        remediation_mode="propose", remediation_conn_id=None, created_at=datetime(2026, 1, 1),
        updated_at=datetime(2026, 1, 1),
    )  # fmt: skip
    definition = ProbeDefinition.model_validate({"name": "p", "sql": {engine: sql}, "critical": 1})
    outcome = run_probe(definition, target, no_connection, default_timeout_seconds=5, max_rows=10)
    assert outcome.status == "refused"
    assert outcome.error is not None and outcome.error.startswith("refused: the SQL ")
