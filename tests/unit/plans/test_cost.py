"""Expected costs and cost shares under operators that stop early, on real plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from planmon.plans import PlanNode, parse_plan_file
from planmon.plans.cost import expected_costs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "plans"
# Limit (cost=1.27..3878.21 rows=5) over a Nested Loop (cost=1.27..48075.41 rows=62): raw share 1,240 %
LIMIT_OVER_LOOP = FIXTURES / "postgres" / "pev2__sample_plan6_pgadmin_quoted.txt"
# Limit over a GroupAggregate over ... a Sort (cost=1963755.61..1963935.20) over a Parallel Hash Join
LIMIT_OVER_SORT = FIXTURES / "postgres" / "pev2__sample_parallel_2.txt"


def _root(path: Path) -> PlanNode:
    root = parse_plan_file(path).statements[0].root
    assert root is not None
    return root


def _shares(root: PlanNode) -> dict[int, float]:
    expected = expected_costs(root)
    total = expected[root.node_id].cost
    assert total
    return {node_id: e.cost / total for node_id, e in expected.items() if e.cost is not None}


@pytest.mark.parametrize("path", [LIMIT_OVER_LOOP, LIMIT_OVER_SORT], ids=lambda p: p.stem)
def test_no_share_under_a_limit_exceeds_its_parents(path: Path) -> None:
    root = _root(path)
    raw = [
        n.estimated_cost / root.estimated_cost
        for n in root.walk()
        if n.estimated_cost and root.estimated_cost
    ]
    assert max(raw) > 1.0  # the plan shows the problem with raw costs
    shares = _shares(root)
    for node in root.walk():
        for child in node.children:
            assert 0.0 <= shares[child.node_id] <= shares[node.node_id] <= 1.0


def test_the_input_of_a_limit_runs_as_far_as_the_limit_reads() -> None:
    root = _root(LIMIT_OVER_LOOP)
    expected = expected_costs(root)
    [loop] = root.children
    assert loop.physical_op == "Nested Loop" and loop.estimated_cost == 48075.41
    # PostgreSQL's own arithmetic: limit total = startup + (total - startup) * fraction
    assert expected[loop.node_id].run_fraction == pytest.approx((3878.21 - 1.27) / (48075.41 - 1.27))
    assert expected[loop.node_id].cost == pytest.approx(3878.21)
    # the loop's outer side streams: it is read to the same fraction (5 of 62 rows, about 8 %)
    outer = loop.children[0]
    assert outer.physical_op == "Nested Loop"
    assert expected[outer.node_id].run_fraction == pytest.approx(expected[loop.node_id].run_fraction)
    assert _shares(root)[outer.node_id] == pytest.approx(
        (0.84 + (2420.02 - 0.84) * 0.0806) / 3878.21, rel=0.01
    )


def test_a_sort_under_a_limit_still_reads_its_whole_input() -> None:
    root = _root(LIMIT_OVER_SORT)
    sort = next(n for n in root.walk() if n.physical_op == "Sort")
    [join] = sort.children
    expected = expected_costs(root)
    assert expected[sort.node_id].run_fraction < 1.0  # the Limit takes its first row
    assert expected[join.node_id].run_fraction == 1.0  # but the sort needed every input row first
    assert expected[join.node_id].cost == join.estimated_cost


def test_plans_whose_children_cost_less_keep_their_costs() -> None:
    """SQL Server subtree costs (no startup costs): the shares are the raw ones."""
    root = _root(FIXTURES / "sqlserver" / "KeyLookup.sqlplan")
    expected = expected_costs(root)
    for node in root.walk():
        assert expected[node.node_id].cost == node.estimated_cost
        assert expected[node.node_id].run_fraction == 1.0
