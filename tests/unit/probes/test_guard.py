"""The probe guard: read-only queries pass; writes, several statements and side-effect calls do not."""

from __future__ import annotations

import pytest

from planmon.sql import load_sql
from planmon.sqlguard import classify, classify_probe


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgres", "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"),
        ("postgres", "WITH t AS (SELECT 1 AS a) SELECT a FROM t"),
        ("postgres", "SELECT pg_sleep(0.1)"),
        ("mysql", "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Sleep'"),
        ("tsql", "SELECT TOP 1 name FROM sys.databases"),
    ],
)
def test_read_only_queries_pass(dialect: str, sql: str) -> None:
    assert classify_probe(sql, dialect=dialect) == (True, "read-only query")


@pytest.mark.parametrize(
    ("dialect", "sql", "reason"),
    [
        ("postgres", "DELETE FROM orders", "is a DELETE statement"),
        ("postgres", "UPDATE orders SET total = 0", "is a UPDATE statement"),
        ("postgres", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "contains DELETE"),
        ("postgres", "SELECT * INTO copy_of_orders FROM orders", "contains INTO"),
        ("postgres", "SELECT * FROM orders FOR UPDATE", "takes row locks"),
        ("postgres", "SELECT 1; SELECT 2", "holds 2 statements"),
        ("postgres", "SELECT 1; DROP TABLE orders", "is a DROP statement"),
        (
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            "calls pg_terminate_backend()",
        ),
        ("postgres", "SELECT pg_catalog.PG_CANCEL_BACKEND(42)", "calls pg_cancel_backend()"),
        ("postgres", "SELECT nextval('orders_id_seq')", "calls nextval()"),
        (
            "postgres",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "calls set_config()",
        ),
        ("postgres", "SELECT pg_advisory_lock(1)", "calls pg_advisory_lock()"),
        ("postgres", "SELECT * FROM dblink('other', 'DELETE FROM t') AS x(a int)", "calls dblink()"),
        ("postgres", "SELECT pg_reload_conf()", "calls pg_reload_conf()"),
        ("postgres", "COPY orders TO STDOUT", "not a query"),
        ("postgres", "SET statement_timeout = 0", "not a query"),
        ("mysql", "SELECT GET_LOCK('x', 10)", "calls get_lock()"),
        ("mysql", "SELECT LOAD_FILE('/etc/passwd')", "calls load_file()"),
        ("mysql", "INSERT INTO t VALUES (1)", "is a INSERT statement"),
        ("tsql", "SELECT * FROM OPENQUERY(remote, 'SELECT 1')", "calls openquery()"),
        ("tsql", "EXEC sp_who2", "not a query"),
        ("postgres", "SELEC 1", "cannot be parsed as postgres SQL"),
        ("postgres", "", "holds no statement"),
    ],
)
def test_writes_and_side_effects_are_refused_with_the_reason(dialect: str, sql: str, reason: str) -> None:
    read_only, why = classify_probe(sql, dialect=dialect)
    assert not read_only
    assert reason in why


def test_planmon_session_setup_keeps_the_plain_check() -> None:
    """planmon's own session setup calls set_config on purpose; only probes refuse it."""
    setup = load_sql("postgres", "session_setup")
    assert classify(setup, dialect="postgres")[0]
    assert not classify_probe(setup, dialect="postgres")[0]
