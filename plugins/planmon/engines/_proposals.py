"""What a regression's plans touch, for the engines' proposers: the indexes the baseline plan used
that are gone now, and the tables of the regressed plan. Tables are (schema, name) pairs throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from planmon.errors import PlanParseError
from planmon.model import (
    Action,
    Evidence,
    IndexSnapshot,
    Proposal,
    QualifiedName,
    RegressionContext,
    Statement,
)
from planmon.plans import parse_plan
from planmon.plans.model import ObjectRef

IndexInspector = Callable[[str, Sequence[QualifiedName]], set[tuple[QualifiedName, str]]]
"""(database, tables) -> {(table, index_name)} present on the target now (read-only catalog query)."""


def _plan_objects(body: bytes | None, plan_format: str) -> list[ObjectRef]:
    """Every object a plan document's operators touch (none when it is missing or unparsable)."""
    if not body:
        return []
    try:
        plan = parse_plan(body, engine=plan_format)
    except PlanParseError:
        return []
    return [
        node.object
        for statement in plan.statements
        for node in statement.nodes()
        if node.object is not None and node.object.table
    ]


def plan_indexes(body: bytes | None, plan_format: str) -> dict[QualifiedName, set[str]]:
    """Indexes a plan document uses, by table (schema None where the plan does not name it)."""
    used: dict[QualifiedName, set[str]] = {}
    for ref in _plan_objects(body, plan_format):
        if ref.index:
            used.setdefault(QualifiedName(ref.schema, ref.table), set()).add(ref.index)
    return used


def same_table(snapshot_table: QualifiedName, plan_table: QualifiedName) -> bool:
    """A snapshot's ``public.orders`` is a plan's ``orders``; a plan naming another schema is not it."""
    if snapshot_table.name != plan_table.name:
        return False
    return (
        plan_table.schema is None
        or snapshot_table.schema is None
        or snapshot_table.schema == plan_table.schema
    )


def dropped_baseline_indexes(
    context: RegressionContext, plan_format: str, inspector: IndexInspector | None
) -> list[IndexSnapshot]:
    """Indexes the baseline plan used, captured in the snapshot, and absent from the target now.

    "Absent now" is read live when an inspector is given (the only reliable answer); without one,
    an index counts as gone when a newer snapshot of its table no longer lists it.
    """
    used = plan_indexes(context.baseline_plan.body, plan_format)
    still = plan_indexes(context.current_plan.body, plan_format)
    candidates = [
        snapshot
        for snapshot in context.indexes
        if not snapshot.is_primary
        and any(
            same_table(snapshot.table, table)
            and snapshot.index_name in names
            and snapshot.index_name not in still.get(table, set())
            for table, names in used.items()
        )
    ]
    if not candidates:
        return []
    if inspector is not None:
        tables = sorted({c.table for c in candidates}, key=QualifiedName.key)
        present = inspector(context.database_name, tables)
        return [c for c in candidates if (c.table, c.index_name) not in present]
    newest: dict[QualifiedName, Any] = {}
    for snapshot in context.indexes:
        newest[snapshot.table] = max(newest.get(snapshot.table, snapshot.last_seen), snapshot.last_seen)
    return [c for c in candidates if c.last_seen < newest[c.table]]


def plan_tables(
    context: RegressionContext, plan_format: str, *, default_schema: str | None = None
) -> list[QualifiedName]:
    """Tables the regressed (else the baseline) plan touches, qualified as the snapshot qualifies
    them; a table the plan names without schema and the snapshot does not know gets
    ``default_schema`` (MySQL: the statement's database)."""
    tables: dict[QualifiedName, None] = {}
    for body in (context.current_plan.body, context.baseline_plan.body):
        for ref in _plan_objects(body, plan_format):
            tables.setdefault(_qualified(QualifiedName(ref.schema, ref.table), context, default_schema), None)
        if tables:
            break
    return list(tables)


def _qualified(table: QualifiedName, context: RegressionContext, default_schema: str | None) -> QualifiedName:
    known = {s.table for s in context.indexes if same_table(s.table, table)}
    if len(known) == 1:
        return known.pop()
    if table.schema is not None:
        return table
    return QualifiedName(default_schema, table.name)


def recreate_index(
    context: RegressionContext,
    snapshot: IndexSnapshot,
    *,
    statements: tuple[Statement, ...],
    rollback: tuple[Statement, ...],
    objects: tuple[QualifiedName, ...],
    chooser: str,
) -> Proposal:
    """Bring back an index of the baseline plan (``chooser``: who picks plans, planner / optimizer)."""
    return Proposal(
        action=Action.RECREATE_INDEX,
        database_name=context.database_name,
        statements=statements,
        rollback=rollback,
        expected_effect=(
            f"the baseline plan used index {snapshot.index_name} on {snapshot.table}, which is gone; "
            f"with it back the {chooser} can return to the baseline plan"
        ),
        evidence=Evidence(
            index=snapshot.index_name,
            table=snapshot.table,
            captured_definition=snapshot.definition,
            last_seen=str(snapshot.last_seen),
        ),
        objects=objects,
    )


def refresh_statistics(
    context: RegressionContext,
    action: Action,
    statements: tuple[Statement, ...],
    tables: Sequence[QualifiedName],
    expected_effect: str,
) -> Proposal:
    """ANALYZE / UPDATE STATISTICS of the plan's tables: no rollback (old statistics cannot be put
    back), so verification records whether it helped."""
    return Proposal(
        action=action,
        database_name=context.database_name,
        statements=statements,
        rollback=(),
        expected_effect=expected_effect,
        evidence=Evidence(tables=tuple(tables)),
        objects=tuple(tables),
    )
