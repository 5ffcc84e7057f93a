"""PostgreSQL EXPLAIN parser: corpus plans, JSON/text agreement, framings, units, errors, golden pairs."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planmon.errors import PlanParseError
from planmon.plans import postgres
from planmon.plans.model import Plan, PlanNode, PlanStatement
from planmon.plans.rules import postgres as postgres_rules
from tests.harness.corpus import corpus_files

CORPUS_FILES = corpus_files("postgres", (".json", ".txt"))
FIXTURE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "plans" / "postgres"
GOLDEN_CASES = sorted(
    path.name
    for path in FIXTURE_DIR.glob("*")
    if path.suffix in (".json", ".txt") and ".expected." not in path.name
)


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
        "findings": [f"{f.id}@{f.node_id}" for f in postgres_rules.find(statement)],
    }


def _parse_corpus(corpus_dir: Path, name: str) -> Plan:
    return postgres.parse((corpus_dir / "postgres" / name).read_bytes(), source=name)


def _nodes(plan: Plan) -> list[PlanNode]:
    return [node for statement in plan.statements for node in statement.nodes()]


def _shape(statement: PlanStatement) -> list[tuple[Any, ...]]:
    shape: list[tuple[Any, ...]] = []
    stack: list[tuple[PlanNode, int]] = [(statement.root, 0)] if statement.root else []
    while stack:
        node, depth = stack.pop()
        qualified = node.object.qualified if node.object else None
        shape.append(
            (depth, node.physical_op, node.logical_op, qualified, node.estimated_rows, node.estimated_cost)
        )
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return shape


# -- every corpus file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_plan_parses(corpus_dir: Path, name: str) -> None:
    plan = _parse_corpus(corpus_dir, name)
    assert plan.engine == "postgres"
    assert plan.statements
    for statement in plan.statements:
        nodes = list(statement.nodes())
        assert [node.node_id for node in nodes] == list(range(len(nodes)))  # pre-order ids
        assert all(node.physical_op for node in nodes)
        assert statement.is_actual  # every corpus plan was produced with ANALYZE
        assert statement.estimated_cost == (statement.root.estimated_cost if statement.root else None)
        assert statement.properties["explain_format"] in ("json", "text")
        assert statement.dop is not None and statement.dop >= 1


def test_corpus_listing_is_complete() -> None:
    if not CORPUS_FILES:
        pytest.skip("plan corpus not found")
    assert len(CORPUS_FILES) >= 34


# -- JSON and text agree ---------------------------------------------------------------------------------


def test_same_plan_json_and_text_give_same_tree(corpus_dir: Path) -> None:
    from_json = _parse_corpus(corpus_dir, "pev2__sample_plan1.json").statements[0]
    from_text = _parse_corpus(corpus_dir, "pev2__sample_plan1.txt").statements[0]
    assert _shape(from_json) == _shape(from_text)
    assert [p for n in from_json.nodes() for p in n.predicates] == [
        p for n in from_text.nodes() for p in n.predicates
    ]
    assert from_json.properties["explain_format"] == "json"
    assert from_text.properties["explain_format"] == "text"


def test_same_plan_json_and_psql_text_fixture(fixtures_dir: Path) -> None:
    folder = fixtures_dir / "postgres"
    from_json = postgres.parse((folder / "pg15_cross_join_analyze.json").read_bytes()).statements[0]
    from_text = postgres.parse((folder / "pg15_cross_join_analyze_psql.txt").read_bytes()).statements[0]
    assert _shape(from_json) == _shape(from_text)
    pairs = zip(from_json.nodes(), from_text.nodes(), strict=True)
    assert all(
        a.actual_rows == b.actual_rows and a.actual_executions == b.actual_executions for a, b in pairs
    )
    for key in ("Shared Hit Blocks", "Rows Removed by Filter"):
        assert [n.properties.get(key) for n in from_json.nodes()] == [
            n.properties.get(key) for n in from_text.nodes()
        ]


def test_text_tree_shape_and_operator_mapping(corpus_dir: Path) -> None:
    statement = _parse_corpus(corpus_dir, "pev2__sample_plan1.txt").statements[0]
    root = statement.root
    assert root is not None
    assert (root.physical_op, root.logical_op) == ("Nested Loop", "Left")
    heap, materialize = root.children
    assert heap.physical_op == "Bitmap Heap Scan"
    assert heap.object is not None and heap.object.qualified == "public.rel_users_exams"
    bitmap_index = heap.children[0]
    # a Bitmap Index Scan names only its index: the table comes from the heap scan above it
    assert bitmap_index.object is not None
    assert (bitmap_index.object.table, bitmap_index.object.index) == (
        "rel_users_exams",
        "rel_users_exams_pkey",
    )
    index_scan = materialize.children[0]
    assert index_scan.object is not None
    assert (index_scan.object.qualified, index_scan.object.alias) == ("public.exam.exam_pkey", "exam_1")
    # "(never executed)": zero executions, rows and time
    assert (index_scan.actual_executions, index_scan.actual_rows, index_scan.actual_elapsed_ms) == (0, 0, 0)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Hash Right Anti Join", {"Node Type": "Hash Join", "Join Type": "Right Anti"}),
        ("Merge Full Join", {"Node Type": "Merge Join", "Join Type": "Full"}),
        ("Nested Loop Semi Join", {"Node Type": "Nested Loop", "Join Type": "Semi"}),
        (
            "Partial HashAggregate",
            {"Node Type": "Aggregate", "Strategy": "Hashed", "Partial Mode": "Partial"},
        ),
        ("HashSetOp Except All", {"Node Type": "SetOp", "Strategy": "Hashed", "Command": "Except All"}),
        (
            "Parallel Index Only Scan Backward using ix on s.t a",
            {
                "Node Type": "Index Only Scan",
                "Parallel Aware": True,
                "Scan Direction": "Backward",
                "Index Name": "ix",
                "Schema": "s",
                "Relation Name": "t",
                "Alias": "a",
            },
        ),
        (
            'Seq Scan on "My Table"',
            {"Node Type": "Seq Scan", "Relation Name": "My Table", "Alias": "My Table"},
        ),
        (
            "Subquery Scan location_state_templates",
            {"Node Type": "Subquery Scan", "Alias": "location_state_templates"},
        ),
        (
            "Function Scan on pg_sleep pg_sleep_for",
            {"Node Type": "Function Scan", "Function Name": "pg_sleep", "Alias": "pg_sleep_for"},
        ),
        (
            "Custom Scan (Citus Adaptive)",
            {"Node Type": "Custom Scan", "Custom Plan Provider": "Citus Adaptive"},
        ),
        (
            "Update on public.ta",
            {
                "Node Type": "ModifyTable",
                "Operation": "Update",
                "Relation Name": "ta",
                "Schema": "public",
                "Alias": "ta",
            },
        ),
    ],
)
def test_text_operator_labels(label: str, expected: dict[str, Any]) -> None:
    parsed = postgres._parse_label(label)
    for key, value in expected.items():
        assert parsed.get(key) == value, key


def test_text_detail_lines_use_json_keys(corpus_dir: Path) -> None:
    hash_node = _nodes(_parse_corpus(corpus_dir, "pev2__from-text_46_buckets.txt"))[3]
    assert hash_node.physical_op == "Hash"
    props = hash_node.properties
    assert (props["Hash Buckets"], props["Hash Batches"], props["Original Hash Batches"]) == (262144, 2048, 8)
    assert props["Peak Memory Usage"] == 35157
    assert (props["Shared Hit Blocks"], props["Temp Written Blocks"]) == (4430, 2930)
    sort = _nodes(_parse_corpus(corpus_dir, "pev2__sample_plan7_unicode_frame.txt"))[3]
    assert sort.physical_op == "Sort"
    assert (sort.properties["Sort Method"], sort.properties["Sort Space Type"]) == ("external merge", "Disk")
    assert sort.properties["Sort Space Used"] == 141936
    hash_aggregate = _nodes(_parse_corpus(corpus_dir, "pev2__from-text_47_planned_partitions.txt"))[0]
    assert (hash_aggregate.physical_op, hash_aggregate.logical_op) == ("HashAggregate", "Aggregate")
    assert (hash_aggregate.properties["HashAgg Batches"], hash_aggregate.properties["Disk Usage"]) == (
        193,
        31752,
    )
    memoize = _nodes(_parse_corpus(corpus_dir, "pev2__from-text_48_memoize.txt"))[2]
    assert (memoize.properties["Cache Hits"], memoize.properties["Cache Misses"]) == (998, 2)


def test_worker_lines(corpus_dir: Path) -> None:
    sort = next(
        n for n in _nodes(_parse_corpus(corpus_dir, "pev2__sample_parallel_2.txt")) if n.physical_op == "Sort"
    )
    workers = sort.properties["Workers"]
    assert [w["Worker Number"] for w in workers] == [0, 1, 2, 3]
    assert workers[1]["Sort Space Used"] == 2384


# -- units and statement fields --------------------------------------------------------------------------


def test_actuals_are_totals_over_loops(corpus_dir: Path) -> None:
    index_scan = _nodes(_parse_corpus(corpus_dir, "pev2__sample_asmany_pg17.txt"))[-1]
    assert index_scan.physical_op == "Index Scan"
    assert index_scan.actual_executions == 20000
    assert index_scan.actual_rows == 20000  # rows=1 per loop
    assert index_scan.actual_elapsed_ms == pytest.approx(0.001 * 20000)
    assert index_scan.actual_rows_per_execution == 1
    assert index_scan.estimated_rows == 1


def test_statement_fields(corpus_dir: Path) -> None:
    parallel = _parse_corpus(corpus_dir, "pev2__sample_parallel_2.txt").statements[0]
    assert parallel.dop == 5  # Workers Planned: 4, plus the leader
    assert (parallel.planning_ms, parallel.query_elapsed_ms) == (0.977, 7923.77)
    assert parallel.estimated_cost == 1964961.44
    trigger = _parse_corpus(corpus_dir, "pev2__sample_trigger.txt").statements[0]
    assert trigger.statement_type == "DELETE"
    assert len(trigger.properties["Triggers"]) == 7
    assert trigger.properties["Triggers"][0] == {
        "Time": 4038.247,
        "Calls": 5000,
        "Constraint Name": "headeremessageref",
    }
    merge = _parse_corpus(corpus_dir, "pev2__sample_asmany_pg17.txt").statements[0]
    assert merge.statement_type == "MERGE"
    assert merge.properties["Settings"]["work_mem"] == "3MB"
    assert merge.properties["Planning"]["Memory Used"] == 165
    assert merge.properties["JIT"]["Timing"]["Total"] == 149.572
    insert = _parse_corpus(corpus_dir, "pev2__test20_insert_modifytable.json").statements[0]
    assert (insert.statement_type, insert.planning_ms, insert.query_elapsed_ms) == ("INSERT", 0.056, 0.824)


def test_query_identifier_and_query_text() -> None:
    document = [
        {
            "Query Text": "select * from t where a = 'secret'",
            "Query Identifier": -4250,
            "Plan": {
                "Node Type": "Seq Scan",
                "Relation Name": "t",
                "Alias": "t",
                "Filter": "(a = 'secret'::text)",
            },
        }
    ]
    statement = postgres.parse(json.dumps(document)).statements[0]
    assert statement.engine_query_hash == "-4250"
    assert statement.text == "select * from t where a = ?"
    assert not statement.is_actual
    text = "Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n  Filter: (a = 5)\nQuery Identifier: -4250\n"
    from_text = postgres.parse(text).statements[0]
    assert from_text.engine_query_hash == "-4250"
    assert from_text.root is not None
    assert [p.text for p in from_text.root.predicates] == ["(a = ?)"]


def test_parallel_flag(corpus_dir: Path) -> None:
    nodes = _nodes(_parse_corpus(corpus_dir, "pev2__sample_parallel.json"))
    assert [(n.physical_op, n.parallel) for n in nodes] == [
        ("Aggregate", False),
        ("Gather", False),
        ("Aggregate", True),
        ("Seq Scan", True),
    ]
    assert nodes[2].logical_op == "Partial Aggregate" and nodes[0].logical_op == "Finalize Aggregate"


def test_estimated_only_plan(fixtures_dir: Path) -> None:
    plan = postgres.parse(
        (fixtures_dir / "postgres" / "pg15_index_nested_loop_estimated_psql.txt").read_bytes()
    )
    statement = plan.statements[0]
    assert not statement.is_actual
    assert all(n.actual_rows is None and n.actual_executions is None for n in statement.nodes())
    assert statement.estimated_cost == 1953.13


def test_literals_are_stripped_everywhere(corpus_dir: Path) -> None:
    plan = _parse_corpus(corpus_dir, "pev2__psql-frame_json_unicode.txt")
    assert [p.text for p in _nodes(plan)[1].predicates] == ["(username = ?)"]
    assert "depesz" not in repr(plan)
    pgadmin = _parse_corpus(corpus_dir, "pev2__sample_plan6_pgadmin_quoted.txt")
    assert "top_turnover" not in repr(pgadmin)


# -- framings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "root_op", "count", "fmt"),
    [
        ("pev2__psql-frame_text_dbeaver.txt", "ModifyTable", 2, "text"),
        ("pev2__sample_plan6_pgadmin_quoted.txt", "Limit", 12, "text"),
        ("pev2__sample_plan7_unicode_frame.txt", "ModifyTable", 11, "text"),
        ("pev2__line-wrapped_07.txt", "Gather", 13, "text"),
        ("pev2__psql-frame_json_unicode.txt", "Nested Loop", 3, "json"),
        ("pev2__from-text_46_buckets.txt", "Aggregate", 5, "text"),  # SQL and psql chatter before the plan
        ("pev2__cte-exclusive-time_03_psql_frame.txt", "Subquery Scan", 42, "text"),  # CRLF, wrapped dashes
        ("pev2__sample_plan9.txt", "Append", 7, "text"),  # COSTS OFF
        ("pev2__io-timings_11.txt", "Nested Loop", 20, "text"),
    ],
)
def test_framings(corpus_dir: Path, name: str, root_op: str, count: int, fmt: str) -> None:
    statement = _parse_corpus(corpus_dir, name).statements[0]
    assert statement.root is not None and statement.root.physical_op == root_op
    assert statement.operator_count == count
    assert statement.properties["explain_format"] == fmt


def test_psql_aligned_json_with_plus_marks(fixtures_dir: Path) -> None:
    path = fixtures_dir / "postgres" / "pg15_hash_join_verbose_json_psql_frame.txt"
    statement = postgres.parse(path.read_bytes()).statements[0]
    assert statement.properties["explain_format"] == "json"
    assert statement.dop == 2  # Gather Merge with one worker planned, plus the leader
    assert statement.operator_count == 10


def test_line_wrapped_plan_is_put_back_together(corpus_dir: Path) -> None:
    nodes = _nodes(_parse_corpus(corpus_dir, "pev2__line-wrapped_07.txt"))
    assert nodes[0].properties["Actual Total Time"] == 9667.185
    assert (
        nodes[8].object is not None and nodes[8].object.qualified == "pgbench_branches.pgbench_branches_pkey"
    )
    assert [p.kind for p in nodes[10].predicates] == ["merge_cond"]


def test_cte_initplan_and_subplan_headers(corpus_dir: Path) -> None:
    nodes = _nodes(_parse_corpus(corpus_dir, "pev2__sample_asmany_pg17.txt"))
    named = {n.properties.get("Subplan Name"): n.properties.get("Parent Relationship") for n in nodes}
    assert named["CTE tbl"] == named["CTE tab"] == named["InitPlan 3"] == "InitPlan"
    subplans = _nodes(_parse_corpus(corpus_dir, "pev2__sample_plan6_pgadmin_quoted.txt"))
    assert [n.properties.get("Subplan Name") for n in subplans if "Subplan Name" in n.properties] == [
        "SubPlan 1",
        "SubPlan 2",
    ]


def test_documents_in_every_json_shape(corpus_dir: Path) -> None:
    single_object = _parse_corpus(corpus_dir, "pev2__sample_plan8.json")  # {"Plan": ...}, not [...]
    assert len(single_object.statements) == 1
    text = (corpus_dir / "postgres" / "pev2__sample_plan1.json").read_text()
    assert len(postgres.parse(text + "\n" + text).statements) == 2
    both = json.dumps(json.loads(text) * 2)
    plan = postgres.parse(both)
    assert [s.index for s in plan.statements] == [0, 1]


def test_utf16_with_bom(corpus_dir: Path) -> None:
    text = (corpus_dir / "postgres" / "pev2__sample_plan1.txt").read_text()
    plan = postgres.parse("\ufeff".encode("utf-16-le") + text.encode("utf-16-le"), source="plan.txt")
    assert plan.statements[0].operator_count == 5 and plan.source == "plan.txt"


# -- errors -----------------------------------------------------------------------------------------------


def test_malformed_json_has_position_and_hint(corpus_dir: Path) -> None:
    text = (corpus_dir / "postgres" / "pev2__sample_plan1.json").read_text()
    with pytest.raises(PlanParseError) as caught:
        postgres.parse(text[: len(text) // 2], source="cut.json")
    assert caught.value.position is not None and caught.value.position.startswith("line ")
    assert caught.value.hint and "FORMAT JSON" in caught.value.hint
    assert caught.value.source == "cut.json"


def test_truncated_text_has_position(corpus_dir: Path) -> None:
    text = (corpus_dir / "postgres" / "pev2__sample_plan1.txt").read_text()
    cut = text[: text.index("rows=5 width=52)") + 6]  # ends inside the Bitmap Heap Scan's cost group
    with pytest.raises(PlanParseError) as caught:
        postgres.parse(cut)
    assert caught.value.position == "line 6"
    assert caught.value.hint


@pytest.mark.parametrize(
    "document",
    [
        "",
        "   \n",
        "this is not a plan",
        "Total: 12 ms\nSomething else",
        "[]",
        "[1, 2]",
        '{"Plan": []}',
        '[{"Plan": {"Total Cost": 1}}]',
        '[{"Plan": {"Node Type": "Seq Scan", "Plans": "oops"}}]',
        '[{"Plan": {"Node Type": "Seq Scan", "Plans": [{"Node Type": 3}]}}]',
        '[{"Plan": {"Node Type": "Limit", "Plans": [7]}}]',
    ],
)
def test_bad_documents_raise_plan_parse_error(document: str) -> None:
    with pytest.raises(PlanParseError) as caught:
        postgres.parse(document)
    assert caught.value.hint


def test_bad_node_error_names_the_path() -> None:
    with pytest.raises(PlanParseError) as caught:
        postgres.parse('[{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Sort"}, {}]}}]')
    assert caught.value.position == "statement 1, Plan.Plans[1]"


def _nested_json(depth: int) -> str:
    node: dict[str, Any] = {"Node Type": "Seq Scan"}
    for _ in range(depth - 1):
        node = {"Node Type": "Limit", "Plans": [node]}
    return json.dumps([{"Plan": node}])


def test_depth_cap_json() -> None:
    assert postgres.parse(_nested_json(20), max_depth=20).statements[0].operator_count == 20
    with pytest.raises(PlanParseError, match="deeper than 19"):
        postgres.parse(_nested_json(20), max_depth=19)


def test_depth_cap_text() -> None:
    lines = ["Limit  (cost=0.00..1.00 rows=1 width=4)"]
    lines += [" " * (6 * level - 4) + "->  Limit  (cost=0.00..1.00 rows=1 width=4)" for level in range(1, 30)]
    text = "\n".join(lines)
    assert postgres.parse(text).statements[0].operator_count == 30
    with pytest.raises(PlanParseError) as caught:
        postgres.parse(text, max_depth=10)
    assert caught.value.position == "line 11"


def test_absurdly_deep_json_is_refused_not_crashing() -> None:
    with pytest.raises(PlanParseError):
        postgres.parse("[" * 100_000 + "]" * 100_000)


def test_size_cap() -> None:
    with pytest.raises(PlanParseError, match="limit"):
        postgres.parse(b"x" * 100, max_bytes=10)


def test_every_truncation_of_a_text_plan_parses_or_raises(corpus_dir: Path) -> None:
    text = (corpus_dir / "postgres" / "pev2__sample_plan9.txt").read_text()
    for end in range(len(text)):
        with contextlib.suppress(PlanParseError):
            postgres.parse(text[:end])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("()->: .=0123456789abcQUERYPLANcost=rowsactual\n \"|│+'"))))
def test_arbitrary_text_never_crashes(text: str) -> None:
    with contextlib.suppress(PlanParseError):
        postgres.parse(text)


# -- golden pairs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_fixture(fixtures_dir: Path, case: str) -> None:
    path = fixtures_dir / "postgres" / case
    expected_path = path.with_name(f"{path.stem}.expected.json")
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    assert plan_summary(postgres.parse(path.read_bytes(), source=case)) == expected
