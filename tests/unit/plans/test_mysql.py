"""MySQL / MariaDB EXPLAIN FORMAT=JSON parser: corpus plans, tree mapping, actuals, errors, golden pairs."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planmon.errors import PlanParseError
from planmon.plans import mysql
from planmon.plans.model import Plan, PlanNode, PlanStatement
from planmon.plans.rules import mysql as mysql_rules
from tests.harness.corpus import corpus_files

CORPUS_FILES = corpus_files("mysql", (".json",))
FIXTURE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "plans" / "mysql"
GOLDEN_CASES = sorted(path.name for path in FIXTURE_DIR.glob("*.json") if ".expected." not in path.name)


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The compact, commit-ready summary stored in ``<case>.expected.json``."""
    return {"engine": plan.engine, "statements": [_statement_summary(s) for s in plan.statements]}


def _statement_summary(statement: PlanStatement) -> dict[str, Any]:
    operators: list[list[Any]] = []
    if statement.root is not None:
        stack: list[tuple[PlanNode, int]] = [(statement.root, 0)]
        while stack:
            node, depth = stack.pop()
            operators.append(
                [node.node_id, depth, node.physical_op, node.object.qualified if node.object else None]
            )
            stack.extend((child, depth + 1) for child in reversed(node.children))
    return {
        "operators": operators,
        "estimated_cost": statement.estimated_cost,
        "is_actual": statement.is_actual,
        "findings": [f"{f.id}@{f.node_id}" for f in mysql_rules.find(statement)],
    }


def _parse_corpus(corpus_dir: Path, name: str) -> Plan:
    return mysql.parse((corpus_dir / "mysql" / name).read_bytes(), source=name)


def _parse_fixture(fixtures_dir: Path, name: str) -> Plan:
    return mysql.parse((fixtures_dir / "mysql" / name).read_bytes(), source=name)


def _ops(plan: Plan) -> list[tuple[str, str | None]]:
    return [(n.physical_op, n.object.qualified if n.object else None) for n in plan.statements[0].nodes()]


# -- every corpus file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_plan_parses(corpus_dir: Path, name: str) -> None:
    plan = _parse_corpus(corpus_dir, name)
    assert plan.engine == "mysql"
    (statement,) = plan.statements
    nodes = list(statement.nodes())
    assert [node.node_id for node in nodes] == list(range(len(nodes)))
    assert nodes[0].physical_op == "Query Block"
    assert any(node.object is not None for node in nodes)
    assert statement.dop == 1


def test_corpus_listing_is_complete() -> None:
    if not CORPUS_FILES:
        pytest.skip("plan corpus not found")
    assert len(CORPUS_FILES) == 40


# -- mapping ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "physical_op", "access_type"),
    [
        ("mariadb_doc.json", "Full Table Scan", "ALL"),
        ("percona_blog_2016-02-22a.json", "Full Index Scan", "index"),
        ("mysql_doc.json", "Index Range Scan", "range"),
        ("unofficialmysqlguide_example_07.json", "Index Lookup", "ref"),
        ("unofficialmysqlguide_example_14.json", "Constant Lookup", "const"),
    ],
)
def test_access_type_mapping(corpus_dir: Path, name: str, physical_op: str, access_type: str) -> None:
    table = next(n for n in _parse_corpus(corpus_dir, name).statements[0].nodes() if n.object is not None)
    assert (table.physical_op, table.logical_op) == (physical_op, access_type)


def test_operations_become_operators(corpus_dir: Path) -> None:
    plan = _parse_corpus(corpus_dir, "mysql_bug_72180.json")
    assert _ops(plan) == [
        ("Query Block", None),
        ("Sort", None),  # ordering_operation using filesort
        ("Aggregate", None),  # grouping_operation ...
        ("Sort", None),  # ... using filesort
        ("Buffer Result", None),
        ("Nested Loop", None),
        ("Index Lookup", "st.state_st_idx"),
        ("Index Lookup", "content.transition_idx"),
    ]
    aggregate = list(plan.statements[0].nodes())[2]
    assert aggregate.properties["using_temporary_table"] is True
    assert plan.statements[0].properties["flavor"] == "mysql"


def test_nested_loop_is_left_deep(corpus_dir: Path) -> None:
    statement = _parse_corpus(corpus_dir, "unofficialmysqlguide_example_23.json").statements[0]
    root = statement.root
    assert root is not None
    outer_join = root.children[0]
    assert outer_join.physical_op == "Nested Loop"
    inner_join, third = outer_join.children
    assert inner_join.physical_op == "Nested Loop"
    assert [c.object.table for c in inner_join.children if c.object] == ["Country", "City"]
    assert third.object is not None and third.object.table == "CountryLanguage"
    assert outer_join.estimated_cost == 3.42  # prefix_cost of the last table


def test_costs_rows_and_estimated_executions(corpus_dir: Path) -> None:
    statement = _parse_corpus(corpus_dir, "unofficialmysqlguide_example_15.json").statements[0]
    assert statement.estimated_cost == 1893.3
    join = statement.root.children[0] if statement.root else None
    assert join is not None and join.physical_op == "Nested Loop"
    outer, inner = join.children
    assert outer.estimated_rows == outer.properties["rows_examined_per_scan"]
    assert outer.estimated_cost == pytest.approx(
        float(outer.properties["cost_info"]["read_cost"]) + float(outer.properties["cost_info"]["eval_cost"])
    )
    assert inner.estimated_executions == float(outer.properties["rows_produced_per_join"])


def test_subqueries_and_materialization(corpus_dir: Path) -> None:
    plan = _parse_corpus(corpus_dir, "unofficialmysqlguide_example_18.json")
    nodes = list(plan.statements[0].nodes())
    assert [n.physical_op for n in nodes] == [
        "Query Block",
        "Full Table Scan",
        "Unique Key Lookup",
        "Materialize",
        "Query Block",
        "Index Range Scan",
    ]
    assert nodes[2].properties["subquery"] == "attached_subqueries"
    assert nodes[2].object is None  # <materialized_subquery> is the engine's work table, not a table
    assert [p.kind for p in nodes[1].predicates] == ["filter"]
    assert "'Asia'" not in nodes[1].predicates[0].text and "?" in nodes[1].predicates[0].text


def test_union(corpus_dir: Path) -> None:
    nodes = list(_parse_corpus(corpus_dir, "unofficialmysqlguide_example_27.json").statements[0].nodes())
    assert [n.physical_op for n in nodes[:3]] == ["Query Block", "Union", "Query Block"]
    assert sum(1 for n in nodes if n.physical_op == "Query Block") == 3


def test_mariadb_analyze_actuals(corpus_dir: Path) -> None:
    statement = _parse_corpus(corpus_dir, "mariadb-docs__analyze_format_json_example1.json").statements[0]
    assert statement.is_actual
    assert statement.properties["flavor"] == "mariadb"
    assert statement.query_elapsed_ms == 39872
    orders = list(statement.nodes())[3]
    assert orders.object is not None and orders.object.qualified == "orders.i_o_custkey"
    assert (orders.actual_executions, orders.actual_rows, orders.actual_elapsed_ms) == (
        150000,
        1500000,
        39208,
    )
    assert orders.actual_rows_per_execution == 10
    assert orders.estimated_rows == 7


def test_mariadb_10_11_analyze_fields(fixtures_dir: Path) -> None:
    raw = json.loads((fixtures_dir / "mysql" / "mariadb_analyze_join_buffer.json").read_text())
    statement = _parse_fixture(fixtures_dir, "mariadb_analyze_join_buffer.json").statements[0]
    assert statement.planning_ms == raw["query_optimization"]["r_total_time_ms"]
    join = statement.root.children[0] if statement.root else None
    assert join is not None and join.physical_op == "Block Nested Loop"
    assert [(p.kind, p.text) for p in join.predicates] == [("join", "c.c_city = o.o_note")]
    assert join.properties["join_type"] == "BNL"
    scan = join.children[1]
    raw_scan = raw["query_block"]["nested_loop"][1]["block-nl-join"]["table"]
    # r_table_time_ms + r_other_time_ms when MariaDB splits the time
    assert scan.actual_elapsed_ms == pytest.approx(raw_scan["r_table_time_ms"] + raw_scan["r_other_time_ms"])
    assert [(p.kind, p.text) for p in scan.predicates] == [("filter", "o.o_status = ?")]


def test_expression_cache_and_dependent_subquery(fixtures_dir: Path) -> None:
    nodes = list(
        _parse_fixture(fixtures_dir, "mariadb_analyze_dependent_subquery.json").statements[0].nodes()
    )
    subquery = nodes[2]
    assert subquery.physical_op == "Query Block"
    assert subquery.properties["subquery"] == "subqueries"
    assert subquery.properties["expression_cache"]["state"] == "disabled"
    assert nodes[3].actual_executions == 800


def test_statement_type_and_messages(fixtures_dir: Path) -> None:
    update = _parse_fixture(fixtures_dir, "mariadb_explain_update_range.json").statements[0]
    assert update.statement_type == "UPDATE"
    no_tables = _parse_fixture(fixtures_dir, "mariadb_explain_no_tables.json").statements[0]
    assert [n.physical_op for n in no_tables.nodes()] == ["Query Block", "Message"]
    assert [w.message for w in no_tables.warnings] == ["No tables used"]
    mysql_style = mysql.parse('{"query_block": {"select_id": 1, "message": "No tables used"}}').statements[0]
    assert [n.physical_op for n in mysql_style.nodes()] == ["Query Block", "Message"]


def test_flavor_detection(corpus_dir: Path) -> None:
    assert _parse_corpus(corpus_dir, "mysql_doc.json").statements[0].properties["flavor"] == "mysql"
    assert "flavor" not in _parse_corpus(corpus_dir, "mariadb_doc.json").statements[0].properties


def test_repeated_table_keys_of_older_mariadb() -> None:
    document = (
        '{"query_block": {"select_id": 1, "table": {"table_name": "a", "access_type": "ALL", "rows": 10},'
        ' "table": {"table_name": "b", "access_type": "ref", "ref": ["a.id"], "rows": 2}}}'
    )
    plan = mysql.parse(document)
    assert _ops(plan) == [
        ("Query Block", None),
        ("Nested Loop", None),
        ("Full Table Scan", "a"),
        ("Index Lookup", "b"),
    ]


def test_client_decorations_and_several_documents(corpus_dir: Path) -> None:
    text = (corpus_dir / "mysql" / "mysql_doc.json").read_text()
    vertical = "*************************** 1. row ***************************\nEXPLAIN: " + text
    assert _ops(mysql.parse(vertical)) == _ops(mysql.parse(text))
    assert len(mysql.parse(text + text).statements) == 2
    assert len(mysql.parse("[" + text + "," + text + "]").statements) == 2


# -- errors -----------------------------------------------------------------------------------------------


def test_truncated_json_has_position_and_hint(corpus_dir: Path) -> None:
    text = (corpus_dir / "mysql" / "unofficialmysqlguide_example_18.json").read_text()
    with pytest.raises(PlanParseError) as caught:
        mysql.parse(text[:700], source="cut.json")
    assert caught.value.position is not None and caught.value.position.startswith("line ")
    assert caught.value.hint and "FORMAT=JSON" in caught.value.hint


@pytest.mark.parametrize(
    "document",
    [
        "",
        "{}",
        "[]",
        '{"query_block": 3}',
        '{"query_block": {"nested_loop": {"table": {}}}}',
        '{"query_block": {"table": "t1"}}',
        '{"query_block": {"table": {"table_name": "t", "attached_subqueries": [3]}}}',
        "not json at all",
        '{"query": "select 1", "inputs": []}',
    ],
)
def test_bad_documents_raise_plan_parse_error(document: str) -> None:
    with pytest.raises(PlanParseError) as caught:
        mysql.parse(document)
    assert caught.value.hint


def test_format_version_2_hint() -> None:
    with pytest.raises(PlanParseError) as caught:
        mysql.parse('{"query": "/* select#1 */ select 1", "inputs": [], "operation": "Rows fetched"}')
    assert caught.value.hint and "explain_json_format_version" in caught.value.hint


def _nested(depth: int) -> str:
    block: dict[str, Any] = {"select_id": depth, "table": {"table_name": "t", "access_type": "ALL"}}
    for level in range(depth - 1):
        block = {
            "select_id": level,
            "table": {
                "table_name": f"<derived{level}>",
                "access_type": "ALL",
                "materialized_from_subquery": {"query_block": block},
            },
        }
    return json.dumps({"query_block": block})


def test_depth_cap() -> None:
    assert mysql.parse(_nested(10)).statements[0].operator_count == 10 * 3 - 1
    with pytest.raises(PlanParseError, match="deeper than 12"):
        mysql.parse(_nested(10), max_depth=12)


def test_absurdly_deep_json_is_refused_not_crashing() -> None:
    with pytest.raises(PlanParseError):
        mysql.parse('{"query_block": ' * 50_000 + "{}" + "}" * 50_000)


def test_every_truncation_parses_or_raises(corpus_dir: Path) -> None:
    text = (corpus_dir / "mysql" / "mysql_doc.json").read_text()
    for end in range(len(text)):
        with contextlib.suppress(PlanParseError):
            mysql.parse(text[:end])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=5)
        | st.sampled_from(["ALL", "ref", "const", "query_block", "table"]),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "query_block",
                        "table",
                        "nested_loop",
                        "table_name",
                        "access_type",
                        "rows",
                        "r_loops",
                        "filesort",
                        "ordering_operation",
                        "using_filesort",
                        "subqueries",
                        "materialized_from_subquery",
                        "block-nl-join",
                        "cost_info",
                        "message",
                    ]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    with contextlib.suppress(PlanParseError):
        mysql.parse(json.dumps({"query_block": value}))


# -- golden pairs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_fixture(fixtures_dir: Path, case: str) -> None:
    path = fixtures_dir / "mysql" / case
    expected = json.loads(path.with_name(f"{path.stem}.expected.json").read_text(encoding="utf-8"))
    assert plan_summary(mysql.parse(path.read_bytes(), source=case)) == expected
