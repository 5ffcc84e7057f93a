from __future__ import annotations

import pytest

from planmon.errors import ConfigError
from planmon.sqlguard import check_read_only, classify


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("/* planmon */ SELECT calls FROM pg_stat_statements WHERE dbid = %(db)s", "postgres"),
        ("SELECT TOP (10) plan_id FROM sys.query_store_plan", "tsql"),
        ("WITH t AS (SELECT 1 AS x) SELECT x FROM t UNION ALL SELECT 2", "postgres"),
        ("SELECT DIGEST FROM performance_schema.events_statements_summary_by_digest LIMIT 10", "mysql"),
    ],
)
def test_queries_are_read_only(sql: str, dialect: str) -> None:
    assert classify(sql, dialect=dialect) == (True, "read-only query")


@pytest.mark.parametrize(
    ("sql", "dialect", "reason"),
    [
        ("DELETE FROM orders", "postgres", "DELETE statement"),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "postgres", "contains DELETE"),
        ("SELECT * INTO copy FROM orders", "tsql", "contains INTO"),
        ("SELECT * FROM orders FOR UPDATE", "postgres", "row locks"),
        ("EXEC sp_configure", "tsql", "EXECUTE statement"),
        ("SET statement_timeout = 0", "postgres", "not a query"),
        ("SELECT FROM WHERE (", "postgres", "cannot be parsed"),
        ("", "postgres", "holds no statement"),
    ],
)
def test_writes_and_unparseable_text_are_refused_with_a_reason(sql: str, dialect: str, reason: str) -> None:
    read_only, why = classify(sql, dialect=dialect)
    assert not read_only and reason in why


def test_check_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"probe\.yaml: refused, the SQL is a DROP"):
        check_read_only("DROP TABLE orders", dialect="postgres", source="probe.yaml")
