"""The demo's shop database and the application traffic that runs against it.

A small online shop: 20,000 customers, 1,000 products, 300,000 orders and 600,000 order lines, with
the indexes an application would have. The traffic mixes a customer's order history (the query
that regresses when its index is dropped), customer and product look-ups by key, and a daily revenue
report; every statement is parameterised, as an application driver sends them.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

DATABASE = "shop"
# The index whose loss makes the order-history query scan the whole orders table.
REGRESSION_INDEX = "orders_customer_id_idx"

SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, country text NOT NULL, "
    "created_at timestamp NOT NULL)",
    "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL)",
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, "
    "ordered_at timestamp NOT NULL, status text NOT NULL, total numeric(12, 2) NOT NULL)",
    "CREATE TABLE order_lines (order_id int NOT NULL, line int NOT NULL, "
    "product_id int NOT NULL, quantity int NOT NULL, PRIMARY KEY (order_id, line))",
)

DATA = (
    "INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['DE','FR','NL','PL','SE'])[1 + g % 5], "
    "timestamp '2024-01-01' + g * interval '40 minutes' FROM generate_series(1, 20000) g",
    "INSERT INTO products SELECT g, 'product ' || g, 5 + (g % 200) FROM generate_series(1, 1000) g",
    "INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) % 20000, "
    "timestamp '2026-01-01' + g * interval '90 seconds', "
    "(ARRAY['paid','shipped','returned'])[1 + g % 3], 10 + (g % 500) FROM generate_series(1, 300000) g",
    "INSERT INTO order_lines SELECT o, l, 1 + (o * l) % 1000, 1 + (o + l) % 4 "
    "FROM generate_series(1, 300000) o, generate_series(1, 2) l",
)

INDEXES = (  # foreign keys after the rows: one validating join each instead of a check per row
    "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers",
    "ALTER TABLE order_lines ADD FOREIGN KEY (order_id) REFERENCES orders",
    "ALTER TABLE order_lines ADD FOREIGN KEY (product_id) REFERENCES products",
    f"CREATE INDEX {REGRESSION_INDEX} ON orders (customer_id)",
    "CREATE INDEX orders_ordered_at_idx ON orders (ordered_at)",
    "CREATE INDEX order_lines_product_id_idx ON order_lines (product_id)",
    "ANALYZE",
)

ORDER_HISTORY = (
    "SELECT o.id, o.ordered_at, o.status, o.total FROM orders o "
    "WHERE o.customer_id = %s ORDER BY o.ordered_at DESC LIMIT 20"
)
CUSTOMER = "SELECT id, name, country FROM customers WHERE id = %s"
PRODUCT = "SELECT id, name, price FROM products WHERE id = %s"
DAILY_REVENUE = (
    "SELECT date_trunc('hour', ordered_at) AS hour, count(*), sum(total) FROM orders "
    "WHERE ordered_at >= %s::timestamp AND ordered_at < %s::timestamp + interval '1 day' GROUP BY 1"
)


@dataclass(frozen=True)
class Traffic:
    """How many statements of each kind one burst of application traffic sends."""

    order_history: int = 500  # per burst: 3,000 regressed in the analysed hour (flow.REGRESSED_BURSTS)
    customer: int = 80
    product: int = 80
    daily_revenue: int = 4


def create_database(admin: Any) -> None:
    """(Re)create the shop database through an autocommit connection to ``postgres``."""
    admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.execute(f"CREATE DATABASE {DATABASE}")


def load(shop: Any) -> None:
    """Schema, rows, keys and indexes (a few seconds)."""
    for statement in (*SCHEMA, *DATA, *INDEXES):
        shop.execute(statement)


def run_traffic(shop: Any, traffic: Traffic, seed: int) -> int:
    """One burst of application traffic; returns the number of statements sent."""
    rng = random.Random(seed)  # noqa: S311  (workload parameters, not security)
    calls: list[tuple[str, Callable[[], tuple[Any, ...]]]] = [
        (ORDER_HISTORY, lambda: (rng.randint(1, 20000),)),
        (CUSTOMER, lambda: (rng.randint(1, 20000),)),
        (PRODUCT, lambda: (rng.randint(1, 1000),)),
    ]
    counts = (traffic.order_history, traffic.customer, traffic.product)
    sent = 0
    for (sql, parameters), count in zip(calls, counts, strict=True):
        for _ in range(count):
            shop.execute(sql, parameters()).fetchall()
            sent += 1
    for _ in range(traffic.daily_revenue):
        day = f"2026-{rng.randint(1, 6):02d}-{rng.randint(1, 28):02d}"
        shop.execute(DAILY_REVENUE, (day, day)).fetchall()
        sent += 1
    return sent


def induce_regression(shop: Any) -> str:
    """What a careless migration does: drop the index the order-history query depends on."""
    shop.execute(f"DROP INDEX {REGRESSION_INDEX}")
    return f"DROP INDEX {REGRESSION_INDEX}"


@contextlib.contextmanager
def in_background(run_once: Callable[[], object], pause: float = 0.02) -> Iterator[dict[str, int]]:
    """Run ``run_once`` in a loop in a daemon thread while the block runs (the application's traffic
    during a DAG run); yields the counts of runs and errors. An error is counted, not raised: the
    traffic must outlive a lock timeout or a reconnect while an index is built."""
    stop = threading.Event()
    counts = {"runs": 0, "errors": 0}

    def loop() -> None:
        while not stop.is_set():
            try:
                run_once()
                counts["runs"] += 1
            except Exception:
                counts["errors"] += 1
                time.sleep(0.2)
            stop.wait(pause)

    thread = threading.Thread(target=loop, name="traffic", daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=60)
