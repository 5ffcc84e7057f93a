"""PostgreSQL and MySQL proposals from a regression's plans and the index snapshot: the dropped index
the baseline plan used comes back (concurrently / online), else the plan's tables are analysed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from planmon.engines import get_engine
from planmon.engines.mysql import remediation as mysql
from planmon.engines.postgres import remediation as postgres
from planmon.model import Action, IndexSnapshot, PlanInfo, QualifiedName, RegressionContext, Target

SEEN = datetime(2026, 11, 20, 10)
LATER = datetime(2026, 11, 20, 12)


def pg_plan(node: dict[str, Any]) -> bytes:
    return json.dumps(
        [{"Plan": {"Node Type": "Aggregate", "Plans": [{**node, "Parent Relationship": "Outer"}]}}]
    ).encode()


INDEX_SCAN = pg_plan(
    {
        "Node Type": "Index Scan",
        "Index Name": "orders_customer",
        "Relation Name": "orders",
        "Schema": "public",
        "Alias": "orders",
    }
)
SEQ_SCAN = pg_plan(
    {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "orders"}
)
ORDERS = QualifiedName("public", "orders")
SNAPSHOT = [
    IndexSnapshot(
        ORDERS,
        "orders_customer",
        "CREATE INDEX orders_customer ON public.orders USING btree (customer)",
        False,
        False,
        SEEN,
        SEEN,
    ),
    IndexSnapshot(
        ORDERS,
        "orders_pkey",
        "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
        True,
        True,
        SEEN,
        LATER,
    ),
]


def _target(engine: str) -> Target:
    return Target(1, "shop", engine, "m", None, {}, (), True, "approve", "f", SEEN, SEEN)  # type: ignore[arg-type]


def _context(engine: str, baseline: bytes, current: bytes, indexes: list[IndexSnapshot]) -> RegressionContext:
    return RegressionContext(
        regression={"id": 3, "kind": "plan_change", "query_id": 9},
        target=_target(engine),
        database_name="shop",
        query_key="q",
        query_text=None,
        baseline_plan=PlanInfo(1, "a", baseline),
        current_plan=PlanInfo(2, "b", current),
        indexes=indexes,
    )


def test_postgres_recreates_the_dropped_index_concurrently_then_offers_analyze() -> None:
    asked: list[tuple[str, list[QualifiedName]]] = []

    def inspector(database: str, tables: Any) -> set[tuple[QualifiedName, str]]:
        asked.append((database, list(tables)))
        return {(ORDERS, "orders_pkey")}  # orders_customer is gone

    proposals = postgres.propose(_context("postgres", INDEX_SCAN, SEQ_SCAN, SNAPSHOT), inspector)
    assert asked == [("shop", [ORDERS])]
    assert [p.action for p in proposals] == [Action.RECREATE_INDEX, Action.ANALYZE]
    recreate = proposals[0]
    assert (
        recreate.sql_text
        == "CREATE INDEX CONCURRENTLY orders_customer ON public.orders USING btree (customer);"
    )
    assert recreate.rollback_text == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."orders_customer";'
    assert recreate.evidence.captured_definition == SNAPSHOT[0].definition
    assert proposals[1].sql_text == 'ANALYZE "public"."orders";' and proposals[1].rollback == ()


def test_postgres_index_still_there_means_no_recreate() -> None:
    proposals = postgres.propose(
        _context("postgres", INDEX_SCAN, SEQ_SCAN, SNAPSHOT),
        lambda db, t: {(ORDERS, "orders_customer")},
    )
    assert [p.action for p in proposals] == [Action.ANALYZE]


def test_postgres_without_a_live_look_uses_the_snapshot_ages() -> None:
    proposals = postgres.propose(_context("postgres", INDEX_SCAN, SEQ_SCAN, SNAPSHOT), None)
    assert proposals[0].action is Action.RECREATE_INDEX  # not seen since a newer snapshot of its table


def test_unique_definitions_and_hostile_names_stay_well_formed() -> None:
    unique = 'CREATE UNIQUE INDEX "we""ird" ON public.orders USING btree (id)'
    assert (
        postgres.concurrent_definition(unique)
        == 'CREATE UNIQUE INDEX CONCURRENTLY "we""ird" ON public.orders USING btree (id)'
    )
    assert get_engine("postgres").quote(QualifiedName("public", 'or"ders')) == '"public"."or""ders"'
    with pytest.raises(ValueError, match="not a CREATE INDEX"):
        postgres.concurrent_definition("DROP TABLE orders")


def test_mysql_recreates_online_from_the_captured_definition() -> None:
    add, drop = mysql.online_add_index(
        "CREATE INDEX `orders_customer` ON `shop`.`orders` (`customer`, `total` DESC)"
    )
    assert add == (
        "ALTER TABLE `shop`.`orders` ADD INDEX `orders_customer` (`customer`, `total` DESC), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )
    assert drop == "ALTER TABLE `shop`.`orders` DROP INDEX `orders_customer`, ALGORITHM=INPLACE, LOCK=NONE"
    unique, _ = mysql.online_add_index("CREATE UNIQUE INDEX `u``x` ON `shop`.`t` (`a`(10))")
    assert unique.startswith("ALTER TABLE `shop`.`t` ADD UNIQUE INDEX `u``x` (`a`(10))")
    with pytest.raises(ValueError):
        mysql.online_add_index("ALTER TABLE `shop`.`t` ADD PRIMARY KEY (`id`)")
    assert get_engine("mysql").quote(QualifiedName("shop", "or`ders")) == "`shop`.`or``ders`"
