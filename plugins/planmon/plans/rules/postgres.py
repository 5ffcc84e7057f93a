"""Anti-pattern rules for PostgreSQL plans (parsed by :mod:`planmon.plans.postgres`).

The rules read ANALYZE figures (the numbers that show a problem happened, not that the planner
feared one); on an estimated-only plan only ``no_join_predicate`` can fire, from the estimates.
Thresholds are chosen so that a finding means real work was wasted: each has a comment saying why.
Row-estimate mismatches are not here: they are engine-neutral (``rules/common.py``).

Finding ids: ``seq_scan_filter``, ``spill`` (sorts, hashes and hash aggregates that went to disk; the
evidence says which), ``nested_loop_large_outer``, ``no_join_predicate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from planmon.plans.model import Finding, PlanNode, PlanStatement, Severity
from planmon.plans.rules.common import mentions_any

__all__ = ["find"]

# A sequential scan that reads fewer rows than this finishes in milliseconds even when it throws
# nearly everything away; an index would not save anything a DBA would notice.
SEQ_SCAN_MIN_ROWS_READ = 100_000
# ... and a table whose scans return fewer rows than this each time is a few dozen pages: PostgreSQL
# often prefers a seq scan there even with an index (repeated scans are nested_loop_large_outer's).
SEQ_SCAN_MIN_ROWS_PER_SCAN = 10_000
# "Most rows removed": with >= 90 % discarded, an index on the filter columns would read at most a
# tenth of the table, the point where PostgreSQL itself starts preferring index scans.
SEQ_SCAN_MIN_REMOVED_FRACTION = 0.9
# Disk sorts and hash-aggregate spills below 1 MB are a handful of temp-file pages (often gone from
# the OS cache before they hit the disk); from 1 MB on, raising work_mem or an index is worth a look.
SPILL_MIN_KB = 1024
# A nested loop whose inner side runs fewer than 1,000 times is cheap whatever the inner side is.
NESTED_LOOP_MIN_LOOPS = 1_000
# ... and whose inner side produces fewer than 1,000,000 rows in total does not waste enough work
# (a hash or merge join would read each input once) to be worth a finding.
NESTED_LOOP_MIN_INNER_ROWS = 1_000_000
# Cross joins of a few rows (a calendar times a handful of categories) are common and deliberate;
# from 10,000 combined rows an accidental cartesian product starts to cost real time.
NO_JOIN_PREDICATE_MIN_ROWS = 10_000

_JOINS = frozenset({"Nested Loop", "Hash Join", "Merge Join"})
_SUBPLAN_RELATIONSHIPS = frozenset({"InitPlan", "SubPlan"})
_INDEX_LOOKUPS = frozenset(
    {"Index Scan", "Index Only Scan", "Bitmap Index Scan", "Tid Scan", "Tid Range Scan"}
)
_NAME_KEYS = ("Alias", "Relation Name", "CTE Name", "Function Name")


def find(statement: PlanStatement) -> list[Finding]:
    """All PostgreSQL findings of one statement, in node order."""
    findings: list[Finding] = []
    for node in statement.nodes():
        for rule in (_seq_scan_filter, _spill, _nested_loop_large_outer, _no_join_predicate):
            finding = rule(node)
            if finding is not None:
                findings.append(finding)
    return findings


# --------------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _loops(node: PlanNode) -> float:
    return node.actual_executions or 0.0


def _seq_scan_filter(node: PlanNode) -> Finding | None:
    """Seq Scan that reads many rows and keeps few of them: the filter wants an index."""
    removed_per_loop = _number(node.properties.get("Rows Removed by Filter"))
    if node.physical_op != "Seq Scan" or removed_per_loop is None or node.actual_rows is None:
        return None
    loops = _loops(node)
    removed = removed_per_loop * loops  # PostgreSQL prints the per-loop average
    read = removed + node.actual_rows
    if read < SEQ_SCAN_MIN_ROWS_READ or read / max(loops, 1.0) < SEQ_SCAN_MIN_ROWS_PER_SCAN:
        return None
    if removed / read < SEQ_SCAN_MIN_REMOVED_FRACTION:
        return None
    table = node.object.qualified_table if node.object else "?"
    return Finding(
        id="seq_scan_filter",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"Seq Scan on {table} read {read:,.0f} rows and its filter discarded "
        f"{removed / read:.1%} of them; an index on the filter columns would read far fewer",
        evidence={
            "table": table,
            "rows_read": read,
            "rows_removed": removed,
            "rows_returned": node.actual_rows,
            "removed_fraction": round(removed / read, 4),
            "loops": _loops(node),
        },
    )


def _spill(node: PlanNode) -> Finding | None:
    """Sort, hash or hash aggregate that ran out of work_mem and wrote to temporary files."""
    evidence = _sort_spill(node) or _hash_spill(node) or _hash_aggregate_spill(node)
    if evidence is None:
        return None
    return Finding(
        id="spill",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"{node.physical_op} spilled to disk ({evidence['detail']}); work_mem was too small for it",
        evidence=evidence,
    )


def _sort_spill(node: PlanNode) -> dict[str, Any] | None:
    properties = node.properties
    used_kb = _number(properties.get("Sort Space Used"))
    if properties.get("Sort Space Type") != "Disk" or used_kb is None or used_kb < SPILL_MIN_KB:
        return None
    return {
        "kind": "sort",
        "sort_method": properties.get("Sort Method"),
        "disk_kb": used_kb,
        "detail": f"{properties.get('Sort Method')}, {used_kb:,.0f} kB on disk",
    }


def _hash_spill(node: PlanNode) -> dict[str, Any] | None:
    # Any batch count above 1 means both join inputs were partly written to and re-read from temp
    # files: the hash table did not fit in work_mem (hash_mem_multiplier x work_mem).
    batches = _number(node.properties.get("Hash Batches"))
    if batches is None or batches <= 1:
        return None
    original = _number(node.properties.get("Original Hash Batches"))
    detail = f"{batches:,.0f} batches" + (
        f", planned {original:,.0f}" if original and original != batches else ""
    )
    return {
        "kind": "hash",
        "batches": batches,
        "original_batches": original,
        "peak_memory_kb": _number(node.properties.get("Peak Memory Usage")),
        "detail": detail,
    }


def _hash_aggregate_spill(node: PlanNode) -> dict[str, Any] | None:
    disk_kb = _number(node.properties.get("Disk Usage"))
    batches = _number(node.properties.get("HashAgg Batches"))
    if disk_kb is None or disk_kb < SPILL_MIN_KB or batches is None or batches <= 1:
        return None
    return {
        "kind": "hash_aggregate",
        "batches": batches,
        "disk_kb": disk_kb,
        "detail": f"{batches:,.0f} batches, {disk_kb:,.0f} kB on disk",
    }


def _join_inputs(node: PlanNode) -> tuple[PlanNode, PlanNode] | None:
    """(outer, inner) of a join: its first two children that are not InitPlans/SubPlans."""
    inputs = [
        c for c in node.children if c.properties.get("Parent Relationship") not in _SUBPLAN_RELATIONSHIPS
    ]
    return (inputs[0], inputs[1]) if len(inputs) >= 2 else None


def _subtree(node: PlanNode) -> Iterator[PlanNode]:
    """The node and its descendants, not entering InitPlans/SubPlans (they run on their own)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(
            c
            for c in current.children
            if c.properties.get("Parent Relationship") not in _SUBPLAN_RELATIONSHIPS
        )


def _is_driven_by_outer(outer: PlanNode, inner: PlanNode) -> bool:
    """True when the inner side looks up rows of the current outer row: a Memoize cache, or an index
    (or TID) condition that refers to the outer side. An index condition on a constant (``id < 30``)
    reads the same rows at every loop and is no lookup at all."""
    names = _names(outer)
    for node in _subtree(inner):
        if node.physical_op == "Memoize":
            return True
        if node.physical_op in _INDEX_LOOKUPS:
            conditions = [p.text for p in node.predicates if p.kind in ("index_cond", "tid_cond")]
            if conditions and mentions_any(conditions, names, quote='"'):
                return True
    return False


def _nested_loop_large_outer(node: PlanNode) -> Finding | None:
    """Nested loop that re-reads a non-indexed inner side for each of many outer rows."""
    inputs = _join_inputs(node) if node.physical_op == "Nested Loop" else None
    if inputs is None:
        return None
    outer, inner = inputs
    loops = inner.actual_executions
    if loops is None or inner.actual_rows is None or loops < NESTED_LOOP_MIN_LOOPS:
        return None
    removed = (_number(inner.properties.get("Rows Removed by Filter")) or 0.0) * loops
    # rows the join's own filter threw away were produced by the inner side at every loop too
    join_removed = (_number(node.properties.get("Rows Removed by Join Filter")) or 0.0) * (
        node.actual_executions or 1.0
    )
    inner_rows = inner.actual_rows + removed
    inner_rows = max(inner_rows, join_removed)
    if inner_rows < NESTED_LOOP_MIN_INNER_ROWS or _is_driven_by_outer(outer, inner):
        return None
    return Finding(
        id="nested_loop_large_outer",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"Nested Loop ran its inner {inner.physical_op} {loops:,.0f} times "
        f"over {inner_rows:,.0f} rows without a lookup driven by the outer rows; "
        "a hash join or an index on the join columns would read each side once",
        evidence={
            "outer_rows": outer.actual_rows,
            "inner_loops": loops,
            "inner_rows": inner_rows,
            "inner_node": inner.node_id,
            "inner_op": inner.physical_op,
            "join_filter_removed": join_removed,
        },
    )


def _names(node: PlanNode) -> set[str]:
    """Aliases and relation names an expression can use to refer to rows of this subtree."""
    names: set[str] = set()
    for current in _subtree(node):
        names.update(str(current.properties[key]) for key in _NAME_KEYS if current.properties.get(key))
    return names


def _rows(node: PlanNode) -> float | None:
    """Rows per execution: actual when ANALYZE ran the node, else the estimate."""
    if node.actual_rows is not None and node.actual_executions:
        return node.actual_rows / node.actual_executions
    return node.estimated_rows


def _no_join_predicate(node: PlanNode) -> Finding | None:
    """Nested loop with no join condition at all and an inner side that ignores the outer row."""
    inputs = _join_inputs(node) if node.physical_op == "Nested Loop" else None
    if inputs is None or any(p.kind == "join" for p in node.predicates):
        return None
    outer, inner = inputs
    inner_predicates = [p.text for n in _subtree(inner) for p in n.predicates]
    if mentions_any(inner_predicates, _names(outer), quote='"'):
        return None  # parameterised: the inner side looks up rows of the current outer row
    outer_rows, inner_rows = _rows(outer), _rows(inner)
    if outer_rows is None or inner_rows is None or outer_rows * inner_rows < NO_JOIN_PREDICATE_MIN_ROWS:
        return None
    if outer_rows <= 1 or inner_rows <= 1:
        return None  # one row on either side cannot multiply anything
    return Finding(
        id="no_join_predicate",
        severity=Severity.CRITICAL,
        node_id=node.node_id,
        message=f"Nested Loop joins {outer_rows:,.0f} x {inner_rows:,.0f} rows with no join condition "
        "(a cartesian product); check the query for a missing join predicate",
        evidence={
            "outer_rows": outer_rows,
            "inner_rows_per_loop": inner_rows,
            "combinations": outer_rows * inner_rows,
        },
    )
