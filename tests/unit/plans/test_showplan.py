"""planmon.plans.showplan: every real SQL Server plan parses, the tree is right, golden fixtures hold.

Golden summaries are regenerated with ``PLANMON_REGEN_GOLDEN=1 .venv/bin/pytest
tests/unit/plans/test_showplan.py`` and must then be checked by eye against the XML before a commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from planmon.errors import PlanParseError
from planmon.plans import showplan
from planmon.plans.hygiene import decode_plan_bytes
from planmon.plans.model import Plan, PlanNode, PlanStatement
from planmon.plans.rules import sqlserver as sqlserver_rules
from tests.harness.corpus import corpus_files

_HERE = Path(__file__).resolve()
_FIXTURES = _HERE.parents[2] / "fixtures" / "plans" / "sqlserver"
_NS = 'xmlns="http://schemas.microsoft.com/sqlserver/2004/07/showplan"'
_RELOP = re.compile(r"<(?:\w+:)?RelOp[\s>]")


def _corpus_files() -> list[str]:
    return corpus_files("sqlserver", (".sqlplan", ".xml"), exclude_parts=("schema",))


def _golden_cases() -> list[str]:
    return sorted(path.stem for path in _FIXTURES.glob("*.sqlplan"))


def _corpus_plan(corpus_dir: Path, name: str) -> Plan:
    path = corpus_dir / "sqlserver" / name
    return showplan.parse(path.read_bytes(), source=name)


def _node(statement: PlanStatement, node_id: int) -> PlanNode:
    return next(node for node in statement.nodes() if node.node_id == node_id)


def _document(statements: str, version: str = "1.564") -> str:
    return (
        f'<ShowPlanXML {_NS} Version="{version}" Build="16.0.4222.2"><BatchSequence><Batch><Statements>'
        f"{statements}</Statements></Batch></BatchSequence></ShowPlanXML>"
    )


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The compact golden summary: per statement its identity, shape and finding ids (``id@node``)."""
    return {
        "engine": plan.engine,
        "format_version": plan.format_version,
        "engine_version": plan.engine_version,
        "statements": [_statement_summary(statement) for statement in plan.statements],
    }


def _statement_summary(statement: PlanStatement) -> dict[str, Any]:
    return {
        "index": statement.index,
        "type": statement.statement_type,
        "is_actual": statement.is_actual,
        "query_hash": statement.engine_query_hash,
        "plan_hash": statement.engine_plan_hash,
        "dop": statement.dop,
        "cost": statement.estimated_cost,
        "operator_count": statement.operator_count,
        "operators": [
            [node.node_id, node.physical_op, node.object.qualified if node.object else None]
            for node in statement.nodes()
        ],
        "findings": [f"{finding.id}@{finding.node_id}" for finding in sqlserver_rules.find(statement)],
    }


# --- the whole corpus ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_plan_parses_completely(corpus_dir: Path, name: str) -> None:
    """Every file parses, and every RelOp of the document ends up as exactly one node of one statement."""
    data = (corpus_dir / "sqlserver" / name).read_bytes()
    plan = showplan.parse(data, source=name)
    assert plan.engine == "sqlserver"
    assert plan.statements, "no statements"
    assert [statement.index for statement in plan.statements] == list(range(len(plan.statements)))
    relops = len(_RELOP.findall(decode_plan_bytes(data)))
    assert sum(statement.operator_count for statement in plan.statements) == relops
    for statement in plan.statements:
        ids = [node.node_id for node in statement.nodes()]
        assert len(ids) == len(set(ids)), "node ids repeat within a statement"
        assert all(node.physical_op for node in statement.nodes())


def test_encoding_mismatch_plans_parse(corpus_dir: Path) -> None:
    folder = corpus_dir / "sqlserver" / "encoding-mismatch"
    files = sorted(path for path in folder.iterdir() if path.suffix in (".sqlplan", ".xml"))
    assert len(files) == 8
    for path in files:
        head = path.read_bytes()[:60].lower()
        assert b'encoding="utf-16"' in head
        assert showplan.parse(path.read_bytes(), source=path.name).statements


# --- golden fixtures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _golden_cases())
def test_golden_fixture(fixtures_dir: Path, case: str) -> None:
    folder = fixtures_dir / "sqlserver"
    plan = showplan.parse((folder / f"{case}.sqlplan").read_bytes(), source=f"{case}.sqlplan")
    summary = plan_summary(plan)
    expected_path = folder / f"{case}.expected.json"
    if os.environ.get("PLANMON_REGEN_GOLDEN"):
        expected_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    assert summary == expected


def test_golden_fixtures_exist() -> None:
    assert len(_golden_cases()) >= 8
    for case in _golden_cases():
        assert (_FIXTURES / f"{case}.expected.json").is_file(), case
        assert f"`{case}.sqlplan`" in (_FIXTURES / "SOURCES.md").read_text(encoding="utf-8")


# --- statements ---------------------------------------------------------------------------------------


def test_estimated_plan_has_no_actuals(fixtures_dir: Path) -> None:
    plan = showplan.parse((fixtures_dir / "sqlserver" / "estimated-execution-plan.sqlplan").read_bytes())
    statement = plan.statements[0]
    assert plan.format_version == "1.6"
    assert plan.engine_version == "14.0.1000.169"
    assert not statement.is_actual
    assert statement.root is not None
    assert all(node.actual_rows is None and not node.per_thread for node in statement.nodes())
    assert statement.engine_query_hash and statement.engine_query_hash.startswith("0x")


def test_multi_batch_statements_in_document_order(fixtures_dir: Path) -> None:
    plan = showplan.parse(
        (fixtures_dir / "sqlserver" / "multi-batch-with-multi-statements.sqlplan").read_bytes()
    )
    assert len(plan.statements) == 5
    batches = [statement.properties["Batch"] for statement in plan.statements]
    assert batches == sorted(batches) and set(batches) == {0, 1}
    assert [s.properties["StatementId"] for s in plan.statements if s.properties["Batch"] == 0] == sorted(
        s.properties["StatementId"] for s in plan.statements if s.properties["Batch"] == 0
    )


def test_conditional_is_flattened(fixtures_dir: Path) -> None:
    plan = showplan.parse((fixtures_dir / "sqlserver" / "StmtCond.sqlplan").read_bytes())
    cond, then = plan.statements
    assert (cond.statement_type, cond.text, cond.root) == ("COND", "IF 1 = 1", None)
    assert then.statement_type == "PRINT"
    assert then.properties["Branch"] == "Then"


def test_nested_conditions_and_cursors(corpus_dir: Path) -> None:
    """Keyset cursor batch: IF/WHILE nesting and cursor operations come out in document order."""
    plan = _corpus_plan(corpus_dir, "Keyset_Cursor.sqlplan")
    kinds = [(s.properties["StatementKind"], s.properties.get("CursorOperation")) for s in plan.statements]
    assert kinds[:4] == [
        ("StmtSimple", None),
        ("StmtCursor", "PopulateQuery"),
        ("StmtCursor", "FetchQuery"),
        ("StmtCursor", None),
    ]
    update = next(s for s in plan.statements if (s.text or "").strip().startswith("Update Employee"))
    assert update.properties["Branch"] == "Then"
    assert update.root is not None and update.root.physical_op == "Clustered Index Update"
    populate = plan.statements[1]
    assert populate.properties["CursorActualType"] == "Keyset"
    assert populate.properties["CursorRequestedType"] == "Dynamic"


def test_cursor_operation_plan(fixtures_dir: Path) -> None:
    plan = showplan.parse((fixtures_dir / "sqlserver" / "cursorPlan.sqlplan").read_bytes())
    (statement,) = plan.statements
    assert statement.properties["StatementKind"] == "StmtCursor"
    assert statement.properties["CursorOperation"] == "FetchQuery"
    assert statement.non_parallel_reason == "NoParallelFastForwardCursor"
    assert statement.root is not None and [n.physical_op for n in statement.nodes()] == [
        "Top",
        "Clustered Index Seek",
    ]
    assert sorted(p.name for p in statement.parameters) == ["@P1", "@P2", "@P3", "@P4"]  # plan order: P4..P1


def test_use_database_statement(corpus_dir: Path) -> None:
    (statement,) = _corpus_plan(corpus_dir, "StmtUseDb.sqlplan").statements
    assert statement.statement_type == "USE DATABASE"
    assert statement.properties["Database"] == "Master"
    assert statement.root is None


def test_statement_without_query_plan(corpus_dir: Path) -> None:
    (statement,) = _corpus_plan(corpus_dir, "simple.sqlplan").statements
    assert statement.root is None and statement.operator_count == 0


def test_statement_level_facts(corpus_dir: Path) -> None:
    statement = _corpus_plan(corpus_dir, "convert_implicit_plan.sqlplan").statements[0]
    assert statement.statement_type == "SELECT"
    assert statement.optimizer_level == "FULL"
    assert statement.cardinality_estimator_version == "160"
    assert statement.dop == 1
    assert statement.is_actual
    assert statement.compile_cpu_ms is not None and statement.compile_memory_kb is not None
    assert statement.query_cpu_ms is not None and statement.query_elapsed_ms is not None
    assert [p.name for p in statement.parameters] == ["@d"]
    assert statement.parameters[0].runtime_value is not None
    kinds = [(w.kind, w.details.get("ConvertIssue")) for w in statement.warnings]
    assert ("PlanAffectingConvert", "Seek Plan") in kinds


def test_memory_grant_and_waits(corpus_dir: Path) -> None:
    statement = _corpus_plan(corpus_dir, "spill_plan.sqlplan").statements[0]
    grant = statement.memory_grant
    assert grant is not None
    assert grant.granted_kb == 10851312 and grant.max_used_kb == 10232840
    assert statement.properties["MemoryGrantInfo"]["GrantedMemory"] == 10851312
    assert statement.waits and all(wait.wait_ms >= 0 for wait in statement.waits)
    assert statement.dop == 8


def test_missing_index_columns(corpus_dir: Path) -> None:
    statement = _corpus_plan(corpus_dir, "case_predicate_plan.sqlplan").statements[0]
    (index,) = statement.missing_indexes
    assert index.impact is not None and index.impact > 99
    assert (index.database, index.schema, index.table) == ("StackOverflow2013", "dbo", "Users")
    assert index.equality_columns == ("DisplayName",)


def test_early_abort_and_non_parallel_reason(corpus_dir: Path) -> None:
    statement = _corpus_plan(corpus_dir, "compile_memory_exceeded_plan.sqlplan").statements[0]
    assert statement.early_abort_reason == "MemoryLimitExceeded"
    assert statement.non_parallel_reason == "NonParallelizableIntrinsicFunction"


# --- operators ----------------------------------------------------------------------------------------


def test_key_lookup_node(fixtures_dir: Path) -> None:
    statement = showplan.parse((fixtures_dir / "sqlserver" / "KeyLookup.sqlplan").read_bytes()).statements[0]
    root = statement.root
    assert root is not None and root.physical_op == "Nested Loops" and len(root.children) == 2
    seek, lookup = root.children
    assert seek.object is not None and seek.object.qualified == "StackOverflow.dbo.Users.IX_DisplayName"
    assert seek.object.index_kind == "NonClustered"
    assert [p.kind for p in seek.predicates] == ["seek", "filter"]
    assert "'Brent'" not in seek.predicates[0].text and "?" in seek.predicates[0].text
    assert lookup.properties["Lookup"] is True
    assert lookup.estimated_executions == pytest.approx(1416.87)
    assert lookup.actual_executions == 858 and lookup.actual_rows == 858
    assert lookup.actual_logical_reads == 2450


def test_parallel_threads_are_kept_and_totalled(fixtures_dir: Path) -> None:
    statement = showplan.parse(
        (fixtures_dir / "sqlserver" / "parallel-skew.sqlplan").read_bytes()
    ).statements[0]
    assert statement.dop == 4
    parallel = [node for node in statement.nodes() if node.parallel and len(node.per_thread) > 1]
    assert parallel
    for node in parallel:
        assert node.actual_rows == sum(thread.rows for thread in node.per_thread)
        assert node.actual_executions == sum(thread.executions for thread in node.per_thread)
        elapsed = [thread.elapsed_ms for thread in node.per_thread if thread.elapsed_ms is not None]
        if elapsed:
            assert node.actual_elapsed_ms == max(elapsed)  # wall clock: the slowest thread
        assert {thread.thread for thread in node.per_thread} <= set(range(0, 5))


def test_operator_warnings_have_details(fixtures_dir: Path) -> None:
    statement = showplan.parse(
        (fixtures_dir / "sqlserver" / "spill-warning.sqlplan").read_bytes()
    ).statements[0]
    warnings = {w.kind: w for node in statement.nodes() for w in node.warnings}
    assert {"SpillToTempDb", "SortSpillDetails"} <= set(warnings)
    assert isinstance(warnings["SortSpillDetails"].details["WritesToTempDb"], int)
    assert statement.non_parallel_reason == "MaxDOPSetToOne"


def test_no_join_predicate_flag(fixtures_dir: Path) -> None:
    plan = showplan.parse((fixtures_dir / "sqlserver" / "missing-join-predicate.sqlplan").read_bytes())
    kinds = [w.kind for node in plan.statements[0].nodes() for w in node.warnings]
    assert "NoJoinPredicate" in kinds


def test_scalar_udf_and_table_variable_properties(corpus_dir: Path) -> None:
    udf = _corpus_plan(corpus_dir, "udf_plan.sqlplan").statements[0]
    assert udf.root is not None and udf.root.properties["ScalarUDF"] == [
        "[StackOverflow2013].[dbo].[TotalScore]"
    ]
    table_variable = _corpus_plan(corpus_dir, "table_variable_plan.sqlplan").statements[0]
    assert table_variable.root is not None
    assert table_variable.root.object is not None and table_variable.root.object.table == "@t"
    assert table_variable.root.properties["TableVariable"] is True


def test_showplan_1_0_booleans_and_predicates(corpus_dir: Path) -> None:
    """SQL Server 2005 plans write booleans as 1/0 and older seek predicates (SeekPredicate)."""
    plan = _corpus_plan(corpus_dir, "issue1.sqlplan")
    assert plan.format_version == "1.0"
    nodes = list(plan.statements[0].nodes())
    assert any(node.predicates and node.predicates[0].kind == "seek" for node in nodes)
    assert all(isinstance(node.parallel, bool) for node in nodes)


def test_hash_join_keys(corpus_dir: Path) -> None:
    statement = _corpus_plan(corpus_dir, "hash-match-join.sqlplan").statements[0]
    hashes = [node for node in statement.nodes() if node.physical_op == "Hash Match"]
    assert hashes and any(p.kind == "hash_keys" and " = " in p.text for p in hashes[0].predicates)


def test_subquery_relop_is_a_child_of_its_operator() -> None:
    """A RelOp nested inside a scalar subquery belongs to the operator whose expression holds it."""
    xml = _document(
        '<StmtSimple StatementText="select" StatementType="SELECT"><QueryPlan>'
        '<RelOp NodeId="0" PhysicalOp="Compute Scalar" LogicalOp="Compute Scalar" EstimateRows="1">'
        "<OutputList/><ComputeScalar><DefinedValues><DefinedValue><ScalarOperator><Subquery>"
        '<RelOp NodeId="1" PhysicalOp="Constant Scan" LogicalOp="Constant Scan" EstimateRows="1">'
        "<OutputList/><ConstantScan/></RelOp></Subquery></ScalarOperator></DefinedValue></DefinedValues>"
        '<RelOp NodeId="2" PhysicalOp="Table Scan" LogicalOp="Table Scan" EstimateRows="5"><OutputList/>'
        '<TableScan><Object Database="[db]" Schema="[dbo]" Table="[t]]x]"/></TableScan></RelOp>'
        "</ComputeScalar></RelOp></QueryPlan></StmtSimple>"
    )
    statement = showplan.parse(xml).statements[0]
    assert statement.root is not None
    assert [child.node_id for child in statement.root.children] == [1, 2]
    scan = statement.root.children[1]
    assert scan.object is not None and scan.object.table == "t]x"  # "]]" is an escaped "]"


@pytest.mark.parametrize("use_python_reader", [False, True], ids=["compiled-if-built", "python"])
def test_digits_int_refuses_stay_text(use_python_reader: bool) -> None:
    """A superscript two is a digit to str.isdigit but not to int(): it stays text, no crash."""
    xml = _document(
        '<StmtSimple StatementText="select" StatementType="SELECT" Weird="²"><QueryPlan>'
        '<RelOp NodeId="0" PhysicalOp="Table Scan" LogicalOp="Table Scan" EstimateRows="1"'
        ' TableCardinality="²"><OutputList/><TableScan Ordered="²"/></RelOp></QueryPlan></StmtSimple>'
    )
    with showplan.python_reader() if use_python_reader else contextlib.nullcontext():
        statement = showplan.parse(xml).statements[0]
    assert statement.properties["Weird"] == "²"
    assert statement.root is not None
    assert statement.root.properties["TableCardinality"] == "²"
    assert statement.root.properties["Ordered"] == "²"


def test_document_without_namespace_parses() -> None:
    xml = _document('<StmtSimple StatementText="x" StatementType="SELECT"/>').replace(_NS, "")
    assert showplan.parse(xml).statements[0].statement_type == "SELECT"


def test_not_a_showplan_is_refused() -> None:
    with pytest.raises(PlanParseError, match="not showplan XML"):
        showplan.parse(b"<html><body/></html>", source="page.html")


def test_text_and_bytes_give_the_same_plan(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "sqlserver" / "KeyLookup.sqlplan").read_bytes()
    assert plan_summary(showplan.parse(data)) == plan_summary(showplan.parse(data.decode("utf-8")))


def test_strip_brackets() -> None:
    assert showplan.strip_brackets("[dbo]") == "dbo"
    assert showplan.strip_brackets("[a]]b]") == "a]b"
    assert showplan.strip_brackets("plain") == "plain"
    assert showplan.strip_brackets(None) is None


def test_index_spool_seek_predicate(corpus_dir: Path) -> None:
    """Index Spool carries its SeekPredicateNew directly under the Spool element."""
    spool = _node(_corpus_plan(corpus_dir, "eager_index_spool_plan.sqlplan").statements[0], 5)
    assert (spool.physical_op, spool.logical_op) == ("Index Spool", "Eager Spool")
    assert [p.kind for p in spool.predicates] == ["seek"]
    assert spool.predicates[0].text.startswith("[StackOverflow2013].[dbo].[Badges].[UserId]")
