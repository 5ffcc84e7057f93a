"""The share of a statement's cost each operator is expected to spend, bounded under early stops.

An engine's subtree cost is the operator run to completion. An operator that stops reading early
spends less: PostgreSQL costs ``Limit`` as its input's ``startup + (total - startup) * wanted /
rows``, so the input keeps its full cost (often many times the Limit's) and a share computed from
the raw costs reads 1,240 %. Here each operator gets the fraction of its work the plan expects to
run: a child costing more than its parent is expected to run only as far as the parent's cost
reaches; streaming children run as far as their parent does; a child that finishes before its
parent returns a first row (the parent's startup cost covers the child's whole cost: Sort, Hash, a
sorted aggregate) runs whole. The expected cost never exceeds the parent's, so shares stay in 0..1.
Plans without startup costs (SQL Server, MySQL), whose children never cost more than their parent,
keep their costs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from planmon.plans.model import PlanNode

STARTUP_COST = "Startup Cost"  # PostgreSQL's cost before the first row, kept in the node's properties


@dataclass(frozen=True, slots=True)
class ExpectedCost:
    """An operator's expected cost (``None`` without a cost) and the fraction of its work it runs."""

    cost: float | None
    run_fraction: float


def startup_cost(node: PlanNode) -> float | None:
    """The node's cost before it returns its first row, where the engine reports it (PostgreSQL)."""
    value = node.properties.get(STARTUP_COST)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def expected_costs(root: PlanNode) -> dict[int, ExpectedCost]:
    """Each node's expected cost by ``node_id``, parents before children, without recursion."""
    expected: dict[int, ExpectedCost] = {}
    stack: list[tuple[PlanNode, float, float | None]] = [(root, 1.0, None)]
    while stack:
        node, fraction, bound = stack.pop()
        here = _expected(node, fraction, bound)
        expected[node.node_id] = here
        if not node.children:
            continue
        startup = startup_cost(node)
        child_bound = here.cost if here.cost is not None else bound
        for child in reversed(node.children):
            runs_whole = (
                startup is not None and child.estimated_cost is not None and startup >= child.estimated_cost
            )
            stack.append((child, 1.0 if runs_whole else here.run_fraction, child_bound))
    return expected


def _expected(node: PlanNode, fraction: float, bound: float | None) -> ExpectedCost:
    total = node.estimated_cost
    if total is None:
        return ExpectedCost(None, fraction)
    startup = min(max(startup_cost(node) or 0.0, 0.0), total)
    run = fraction
    if bound is not None and total > bound:
        # only as far as the parent's cost reaches: the startup is paid first, then rows at an even rate
        reach = (bound - startup) / (total - startup) if total > startup else 0.0
        run = min(run, max(reach, 0.0))
    cost = startup + (total - startup) * run
    return ExpectedCost(min(cost, bound) if bound is not None else cost, run)
