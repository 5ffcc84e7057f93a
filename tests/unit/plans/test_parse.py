"""parse.py: engine detection from content, forced engines, errors that say what to do."""

from __future__ import annotations

import codecs
import importlib.util
from pathlib import Path

import pytest

from planmon.errors import ConfigError, PlanParseError
from planmon.plans import parse as parse_module
from planmon.plans.parse import detect_engine, engine_name, parse_plan, parse_plan_file

SHOWPLAN = (
    '<?xml version="1.0" encoding="utf-16"?>\n'
    '<ShowPlanXML xmlns="http://schemas.microsoft.com/sqlserver/2004/07/showplan" Version="1.6">'
    "<BatchSequence><Batch><Statements>"
    '<StmtSimple StatementText="SELECT 1" StatementId="1" StatementType="SELECT" QueryPlanHash="0x01">'
    '<QueryPlan><RelOp NodeId="0" PhysicalOp="Constant Scan" LogicalOp="Constant Scan" EstimateRows="1">'
    "<OutputList/><ConstantScan/></RelOp></QueryPlan></StmtSimple>"
    "</Statements></Batch></BatchSequence></ShowPlanXML>"
)
PG_JSON = '[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Alias": "t", "Total Cost": 1.0}}]'
PG_TEXT = "Seq Scan on t  (cost=0.00..35.50 rows=2550 width=4)\n"
MYSQL_JSON = '{"query_block": {"select_id": 1, "table": {"table_name": "t", "access_type": "ALL"}}}'


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


@pytest.mark.parametrize(
    ("text", "engine"),
    [
        (SHOWPLAN, "sqlserver"),
        ("  \n" + SHOWPLAN.split("\n", 1)[1], "sqlserver"),
        (PG_JSON, "postgres"),
        ('{"Plan": {"Node Type": "Result"}}', "postgres"),
        ("                 QUERY PLAN\n-----------\n " + PG_JSON + "\n(1 row)\n", "postgres"),
        ("╔═══╗\n║ QUERY PLAN ║\n╠═══╣\n║ " + PG_JSON + " ║\n╚═══╝\n", "postgres"),
        (PG_TEXT, "postgres"),
        ('"Limit  (cost=1.27..3878.21 rows=5 width=172)"\n', "postgres"),
        ("Append (actual time=102.409..302.675 rows=3 loops=1)\n  ->  Result\n", "postgres"),
        (MYSQL_JSON, "mysql"),
        ('{"query_block": {"table": {"table_name": "Plan"}}}', "mysql"),
    ],
)
def test_detect_engine(text: str, engine: str) -> None:
    assert detect_engine(text) == engine


@pytest.mark.parametrize("text", ["", "hello world", '{"rows": []}', "id,name\n1,x\n"])
def test_unknown_content_says_what_is_supported(text: str) -> None:
    with pytest.raises(PlanParseError) as excinfo:
        detect_engine(text, source="mystery.txt")
    message = str(excinfo.value)
    assert "mystery.txt" in message
    assert "--engine" in message
    assert "SQL Server" in message and "PostgreSQL" in message and "MySQL" in message


def test_other_xml_is_not_a_showplan() -> None:
    with pytest.raises(PlanParseError, match="not a SQL Server showplan"):
        detect_engine('<?xml version="1.0"?><root><a/></root>')


def test_markers_beyond_the_head_are_still_found() -> None:
    assert detect_engine("-- comment line\n" * 10_000 + PG_TEXT) == "postgres"


@pytest.mark.parametrize(
    ("name", "engine"),
    [("sqlserver", "sqlserver"), ("MSSQL", "sqlserver"), ("postgresql", "postgres"), ("mariadb", "mysql")],
)
def test_engine_names_and_aliases(name: str, engine: str) -> None:
    assert engine_name(name) == engine


def test_unknown_engine_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_plan(PG_TEXT, engine="oracle")
    assert "oracle" in str(excinfo.value)
    for name in ("sqlserver", "postgres", "mysql"):
        assert name in str(excinfo.value)


def test_missing_parser_module_is_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(parse_module.PARSER_MODULES, "mysql", "planmon.plans.no_such_parser")
    with pytest.raises(PlanParseError, match="not available"):
        parse_plan(MYSQL_JSON)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanParseError, match="cannot read") as excinfo:
        parse_plan_file(tmp_path / "absent.sqlplan")
    assert "absent.sqlplan" in str(excinfo.value)


def test_showplan_in_utf16_with_bom_and_wrong_declaration() -> None:
    _needs("planmon.plans.showplan")
    for data in (codecs.BOM_UTF16_LE + SHOWPLAN.encode("utf-16-le"), SHOWPLAN.encode("utf-8")):
        plan = parse_plan(data, source="x.sqlplan")
        assert plan.engine == "sqlserver"
        assert plan.source == "x.sqlplan"
        assert [s.engine_plan_hash for s in plan.statements] == ["0x01"]


def test_postgres_dispatch_and_forced_engine() -> None:
    _needs("planmon.plans.postgres")
    assert parse_plan(PG_JSON).engine == "postgres"
    assert parse_plan(PG_TEXT.encode(), engine="postgresql").engine == "postgres"


def test_forcing_the_wrong_engine_fails_cleanly() -> None:
    _needs("planmon.plans.showplan")
    with pytest.raises(PlanParseError):
        parse_plan(PG_JSON, engine="sqlserver")


def test_parse_plan_file_sets_source(tmp_path: Path) -> None:
    _needs("planmon.plans.postgres")
    path = tmp_path / "plan.txt"
    path.write_text(PG_TEXT)
    assert parse_plan_file(path).source == str(path)


def test_showplan_bytes_and_their_text_give_the_same_plan() -> None:
    """Showplan bytes skip the decode (libxml2 reads them); the plan must be the one the text gives."""
    _needs("planmon.plans.showplan")
    encodings = (
        codecs.BOM_UTF16_LE + SHOWPLAN.encode("utf-16-le"),
        codecs.BOM_UTF8 + SHOWPLAN.encode("utf-8"),
        SHOWPLAN.encode("utf-8"),  # declares utf-16, stored as UTF-8
    )
    for data in encodings:
        assert parse_plan(data) == parse_plan(SHOWPLAN)


def test_showplan_bytes_that_are_not_text_report_the_decode_error() -> None:
    _needs("planmon.plans.showplan")
    with pytest.raises(PlanParseError, match="not valid utf-8"):
        parse_plan(SHOWPLAN.encode("utf-8").replace(b"SELECT 1", b"SELECT \xff"))
