"""include/sql/mysql: every file loads (header, marker, read-only), and the rules the adapter relies on hold.

Also the adapter's pure helpers that decide what SQL is sent: placeholder conversion, the check a sample
text passes before it is EXPLAINed, error numbers -> reasons, and index definitions from STATISTICS rows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from planmon.engines.mysql.adapter import (
    OWN_QUERY_DIGEST_PREFIX,
    build_index_definitions,
    pyformat,
    unexplainable_reason,
)
from planmon.engines.mysql.dialect import error_reason
from planmon.errors import EngineErrorReason
from planmon.sql import MARKER, load_sql, sql_root

SQL_FILES = sorted((sql_root() / "mysql").glob("*.sql"))
NAMES = [path.stem for path in SQL_FILES]


def test_the_adapter_queries_are_all_there() -> None:
    expected = {
        "server_info",
        "consumers",
        "digest_table_status",
        "own_statement_digests",
        "digest_stats",
        "digest_stats_cpu",
        "digest_samples",
        "history_samples",
        "index_columns",
        "explain_probe",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_file_loads_with_header_marker_and_read_only(name: str) -> None:
    statement = load_sql("mysql", name)  # checks header lines, marker and read-only (sqlguard)
    assert statement.startswith(MARKER)


@pytest.mark.parametrize("name", NAMES)
def test_every_query_starts_with_the_planmon_alias(name: str) -> None:
    """The alias is what makes planmon's queries recognisable in DIGEST_TEXT (comments are dropped)."""
    statement = load_sql("mysql", name)
    after_marker = " ".join(statement.removeprefix(MARKER).split())
    assert after_marker.startswith("SELECT planmon."), after_marker[:60]
    assert OWN_QUERY_DIGEST_PREFIX == "SELECT `planmon` ."


@pytest.mark.parametrize("path", SQL_FILES, ids=NAMES)
def test_header_names_a_source_a_version_and_a_permission(path: Path) -> None:
    header = path.read_text(encoding="utf-8").partition(MARKER)[0]
    assert all(line.startswith("--") for line in header.strip().splitlines())
    assert re.search(r"-- minimum version: (MySQL|MariaDB) \d", header)
    assert re.search(r"-- permission: \S", header)


@pytest.mark.parametrize("name", NAMES)
def test_values_are_bound_never_formatted(name: str) -> None:
    statement = load_sql("mysql", name)
    assert "{" not in statement and "%s" not in statement and "%(" not in statement
    converted = pyformat(statement)
    assert not re.search(r"(?<![\w:]):[A-Za-z_]", re.sub(r"'[^']*'", "''", converted))


def test_placeholders_become_pyformat_outside_quotes_only() -> None:
    sql = "SELECT a FROM t WHERE b = :name AND c LIKE 'x:y%' AND `d:e` = :other LIMIT :row_limit"
    assert pyformat(sql) == (
        "SELECT a FROM t WHERE b = %(name)s AND c LIKE 'x:y%' AND `d:e` = %(other)s LIMIT %(row_limit)s"
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("SELECT * FROM orders WHERE id = 1", None),
        ("/* app */ select o.id from orders o where o.id = 'a;b'", None),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", None),
        ("UPDATE orders SET total = 0 WHERE id = 1", None),
        ("SELECT 1;", None),
        ("SELECT 1; DROP TABLE orders", "more than one statement"),
        ("SELECT /*!; DROP TABLE orders */ 1", "executable comment"),
        ("SELECT /*M!100000 1 */", "executable comment"),
        ("CREATE TABLE t (a int)", "has no plan"),
        ("ANALYZE SELECT * FROM orders", "has no plan"),
        ("SELECT * FROM orders WHERE name = 'trunc", "cannot be read"),
        ("   ", "empty"),
    ],
)
def test_only_single_explainable_statements_are_explained(text: str, why: str | None) -> None:
    reason = unexplainable_reason(text)
    if why is None:
        assert reason is None
    else:
        assert reason is not None and why in reason


@pytest.mark.parametrize(
    ("errno", "reason"),
    [
        (2003, EngineErrorReason.UNREACHABLE),
        (2013, EngineErrorReason.UNREACHABLE),
        (1045, EngineErrorReason.AUTHENTICATION),
        (1142, EngineErrorReason.PERMISSION_DENIED),
        (1227, EngineErrorReason.PERMISSION_DENIED),
        (1044, EngineErrorReason.PERMISSION_DENIED),
        (3024, EngineErrorReason.TIMEOUT),
        (1969, EngineErrorReason.TIMEOUT),
        (1064, EngineErrorReason.QUERY_FAILED),
        (None, EngineErrorReason.QUERY_FAILED),
    ],
)
def test_error_numbers_map_to_reasons(errno: int | None, reason: EngineErrorReason) -> None:
    assert error_reason(errno) is reason


def _part(table: str, index: str, seq: int, column: str | None, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "table_schema": "shop",
        "table_name": table,
        "index_name": index,
        "non_unique": 1,
        "seq_in_index": seq,
        "column_name": column,
        "sub_part": None,
        "collation": "A",
        "index_type": "BTREE",
    }
    row.update(extra)
    return row


def test_index_definitions_from_statistics_rows() -> None:
    rows = [
        _part("orders", "PRIMARY", 1, "id", non_unique=0),
        _part("orders", "ix_name", 1, "name", sub_part=10),
        _part("orders", "ix_name", 2, "created", collation="D"),
        _part("orders", "ux_code", 1, "code", non_unique=0),
        _part("orders", "ft_note", 1, "note", index_type="FULLTEXT", collation=None),
        _part("orders", "ix_hash", 1, "k", index_type="HASH"),
        _part("orders", "ix_expr", 1, None),  # functional key part: left out
        _part("odd`name", "ix", 1, "a`b"),
    ]
    definitions = {d.index_name: d for d in build_index_definitions("shop", rows)}
    assert definitions["PRIMARY"].definition == "ALTER TABLE `shop`.`orders` ADD PRIMARY KEY (`id`)"
    assert definitions["PRIMARY"].is_primary and definitions["PRIMARY"].is_unique
    assert definitions["ix_name"].definition == (
        "CREATE INDEX `ix_name` ON `shop`.`orders` (`name`(10), `created` DESC)"
    )
    assert definitions["ux_code"].definition == "CREATE UNIQUE INDEX `ux_code` ON `shop`.`orders` (`code`)"
    assert definitions["ux_code"].is_unique and not definitions["ux_code"].is_primary
    assert definitions["ft_note"].definition == "CREATE FULLTEXT INDEX `ft_note` ON `shop`.`orders` (`note`)"
    assert definitions["ix_hash"].definition.endswith("(`k`) USING HASH")
    assert "ix_expr" not in definitions
    assert definitions["ix"].definition == "CREATE INDEX `ix` ON `shop`.`odd``name` (`a``b`)"
    assert definitions["ix"].table == "shop.odd`name"
