"""Engine-neutral plan rules: checks that read only the neutral model, so they hold for every engine.

Each rule takes a statement and returns findings; ``RULES`` lists them for ``rules.find_all``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from planmon.plans.model import Finding, PlanNode, PlanStatement, Severity

ROW_ESTIMATE_RATIO = 100.0  # DESIGN.md section 5: mismatch >= 100x in actual plans
ROW_ESTIMATE_CRITICAL_RATIO = 10_000.0  # the level plan-cache tools (sp_BlitzCache) already shout at
# Floor on the larger of the two row counts (per execution). Below it a misestimate cannot have made
# the optimizer pick a much worse plan: 1,000 rows through a nested loop or a small sort is cheap
# either way. It also silences the classic false positive of plan tools: "estimated 1 row, actual
# 0" (or 50) on a branch that barely ran, which other monitors' users report as noise.
ROW_ESTIMATE_MIN_ROWS = 1_000.0

Rule = Callable[[PlanStatement], list[Finding]]


def actual_rows_per_execution(node: PlanNode) -> float | None:
    """Actual rows per execution on the same footing as the estimate (None: no actuals, or never ran).

    A parallel SQL Server operator estimates rows for all threads together while its executions add
    up over threads (DOP 8 -> 8 executions for one run), so per-thread counters divide by one thread's
    executions. PostgreSQL estimates per process and reports loops per process: the plain division
    is right there.
    """
    if node.actual_rows is None:
        return None
    executions = node.actual_executions
    if node.parallel and node.per_thread:
        executions = max(thread.executions for thread in node.per_thread)
    if executions is not None and executions <= 0:
        return None
    return node.actual_rows / (executions or 1.0)


def estimate_ratio(node: PlanNode) -> float | None:
    """How far actual rows per execution are from the estimate, as a factor >= 1 (None without actuals).

    Row counts below one are taken as one so that zero-row sides give a finite ratio; nodes that never
    executed and nodes under the ``ROW_ESTIMATE_MIN_ROWS`` floor return None (nothing to judge).
    """
    actual = actual_rows_per_execution(node)
    if actual is None or node.estimated_rows is None:
        return None
    if max(actual, node.estimated_rows) < ROW_ESTIMATE_MIN_ROWS:
        return None
    high, low = max(actual, node.estimated_rows), max(min(actual, node.estimated_rows), 1.0)
    return high / low


def _direction(node: PlanNode) -> str:
    return "under" if (actual_rows_per_execution(node) or 0.0) > (node.estimated_rows or 0.0) else "over"


def _inherited(node: PlanNode, ratio: float, ratios: dict[int, float]) -> bool:
    """Whether a child is off the same way by at least half as much: the error started lower down.

    A Gather Streams or Compute Scalar above a misestimated scan repeats the scan's error; reporting
    only the lowest operator points the DBA at the estimate to fix instead of at every parent.
    """
    floor = max(ratio / 2, ROW_ESTIMATE_RATIO)
    direction = _direction(node)
    return any(
        ratios.get(id(child), 0.0) >= floor and _direction(child) == direction for child in node.children
    )


def row_estimate_mismatch(statement: PlanStatement) -> list[Finding]:
    """Operators whose actual rows per execution are >= 100x off the estimate, either way.

    Only the operator where an error starts is reported, not the parents that inherit it.
    """
    rated = [
        (node, ratio)
        for node in statement.nodes()
        # (the first test only saves estimate_ratio's calls on estimated plans: it says None for them)
        if node.actual_rows is not None and (ratio := estimate_ratio(node)) is not None
    ]
    ratios = {id(node): ratio for node, ratio in rated}
    findings: list[Finding] = []
    for node, ratio in rated:
        if ratio < ROW_ESTIMATE_RATIO or _inherited(node, ratio, ratios):
            continue
        actual = actual_rows_per_execution(node) or 0.0
        estimated = node.estimated_rows or 0.0
        direction = _direction(node)
        target = f" on {node.object.qualified}" if node.object is not None else ""
        findings.append(
            Finding(
                id="row_estimate_mismatch",
                severity=Severity.CRITICAL if ratio >= ROW_ESTIMATE_CRITICAL_RATIO else Severity.WARNING,
                message=(
                    f"{node.physical_op}{target}: estimated {estimated:,.0f} rows, actual {actual:,.0f} "
                    f"per execution ({ratio:,.0f}x {direction}estimate); check statistics and predicates"
                ),
                node_id=node.node_id,
                evidence={
                    "estimated_rows": estimated,
                    "actual_rows_per_execution": actual,
                    "ratio": round(ratio, 1),
                    "direction": direction,
                },
            )
        )
    return findings


RULES: tuple[Rule, ...] = (row_estimate_mismatch,)


def mentions_any(texts: list[str], names: set[str], *, quote: str) -> bool:
    """True when an expression refers to a column of one of ``names`` (``name.col``, quoted or not).

    ``quote`` is the engine's identifier quote (``"`` PostgreSQL, `` ` `` MySQL); a join condition
    that names the other side's table or alias is what makes a join predicate.
    """
    for name in names:
        pattern = re.compile(rf"(?<![\w${quote}]){quote}?" + re.escape(name) + rf"{quote}?\.")
        if any(pattern.search(text) for text in texts):
            return True
    return False
