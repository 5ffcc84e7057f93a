"""Repository contents for analysis tests: a week of a good plan, then a slow one, then recovery."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore

HOUR = timedelta(hours=1)
T0 = datetime(2026, 11, 10, 0, 0)  # baseline days start here; the slowdown starts at SLOW
SLOW = T0 + timedelta(days=7)


def _sales_query(repository: Repository) -> tuple[int, int, dict[str, int]]:
    """Target ``sales`` (SQL Server), its query 42 and the query's plans p1 and p2 (shapes a, b)."""
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="sales", engine="sqlserver", conn_id="c")).id
    query_id = collection.upsert_queries(target_id, [QueryRecord("42", query_text="SELECT ? FROM t")])[
        ("", "42")
    ]
    plan_ids = collection.upsert_plans(
        target_id, [PlanRecord("p1", "42", shape_hash="a"), PlanRecord("p2", "42", shape_hash="b")]
    )
    return target_id, query_id, plan_ids


def seed(repository: Repository, *, slow_hours: int, recovered_hours: int = 0) -> tuple[int, dict[str, int]]:
    """Plan p1 for a week at 10 ms CPU, then plan p2 at 40 ms for ``slow_hours``, then p1 again."""
    collection = CollectionStore(repository)
    target_id, query_id, plan_ids = _sales_query(repository)
    rows: list[dict[str, Any]] = []

    def add(start: datetime, hours: int, plan: str, cpu: float) -> None:
        for h in range(hours):
            rows.append({
                "target_id": target_id, "plan_id": plan_ids[plan], "query_id": query_id,
                "interval_start": start + h * HOUR, "interval_end": start + (h + 1) * HOUR,
                "executions": 600, "cpu_us_mean": cpu, "cpu_us_stdev": cpu * 0.05,
                "duration_us_mean": cpu * 1.1,
            })  # fmt: skip

    add(T0, 7 * 24, "p1", 10_000.0)
    add(SLOW, slow_hours, "p2", 40_000.0)
    add(SLOW + slow_hours * HOUR, recovered_hours, "p1", 10_000.0)
    collection.upsert_runtime_stats(rows)
    return target_id, plan_ids


def seed_late_plan_change(repository: Repository, *, day_start: datetime) -> datetime:
    """Target ``sales``, query 42: plan p1 at about 10 ms CPU for the week before ``day_start`` and
    most of that day, then plan p2 5x slower from 21:00 (the day's last 3 hours); hourly rows, a
    little noise. Returns the onset (``day_start`` + 21 h)."""
    collection = CollectionStore(repository)
    target_id, query_id, plan_ids = _sales_query(repository)
    first, onset = day_start - timedelta(days=7), day_start + 21 * HOUR
    rows = []
    for hour in range(8 * 24):
        start = first + hour * HOUR
        slow = start >= onset
        cpu = (50_000.0 if slow else 10_000.0) * (1.0 + 0.04 * ((hour * 7) % 5 - 2))
        rows.append({
            "target_id": target_id, "plan_id": plan_ids["p2" if slow else "p1"], "query_id": query_id,
            "interval_start": start, "interval_end": start + HOUR, "executions": 600 + (hour % 3) * 20,
            "cpu_us_mean": cpu, "cpu_us_stdev": cpu * 0.3, "duration_us_mean": cpu * 1.2,
        })  # fmt: skip
    collection.upsert_runtime_stats(rows)
    return onset
