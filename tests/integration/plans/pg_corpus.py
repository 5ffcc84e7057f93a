"""A live PostgreSQL plan corpus: a small schema with data, a query set that makes the planner write
every node type it has (planner switches force the ones it would not pick on its own), and each query
explained under several EXPLAIN option sets, in JSON and in text.

Used by test_live_corpus.py; importable on its own to look at the plans (``generate(dsn, major)``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region int NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, status text NOT NULL,
                     total numeric NOT NULL, created date NOT NULL, note text);
CREATE TABLE items (order_id int NOT NULL, line int NOT NULL, product int NOT NULL, qty int NOT NULL,
                    PRIMARY KEY (order_id, line));
CREATE TABLE events (id int NOT NULL, created date NOT NULL, kind int NOT NULL) PARTITION BY RANGE (created);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE tree (id int PRIMARY KEY, parent int);
CREATE TABLE merge_src (id int PRIMARY KEY, total numeric);
INSERT INTO customers SELECT g, 'c' || g, g % 20 FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, 1 + g % 2000, (ARRAY['new','paid','shipped','void'])[1 + g % 4], g % 997,
       date '2024-01-01' + g % 900, CASE WHEN g % 10 = 0 THEN 'n' || g END FROM generate_series(1, 20000) g;
INSERT INTO items SELECT 1 + g / 3, g % 3, g % 500, 1 + g % 7 FROM generate_series(0, 59999) g;
INSERT INTO events SELECT g, date '2024-01-01' + g % 1000, g % 5 FROM generate_series(1, 9000) g;
INSERT INTO tree SELECT g, CASE WHEN g > 1 THEN g / 2 END FROM generate_series(1, 1000) g;
INSERT INTO merge_src SELECT g * 7, g FROM generate_series(1, 300) g;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_created ON orders (created);
CREATE INDEX orders_status_hash ON orders USING hash (status);
CREATE INDEX orders_total ON orders (total);
CREATE INDEX events_created ON events (created);
CREATE INDEX items_product ON items (product);
VACUUM ANALYZE;
"""

# Settings every EXPLAIN runs under: parallel plans on small tables, no JIT noise in the output.
BASE_SETTINGS = {
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "enable_partitionwise_aggregate": "on",
}
PARALLEL = {
    "max_parallel_workers_per_gather": "2",
    "parallel_setup_cost": "0",
    "parallel_tuple_cost": "0",
    "min_parallel_table_scan_size": "0",
    "min_parallel_index_scan_size": "0",
}


@dataclass(frozen=True)
class Query:
    """One query of the corpus: its SQL, the settings it is planned under, whether it writes."""

    name: str
    sql: str
    settings: dict[str, str] = field(default_factory=dict)
    writes: bool = False
    min_version: int = 15
    # (variant name, settings added, sql override): the same query with a planner switch off
    switched: tuple[tuple[str, dict[str, str]], ...] = ()


def _q(name: str, sql: str, **kwargs: Any) -> Query:
    return Query(name, sql, **kwargs)


QUERIES: tuple[Query, ...] = (
    _q(
        "seq_scan",
        "SELECT * FROM orders WHERE note = 'n10'",
        switched=(("no_seqscan", {"enable_seqscan": "off"}),),
    ),
    _q(
        "index_scan",
        "SELECT * FROM orders WHERE id = 42",
        switched=(("no_indexscan", {"enable_indexscan": "off"}),),
    ),
    _q("index_scan_backward", "SELECT * FROM orders ORDER BY id DESC LIMIT 5"),
    _q(
        "index_only_scan",
        "SELECT customer_id FROM orders WHERE customer_id < 40",
        settings={"enable_bitmapscan": "off"},
        switched=(("no_indexonlyscan", {"enable_indexonlyscan": "off"}),),
    ),
    _q(
        "bitmap_scan",
        "SELECT * FROM orders WHERE customer_id < 300",
        switched=(("no_bitmapscan", {"enable_bitmapscan": "off"}),),
    ),
    _q("bitmap_or", "SELECT * FROM orders WHERE customer_id = 7 OR created = '2024-03-01'"),
    _q(
        "bitmap_and",
        "SELECT * FROM orders WHERE customer_id BETWEEN 1 AND 10 "
        "AND created BETWEEN '2024-01-01' AND '2024-01-05'",
        settings={"enable_indexscan": "off"},
    ),
    _q(
        "hash_index_scan",
        "SELECT * FROM orders WHERE status = 'void'",
        settings={"enable_bitmapscan": "off", "enable_seqscan": "off"},
        switched=(("no_indexscan", {"enable_indexscan": "off", "enable_bitmapscan": "on"}),),
    ),
    _q("tid_scan", "SELECT * FROM orders WHERE ctid = '(0,1)'"),
    _q("tid_range_scan", "SELECT * FROM orders WHERE ctid < '(3,0)'"),
    _q("sample_scan", "SELECT count(*) FROM orders TABLESAMPLE SYSTEM (10) REPEATABLE (1)"),
    _q("function_scan", "SELECT * FROM generate_series(1, 10) g WHERE g > 3"),
    _q(
        "table_function_scan",
        "SELECT * FROM JSON_TABLE('[{\"a\": 1}, {\"a\": 2}]'::jsonb, '$[*]' COLUMNS (a int PATH '$.a')) t",
        min_version=17,
    ),
    _q("values_scan", "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(n, s) WHERE n > 1"),
    _q(
        "cte_scan",
        "WITH c AS MATERIALIZED (SELECT customer_id, count(*) n FROM orders GROUP BY customer_id) "
        "SELECT * FROM c a JOIN c b ON a.customer_id = b.customer_id + 1",
    ),
    _q(
        "recursive_cte",
        "WITH RECURSIVE t(id) AS (SELECT id FROM tree WHERE id = 1 UNION ALL "
        "SELECT tree.id FROM tree JOIN t ON tree.parent = t.id) SELECT count(*) FROM t",
    ),
    _q(
        "subquery_scan",
        "SELECT * FROM (SELECT customer_id, sum(total) s FROM orders GROUP BY customer_id "
        "OFFSET 0) x WHERE s > 100",
    ),
    _q(
        "nested_loop",
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id < 5",
        switched=(("no_nestloop", {"enable_nestloop": "off"}),),
    ),
    _q(
        "hash_join",
        "SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.total > 900",
        switched=(("no_hashjoin", {"enable_hashjoin": "off"}),),
    ),
    _q(
        "merge_join",
        "SELECT * FROM orders o JOIN items i ON i.order_id = o.id",
        settings={"enable_hashjoin": "off"},
        switched=(("no_mergejoin", {"enable_mergejoin": "off"}),),
    ),
    _q(  # a LEFT JOIN the planner turns around: Hash Right Join, the small filtered side hashed
        "right_join",
        "SELECT c.id, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.total > 990",
    ),
    _q(
        "left_join",
        "SELECT o.id, c.name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id AND c.region > 3",
    ),
    _q("full_join", "SELECT * FROM customers c FULL JOIN merge_src m ON m.id = c.id"),
    _q(
        "semi_join",
        "SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id "
        "AND o.total > 990)",
    ),
    _q(
        "anti_join",
        "SELECT * FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id "
        "AND o.status = 'void')",
    ),
    _q(
        "memoize",
        "SELECT * FROM items i JOIN orders o ON o.customer_id = i.product WHERE i.order_id < 300",
        settings={"enable_hashjoin": "off", "enable_mergejoin": "off"},
        switched=(("no_memoize", {"enable_memoize": "off"}),),
    ),
    _q(
        "materialize",
        "SELECT * FROM customers c JOIN merge_src m ON m.total > c.region WHERE c.id < 50",
        switched=(("no_material", {"enable_material": "off"}),),
    ),
    _q(
        "hash_aggregate",
        "SELECT status, count(*) FROM orders GROUP BY status",
        switched=(("no_hashagg", {"enable_hashagg": "off"}),),
    ),
    _q(
        "group_aggregate",
        "SELECT customer_id, count(*) FROM orders GROUP BY customer_id",
        settings={"enable_hashagg": "off"},
    ),
    _q(
        "mixed_aggregate",
        "SELECT status, created, count(*) FROM orders GROUP BY GROUPING SETS ((status), (created), ())",
    ),
    _q("plain_aggregate", "SELECT max(total), min(created) FROM orders WHERE status = 'paid'"),
    _q(
        "group",
        "SELECT customer_id FROM orders WHERE customer_id < 100 GROUP BY customer_id",
        settings={"enable_hashagg": "off"},
    ),
    _q("window", "SELECT id, rank() OVER (PARTITION BY customer_id ORDER BY total) FROM orders"),
    _q("sort", "SELECT * FROM orders ORDER BY note, total"),
    _q(
        "incremental_sort",
        "SELECT * FROM orders ORDER BY customer_id, total LIMIT 50",
        switched=(("no_incremental_sort", {"enable_incremental_sort": "off"}),),
    ),
    _q(
        "gather",
        "SELECT count(*) FROM items WHERE qty > 3",
        settings=PARALLEL,
        switched=(("serial", {"max_parallel_workers_per_gather": "0"}),),
    ),
    _q("gather_merge", "SELECT * FROM items WHERE qty = 1 ORDER BY product", settings=PARALLEL),
    _q(
        "parallel_hash_join",
        "SELECT count(*) FROM items i JOIN orders o ON o.id = i.order_id",
        settings=PARALLEL,
    ),
    _q(
        "append_pruning",
        "SELECT * FROM events WHERE created >= '2025-06-01' AND kind = 2",
        switched=(("no_pruning", {"enable_partition_pruning": "off"}),),
    ),
    _q("append_union", "SELECT id FROM customers UNION ALL SELECT id FROM orders"),
    _q("merge_append", "SELECT id FROM customers UNION ALL SELECT id FROM orders ORDER BY id LIMIT 20"),
    _q("union", "SELECT customer_id FROM orders UNION SELECT id FROM customers"),
    _q("intersect", "SELECT customer_id FROM orders INTERSECT SELECT id FROM customers"),
    _q(
        "except",
        "SELECT id FROM customers EXCEPT SELECT customer_id FROM orders",
        settings={"enable_hashagg": "off"},
    ),
    _q("unique", "SELECT DISTINCT customer_id FROM orders", settings={"enable_hashagg": "off"}),
    _q("limit", "SELECT * FROM orders WHERE total > 10 LIMIT 10"),
    _q("lock_rows", "SELECT * FROM orders WHERE id < 10 FOR UPDATE"),
    _q("insert", "INSERT INTO merge_src VALUES (100001, 1), (100002, 2)", writes=True),
    _q(
        "insert_on_conflict",
        "INSERT INTO merge_src VALUES (7, 1), (100003, 2) ON CONFLICT (id) DO UPDATE SET total = 0",
        writes=True,
    ),
    _q(
        "insert_select",
        "INSERT INTO merge_src SELECT id + 500000, total FROM orders WHERE id < 50",
        writes=True,
    ),
    _q("update", "UPDATE orders SET total = total + 1 WHERE customer_id = 5", writes=True),
    _q("delete", "DELETE FROM items WHERE order_id < 5", writes=True),
    _q(
        "merge",
        "MERGE INTO orders o USING merge_src m ON o.id = m.id WHEN MATCHED THEN UPDATE SET total = m.total "
        "WHEN NOT MATCHED THEN DO NOTHING",
        writes=True,
    ),
    _q(
        "subplan",
        "SELECT id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c "
        "WHERE id < 20",
    ),
    _q(
        "exists_subplan",
        "SELECT * FROM customers c WHERE c.region = 1 OR EXISTS "
        "(SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.total > c.region * 50)",
    ),
    _q("initplan", "SELECT * FROM orders WHERE total = (SELECT max(total) FROM orders)"),
    _q(
        "hashed_subplan",
        "SELECT * FROM customers WHERE id NOT IN (SELECT customer_id FROM orders WHERE total > 900)",
    ),
    _q("project_set", "SELECT id, generate_series(1, 3) FROM customers WHERE id < 5"),
    _q("result", "SELECT 1 + 1"),
    _q("result_one_time_filter", "SELECT * FROM orders WHERE 1 = 0 OR now() < '2000-01-01'"),
)

# Literal variants: the same query with other constants must keep its hash.
LITERAL_VARIANTS: dict[str, str] = {
    "seq_scan": "SELECT * FROM orders WHERE note = 'n9990'",
    "index_scan": "SELECT * FROM orders WHERE id = 17",
    "bitmap_scan": "SELECT * FROM orders WHERE customer_id < 310",
    "hash_join": "SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id "
    "WHERE o.total > 910",
    "limit": "SELECT * FROM orders WHERE total > 12 LIMIT 7",
    "values_scan": "SELECT * FROM (VALUES (5, 'x'), (6, 'y')) v(n, s) WHERE n > 2",
    "tid_scan": "SELECT * FROM orders WHERE ctid = '(2,3)'",
}


@dataclass(frozen=True)
class Explained:
    """One EXPLAIN output of one query variant."""

    query: str  # query name
    variant: str  # "" for the query itself, else the switch's name or "literal"
    options: str  # e.g. "FORMAT JSON, ANALYZE, BUFFERS"
    fmt: str  # "json" | "text"
    body: str


def option_sets(major: int) -> list[tuple[str, str]]:
    """(EXPLAIN options, format) pairs the corpus uses on this server version."""
    extras = ", SETTINGS, WAL" if major >= 13 else ""
    sets = [
        ("FORMAT JSON", "json"),
        (f"FORMAT JSON, ANALYZE, BUFFERS, VERBOSE{extras}", "json"),
        ("FORMAT JSON, VERBOSE", "json"),
        ("FORMAT TEXT", "text"),
        (f"FORMAT TEXT, ANALYZE, BUFFERS, VERBOSE{extras}", "text"),
        ("FORMAT TEXT, VERBOSE", "text"),
    ]
    if major >= 18:
        sets.append(("FORMAT JSON, ANALYZE, MEMORY, SERIALIZE", "json"))
    return sets


def setup(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                connection.execute(statement)


def _explain(connection: psycopg.Connection[Any], sql: str, options: str, settings: dict[str, str]) -> str:
    with connection.transaction(force_rollback=True):
        for key, value in {**BASE_SETTINGS, **settings}.items():
            connection.execute(f"SET LOCAL {key} = '{value}'")
        rows = connection.execute(f"EXPLAIN ({options}) {sql}").fetchall()
    if options.startswith("FORMAT JSON"):
        value = rows[0][0]
        return value if isinstance(value, str) else json.dumps(value)
    return "\n".join(str(row[0]) for row in rows)


def generate(dsn: str, major: int) -> list[Explained]:
    """Every query (and its switched and literal variants) under every option set."""
    out: list[Explained] = []
    with psycopg.connect(dsn) as connection:
        for query in QUERIES:
            if major < query.min_version:
                continue
            variants: list[tuple[str, str, dict[str, str]]] = [("", query.sql, query.settings)]
            for name, extra in query.switched:
                variants.append((name, query.sql, {**query.settings, **extra}))
            if query.name in LITERAL_VARIANTS:
                variants.append(("literal", LITERAL_VARIANTS[query.name], query.settings))
            for variant, sql, settings in variants:
                for options, fmt in option_sets(major):
                    if variant and "ANALYZE" in options and fmt == "text":
                        continue  # variants: JSON and plain text are enough to compare
                    body = _explain(connection, sql, options, settings)
                    out.append(Explained(query.name, variant, options, fmt, body))
    return out


def raw_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a raw EXPLAIN JSON plan, counted from the JSON itself (not through planmon)."""
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


def raw_statement(body: str) -> dict[str, Any]:
    document = json.loads(body)
    return document[0] if isinstance(document, list) else document


def raw_shape(body: str) -> Counter[tuple[str, str, str, str]]:
    """The engine's own node-type / relation / index / join-type multiset of a JSON plan."""
    plan = raw_statement(body)["Plan"]
    return Counter(
        (
            str(node["Node Type"]),
            str(node.get("Relation Name", "")),
            str(node.get("Index Name", "")),
            str(node.get("Join Type", node.get("Strategy", ""))),
        )
        for node in raw_nodes(plan)
    )
