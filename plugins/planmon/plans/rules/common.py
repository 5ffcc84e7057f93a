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

# Operators that stop asking their input for rows once they have enough: a LIMIT (SQL Server Top),
# and the inner side of a (nested-loop or merge) semi or anti join, which stops at the first match.
_LIMITS = frozenset({"Limit", "Top"})
_EARLY_STOP_JOINS = ("semi", "anti")
_EXISTS_SUBPLAN = re.compile(r"\bEXISTS\s*\(\s*SubPlan\b")
_SUBPLAN_REFERENCE = re.compile(r"\bSubPlan\b")
# MySQL/MariaDB full scans (access_type ALL, or index: the whole index in order) estimate the table's
# row count; MariaDB writes no LIMIT into its JSON, but a full scan that read far fewer rows than the
# table holds was stopped by the statement (ORDER BY ... LIMIT served by the index order, FirstMatch).
_FULL_SCAN_ACCESS = frozenset({"ALL", "index"})
_BIG = 1_000_000.0


def readable(value: float, *, suffix: str = "") -> str:
    """``12,345`` below a million, ``4.6e21`` above it, so a wild estimate stays readable in a message."""
    if abs(value) < _BIG:
        return f"{value:,.0f}{suffix}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}{suffix}"


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


def _stops_input_early(ancestor: PlanNode, child: PlanNode) -> bool:
    """Whether ``ancestor`` may stop reading the branch that holds ``child`` before it is exhausted."""
    if ancestor.physical_op in _LIMITS:
        return True
    kind = f"{ancestor.physical_op} {ancestor.logical_op or ''}".lower()
    inner = bool(ancestor.children) and child is not ancestor.children[0]
    if inner and "hash" not in kind and any(word in kind for word in _EARLY_STOP_JOINS):
        # the inner side of a nested-loop or merge semi/anti join: read up to the first match; a
        # hash join builds its hash table from the whole inner input, so that one is not cut short
        return True
    if isinstance(child.properties.get("Subplan Name"), str):
        # PostgreSQL 17+ writes EXISTS(SubPlan n); the model's predicates carry "SubPlan ?" (the
        # number is stripped with the literals), so the subplan is an EXISTS when every subplan the
        # operator refers to is one
        output = ancestor.properties.get("Output")
        outputs = output if isinstance(output, list) else []
        texts = [p.text for p in ancestor.predicates] + [str(item) for item in outputs]
        exists = sum(len(_EXISTS_SUBPLAN.findall(text)) for text in texts)
        return exists > 0 and exists == sum(len(_SUBPLAN_REFERENCE.findall(text)) for text in texts)
    return False


def cut_short(statement: PlanStatement) -> set[int]:
    """``id()`` of every node below an operator that may stop reading it early (LIMIT / Top, the inner
    side of a semi or anti join, an EXISTS subplan), and MySQL/MariaDB full scans (``_FULL_SCAN_ACCESS``).

    Such a node's estimate is for reading its input to the end, its actual count for what the
    operator above asked: "estimated 200,000, actual 10" under a LIMIT 10 is the plan working.
    """
    marked: set[int] = set()
    if statement.root is None:
        return marked
    stack: list[tuple[PlanNode, bool]] = [(statement.root, False)]
    while stack:
        node, below_stop = stack.pop()
        if below_stop or node.properties.get("access_type") in _FULL_SCAN_ACCESS:
            marked.add(id(node))
        for child in node.children:
            stack.append((child, below_stop or _stops_input_early(node, child)))
    return marked


def row_estimate_mismatch(statement: PlanStatement) -> list[Finding]:
    """Operators whose actual rows per execution are >= 100x off the estimate, either way.

    Only the operator where an error starts is reported, not the parents that inherit it. An
    over-estimate below an operator that stops reading early (``cut_short``: a LIMIT, the inner side
    of a semi or anti join, an EXISTS subplan) is not reported: the ancestors say why fewer rows came.
    """
    rated = [
        (node, ratio)
        for node in statement.nodes()
        # (the first test only saves estimate_ratio's calls on estimated plans: it says None for them)
        if node.actual_rows is not None and (ratio := estimate_ratio(node)) is not None
    ]
    ratios = {id(node): ratio for node, ratio in rated}
    findings: list[Finding] = []
    stopped = cut_short(statement) if rated else set()
    for node, ratio in rated:
        if ratio < ROW_ESTIMATE_RATIO or _inherited(node, ratio, ratios):
            continue
        direction = _direction(node)
        if direction == "over" and id(node) in stopped:
            continue  # fewer rows than estimated because the operator above stopped asking
        actual = actual_rows_per_execution(node) or 0.0
        estimated = node.estimated_rows or 0.0
        target = f" on {node.object.qualified}" if node.object is not None else ""
        findings.append(
            Finding(
                id="row_estimate_mismatch",
                severity=Severity.CRITICAL if ratio >= ROW_ESTIMATE_CRITICAL_RATIO else Severity.WARNING,
                message=(
                    f"{node.physical_op}{target}: estimated {readable(estimated)} rows, actual "
                    f"{readable(actual)} per execution ({readable(ratio, suffix='x')} {direction}estimate); "
                    "check statistics and predicates"
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
