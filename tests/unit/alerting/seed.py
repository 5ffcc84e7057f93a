"""Seed a repository with targets, queries, plans and regression rows for alerting tests.

Regressions are inserted directly into the ``regression`` table (the analysis DAG writes them in
production), with a plan diff whose predicates carry literals, so tests can check they are stripped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, update

from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.schema import regression

T0 = datetime(2026, 11, 20, 12, 0)

_CHANGES = [
    {"kind": "access", "message": "orders: Index Seek (ix_customer) became Clustered Index Scan"},
    {"kind": "predicate", "message": "orders: predicate [customer_id] = 4711 AND [email] = 'bob@x.org'"},
]
# As planmon.analysis.service.PlanCache.diff stores it: PlanDiff.as_dict() plus its text.
PLAN_DIFF = {
    "text": "statement 0: shape ab12cd -> ef34gh\n" + "\n".join(f"  {c['message']}" for c in _CHANGES),
    "statement_index": 0,
    "before_hash": "ab12cd",
    "after_hash": "ef34gh",
    "shape_unchanged": False,
    "changes": _CHANGES,
}


def seed_target(
    repository: Repository,
    name: str = "orders-prod",
    *,
    environment: str | None = "prod",
    tags: dict[str, str] | None = None,
) -> tuple[int, dict[str, int], dict[str, int]]:
    """A target with one query and two plans; returns (target id, query ids, plan ids)."""
    collection = CollectionStore(repository)
    target = repository.add_target(
        TargetSpec(
            name=name,
            engine="postgres",
            conn_id="orders_pg",
            environment=environment,
            tags=tags or {"team": "payments"},
        )
    )
    queries = collection.upsert_queries(
        target.id,
        [
            QueryRecord("q-4711", query_text="SELECT sum(total) FROM orders WHERE customer_id = 4711"),
            QueryRecord("q-815", query_text="SELECT * FROM orders WHERE email = 'alice@example.org'"),
        ],
    )
    plans = collection.upsert_plans(
        target.id,
        [
            PlanRecord("p-good", "q-4711", shape_hash="ab12cd", summary={"findings": ["missing_index"]}),
            PlanRecord(
                "p-bad", "q-4711", shape_hash="ef34gh", summary={"findings": ["missing_index", "spill"]}
            ),
        ],
    )
    return target.id, {key: value for (_db, key), value in queries.items()}, plans


def insert_regression(
    repository: Repository,
    target_id: int,
    query_id: int,
    *,
    kind: str = "plan_change",
    severity: str = "high",
    plans: dict[str, int] | None = None,
    detected: datetime = T0,
    **values: Any,
) -> int:
    row = {
        "target_id": target_id,
        "query_id": query_id,
        "kind": kind,
        "status": "open",
        "open_key": "open",
        "severity": severity,
        "metric": "cpu_us",
        "baseline_plan_id": (plans or {}).get("p-good"),
        "current_plan_id": (plans or {}).get("p-bad"),
        "baseline_mean": 1200.0,
        "current_mean": 3900.0,
        "ratio": 3.25,
        "impact": 42.5,
        "p_value": 0.0001,
        "evidence": {
            "rule": "cpu_us mean x3.25 >= 1.5, Welch p=0.0001, impact 42.5s/h >= 10.0",
            "baseline_plan": {"executions": 120.0, "mean": 1200.0},
            "current_plan": {"executions": 340.0, "mean": 3900.0},
        },
        "diff": PLAN_DIFF if kind == "plan_change" else None,
        "first_detected": detected,
        "last_detected": detected,
        **values,
    }
    with repository.engine.begin() as connection:
        return int(connection.execute(insert(regression).values(**row)).inserted_primary_key[0])


def update_regression(repository: Repository, regression_id: int, **values: Any) -> None:
    with repository.engine.begin() as connection:
        connection.execute(update(regression).where(regression.c.id == regression_id).values(**values))
