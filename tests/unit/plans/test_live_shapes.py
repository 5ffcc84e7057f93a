"""Plans as live engines write them (issue 18), on small plans written out here: what must share a
shape hash (VERBOSE and plain EXPLAIN, a hash-index scan in JSON and text, literals), what must not
(INSERT and INSERT ... ON CONFLICT), and MariaDB operations that used to lose their tables. The live
corpus (tests/integration/plans) checks the same over every node type on real servers."""

from __future__ import annotations

import json

from planmon.plans import mysql, postgres
from planmon.plans.diff import OBJECT_ACCESSED, OBJECT_NO_LONGER_ACCESSED, diff_statements
from planmon.plans.fingerprint import shape_hash
from planmon.plans.model import PlanStatement


def _pg(text: str) -> PlanStatement:
    return postgres.parse(text).statements[0]


def _maria(document: object) -> PlanStatement:
    return mysql.parse(json.dumps(document)).statements[0]


PLAIN = """Hash Join  (cost=1.00..10.00 rows=10 width=8)
  Hash Cond: (o.customer_id = c.id)
  ->  Seq Scan on orders o  (cost=0.00..5.00 rows=100 width=8)
        Filter: (total > '900'::numeric)
  ->  Hash  (cost=1.00..1.00 rows=20 width=4)
        ->  Seq Scan on customers c  (cost=0.00..1.00 rows=20 width=4)
"""
VERBOSE = """Hash Join  (cost=1.00..10.00 rows=10 width=8)
  Output: c.name, o.total
  Hash Cond: (o.customer_id = c.id)
  ->  Seq Scan on public.orders o  (cost=0.00..5.00 rows=100 width=8)
        Output: o.customer_id, o.total
        Filter: (o.total > '900'::numeric)
  ->  Hash  (cost=1.00..1.00 rows=20 width=4)
        Output: c.id, c.name
        ->  Seq Scan on public.customers c  (cost=0.00..1.00 rows=20 width=4)
              Output: c.id, c.name
"""


def test_verbose_and_plain_explain_share_the_hash_and_diff_as_unchanged() -> None:
    plain, verbose = _pg(PLAIN), _pg(VERBOSE)
    assert shape_hash(plain) == shape_hash(verbose)
    diff = diff_statements(plain, verbose)
    assert diff.shape_unchanged
    assert not {c.kind for c in diff.changes} & {OBJECT_ACCESSED, OBJECT_NO_LONGER_ACCESSED}
    # the schema VERBOSE read is kept in the model (the collector needs it), only not hashed
    assert {n.object.schema for n in verbose.nodes() if n.object} == {"public"}


def test_single_relation_verbose_qualifiers_are_dropped_like_plain_explain() -> None:
    plain = _pg("Seq Scan on orders  (cost=0.00..5.00 rows=1 width=8)\n  Filter: (note = 'x'::text)\n")
    verbose = _pg(
        "Seq Scan on public.orders  (cost=0.00..5.00 rows=1 width=8)\n"
        "  Output: id, note\n  Filter: (orders.note = 'x'::text)\n"
    )
    assert [p.text for p in verbose.nodes().__next__().predicates] == ["(note = ?)"]
    assert shape_hash(plain) == shape_hash(verbose)


def test_outer_references_keep_their_qualifier() -> None:
    inner = _pg(
        "Index Scan using orders_customer on public.orders o  (cost=0.29..8.30 rows=1 width=8)\n"
        "  Index Cond: (o.customer_id = c.id)\n"
    )
    assert [p.text for p in inner.nodes().__next__().predicates] == ["(customer_id = c.id)"]


def test_a_real_plan_change_still_moves_the_hash_under_verbose() -> None:
    other = VERBOSE.replace("Filter: (o.total > '900'::numeric)", "Filter: (o.status = 'void'::text)")
    assert shape_hash(_pg(other)) != shape_hash(_pg(PLAIN))


def test_hash_index_scan_json_and_text_share_the_hash() -> None:
    document = [
        {
            "Plan": {
                "Node Type": "Index Scan",
                "Scan Direction": "NoMovement",
                "Index Name": "orders_status_hash",
                "Relation Name": "orders",
                "Alias": "orders",
                "Plan Rows": 5000,
                "Index Cond": "(status = 'void'::text)",
            }
        }
    ]
    text = (
        "Index Scan using orders_status_hash on orders  (cost=0.00..100.00 rows=5000 width=27)\n"
        "  Index Cond: (status = 'void'::text)\n"
    )
    assert shape_hash(postgres.parse(json.dumps(document)).statements[0]) == shape_hash(_pg(text))
    backward = text.replace("Index Scan using", "Index Scan Backward using")
    assert shape_hash(_pg(backward)) != shape_hash(_pg(text))


def test_insert_and_insert_on_conflict_differ() -> None:
    insert = (
        "Insert on merge_src  (cost=0.00..0.03 rows=0 width=0)\n"
        '  ->  Values Scan on "*VALUES*"  (cost=0.00..0.03 rows=2 width=36)\n'
    )
    upsert = insert.replace(
        "width=0)\n",
        "width=0)\n  Conflict Resolution: UPDATE\n  Conflict Arbiter Indexes: merge_src_pkey\n",
        1,
    )
    nothing = upsert.replace("UPDATE", "NOTHING")
    hashes = {shape_hash(_pg(plan)) for plan in (insert, upsert, nothing)}
    assert len(hashes) == 3
    as_json = [
        {
            "Plan": {
                "Node Type": "ModifyTable",
                "Operation": "Insert",
                "Relation Name": "merge_src",
                "Alias": "merge_src",
                "Conflict Resolution": "UPDATE",
                "Conflict Arbiter Indexes": ["merge_src_pkey"],
                "Plans": [{"Node Type": "Values Scan", "Alias": "*VALUES*", "Parent Relationship": "Outer"}],
            }
        }
    ]
    assert shape_hash(postgres.parse(json.dumps(as_json)).statements[0]) == shape_hash(_pg(upsert))


# -- MariaDB ---------------------------------------------------------------------------------------------


def _orders(access: str, key: str | None) -> dict[str, object]:
    table: dict[str, object] = {"table_name": "orders", "access_type": access, "rows": 1379}
    if key:
        table["key"] = key
    return {"table": table}


def _window(access: str, key: str | None) -> dict[str, object]:
    return {
        "query_block": {
            "select_id": 1,
            "window_functions_computation": {
                "sorts": [{"filesort": {"sort_key": "orders.customer_id, orders.total"}}],
                "temporary_table": {"nested_loop": [_orders(access, key)]},
            },
        }
    }


def test_mariadb_window_functions_keep_their_table() -> None:
    statement = _maria(_window("range", "orders_created"))
    ops = [node.physical_op for node in statement.nodes()]
    assert ops == ["Query Block", "Window", "Sort", "Index Range Scan"]
    without_index = _maria(_window("ALL", None))
    diff = diff_statements(statement, without_index)
    assert not diff.shape_unchanged
    assert "orders: Index Range Scan on orders_created -> Full Table Scan" in diff.as_text()


def test_mariadb_materialised_subquery_and_range_checked_tables_are_nodes() -> None:
    document = {
        "query_block": {
            "select_id": 1,
            "nested_loop": [
                {"table": {"table_name": "r", "access_type": "range", "key": "ranges_lo", "rows": 4}},
                {
                    "range-checked-for-each-record": {
                        "keys": ["orders_total"],
                        "table": {"table_name": "o", "access_type": "ALL", "rows": 20000},
                    }
                },
            ],
            "subqueries": [
                {"materialization": {"query_block": {"select_id": 2, "nested_loop": [_orders("ref", "ix")]}}}
            ],
        }
    }
    statement = _maria(document)
    tables = {n.object.table: n.physical_op for n in statement.nodes() if n.object is not None}
    assert tables == {"r": "Index Range Scan", "o": "Range Checked For Each Record", "orders": "Index Lookup"}
    assert "Materialize" in {n.physical_op for n in statement.nodes()}


def test_mariadb_recursive_union_keeps_both_branches() -> None:
    branch = {"query_block": {"select_id": 2, "nested_loop": [_orders("const", "PRIMARY")]}}
    document = {
        "query_block": {
            "select_id": 1,
            "recursive_union": {
                "table_name": "<union2,3>",
                "access_type": "ALL",
                "query_specifications": [branch, branch],
            },
        }
    }
    statement = _maria(document)
    assert [n.physical_op for n in statement.nodes()].count("Constant Lookup") == 2
    assert any(n.physical_op == "Recursive Union" for n in statement.nodes())


def test_mariadb_unknown_operation_holding_tables_is_kept() -> None:
    document = {
        "query_block": {"select_id": 1, "some_future_operation": {"nested_loop": [_orders("ALL", None)]}}
    }
    ops = [node.physical_op for node in _maria(document).nodes()]
    assert ops == ["Query Block", "Some Future Operation", "Full Table Scan"]


def test_mariadb_range_checked_for_each_record_is_no_cross_join() -> None:
    """Its range is built from each outer row's values: the join condition is in the range, not in
    attached_condition, so no_join_predicate must not read it as a cartesian product."""
    from planmon.plans.rules import find_all

    document = {
        "query_block": {
            "select_id": 1,
            "nested_loop": [
                {
                    "table": {
                        "table_name": "r",
                        "access_type": "ALL",
                        "rows": 400,
                        "r_loops": 1,
                        "r_rows": 400,
                    }
                },
                {
                    "range-checked-for-each-record": {
                        "keys": ["orders_total"],
                        "table": {"table_name": "o", "access_type": "ALL", "rows": 20000},
                    }
                },
            ],
        }
    }
    statement = _maria(document)
    assert [f.id for f in find_all(statement, "mysql") if f.id == "no_join_predicate"] == []
    plain_all = json.loads(json.dumps(document))
    plain_all["query_block"]["nested_loop"][1] = {
        "table": {"table_name": "o", "access_type": "ALL", "rows": 20000}
    }
    assert [f.id for f in find_all(_maria(plain_all), "mysql") if f.id == "no_join_predicate"] == [
        "no_join_predicate"
    ]
