"""A live MariaDB plan corpus: a small schema with data and a query set that makes the optimizer write
every access type, index merge, derived tables, unions, filesort, temporary tables, each semi-join
strategy, window functions, recursive CTEs, materialised subqueries and range-checked-for-each-record;
each query under EXPLAIN FORMAT=JSON and ANALYZE FORMAT=JSON. ``optimizer_switch`` and ``IGNORE INDEX``
variants make the optimizer pick another plan for the same query.

Used by test_live_corpus.py; importable on its own to look at the plans (``generate(server)``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import mysql.connector

DATABASE = "planmon_plan_corpus"
SCHEMA = (
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, region INT NOT NULL, "
    "email VARCHAR(60), KEY customers_region (region), UNIQUE KEY customers_email (email)) ENGINE=InnoDB",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(10) NOT NULL, "
    "total INT NOT NULL, created DATE NOT NULL, note VARCHAR(40), KEY orders_customer (customer_id), "
    "KEY orders_created (created), KEY orders_total (total), KEY orders_note (note)) ENGINE=InnoDB",
    "CREATE TABLE items (order_id INT NOT NULL, line INT NOT NULL, product INT NOT NULL, qty INT NOT NULL, "
    "PRIMARY KEY (order_id, line), KEY items_product (product)) ENGINE=InnoDB",
    "CREATE TABLE docs (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY docs_body (body)) ENGINE=InnoDB",
    "CREATE TABLE one_row (id INT PRIMARY KEY, v INT) ENGINE=MyISAM",
    "CREATE TABLE tree (id INT PRIMARY KEY, parent INT, KEY tree_parent (parent)) ENGINE=InnoDB",
    "CREATE TABLE ranges (lo INT NOT NULL, hi INT NOT NULL, KEY ranges_lo (lo)) ENGINE=InnoDB",
    "INSERT INTO customers SELECT seq, CONCAT('c', seq), seq % 20, CONCAT('e', seq, '@x') FROM seq_1_to_2000",
    "INSERT INTO orders SELECT seq, 1 + seq % 2000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'void'), "
    "seq % 997, DATE '2024-01-01' + INTERVAL (seq % 900) DAY, IF(seq % 10 = 0, CONCAT('n', seq), NULL) "
    "FROM seq_1_to_20000",
    "INSERT INTO items SELECT 1 + seq DIV 3, seq % 3, seq % 500, 1 + seq % 7 FROM seq_0_to_59999",
    "INSERT INTO docs SELECT seq, CONCAT('alpha word', seq, IF(seq % 7 = 0, ' needle', '')) "
    "FROM seq_1_to_500",
    "INSERT INTO one_row VALUES (1, 1)",
    "INSERT INTO tree SELECT seq, IF(seq > 1, seq DIV 2, NULL) FROM seq_1_to_1000",
    "INSERT INTO ranges SELECT seq, seq + 10 FROM seq_1_to_200",
    "ANALYZE TABLE customers, orders, items, docs, one_row, tree, ranges PERSISTENT FOR ALL",
)

# optimizer_switch flags that force the semi-join strategies one at a time (DuplicateWeedout has no
# switch: it is what remains with the other three off)
_ONLY = "semijoin=on,firstmatch=off,loosescan=off,materialization=off"
SEMIJOIN_IN = "SELECT * FROM customers c WHERE c.id IN (SELECT o.customer_id FROM orders o WHERE o.total = 5)"


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    switch: str = ""  # optimizer_switch for the query itself
    session: tuple[str, ...] = ()  # other SET SESSION statements
    # (variant name, optimizer_switch, sql or "" for the same): the same query planned another way
    variants: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)


QUERIES: tuple[Query, ...] = (
    Query(
        "all",
        "SELECT * FROM orders WHERE status = 'void'",
    ),
    Query("index", "SELECT customer_id FROM orders ORDER BY customer_id"),
    Query(
        "range",
        "SELECT * FROM orders WHERE created BETWEEN '2024-02-01' AND '2024-02-03'",
        variants=(
            (
                "ignore_index",
                "",
                "SELECT * FROM orders IGNORE INDEX (orders_created) "
                "WHERE created BETWEEN '2024-02-01' AND '2024-02-03'",
            ),
        ),
    ),
    Query(
        "ref",
        "SELECT * FROM orders WHERE customer_id = 7",
        variants=(
            ("ignore_index", "", "SELECT * FROM orders IGNORE INDEX (orders_customer) WHERE customer_id = 7"),
        ),
    ),
    Query("ref_or_null", "SELECT * FROM orders WHERE note = 'n10' OR note IS NULL LIMIT 5"),
    Query(
        "eq_ref",
        "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total = 3",
    ),
    Query("const", "SELECT * FROM customers WHERE id = 5"),
    Query("const_unique", "SELECT * FROM customers WHERE email = 'e5@x'"),
    Query("system", "SELECT * FROM one_row"),
    Query("fulltext", "SELECT id FROM docs WHERE MATCH(body) AGAINST ('needle')"),
    Query(
        "index_merge_union",
        "SELECT * FROM orders WHERE customer_id = 7 OR total = 5",
        variants=(("no_index_merge", "index_merge=off", ""),),
    ),
    Query(
        "index_merge_intersect",
        "SELECT * FROM orders WHERE customer_id = 7 AND total = 5",
        switch="index_merge_intersection=on",
    ),
    Query("index_merge_sort_union", "SELECT * FROM orders WHERE customer_id < 3 OR total < 2"),
    Query(
        "unique_subquery",
        "SELECT * FROM orders o WHERE o.customer_id IN (SELECT id FROM customers WHERE region = 3) "
        "OR o.total = 1",
        switch="semijoin=off,materialization=off",
    ),
    Query(
        "index_subquery",
        "SELECT * FROM customers c WHERE c.id IN (SELECT customer_id FROM orders WHERE total = 5) "
        "OR c.region = 1",
        switch="semijoin=off,materialization=off",
    ),
    Query(
        "derived",
        "SELECT * FROM (SELECT customer_id, COUNT(*) n FROM orders GROUP BY customer_id) d WHERE d.n > 12",
        switch="derived_merge=off",
    ),
    Query(
        "derived_merged", "SELECT * FROM (SELECT * FROM orders WHERE total > 990) d WHERE d.status = 'void'"
    ),
    Query(
        "union",
        "SELECT id FROM customers WHERE region = 1 UNION SELECT customer_id FROM orders WHERE total = 5",
    ),
    Query(
        "union_all",
        "SELECT id FROM customers WHERE region = 1 UNION ALL SELECT customer_id FROM orders WHERE total = 5",
    ),
    Query("filesort", "SELECT * FROM orders ORDER BY note, total"),
    Query("filesort_limit", "SELECT * FROM orders ORDER BY note LIMIT 5"),
    Query("order_by_index_limit", "SELECT * FROM orders WHERE customer_id > 10 ORDER BY total LIMIT 10"),
    Query("temporary", "SELECT status, COUNT(*) FROM orders GROUP BY status"),
    Query("group_by_index", "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id"),
    Query("distinct", "SELECT DISTINCT status FROM orders"),
    Query("join_buffer", "SELECT * FROM customers c JOIN orders o ON o.status = c.name"),
    Query(
        "hash_join",
        "SELECT * FROM customers c JOIN orders o ON o.status = c.name",
        session=("SET SESSION join_cache_level = 4",),
    ),
    Query(
        "bka",
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.region = 3",
        switch="mrr=on,mrr_sort_keys=on,join_cache_bka=on",
        session=("SET SESSION join_cache_level = 6",),
    ),
    Query(
        "semijoin_firstmatch",
        "SELECT * FROM customers c WHERE c.region = 3 AND c.id IN (SELECT o.customer_id FROM orders o)",
        switch=_ONLY.replace("firstmatch=off", "firstmatch=on"),
        variants=(("weedout", _ONLY, ""),),
    ),
    Query(
        "semijoin_loosescan",
        "SELECT c.name FROM customers c WHERE c.id IN (SELECT i.product FROM items i)",
        switch=_ONLY.replace("loosescan=off", "loosescan=on"),
    ),
    Query(
        "semijoin_materialization",
        SEMIJOIN_IN,
        switch=_ONLY.replace("materialization=off", "materialization=on"),
        variants=(("no_semijoin", "semijoin=off", ""),),
    ),
    Query(
        "semijoin_weedout",
        SEMIJOIN_IN,
        switch=_ONLY,
    ),
    Query(
        "subquery_materialization",
        "SELECT * FROM customers c WHERE c.id NOT IN (SELECT customer_id FROM orders WHERE total = 5)",
        switch="materialization=on",
        variants=(("in_to_exists", "materialization=off", ""),),
    ),
    Query(
        "dependent_subquery",
        "SELECT id, (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c "
        "WHERE c.id < 20",
    ),
    Query(
        "window",
        "SELECT id, RANK() OVER (PARTITION BY customer_id ORDER BY total) r FROM orders "
        "WHERE created < '2024-03-01'",
        variants=(
            (
                "ignore_index",
                "",
                "SELECT id, RANK() OVER (PARTITION BY customer_id ORDER BY total) r "
                "FROM orders IGNORE INDEX (orders_created) WHERE created < '2024-03-01'",
            ),
        ),
    ),
    Query(
        "recursive_cte",
        "WITH RECURSIVE t (id) AS (SELECT id FROM tree WHERE id = 1 UNION ALL "
        "SELECT tree.id FROM tree JOIN t ON tree.parent = t.id) SELECT COUNT(*) FROM t",
    ),
    Query(
        "range_checked",
        "SELECT * FROM orders o JOIN ranges r ON o.total > r.lo AND o.total < r.hi WHERE r.lo < 5",
    ),
    Query("no_tables", "SELECT 1 + 1"),
    Query("impossible_where", "SELECT * FROM orders WHERE 1 = 0"),
    Query("update", "UPDATE orders SET total = total + 1 WHERE customer_id = 5"),
    Query("delete", "DELETE FROM items WHERE order_id < 5"),
    Query("insert_select", "INSERT INTO ranges SELECT id, id FROM customers WHERE id < 10"),
)

LITERAL_VARIANTS: dict[str, str] = {
    "ref": "SELECT * FROM orders WHERE customer_id = 99",
    "range": "SELECT * FROM orders WHERE created BETWEEN '2024-05-01' AND '2024-05-04'",
    "const": "SELECT * FROM customers WHERE id = 77",
    "eq_ref": "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total = 9",
    "semijoin_materialization": "SELECT * FROM customers c WHERE c.id IN "
    "(SELECT o.customer_id FROM orders o WHERE o.total = 6)",
}

OPTIONS = ("EXPLAIN FORMAT=JSON", "ANALYZE FORMAT=JSON")


@dataclass(frozen=True)
class Explained:
    query: str
    variant: str
    options: str
    body: str


def setup(connect: dict[str, Any]) -> None:
    connection = mysql.connector.connect(**connect)
    try:
        cursor = connection.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
        cursor.execute(f"USE {DATABASE}")
        for statement in SCHEMA:
            cursor.execute(statement)
            if cursor.with_rows:
                cursor.fetchall()
        connection.commit()
    finally:
        connection.close()


def teardown(connect: dict[str, Any]) -> None:
    connection = mysql.connector.connect(**connect)
    try:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    finally:
        connection.close()


def _explain(cursor: Any, options: str, sql: str, switch: str, session: tuple[str, ...]) -> str:
    cursor.execute("SET SESSION optimizer_switch = 'default'")
    cursor.execute("SET SESSION join_cache_level = DEFAULT")
    if switch:
        cursor.execute(f"SET SESSION optimizer_switch = '{switch}'")
    for statement in session:
        cursor.execute(statement)
    cursor.execute("START TRANSACTION")
    try:
        cursor.execute(f"{options} {sql}")
        rows = cursor.fetchall()
    finally:
        cursor.execute("ROLLBACK")
    return str(rows[0][0])


def generate(connect: dict[str, Any]) -> list[Explained]:
    connection = mysql.connector.connect(**connect, database=DATABASE)
    out: list[Explained] = []
    try:
        cursor = connection.cursor()
        for query in QUERIES:
            variants = [("", query.sql, query.switch)]
            variants += [
                (name, sql or query.sql, switch or query.switch) for name, switch, sql in query.variants
            ]
            if query.name in LITERAL_VARIANTS:
                variants.append(("literal", LITERAL_VARIANTS[query.name], query.switch))
            for variant, sql, switch in variants:
                for options in OPTIONS:
                    out.append(
                        Explained(
                            query.name,
                            variant,
                            options,
                            _explain(cursor, options, sql, switch, query.session),
                        )
                    )
    finally:
        connection.close()
    return out


def raw_objects(document: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a raw MariaDB JSON plan, walked from the JSON itself."""
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                yield key, value
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def raw_tables(body: str) -> Counter[str]:
    """The tables the engine wrote (every object with a ``table_name``: accesses, union results), by name."""
    document = json.loads(body)
    objects = [document, *(value for _, value in raw_objects(document))]
    return Counter(
        str(value["table_name"]) for value in objects if isinstance(value, dict) and "table_name" in value
    )


# Keys that name an operation or a strategy (semi-join strategies, join buffers, sorts ...).
OPERATION_KEYS = frozenset(
    {
        "duplicates_removal", "first_match", "loose_scan", "materialized", "materialization",
        "block-nl-join", "filesort", "temporary_table", "read_sorted_file", "window_functions_computation",
        "recursive_union", "range-checked-for-each-record", "union_result", "index_merge", "subqueries",
    }
)  # fmt: skip


def raw_shape(body: str) -> Counter[tuple[str, ...]]:
    """The engine's own plan, as a multiset: each table with its access type and index, each operation."""
    shape: Counter[tuple[str, ...]] = Counter()
    for key, value in raw_objects(json.loads(body)):
        if key == "table" and isinstance(value, dict) and "table_name" in value:
            shape[
                (str(value["table_name"]), str(value.get("access_type", "")), str(value.get("key", "")))
            ] += 1
        elif key in OPERATION_KEYS:
            shape[(key,)] += 1
    return shape
