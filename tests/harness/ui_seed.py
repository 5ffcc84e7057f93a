"""Repository contents for the UI tests: a fleet, one query whose plan changed (detected by the real
analysis), three plans with real documents, collection runs, a remediation and its audit trail;
and, for scale tests, 1,000 targets and 10,000 regressions inserted in bulk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from planmon.analysis.service import analyze_repository
from planmon.config import Settings
from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.plans import parse_plan, shape_hash
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.regressions import RegressionStore
from planmon.store.schema import query, regression, remediation, target

HOUR = timedelta(hours=1)
T0 = datetime(2026, 11, 10, 0, 0)
SLOW = T0 + timedelta(days=7)
SLOW_HOURS = 6
QUERY_TEXT = "SELECT sum(total) FROM public.orders WHERE customer_id = $1"


def _pg_plan(node: dict[str, Any], total: float) -> bytes:
    return json.dumps([{"Plan": {**node, "Total Cost": total}, "Planning Time": 0.1}]).encode()


INDEX_PLAN = _pg_plan(
    {
        "Node Type": "Aggregate", "Strategy": "Plain", "Startup Cost": 8.3, "Plan Rows": 1,
        "Actual Rows": 1, "Actual Loops": 1,
        "Plans": [{
            "Node Type": "Index Scan", "Parent Relationship": "Outer", "Relation Name": "orders",
            "Schema": "public", "Index Name": "orders_customer", "Alias": "orders", "Startup Cost": 0.29,
            "Total Cost": 8.3, "Plan Rows": 12, "Actual Rows": 11, "Actual Loops": 1,
            "Index Cond": "(customer_id = $1)",
        }],
    },
    8.31,
)  # fmt: skip
SEQ_PLAN = _pg_plan(
    {
        "Node Type": "Aggregate", "Strategy": "Plain", "Startup Cost": 2041.0, "Plan Rows": 1,
        "Actual Rows": 1, "Actual Loops": 1,
        "Plans": [{
            "Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders",
            "Schema": "public", "Alias": "orders", "Startup Cost": 0.0, "Total Cost": 2041.0,
            "Plan Rows": 10, "Actual Rows": 25000, "Actual Loops": 1, "Filter": "(customer_id = $1)",
            "Rows Removed by Filter": 99990,
        }],
    },
    2041.1,
)  # fmt: skip
BITMAP_PLAN = _pg_plan(
    {
        "Node Type": "Aggregate", "Strategy": "Plain", "Startup Cost": 40.0, "Plan Rows": 1,
        "Plans": [{
            "Node Type": "Bitmap Heap Scan", "Parent Relationship": "Outer", "Relation Name": "orders",
            "Schema": "public", "Alias": "orders", "Startup Cost": 4.4, "Total Cost": 40.0, "Plan Rows": 12,
            "Recheck Cond": "(customer_id = $1)",
            "Plans": [{
                "Node Type": "Bitmap Index Scan", "Parent Relationship": "Outer",
                "Index Name": "orders_customer", "Startup Cost": 0.0, "Total Cost": 4.4, "Plan Rows": 12,
                "Index Cond": "(customer_id = $1)",
            }],
        }],
    },
    40.1,
)  # fmt: skip
DOCUMENTS = {"p-index": INDEX_PLAN, "p-seq": SEQ_PLAN, "p-bitmap": BITMAP_PLAN}


@dataclass(frozen=True)
class SeededFleet:
    target_id: int
    query_id: int
    plan_ids: dict[str, int]
    regression_id: int
    remediation_id: int
    other_target_ids: list[int]


def _plan_record(key: str) -> PlanRecord:
    document = DOCUMENTS[key]
    statement = parse_plan(document).statements[0]
    return PlanRecord(key, "q-42", shape_hash=shape_hash(statement), body_format="pg_json", body=document)


def seed_fleet(repository: Repository, settings: Settings) -> SeededFleet:
    """``shop``: a week on the index plan (with an hour of a bitmap plan each day), then the sequential
    scan for six hours: the real analysis opens a plan_change regression. Two more targets with
    collection runs (one failing an aspect with a hint), a remediation with its audit entries."""
    shop = repository.add_target(
        TargetSpec(name="shop", engine="postgres", conn_id="shop_pg", environment="prod")
    )
    collection = CollectionStore(repository)
    query_id = collection.upsert_queries(shop.id, [QueryRecord("q-42", query_text=QUERY_TEXT)])[("", "q-42")]
    plan_ids = collection.upsert_plans(shop.id, [_plan_record(k) for k in DOCUMENTS])
    rows: list[dict[str, Any]] = []
    for hour in range(7 * 24 + SLOW_HOURS + 3):
        start = T0 + hour * HOUR
        slow = SLOW <= start < SLOW + SLOW_HOURS * HOUR
        key = "p-seq" if slow else ("p-bitmap" if hour % 24 == 3 else "p-index")
        cpu = 40_000.0 if slow else (12_000.0 if key == "p-bitmap" else 10_000.0)
        rows.append({
            "target_id": shop.id, "plan_id": plan_ids[key], "query_id": query_id,
            "interval_start": start, "interval_end": start + HOUR, "executions": 600,
            "cpu_us_mean": cpu, "cpu_us_stdev": cpu * 0.05, "duration_us_mean": cpu * 1.3,
            "duration_us_stdev": cpu * 0.08, "logical_reads_mean": cpu / 10,
        })  # fmt: skip
    collection.upsert_runtime_stats(rows)
    analyze_repository(repository, window_start=SLOW, window_end=SLOW + SLOW_HOURS * HOUR, settings=settings)
    found = RegressionStore(repository).regressions(status="open")
    assert len(found) == 1, f"the seeded slowdown should open one regression, found {len(found)}"
    regression_id = int(found["id"].iloc[0])

    others = [
        repository.add_target(TargetSpec(name=name, engine=engine, conn_id=f"{name}_conn")).id
        for name, engine in (("billing", "sqlserver"), ("catalog", "mysql"))
    ]
    end = SLOW + SLOW_HOURS * HOUR
    collection.record_collection_run(
        shop.id, end - HOUR, end, status="ok",
        aspects={"runtime_stats": {"status": "ok", "hint": None}, "plans": {"status": "ok", "hint": None}},
    )  # fmt: skip
    collection.record_collection_run(
        others[0], end - HOUR, end, status="degraded",
        aspects={
            "runtime_stats": {"status": "ok", "hint": None},
            "plans": {"status": "permission_denied", "hint": "GRANT VIEW DATABASE STATE TO planmon"},
        },
    )  # fmt: skip
    remediation_id = _remediation(repository, shop.id, regression_id, end)
    return SeededFleet(shop.id, query_id, plan_ids, regression_id, remediation_id, others)


def _remediation(repository: Repository, target_id: int, regression_id: int, at: datetime) -> int:
    with repository.engine.begin() as connection:
        remediation_id = connection.execute(
            insert(remediation)
            .values(
                regression_id=regression_id, target_id=target_id, action="recreate_index", state="proposed",
                sql_text="CREATE INDEX CONCURRENTLY orders_customer ON public.orders (customer_id)",
                rollback_sql="DROP INDEX CONCURRENTLY orders_customer", expected_effect="index scan again",
                evidence={}, dag_run_id="manual__2026-11-17T07:00:00+00:00", created_at=at, updated_at=at,
            )
            .returning(remediation.c.id)
        ).scalar_one()  # fmt: skip
    repository.audit(
        "planmon", "remediation.propose", target_id=target_id, subject=f"remediation:{remediation_id}"
    )
    return int(remediation_id)


def seed_scale(repository: Repository, *, targets: int = 1000, regressions: int = 10_000) -> None:
    """``targets`` targets and ``regressions`` regressions (one query each) spread over them."""
    now = datetime(2026, 11, 20)
    severities = ("critical", "high", "medium", "low")
    kinds = ("plan_change", "same_plan", "parameter_sensitive", "error_prone")
    with repository.engine.begin() as connection:
        connection.execute(
            insert(target),
            [
                {"name": f"t{i:05d}", "engine": "postgres", "conn_id": "c", "tags": {}, "databases": [],
                 "enabled": True, "remediation_mode": "propose", "created_at": now, "updated_at": now}
                for i in range(targets)
            ],
        )  # fmt: skip
        target_ids = [row.id for row in connection.execute(target.select().order_by(target.c.id))]
        owner = [target_ids[i % targets] for i in range(regressions)]
        connection.execute(
            insert(query),
            [
                {"target_id": owner[i], "database_name": "", "query_key": f"q{i}", "first_seen": now,
                 "last_seen": now}
                for i in range(regressions)
            ],
        )  # fmt: skip
        query_ids = {row.query_key: row.id for row in connection.execute(query.select())}
        connection.execute(
            insert(regression),
            [
                {"target_id": owner[i], "query_id": query_ids[f"q{i}"], "kind": kinds[i % len(kinds)],
                 "status": "open" if i % 3 else "resolved", "open_key": "open" if i % 3 else str(i),
                 "severity": severities[i % 4], "metric": "cpu_us", "baseline_mean": 10.0,
                 "current_mean": 40.0, "ratio": 4.0, "impact": 100.0, "evidence": {},
                 "first_detected": now, "last_detected": now}
                for i in range(regressions)
            ],
        )  # fmt: skip
