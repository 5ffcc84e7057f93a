"""What changed between two plans of one query, as data and as text a DBA reads in one glance.

Operators are aligned by the tables they touch, not by node ids: node ids are renumbered whenever
the tree changes, while "dbo.Orders went from a seek to a scan" is what matters. Joins are aligned
by the pair of table sets on their two inputs (unordered, since a hash join may swap build and
probe), falling back to the set of all tables below the join.
"""

from __future__ import annotations

import copy as copy_module
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from planmon.plans.fingerprint import SCHEMA_OPTIONAL, predicate_shape, shape_hash
from planmon.plans.model import Plan, PlanNode, PlanStatement
from planmon.plans.rules.common import (
    ROW_ESTIMATE_RATIO,
    actual_rows_per_execution,
    estimate_ratio,
    readable,
)

SHAPE_UNCHANGED = "shape_unchanged"
SHAPE_CHANGED = "shape_changed"
ACCESS_METHOD_CHANGED = "access_method_changed"
PREDICATE_CHANGED = "predicate_changed"
INDEX_USED = "index_used"
INDEX_NO_LONGER_USED = "index_no_longer_used"
OBJECT_ACCESSED = "object_accessed"
OBJECT_NO_LONGER_ACCESSED = "object_no_longer_accessed"
JOIN_TYPE_CHANGED = "join_type_changed"
PARALLELISM_CHANGED = "parallelism_changed"
OPERATORS_CHANGED = "operators_changed"
NEW_WARNING = "new_warning"
WARNING_GONE = "warning_gone"
ESTIMATE_ERROR = "estimate_error"
STATEMENT_ADDED = "statement_added"
STATEMENT_REMOVED = "statement_removed"

CHANGE_KINDS: tuple[str, ...] = (
    SHAPE_UNCHANGED,
    SHAPE_CHANGED,
    ACCESS_METHOD_CHANGED,
    PREDICATE_CHANGED,
    INDEX_USED,
    INDEX_NO_LONGER_USED,
    OBJECT_ACCESSED,
    OBJECT_NO_LONGER_ACCESSED,
    JOIN_TYPE_CHANGED,
    PARALLELISM_CHANGED,
    OPERATORS_CHANGED,
    NEW_WARNING,
    WARNING_GONE,
    ESTIMATE_ERROR,
    STATEMENT_ADDED,
    STATEMENT_REMOVED,
)

_JOIN_WORDS = ("join", "nested loop", "apply", "semi", "anti")


@dataclass(frozen=True, slots=True)
class PlanChange:
    """One difference: its ``kind`` (see CHANGE_KINDS), the table it concerns, and both sides."""

    kind: str
    object: str | None
    before: str | None
    after: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "object": self.object,
            "before": self.before,
            "after": self.after,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """The differences between two versions of one statement's plan."""

    statement_index: int
    before_hash: str | None
    after_hash: str | None
    changes: list[PlanChange] = field(default_factory=list)

    @property
    def shape_unchanged(self) -> bool:
        return self.before_hash is not None and self.before_hash == self.after_hash

    def as_text(self) -> str:
        shapes = f"{self.before_hash or '-'} -> {self.after_hash or '-'}"
        header = f"statement {self.statement_index}: shape {shapes}"
        return "\n".join([header, *(f"  {change.message}" for change in self.changes)])

    def as_dict(self) -> dict[str, Any]:
        return {
            "statement_index": self.statement_index,
            "before_hash": self.before_hash,
            "after_hash": self.after_hash,
            "shape_unchanged": self.shape_unchanged,
            "changes": [change.as_dict() for change in self.changes],
        }


def diff_plans(before: Plan, after: Plan) -> list[PlanDiff]:
    """Diff two plan documents statement by statement (paired by position)."""
    diffs: list[PlanDiff] = []
    for index in range(max(len(before.statements), len(after.statements))):
        old = before.statements[index] if index < len(before.statements) else None
        new = after.statements[index] if index < len(after.statements) else None
        if old is not None and new is not None:
            diffs.append(diff_statements(old, new))
        elif new is not None:
            message = f"statement {index} only in the new plan ({new.statement_type or 'unknown type'})"
            change = PlanChange(STATEMENT_ADDED, None, None, new.statement_type, message)
            diffs.append(PlanDiff(index, None, shape_hash(new), [change]))
        elif old is not None:
            message = f"statement {index} only in the old plan ({old.statement_type or 'unknown type'})"
            change = PlanChange(STATEMENT_REMOVED, None, old.statement_type, None, message)
            diffs.append(PlanDiff(index, shape_hash(old), None, [change]))
    return diffs


def diff_statements(before: PlanStatement, after: PlanStatement) -> PlanDiff:
    """What changed from ``before`` to ``after`` (two plans of the same statement)."""
    before_hash, after_hash = shape_hash(before), shape_hash(after)
    if _drop_schemas(before, after):
        before, after = _without_schemas(before), _without_schemas(after)
    changes: list[PlanChange] = []
    if before_hash == after_hash:
        changes.append(PlanChange(SHAPE_UNCHANGED, None, before_hash, after_hash, "plan shape unchanged"))
    else:
        structural = [
            *_access_changes(before, after),
            *_predicate_changes(before, after),
            *_join_changes(before, after),
            *_operator_changes(before, after),
        ]
        if not structural:
            structural.append(
                PlanChange(
                    SHAPE_CHANGED,
                    None,
                    before_hash,
                    after_hash,
                    "plan shape changed (predicates or operator order) with the same operators and tables",
                )
            )
        changes.extend(structural)
    changes.extend(_parallelism_changes(before, after))
    changes.extend(_warning_changes(before, after))
    changes.extend(_estimate_changes(before, after))
    return PlanDiff(after.index, before_hash, after_hash, changes)


# --- access methods and indexes -------------------------------------------------------------------


def _drop_schemas(before: PlanStatement, after: PlanStatement) -> bool:
    """Whether tables are named without schema: one side is a plan that names schemas only sometimes
    (PostgreSQL without VERBOSE) and lacks them, so ``orders`` and ``public.orders`` are one table."""
    if not (before.properties.get(SCHEMA_OPTIONAL) or after.properties.get(SCHEMA_OPTIONAL)):
        return False
    return not (_names_schemas(before) and _names_schemas(after))


def _names_schemas(statement: PlanStatement) -> bool:
    objects = [node.object for node in statement.nodes() if node.object is not None and node.object.table]
    return all(ref.schema for ref in objects)


def _without_schemas(statement: PlanStatement) -> PlanStatement:
    """A copy of the statement whose objects have no schema (the original is left as it is)."""
    copy = copy_module.deepcopy(statement)
    for node in copy.nodes():
        if node.object is not None and node.object.schema:
            node.object = replace(node.object, schema=None)
    return copy


def _table(node: PlanNode) -> str | None:
    if node.object is None:
        return None
    return ".".join(part for part in (node.object.schema, node.object.table) if part) or None


def operator_name(node: PlanNode) -> str:
    """The operator as DBAs call it: SQL Server marks a key lookup as a Clustered Index Seek + Lookup."""
    if node.properties.get("Lookup") is True and node.physical_op == "Clustered Index Seek":
        return "Key Lookup"
    return node.physical_op


def _access_label(node: PlanNode) -> str:
    index = node.object.index if node.object is not None else None
    return f"{operator_name(node)} on {index}" if index else operator_name(node)


def _accesses(statement: PlanStatement) -> dict[str, Counter[str]]:
    by_table: dict[str, Counter[str]] = {}
    for node in statement.nodes():
        table = _table(node)
        if table is not None:
            by_table.setdefault(table, Counter())[_access_label(node)] += 1
    return by_table


def _indexes(statement: PlanStatement) -> dict[str, set[str]]:
    by_table: dict[str, set[str]] = {}
    for node in statement.nodes():
        table = _table(node)
        if table is not None and node.object is not None and node.object.index:
            by_table.setdefault(table, set()).add(node.object.index)
    return by_table


def _describe(accesses: Counter[str]) -> str:
    return ", ".join(
        label if count == 1 else f"{label} (x{count})" for label, count in sorted(accesses.items())
    )


def _access_changes(before: PlanStatement, after: PlanStatement) -> list[PlanChange]:
    old, new = _accesses(before), _accesses(after)
    changes: list[PlanChange] = []
    for table in sorted(old.keys() | new.keys()):
        if table not in new:
            text = _describe(old[table])
            message = f"{table}: no longer accessed (was {text})"
            changes.append(PlanChange(OBJECT_NO_LONGER_ACCESSED, table, text, None, message))
        elif table not in old:
            text = _describe(new[table])
            message = f"{table}: newly accessed by {text}"
            changes.append(PlanChange(OBJECT_ACCESSED, table, None, text, message))
        elif old[table] != new[table]:
            was, now = _describe(old[table]), _describe(new[table])
            changes.append(PlanChange(ACCESS_METHOD_CHANGED, table, was, now, f"{table}: {was} -> {now}"))
    old_indexes, new_indexes = _indexes(before), _indexes(after)
    for table in sorted(old.keys() & new.keys()):
        for index in sorted(new_indexes.get(table, set()) - old_indexes.get(table, set())):
            changes.append(PlanChange(INDEX_USED, table, None, index, f"{table}: now uses index {index}"))
        for index in sorted(old_indexes.get(table, set()) - new_indexes.get(table, set())):
            message = f"{table}: no longer uses index {index}"
            changes.append(PlanChange(INDEX_NO_LONGER_USED, table, index, None, message))
    return changes


def _predicates(statement: PlanStatement) -> dict[str, set[str]]:
    by_table: dict[str, set[str]] = {}
    for node in statement.nodes():
        table = _table(node)
        if table is not None:
            shapes = by_table.setdefault(table, set())
            shapes.update(f"{p.kind} {predicate_shape(p.text)}" for p in node.predicates)
    return by_table


def _predicate_changes(before: PlanStatement, after: PlanStatement) -> list[PlanChange]:
    """Predicates on a table's operators that differ (literals and variable names do not count)."""
    old, new = _predicates(before), _predicates(after)
    changes: list[PlanChange] = []
    for table in sorted(old.keys() & new.keys()):
        if old[table] != new[table]:
            was = "; ".join(sorted(old[table] - new[table])) or "(none)"
            now = "; ".join(sorted(new[table] - old[table])) or "(none)"
            message = f"{table}: predicate {was} -> {now}"
            changes.append(PlanChange(PREDICATE_CHANGED, table, was, now, message))
    return changes


# --- joins ----------------------------------------------------------------------------------------


def is_join(node: PlanNode) -> bool:
    """Whether ``node`` joins two inputs (Nested Loops, Hash Match join, Merge Join, Hash Join, ...)."""
    if len(node.children) < 2:
        return False
    words = f"{node.physical_op} {node.logical_op or ''}".lower()
    return any(word in words for word in _JOIN_WORDS)


def _tables_below(statement: PlanStatement) -> dict[int, frozenset[str]]:
    """Tables under every node, keyed by ``id(node)``; iterative so deep plans cannot overflow."""
    below: dict[int, frozenset[str]] = {}
    for node in reversed(list(statement.nodes())):  # children before parents
        own = _table(node)
        tables: set[str] = {own} if own else set()
        for child in node.children:
            tables |= below[id(child)]
        below[id(node)] = frozenset(tables)
    return below


_JoinKey = frozenset[frozenset[str]]


def _joins(statement: PlanStatement) -> list[tuple[_JoinKey, frozenset[str], str]]:
    below = _tables_below(statement)
    joins = []
    for node in statement.nodes():
        if is_join(node):
            sides: _JoinKey = frozenset(below[id(child)] for child in node.children[:2])
            label = node.physical_op if not node.logical_op else f"{node.physical_op} ({node.logical_op})"
            joins.append((sides, below[id(node)], label))
    return joins


def _join_changes(before: PlanStatement, after: PlanStatement) -> list[PlanChange]:
    old_joins = _joins(before)
    changes: list[PlanChange] = []
    unmatched = list(old_joins)
    for sides, tables, label in _joins(after):
        match = next((j for j in unmatched if j[0] == sides), None)
        if match is None:
            match = next((j for j in unmatched if j[1] == tables), None)
        if match is None or not tables:
            continue
        unmatched.remove(match)
        if match[2] != label:
            name = " x ".join(sorted(tables))
            message = f"join of {name}: {match[2]} -> {label}"
            changes.append(PlanChange(JOIN_TYPE_CHANGED, name, match[2], label, message))
    return changes


def _operator_changes(before: PlanStatement, after: PlanStatement) -> list[PlanChange]:
    """Operators (by physical name) that appear more or less often; table accesses are reported above."""
    old = Counter(node.physical_op for node in before.nodes() if node.object is None)
    new = Counter(node.physical_op for node in after.nodes() if node.object is None)
    added, removed = new - old, old - new
    if not added and not removed:
        return []
    parts = [f"+{n} {op}" if n > 1 else f"+{op}" for op, n in sorted(added.items())]
    parts += [f"-{n} {op}" if n > 1 else f"-{op}" for op, n in sorted(removed.items())]
    return [
        PlanChange(
            OPERATORS_CHANGED,
            None,
            _describe(removed) or None,
            _describe(added) or None,
            f"operators: {', '.join(parts)}",
        )
    ]


# --- parallelism, warnings, estimates ---------------------------------------------------------------


def _parallelism(statement: PlanStatement) -> tuple[bool, str]:
    parallel_ops = sum(1 for node in statement.nodes() if node.parallel)
    parallel = parallel_ops > 0 or (statement.dop or 0) > 1
    if not parallel:
        return False, "serial"
    dop = f"DOP {statement.dop}" if statement.dop else "DOP unknown"
    return True, f"parallel ({dop}, {parallel_ops} parallel operators)"


def _parallelism_changes(before: PlanStatement, after: PlanStatement) -> list[PlanChange]:
    (was_parallel, was), (is_parallel, now) = _parallelism(before), _parallelism(after)
    dop_changed = bool(before.dop and after.dop and before.dop != after.dop)
    if was_parallel == is_parallel and not dop_changed:
        return []
    return [PlanChange(PARALLELISM_CHANGED, None, was, now, f"parallelism: {was} -> {now}")]


def _warnings(statement: PlanStatement) -> Counter[tuple[str, str | None, str]]:
    found: Counter[tuple[str, str | None, str]] = Counter()
    for warning in statement.warnings:
        found[(warning.kind, None, "statement")] += 1
    for node in statement.nodes():
        for warning in node.warnings:
            found[(warning.kind, _table(node), node.physical_op)] += 1
    return found


def _warning_changes(before: PlanStatement, after: PlanStatement) -> list[PlanChange]:
    old, new = _warnings(before), _warnings(after)
    changes: list[PlanChange] = []
    for kind, table, where in sorted((new - old).keys(), key=str):
        place = f"{where} on {table}" if table else where
        changes.append(PlanChange(NEW_WARNING, table, None, kind, f"new warning {kind} ({place})"))
    for kind, table, where in sorted((old - new).keys(), key=str):
        place = f"{where} on {table}" if table else where
        changes.append(PlanChange(WARNING_GONE, table, kind, None, f"warning gone: {kind} ({place})"))
    return changes


def _node_key(node: PlanNode) -> tuple[str, str | None, str | None]:
    return (node.physical_op, _table(node), node.object.index if node.object is not None else None)


def _estimate_changes(before: PlanStatement, after: PlanStatement) -> list[PlanChange]:
    already_off = {
        _node_key(node)
        for node in before.nodes()
        if (ratio := estimate_ratio(node)) is not None and ratio >= ROW_ESTIMATE_RATIO
    }
    changes: list[PlanChange] = []
    for node in after.nodes():
        ratio = estimate_ratio(node)
        if ratio is None or ratio < ROW_ESTIMATE_RATIO or _node_key(node) in already_off:
            continue
        table = _table(node)
        estimated, actual = node.estimated_rows or 0.0, actual_rows_per_execution(node) or 0.0
        place = f"{node.physical_op} on {table}" if table else node.physical_op
        changes.append(
            PlanChange(
                ESTIMATE_ERROR,
                table,
                readable(estimated),
                readable(actual),
                f"estimate error at node {node.node_id} ({place}): estimated {readable(estimated)} rows, "
                f"actual {readable(actual)} per execution ({readable(ratio, suffix='x')})",
            )
        )
    return changes
