"""diff_statements on hand-built trees: each change kind, alignment by table, and the text form."""

from __future__ import annotations

from planmon.plans.diff import (
    ACCESS_METHOD_CHANGED,
    CHANGE_KINDS,
    ESTIMATE_ERROR,
    INDEX_NO_LONGER_USED,
    INDEX_USED,
    JOIN_TYPE_CHANGED,
    NEW_WARNING,
    OBJECT_ACCESSED,
    OPERATORS_CHANGED,
    PARALLELISM_CHANGED,
    PREDICATE_CHANGED,
    SHAPE_CHANGED,
    SHAPE_UNCHANGED,
    STATEMENT_ADDED,
    WARNING_GONE,
    PlanDiff,
    diff_plans,
    diff_statements,
)
from planmon.plans.model import ObjectRef, Plan, PlanNode, PlanStatement, PlanWarning, Predicate


def _access(node_id: int, op: str, table: str, index: str, **extra: object) -> PlanNode:
    node = PlanNode(
        node_id=node_id,
        physical_op=op,
        logical_op=op,
        object=ObjectRef(table=table, schema="dbo", database="Sales", index=index, alias=table[0].lower()),
        estimated_rows=100.0,
    )
    for name, value in extra.items():
        setattr(node, name, value)
    return node


def _plan(
    orders: PlanNode | None = None,
    *,
    join: str = "Nested Loops",
    dop: int | None = None,
    parallel: bool = False,
    warnings: list[PlanWarning] | None = None,
) -> PlanStatement:
    orders = orders or _access(2, "Index Seek", "Orders", "IX_Orders_Date")
    customers = _access(3, "Clustered Index Seek", "Customers", "PK_Customers")
    root = PlanNode(
        node_id=1,
        physical_op=join,
        logical_op="Inner Join",
        children=[orders, customers],
        parallel=parallel,
        warnings=warnings or [],
    )
    return PlanStatement(index=0, statement_type="SELECT", root=root, dop=dop)


def _kinds(diff: PlanDiff) -> list[str]:
    return [change.kind for change in diff.changes]


def test_same_shape_reports_shape_unchanged_only() -> None:
    diff = diff_statements(_plan(), _plan())
    assert diff.shape_unchanged
    assert _kinds(diff) == [SHAPE_UNCHANGED]
    assert diff.as_dict()["shape_unchanged"] is True


def test_seek_to_scan_names_table_and_indexes() -> None:
    scan = _access(7, "Clustered Index Scan", "Orders", "PK_Orders")  # node ids renumbered on purpose
    diff = diff_statements(_plan(), _plan(scan))
    access = [c for c in diff.changes if c.kind == ACCESS_METHOD_CHANGED]
    assert len(access) == 1
    assert access[0].object == "dbo.Orders"
    assert (
        access[0].message == "dbo.Orders: Index Seek on IX_Orders_Date -> Clustered Index Scan on PK_Orders"
    )
    assert {
        (c.kind, c.after or c.before) for c in diff.changes if c.kind in (INDEX_USED, INDEX_NO_LONGER_USED)
    } == {
        (INDEX_USED, "PK_Orders"),
        (INDEX_NO_LONGER_USED, "IX_Orders_Date"),
    }
    text = diff.as_text()
    assert "dbo.Orders: Index Seek on IX_Orders_Date -> Clustered Index Scan on PK_Orders" in text
    assert "dbo.Customers" not in text  # unchanged tables are not mentioned


def test_join_type_change_on_the_same_pair_of_tables() -> None:
    diff = diff_statements(_plan(), _plan(join="Hash Match"))
    joins = [c for c in diff.changes if c.kind == JOIN_TYPE_CHANGED]
    assert len(joins) == 1
    assert joins[0].object == "dbo.Customers x dbo.Orders"
    assert joins[0].before == "Nested Loops (Inner Join)"
    assert joins[0].after == "Hash Match (Inner Join)"
    assert ACCESS_METHOD_CHANGED not in _kinds(diff)


def test_join_inputs_swapped_still_align() -> None:
    before = _plan(join="Nested Loops")
    after = _plan(join="Hash Match")
    assert after.root is not None
    after.root.children.reverse()
    assert JOIN_TYPE_CHANGED in _kinds(diff_statements(before, after))


def test_parallelism_change() -> None:
    diff = diff_statements(_plan(), _plan(dop=8, parallel=True))
    change = next(c for c in diff.changes if c.kind == PARALLELISM_CHANGED)
    assert change.before == "serial"
    assert change.after is not None and "DOP 8" in change.after
    same_shape_other_dop = diff_statements(_plan(dop=4, parallel=True), _plan(dop=8, parallel=True))
    assert PARALLELISM_CHANGED in _kinds(same_shape_other_dop)
    assert SHAPE_UNCHANGED in _kinds(same_shape_other_dop)


def test_warnings_appear_and_go() -> None:
    spill = [PlanWarning("SpillToTempDb", "spilled to tempdb")]
    appeared = diff_statements(_plan(), _plan(warnings=spill))
    assert [c.after for c in appeared.changes if c.kind == NEW_WARNING] == ["SpillToTempDb"]
    gone = diff_statements(_plan(warnings=spill), _plan())
    assert [c.before for c in gone.changes if c.kind == WARNING_GONE] == ["SpillToTempDb"]


def test_estimate_error_only_when_new_in_the_after_plan() -> None:
    def off() -> PlanNode:
        return _access(
            2, "Index Seek", "Orders", "IX_Orders_Date", actual_rows=500_000.0, actual_executions=1.0
        )

    diff = diff_statements(_plan(), _plan(off()))
    errors = [c for c in diff.changes if c.kind == ESTIMATE_ERROR]
    assert len(errors) == 1 and errors[0].object == "dbo.Orders"
    assert "5,000x" in errors[0].message
    assert ESTIMATE_ERROR not in _kinds(diff_statements(_plan(off()), _plan(off())))


def test_new_table_and_extra_operator() -> None:
    after = _plan()
    assert after.root is not None
    extra = _access(4, "Clustered Index Scan", "Returns", "PK_Returns")
    after.root = PlanNode(
        node_id=0,
        physical_op="Sort",
        children=[PlanNode(5, "Nested Loops", "Inner Join", children=[after.root, extra])],
    )
    kinds = _kinds(diff_statements(_plan(), after))
    assert OBJECT_ACCESSED in kinds
    assert OPERATORS_CHANGED in kinds


def test_predicate_change_on_a_table_names_both_predicates() -> None:
    def seek(predicate: str) -> PlanNode:
        return _access(2, "Index Seek", "Orders", "IX_Orders_Date", predicates=[Predicate("seek", predicate)])

    diff = diff_statements(
        _plan(seek("[OrderDate] > '2024-01-01'")), _plan(seek("[ShipDate] > '2024-01-01'"))
    )
    assert _kinds(diff) == [PREDICATE_CHANGED]
    assert diff.changes[0].message == "dbo.Orders: predicate seek [OrderDate] > ? -> seek [ShipDate] > ?"
    same = diff_statements(
        _plan(seek("[OrderDate] > '2024-01-01'")), _plan(seek("[OrderDate] > '1999-01-01'"))
    )
    assert _kinds(same) == [SHAPE_UNCHANGED]


def test_change_not_explained_otherwise_is_shape_changed() -> None:
    before, after = _plan(), _plan()
    assert after.root is not None
    after.root.predicates = [Predicate("join", "[o].[CustomerId] = [c].[Id]")]
    assert _kinds(diff_statements(before, after)) == [SHAPE_CHANGED]


def test_diff_plans_pairs_by_index_and_reports_extras() -> None:
    second = _plan()
    second.index = 1
    diffs = diff_plans(Plan("sqlserver", [_plan()]), Plan("sqlserver", [_plan(), second]))
    assert [d.statement_index for d in diffs] == [0, 1]
    assert _kinds(diffs[1]) == [STATEMENT_ADDED]


def test_every_kind_is_listed() -> None:
    diff = diff_statements(_plan(), _plan(_access(2, "Table Scan", "Orders", "")))
    assert all(change.kind in CHANGE_KINDS for change in diff.changes)
    as_dict = diff.as_dict()
    assert set(as_dict) == {"statement_index", "before_hash", "after_hash", "shape_unchanged", "changes"}
    assert set(as_dict["changes"][0]) == {"kind", "object", "before", "after", "message"}
