"""shape_hash on hand-built trees: what must change the hash and what must not."""

from __future__ import annotations

import re
from dataclasses import replace

from planmon.plans.fingerprint import predicate_shape, shape_hash, shape_tokens, statement_hashes
from planmon.plans.model import (
    ObjectRef,
    Plan,
    PlanNode,
    PlanStatement,
    PlanWarning,
    Predicate,
    ThreadRuntime,
)


def _seek(
    index: str = "IX_Orders_Date",
    *,
    alias: str | None = "o",
    database: str | None = "Sales",
    predicate: str = "[Sales].[dbo].[Orders].[OrderDate] as [o].[OrderDate] >= '2024-01-01'",
) -> PlanNode:
    return PlanNode(
        node_id=2,
        physical_op="Index Seek",
        logical_op="Index Seek",
        object=ObjectRef(table="Orders", schema="dbo", database=database, index=index, alias=alias),
        estimated_rows=120.0,
        estimated_cost=0.02,
        predicates=[Predicate("seek", predicate)],
    )


def _statement(
    seek: PlanNode | None = None, *, join: str = "Nested Loops", parallel: bool = False
) -> PlanStatement:
    customers = PlanNode(
        node_id=3,
        physical_op="Clustered Index Seek",
        logical_op="Clustered Index Seek",
        object=ObjectRef(table="Customers", schema="dbo", index="PK_Customers"),
        estimated_rows=1.0,
        parallel=parallel,
    )
    root = PlanNode(
        node_id=1,
        physical_op=join,
        logical_op="Inner Join",
        estimated_rows=120.0,
        estimated_cost=0.5,
        parallel=parallel,
        children=[seek or _seek(), customers],
    )
    return PlanStatement(index=0, statement_type="SELECT", root=root, estimated_cost=0.5)


HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_hash_is_16_hex_chars_and_stable() -> None:
    assert HEX16.match(shape_hash(_statement()))
    assert shape_hash(_statement()) == shape_hash(_statement())


def test_costs_rows_and_actuals_do_not_matter() -> None:
    statement = _statement()
    other = _statement()
    assert other.root is not None
    for node in other.nodes():
        node.estimated_rows = (node.estimated_rows or 0) * 1000
        node.estimated_cost = 99.0
        node.actual_rows = 5.0
        node.actual_executions = 3.0
        node.actual_elapsed_ms = 12.5
        node.per_thread = [ThreadRuntime(thread=0, rows=5.0, executions=3.0)]
        node.warnings = [PlanWarning("SpillToTempDb", "spilled")]
        node.node_id += 10
    other.is_actual = True
    other.dop = 8
    other.estimated_cost = 12345.0
    other.text = "SELECT   *\nFROM dbo.Orders"
    assert shape_hash(statement) == shape_hash(other)


def test_literals_variables_alias_and_database_do_not_matter() -> None:
    base = shape_hash(_statement())
    other_literal = _seek(predicate="[Sales].[dbo].[Orders].[OrderDate] as [o].[OrderDate] >= '1999-12-31'")
    other_alias = _seek(
        alias="x", predicate="[Sales].[dbo].[Orders].[OrderDate] as [x].[OrderDate] >= '2024-01-01'"
    )
    other_db = _seek(
        database="Sales_Copy", predicate="[Sales_Copy].[dbo].[Orders].[OrderDate] >= '2023-05-05'"
    )
    for seek in (other_literal, other_alias, other_db):
        assert shape_hash(_statement(seek)) == base, seek
    by_variable = _seek(predicate="[Sales].[dbo].[Orders].[OrderDate] >= [@from_date]")
    by_parameter = _seek(predicate="[Sales].[dbo].[Orders].[OrderDate] >= [@p1]")
    assert shape_hash(_statement(by_variable)) == shape_hash(_statement(by_parameter))


def test_quoting_of_names_does_not_matter() -> None:
    plain = _seek()
    bracketed = replace(plain, object=ObjectRef(table="[Orders]", schema="[dbo]", index="[IX_Orders_Date]"))
    assert shape_hash(_statement(plain)) == shape_hash(_statement(bracketed))


def test_operator_index_join_parallelism_and_predicate_columns_matter() -> None:
    base = shape_hash(_statement())
    scan = _seek(index="PK_Orders")
    scan.physical_op = scan.logical_op = "Clustered Index Scan"
    variants = {
        "index": _statement(_seek(index="IX_Orders_Customer")),
        "access method": _statement(scan),
        "join type": _statement(join="Hash Match"),
        "parallelism": _statement(parallel=True),
        "predicate column": _statement(_seek(predicate="[Sales].[dbo].[Orders].[ShipDate] >= '2024-01-01'")),
    }
    hashes = {name: shape_hash(statement) for name, statement in variants.items()}
    assert base not in hashes.values()
    assert len(set(hashes.values())) == len(hashes)


def test_tree_shape_matters_not_just_the_operator_list() -> None:
    leaf = PlanNode(node_id=3, physical_op="Constant Scan")
    chain = PlanStatement(
        index=0,
        root=PlanNode(node_id=1, physical_op="Sort", children=[PlanNode(2, "Filter", children=[leaf])]),
    )
    siblings = PlanStatement(
        index=0,
        root=PlanNode(node_id=1, physical_op="Sort", children=[PlanNode(2, "Filter"), replace(leaf)]),
    )
    assert shape_hash(chain) != shape_hash(siblings)


def test_statements_without_a_tree_hash_by_type() -> None:
    use = PlanStatement(index=0, statement_type="USE DATABASE")
    assert shape_hash(use) == shape_hash(PlanStatement(index=3, statement_type="USE DATABASE"))
    assert shape_hash(use) != shape_hash(PlanStatement(index=0, statement_type="SET ON/OFF"))


def test_deep_trees_do_not_hit_the_recursion_limit() -> None:
    root = node = PlanNode(node_id=0, physical_op="Nested Loops")
    for node_id in range(1, 5000):
        child = PlanNode(node_id=node_id, physical_op="Compute Scalar")
        node.children.append(child)
        node = child
    assert HEX16.match(shape_hash(PlanStatement(index=0, root=root)))
    assert len(list(shape_tokens(root))) == 5000


def test_predicate_shape_strips_values_aliases_and_generated_names() -> None:
    assert predicate_shape(
        "[db].[dbo].[T].[c] as [t].[c]=[Expr1004] AND [@p1]>N'x' AND [dbo].[T].[d]>(5)"
    ) == predicate_shape("[other].[dbo].[T].[c]=[Expr1011] AND [@bar]>N'yy' AND [dbo].[T].[d]>(700)")


def test_statement_hashes_follow_document_order() -> None:
    first, second = _statement(), _statement(join="Merge Join")
    second.index = 1
    plan = Plan(engine="sqlserver", statements=[first, second])
    assert statement_hashes(plan) == [shape_hash(first), shape_hash(second)]


def test_system_generated_constraint_names_are_normalised() -> None:
    def insert(index: str) -> PlanStatement:
        node = PlanNode(node_id=0, physical_op="Clustered Index Insert", object=ObjectRef("@T", index=index))
        return PlanStatement(index=0, root=node)

    assert shape_hash(insert("PK__#B34636D__A429706AAAF60180")) == shape_hash(
        insert("PK__#B92534A__A429706A330F4B4B")
    )
    assert shape_hash(insert("PK__Users__3214EC07AAAAAAAA")) == shape_hash(
        insert("PK__Users__3214EC07BBBBBBBB")
    )
    assert shape_hash(insert("PK__Users__3214EC07AAAAAAAA")) != shape_hash(
        insert("PK__Posts__3214EC07AAAAAAAA")
    )
    assert shape_hash(insert("PK_Users")) != shape_hash(insert("PK_Users_Id"))
