"""Engine-neutral rules: row_estimate_mismatch positives, negatives and ordering in find_all."""

from __future__ import annotations

from pathlib import Path

import pytest

from planmon.plans.model import Finding, PlanNode, PlanStatement, Severity, ThreadRuntime
from planmon.plans.parse import parse_plan_file
from planmon.plans.rules import find_all
from planmon.plans.rules.common import actual_rows_per_execution, readable, row_estimate_mismatch


def _statement(*nodes: PlanNode) -> PlanStatement:
    root = PlanNode(node_id=0, physical_op="Select", children=list(nodes))
    return PlanStatement(index=0, root=root, is_actual=True)


def _node(node_id: int, estimated: float, actual: float | None, executions: float | None = 1.0) -> PlanNode:
    return PlanNode(
        node_id=node_id,
        physical_op="Index Seek",
        estimated_rows=estimated,
        actual_rows=actual,
        actual_executions=executions,
    )


@pytest.mark.parametrize(
    ("estimated", "actual", "severity"),
    [
        (10.0, 5_000.0, Severity.WARNING),  # under-estimate 500x
        (1.0, 2_000_000.0, Severity.CRITICAL),  # 2,000,000x
        (150_000.0, 100.0, Severity.WARNING),  # over-estimate 1,500x
        (5_000.0, 0.0, Severity.WARNING),  # zero rows counted as one: 5,000x
    ],
)
def test_mismatch_found(estimated: float, actual: float, severity: Severity) -> None:
    findings = row_estimate_mismatch(_statement(_node(3, estimated, actual)))
    assert [(f.id, f.node_id, f.severity) for f in findings] == [("row_estimate_mismatch", 3, severity)]


@pytest.mark.parametrize(
    ("estimated", "actual", "executions"),
    [
        (1.0, 0.0, 1.0),  # the classic false positive: estimate 1, actual 0
        (1.0, 900.0, 1.0),  # 900x but under the row floor
        (1_000.0, 50_000.0, 1.0),  # 50x: under the ratio
        (10.0, 100_000.0, 10_000.0),  # 10 rows per execution, as estimated
        (10.0, 100_000.0, 0.0),  # never executed
        (10.0, None, None),  # estimated plan
    ],
)
def test_no_mismatch(estimated: float, actual: float | None, executions: float | None) -> None:
    assert row_estimate_mismatch(_statement(_node(3, estimated, actual, executions))) == []


def test_find_all_sorts_worst_first_then_node_id() -> None:
    statement = _statement(_node(9, 1.0, 5_000_000.0), _node(4, 10.0, 5_000.0), _node(2, 10.0, 9_000.0))
    findings = find_all(statement, "postgres")
    mismatch = [f for f in findings if f.id == "row_estimate_mismatch"]
    assert [(f.node_id, f.severity) for f in mismatch] == [
        (9, Severity.CRITICAL),
        (2, Severity.WARNING),
        (4, Severity.WARNING),
    ]
    ranks = [(-int(f.severity), f.node_id is None, f.node_id or 0) for f in findings]
    assert ranks == sorted(ranks)
    assert all(isinstance(f, Finding) for f in findings)


def test_only_the_operator_where_the_error_starts_is_reported() -> None:
    scan = _node(5, 10.0, 2_000_000.0)
    gather = PlanNode(
        node_id=4, physical_op="Parallelism", estimated_rows=10.0, actual_rows=2_000_000.0, children=[scan]
    )
    findings = row_estimate_mismatch(_statement(gather))
    assert [f.node_id for f in findings] == [5]


# --- real plans from the shared corpus -------------------------------------------------------------


def _corpus_findings(corpus_dir: Path, relative: str) -> list[tuple[int, int | None, Severity]]:
    plan = parse_plan_file(corpus_dir / relative)
    return [(s.index, f.node_id, f.severity) for s in plan.statements for f in row_estimate_mismatch(s)]


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        # a parallel Filter estimated at 36.9 million rows that returned none; Parallelism above inherits it
        ("sqlserver/slow-multi-seek.sqlplan", [(0, 1, Severity.CRITICAL)]),
        ("sqlserver/convert_implicit_plan.sqlplan", [(0, 3, Severity.WARNING)]),
        ("postgres/pev2__sample_plan7_unicode_frame.txt", [(0, 5, Severity.CRITICAL)]),
        ("postgres/job__11d.json", [(0, 3, Severity.WARNING)]),
    ],
)
def test_corpus_positives(corpus_dir: Path, relative: str, expected: list[tuple[int, int, Severity]]) -> None:
    assert _corpus_findings(corpus_dir, relative) == expected


@pytest.mark.parametrize(
    "relative",
    [
        "sqlserver/KeyLookup.sqlplan",  # actual plan, estimates right
        "sqlserver/adaptive_join.sqlplan",  # actual plan with small row counts
        "sqlserver/estimated-execution-plan.sqlplan",  # no actuals at all
        "postgres/pev2__sample_plan1.json",  # ANALYZE with zero-row nodes: the floor keeps it quiet
        "postgres/pev2__from-text_48_memoize.txt",
        "mysql/mariadb-docs__analyze_format_json_example1.json",  # MariaDB ANALYZE
    ],
)
def test_corpus_negatives(corpus_dir: Path, relative: str) -> None:
    assert _corpus_findings(corpus_dir, relative) == []


def test_parallel_operator_counts_executions_per_thread() -> None:
    """DOP 8, one run: 8 executions in total but one per thread, and the estimate covers all threads."""
    threads = [ThreadRuntime(thread=t, rows=25_000.0, executions=1.0) for t in range(1, 9)]
    scan = PlanNode(
        node_id=2,
        physical_op="Clustered Index Scan",
        parallel=True,
        estimated_rows=200_000.0,
        actual_rows=200_000.0,
        actual_executions=8.0,
        per_thread=threads,
    )
    assert actual_rows_per_execution(scan) == 200_000.0
    assert row_estimate_mismatch(_statement(scan)) == []


def test_find_all_keeps_distinct_findings_on_one_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from planmon.plans import rules

    def engine_find(statement: PlanStatement) -> list[Finding]:
        first = Finding("plan_warning", Severity.WARNING, "implicit conversion of [a]", node_id=1)
        second = Finding("plan_warning", Severity.WARNING, "implicit conversion of [b]", node_id=1)
        return [first, second, first]

    monkeypatch.setattr(rules, "_engine_find", lambda engine: engine_find)
    findings = find_all(_statement(), "sqlserver")
    assert [f.message for f in findings] == ["implicit conversion of [a]", "implicit conversion of [b]"]


# -- stopped early (issue 18) -----------------------------------------------------------------------------

LIMITED_SCAN = """Limit  (cost=0.29..0.60 rows=10 width=8) (actual time=0.010..0.020 rows=10 loops=1)
  ->  Index Scan using ix on t  (cost=0.29..6000 rows=200000 width=8) (actual time=0..0 rows=10 loops=1)
"""


def _pg(text: str) -> PlanStatement:
    from planmon.plans import postgres

    return postgres.parse(text).statements[0]


def test_no_mismatch_on_a_scan_a_limit_stopped() -> None:
    assert row_estimate_mismatch(_pg(LIMITED_SCAN)) == []


def test_the_same_scan_without_the_limit_is_a_mismatch() -> None:
    unlimited = LIMITED_SCAN.split("\n", 1)[1].replace("  ->  ", "", 1)
    (finding,) = row_estimate_mismatch(_pg(unlimited))
    assert finding.evidence["direction"] == "over"


def test_an_underestimate_below_a_limit_is_still_reported() -> None:
    under = LIMITED_SCAN.replace("rows=200000", "rows=2").replace("rows=10 loops", "rows=50000 loops")
    under = under.replace("Limit  (cost=0.29..0.60 rows=10", "Limit  (cost=0.29..0.60 rows=2")
    assert [f.evidence["direction"] for f in row_estimate_mismatch(_pg(under))] == ["under"]


def test_no_mismatch_on_the_inner_side_of_a_semi_join() -> None:
    semi = """\
Nested Loop Semi Join  (cost=0.29..900.00 rows=100 width=8) (actual time=0.01..9 rows=100 loops=1)
  ->  Seq Scan on customers c  (cost=0.00..35.00 rows=100 width=8) (actual time=0.01..0.10 rows=100 loops=1)
  ->  Index Scan using ix on orders o  (cost=0.29..9 rows=5000 width=4) (actual time=0..0 rows=1 loops=100)
        Index Cond: (customer_id = c.id)
"""
    assert row_estimate_mismatch(_pg(semi)) == []
    inner_join = semi.replace("Nested Loop Semi Join", "Nested Loop")
    assert [f.node_id for f in row_estimate_mismatch(_pg(inner_join))] == [2]


def test_wide_ratios_print_readably() -> None:
    node = _node(3, 4.6e21, 1.0)
    (finding,) = row_estimate_mismatch(_statement(node))
    assert "estimated 4.6e21 rows" in finding.message and "(4.6e21x overestimate)" in finding.message
    assert readable(12_345.0) == "12,345"
    assert readable(999_999.0, suffix="x") == "999,999x"
    assert readable(4_600_000.0, suffix="x") == "4.6e6x"


def test_no_mismatch_in_an_exists_subplan_but_in_a_scalar_one() -> None:
    exists = """\
Seq Scan on customers c  (cost=0.00..100.00 rows=100 width=8) (actual time=0..1 rows=100 loops=1)
  Filter: ((region = 1) OR EXISTS(SubPlan 1))
  SubPlan 1
    ->  Index Scan using ix on orders o  (cost=0.29..9 rows=5000 width=4) (actual time=0..0 rows=1 loops=100)
          Index Cond: (customer_id = c.id)
"""
    assert row_estimate_mismatch(_pg(exists)) == []
    scalar = exists.replace("EXISTS(SubPlan 1)", "((SubPlan 1) > 0)")
    assert [f.evidence["direction"] for f in row_estimate_mismatch(_pg(scalar))] == ["over"]


def test_the_inner_side_of_a_hash_semi_join_is_read_to_the_end() -> None:
    hashed = """\
Hash Semi Join  (cost=9.00..900.00 rows=100 width=8) (actual time=0..9 rows=100 loops=1)
  Hash Cond: (c.id = o.customer_id)
  ->  Seq Scan on customers c  (cost=0.00..35.00 rows=100 width=8) (actual time=0..0 rows=100 loops=1)
  ->  Hash  (cost=9.00..9.00 rows=5000 width=4) (actual time=0..0 rows=3 loops=1)
        ->  Seq Scan on orders o  (cost=0.00..9.00 rows=5000 width=4) (actual time=0..0 rows=3 loops=1)
"""
    assert [f.node_id for f in row_estimate_mismatch(_pg(hashed))] == [3]  # the orders scan
