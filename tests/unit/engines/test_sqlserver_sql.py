"""The T-SQL of include/sql/sqlserver: every file loads (header, marker, read-only), parses as T-SQL,
marks itself inside the statement, never converts plans to xml, and binds values only as parameters."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import sqlglot
from pymssql import _mssql
from sqlglot import exp

from planmon.engines.sqlserver import adapter as sqlserver
from planmon.engines.sqlserver.dialect import bind
from planmon.sql import MARKER, REQUIRED_HEADERS, load_sql, sql_root

SQL_DIR = sql_root() / "sqlserver"
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
NAMES = [path.stem for path in SQL_FILES]
_XML_CONVERSION = re.compile(r"(?is)\b(?:try_)?(?:cast|convert)\s*\((?:[^()]|\([^()]*\))*\bxml\b")

# One value per parameter name any file uses, of the type the adapter binds.
SAMPLE_VALUES: dict[str, object] = {
    "row_limit": 5000,
    "window_start": datetime(2026, 11, 23, 7, 0),
    "window_end": datetime(2026, 11, 23, 7, 15),
    "plan_ids": [11, 12, 13],
    "query_plan_hashes": [bytearray.fromhex("0102030405060708"), bytearray.fromhex("2122232425262728")],
    "tables": ["[dbo].[Orders]", "[sales].[Order Lines]"],
    "databases": ["Sales", "O'Brien"],
    "all_databases": 0,
    "query_id": 7,
    "query_ids": [7, 8],
}


def test_every_file_is_used_by_the_adapter() -> None:
    """Used by the collection adapter, by remediation (which reads forcing state before acting), or by
    the probe login check."""
    from planmon.engines.sqlserver import probe_privileges, remediation

    adapter_source = Path(sqlserver.__file__).read_text(encoding="utf-8")
    adapter_source += Path(remediation.__file__).read_text(encoding="utf-8")
    adapter_source += Path(probe_privileges.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'"([a-z_0-9]+)"', adapter_source)) & set(NAMES)
    assert set(NAMES) == used, f"files no code uses: {set(NAMES) - used}"


@pytest.mark.parametrize("path", SQL_FILES, ids=NAMES)
def test_file_has_header_marker_and_is_read_only(path: Path) -> None:
    statement = load_sql("sqlserver", path.stem)  # checks header lines, marker and read-only
    header = path.read_text(encoding="utf-8").partition(MARKER)[0]
    for line in REQUIRED_HEADERS:
        assert re.search(rf"(?m)^--\s*{re.escape(line)}\s*\S", header), f"{path.name}: '{line}' has no value"
    assert statement.startswith(MARKER)


@pytest.mark.parametrize("name", NAMES)
def test_file_parses_as_one_tsql_statement(name: str) -> None:
    statements = [s for s in sqlglot.parse(load_sql("sqlserver", name), read="tsql") if s is not None]
    assert len(statements) == 1
    assert isinstance(statements[0], exp.Select | exp.Union)


@pytest.mark.parametrize("name", NAMES)
def test_marker_is_repeated_inside_the_statement(name: str) -> None:
    """Query Store ignores comments before a statement, so the marker must also sit inside it."""
    statement = load_sql("sqlserver", name)
    inside = statement[len(MARKER) :].lstrip()
    assert re.match(rf"(?i)(SELECT|WITH)\s+{re.escape(MARKER)}", inside), name


@pytest.mark.parametrize("name", NAMES)
def test_no_file_converts_to_xml(name: str) -> None:
    """Plans nested deeper than 128 levels cannot be converted to xml (error 6335): read them as text."""
    text = (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
    statement = load_sql("sqlserver", name)
    assert not _XML_CONVERSION.search(text)
    tree = sqlglot.parse_one(statement, read="tsql")
    for node in tree.find_all(exp.Cast, exp.TryCast):
        assert not node.to.is_type(exp.DataType.Type.XML), f"{name}: {node.sql('tsql')}"


@pytest.mark.parametrize("name", NAMES)
def test_values_are_bound_and_the_bound_statement_is_still_tsql(name: str) -> None:
    statement = load_sql("sqlserver", name)
    assert "%s" not in statement and "{" not in statement, "values must be bound, never formatted in"
    used = set(re.findall(r"(?<![@\w])@([A-Za-z_]\w*)", statement))
    assert used <= set(SAMPLE_VALUES), f"no sample value for {used - set(SAMPLE_VALUES)}"
    text, params = bind(statement, {key: SAMPLE_VALUES[key] for key in used})
    assert not re.search(r"(?<![@\w])@[A-Za-z_]", text)
    rendered = _mssql.substitute_params(text, params) if params else text.encode()
    sqlglot.parse_one(rendered.decode("utf-8"), read="tsql")  # what pymssql sends still parses


def test_in_lists_bind_one_placeholder_per_value() -> None:
    text, params = bind("SELECT 1 WHERE a IN (@ids) AND b = @b", {"ids": [1, 2, 3], "b": "x"})
    assert text == "SELECT 1 WHERE a IN (%(ids_0)s, %(ids_1)s, %(ids_2)s) AND b = %(b)s"
    assert params == {"ids_0": 1, "ids_1": 2, "ids_2": 3, "b": "x"}


def test_quotes_in_values_are_escaped_by_the_driver_not_by_planmon() -> None:
    text, params = bind("SELECT 1 WHERE n IN (@names)", {"names": ["O'Brien"]})
    assert "O'Brien" not in text
    assert b"N'O''Brien'" in _mssql.substitute_params(text, params)


@pytest.mark.parametrize(
    ("params", "message"),
    [({}, "no value given for @ids"), ({"ids": []}, "@ids is an empty list")],
)
def test_binding_refuses_missing_or_empty_values(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bind("SELECT 1 WHERE a IN (@ids)", params)


def test_system_variables_are_not_parameters() -> None:
    assert bind("SELECT @@SPID", {}) == ("SELECT @@SPID", {})
