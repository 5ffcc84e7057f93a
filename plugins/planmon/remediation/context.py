"""What a proposal is built from: the regression, its target and query, both plans, the index snapshot.

The store assembles a :class:`RegressionContext` (``store/remediations.py``); the per-engine
proposers read only this, plus an optional live look at the target's current indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from planmon.model import Target

# (database, tables) -> {(table, index_name)} present on the target now (read-only catalog query).
IndexInspector = Callable[[str, Sequence[str]], set[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class IndexSnapshot:
    """An index definition captured by collection, with when it was first and last seen."""

    table: str  # schema.table (PostgreSQL) / database.table (MySQL)
    index_name: str
    definition: str
    is_unique: bool
    is_primary: bool
    first_seen: Any
    last_seen: Any


@dataclass(frozen=True, slots=True)
class PlanInfo:
    plan_id: int | None
    plan_key: str | None
    body: bytes | None
    is_forced: bool = False
    forcing_type: str | None = None
    force_failure_count: int | None = None
    last_force_failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class RegressionContext:
    regression: Mapping[str, Any]  # the regression table's row
    target: Target
    database_name: str
    query_key: str
    query_text: str | None
    baseline_plan: PlanInfo
    current_plan: PlanInfo
    indexes: Sequence[IndexSnapshot] = ()
    query_plans: Sequence[PlanInfo] = ()  # every stored plan of the query (forcing state)
    ledger: Sequence[Mapping[str, Any]] = field(default_factory=list)  # earlier remediations of the query

    @property
    def regression_id(self) -> int:
        return int(self.regression["id"])

    @property
    def kind(self) -> str:
        return str(self.regression["kind"])


def plan_indexes(body: bytes | None, engine: str) -> dict[str, set[str]]:
    """Indexes a plan document uses, by table name as the plan writes it (parse failures: none)."""
    from planmon.errors import PlanParseError
    from planmon.plans import parse_plan

    if not body:
        return {}
    try:
        plan = parse_plan(body, engine=engine)
    except PlanParseError:
        return {}
    used: dict[str, set[str]] = {}
    for statement in plan.statements:
        for node in statement.nodes():
            if node.object is not None and node.object.index:
                used.setdefault(node.object.table, set()).add(node.object.index)
    return used


def same_table(snapshot_table: str, plan_table: str) -> bool:
    """``public.orders`` / ``shop.orders`` match a plan's ``orders`` (plans may omit the schema)."""
    if snapshot_table == plan_table:
        return True
    return snapshot_table.rsplit(".", 1)[-1] == plan_table.rsplit(".", 1)[-1]


def dropped_baseline_indexes(
    context: RegressionContext, engine: str, inspector: IndexInspector | None
) -> list[IndexSnapshot]:
    """Indexes the baseline plan used, captured in the snapshot, and absent from the target now.

    "Absent now" is read live when an inspector is given (the only reliable answer); without one,
    an index counts as gone when a newer snapshot of its table no longer lists it.
    """
    used = plan_indexes(context.baseline_plan.body, engine)
    still = plan_indexes(context.current_plan.body, engine)
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
        present = inspector(context.database_name, sorted({c.table for c in candidates}))
        return [c for c in candidates if (c.table, c.index_name) not in present]
    newest: dict[str, Any] = {}
    for snapshot in context.indexes:
        newest[snapshot.table] = max(newest.get(snapshot.table, snapshot.last_seen), snapshot.last_seen)
    return [c for c in candidates if c.last_seen < newest[c.table]]


def plan_tables(context: RegressionContext, engine: str) -> list[str]:
    """Tables the regressed (else the baseline) plan touches, qualified as the snapshot qualifies them."""
    from planmon.errors import PlanParseError
    from planmon.plans import parse_plan

    tables: dict[str, None] = {}
    for body in (context.current_plan.body, context.baseline_plan.body):
        if not body:
            continue
        try:
            plan = parse_plan(body, engine=engine)
        except PlanParseError:
            continue
        for statement in plan.statements:
            for node in statement.nodes():
                if node.object is not None and node.object.table:
                    tables.setdefault(_qualified(node.object, context), None)
        if tables:
            break
    return list(tables)


def _qualified(obj: Any, context: RegressionContext) -> str:
    known = {s.table for s in context.indexes if same_table(s.table, obj.table)}
    if len(known) == 1:
        return known.pop()
    if obj.schema:
        return f"{obj.schema}.{obj.table}"
    return f"{context.database_name}.{obj.table}" if context.target.engine == "mysql" else str(obj.table)
