"""Anti-pattern rules for MySQL / MariaDB plans (parsed by :mod:`planmon.plans.mysql`).

MySQL's own notes (``Using filesort``, ``Using temporary``, ``Using join buffer``) are everywhere and
mostly harmless on small inputs, so every rule here also needs a row count that makes the problem
cost something; each threshold has a comment saying why. Rows come from MariaDB ANALYZE figures when
present, else from the optimizer's estimates. Row-estimate mismatches are engine-neutral
(``rules/common.py``) and not checked here.

Finding ids: ``full_scan``, ``missing_index``, ``filesort``, ``temporary_table``, ``join_buffer``,
``no_join_predicate``.
"""

from __future__ import annotations

import re
from typing import Any

from planmon.plans.model import Finding, PlanNode, PlanStatement, Severity
from planmon.plans.rules.common import mentions_any

__all__ = ["find"]

# A full scan of fewer rows than this reads a few hundred 16 KB InnoDB pages (about 100 rows a page)
# and costs about as much as the index dives that would replace it.
FULL_SCAN_MIN_ROWS = 100_000
# Sorting fewer rows than this fits the default 256 KB sort_buffer_size at typical row widths, so no
# merge passes on disk happen.
FILESORT_MIN_ROWS = 10_000
# Internal temporary tables stay in memory up to tmp_table_size (16 MB by default); below about
# 100,000 rows of typical width they never become on-disk tables.
TEMPORARY_TABLE_MIN_ROWS = 100_000
# A join buffer over a full scan compares every buffered outer row with every inner row: below a
# million comparisons that is a few milliseconds of CPU.
JOIN_BUFFER_MIN_COMPARISONS = 1_000_000
# Small deliberate cross joins are common; from 10,000 combined rows a missing predicate hurts.
NO_JOIN_PREDICATE_MIN_ROWS = 10_000

_JOINS = frozenset({"Nested Loop", "Block Nested Loop", "Hash Join", "Batched Key Access"})
# A temporary table is how these work, not a symptom: materialising a derived table or a UNION.
_TEMPORARY_BY_DESIGN = frozenset({"Materialize", "Union"})
_FULL_SCANS = frozenset({"Full Table Scan", "Full Index Scan"})
_REDUCERS = frozenset({"Aggregate", "Duplicate Removal"})


def find(statement: PlanStatement) -> list[Finding]:
    """All MySQL / MariaDB findings of one statement, in node order."""
    findings: list[Finding] = []
    for node in statement.nodes():
        for rule in (
            _full_scan,
            _missing_index,
            _filesort,
            _temporary_table,
            _no_join_predicate,
            _join_buffer,
        ):
            finding = rule(node)
            if finding is not None:
                findings.append(finding)
    return findings


# --------------------------------------------------------------------------------------------------
# Row arithmetic


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _filtered(node: PlanNode, key: str = "filtered") -> float:
    """The fraction (0..1) of examined rows that passed the table's condition."""
    percent = _number(node.properties.get(key))
    return 1.0 if percent is None else percent / 100.0


def _is_table(node: PlanNode) -> bool:
    return "access_type" in node.properties


def _rows_examined(node: PlanNode) -> float:
    """Rows a table access examined in the whole statement (actual, else estimated)."""
    if node.actual_rows is not None:
        return node.actual_rows
    return (node.estimated_rows or 0.0) * (node.estimated_executions or 1.0)


def _table_rows_out(node: PlanNode) -> float:
    if node.actual_rows is not None:
        return node.actual_rows * _filtered(node, "r_filtered")
    produced = _number(node.properties.get("rows_produced_per_join"))
    return produced if produced is not None else _rows_examined(node) * _filtered(node)


def _join_rows_out(node: PlanNode) -> float | None:
    """MySQL says it (rows_produced_per_join); MariaDB: outer rows x inner rows per scan x filtered."""
    if node.estimated_rows is not None:
        return node.estimated_rows
    outer_rows = _rows_out(node.children[0])
    inner = node.children[1]
    return None if outer_rows is None else outer_rows * (inner.estimated_rows or 0.0) * _filtered(inner)


def _rows_out(node: PlanNode) -> float | None:
    """Rows an operator passes to its parent over the whole statement (actual where known).

    None after a grouping or duplicate removal: the plan does not say how many rows remain.
    """
    if node.physical_op in _REDUCERS:
        return None
    if _is_table(node):
        return _table_rows_out(node)
    if node.physical_op in _JOINS and len(node.children) >= 2:
        return _join_rows_out(node)
    if node.physical_op == "Union":
        parts = [_rows_out(child) for child in node.children]
        return None if None in parts else sum(part for part in parts if part is not None)
    return _rows_out(node.children[0]) if node.children else 0.0


def _table_names(node: PlanNode) -> set[str]:
    return {str(n.properties["table_name"]) for n in node.walk() if n.properties.get("table_name")}


def _is_lookup(node: PlanNode) -> bool:
    """A key lookup fed by the outer rows: ``ref`` names columns or ``func``, not only constants; or
    MariaDB's range checked for each record, a range on the outer row's values chosen at every row."""
    if node.physical_op == "Range Checked For Each Record":
        return True
    ref = node.properties.get("ref")
    return isinstance(ref, list) and any(str(item) != "const" for item in ref)


# --------------------------------------------------------------------------------------------------
# Rules


def _large_full_table_scan(node: PlanNode) -> float | None:
    """Rows examined by a full scan of a real table, when there are enough to matter."""
    if node.physical_op != "Full Table Scan" or node.object is None:
        return None
    examined = _rows_examined(node)
    return examined if examined >= FULL_SCAN_MIN_ROWS else None


_COLUMN = re.compile(
    r"(?:`(?P<qt>[^`]+)`|(?P<t>[A-Za-z_][\w$]*))\.(?:`(?P<qc>[^`]+)`|(?P<c>[A-Za-z_][\w$]*))"
)


def filtered_columns(node: PlanNode) -> list[str]:
    """Columns of the node's own table that its filter (attached_condition) tests, in order of mention.

    A join condition names the other table's columns too; those are left out: an index for the
    scan has to lead with what the scan itself filters on.
    """
    table = node.object.table if node.object else None
    columns: list[str] = []
    for predicate in node.predicates:
        if predicate.kind != "filter":
            continue
        for match in _COLUMN.finditer(predicate.text):
            owner, column = match.group("qt") or match.group("t"), match.group("qc") or match.group("c")
            if owner == table and column not in columns:
                columns.append(column)
    return columns


def _full_scan(node: PlanNode) -> Finding | None:
    """Full table scan although the optimizer had candidate indexes (stale statistics, poor selectivity).

    The advice names the columns the scan filters on: a candidate index can serve only a join (a
    semi-join's lookup key), and naming it would point the DBA at the wrong columns.
    """
    examined = _large_full_table_scan(node)
    possible = node.properties.get("possible_keys")
    if examined is None or not possible:
        return None
    table = node.object.table if node.object else "?"
    columns = filtered_columns(node)
    advice = (
        f"; its filter tests {', '.join(columns)}: an index leading with those columns would narrow the read"
        if columns
        else "; no filter on its own columns: the candidate indexes can serve only the join"
    )
    return Finding(
        id="full_scan",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"full table scan of {table} ({examined:,.0f} rows examined) although indexes "
        f"{', '.join(map(str, possible))} were candidates{advice}",
        evidence={
            "table": table,
            "rows_examined": examined,
            "possible_keys": possible,
            "filter_columns": columns,
        },
    )


def _missing_index(node: PlanNode) -> Finding | None:
    """Full table scan filtered by a condition that no index can serve."""
    examined = _large_full_table_scan(node)
    if examined is None or node.properties.get("possible_keys") or not node.predicates:
        return None
    table = node.object.table if node.object else "?"
    condition = node.predicates[0].text
    return Finding(
        id="missing_index",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"full table scan of {table} ({examined:,.0f} rows examined) filtered by a condition "
        "no index covers; consider an index on its columns",
        evidence={"table": table, "rows_examined": examined, "condition": condition},
    )


def _filesort(node: PlanNode) -> Finding | None:
    """A sort (filesort) over many rows."""
    if node.physical_op != "Sort" or not node.children:
        return None
    if node.properties.get("r_used_priority_queue"):
        return None  # ORDER BY ... LIMIT n kept only n rows in memory: no merge passes
    rows = _rows_out(node.children[0])
    if rows is None or rows < FILESORT_MIN_ROWS:
        return None
    return Finding(
        id="filesort",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"filesort of about {rows:,.0f} rows; "
        "an index in the ORDER BY / GROUP BY order would avoid it",
        evidence={"rows_sorted": rows, "actual": node.actual_executions is not None},
    )


def _temporary_table(node: PlanNode) -> Finding | None:
    """An internal temporary table big enough to leave memory."""
    if not node.properties.get("using_temporary_table") or node.physical_op in _TEMPORARY_BY_DESIGN:
        return None
    rows = _rows_out(node.children[0]) if node.children else None
    if rows is None or rows < TEMPORARY_TABLE_MIN_ROWS:
        return None
    return Finding(
        id="temporary_table",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"{node.physical_op} uses an internal temporary table for about {rows:,.0f} rows; "
        "it may spill to disk beyond tmp_table_size",
        evidence={"rows": rows, "operator": node.physical_op},
    )


def _cross_join(node: PlanNode) -> tuple[float, float] | None:
    """(outer rows, inner rows per scan) of a join with no condition linking its two sides."""
    if node.physical_op not in _JOINS or len(node.children) < 2:
        return None
    outer, inner = node.children[0], node.children[1]
    if _is_lookup(inner):
        return None
    texts = [p.text for p in node.predicates] + [p.text for p in inner.predicates]
    if mentions_any(texts, _table_names(outer), quote="`"):
        return None
    outer_rows = _rows_out(outer)
    inner_rows = (inner.estimated_rows or 0.0) * _filtered(inner)
    # One row on either side cannot multiply anything: a join with a single-row table is harmless.
    if outer_rows is None or outer_rows <= 1 or inner_rows <= 1:
        return None
    return outer_rows, inner_rows


def _no_join_predicate(node: PlanNode) -> Finding | None:
    """A join whose inner table is read without any condition on the outer tables."""
    sides = _cross_join(node)
    if sides is None or sides[0] * sides[1] < NO_JOIN_PREDICATE_MIN_ROWS:
        return None
    outer_rows, inner_rows = sides
    return Finding(
        id="no_join_predicate",
        severity=Severity.CRITICAL,
        node_id=node.node_id,
        message=f"{node.physical_op} joins {outer_rows:,.0f} x {inner_rows:,.0f} rows with no join condition "
        "(a cartesian product); check the query for a missing join predicate",
        evidence={
            "outer_rows": outer_rows,
            "inner_rows": inner_rows,
            "combinations": outer_rows * inner_rows,
        },
    )


def _join_buffer(node: PlanNode) -> Finding | None:
    """Block nested loop over a full scan: the join has no usable index on the inner table."""
    if node.physical_op != "Block Nested Loop" or len(node.children) < 2:
        return None
    if _no_join_predicate(node) is not None:
        return None  # reported as no_join_predicate, the worse problem
    outer, inner = node.children[0], node.children[1]
    if inner.physical_op not in _FULL_SCANS:
        return None
    outer_rows = _rows_out(outer)
    comparisons = (outer_rows or 0.0) * (inner.estimated_rows or 0.0)
    if comparisons < JOIN_BUFFER_MIN_COMPARISONS:
        return None
    table = inner.object.table if inner.object else str(inner.properties.get("table_name", "?"))
    return Finding(
        id="join_buffer",
        severity=Severity.WARNING,
        node_id=node.node_id,
        message=f"block nested loop joins {table} through a join buffer over a {inner.physical_op.lower()} "
        f"(about {comparisons:,.0f} row comparisons); an index on the join columns of {table} would avoid it",
        evidence={"table": table, "comparisons": comparisons, "inner_access": inner.logical_op},
    )
