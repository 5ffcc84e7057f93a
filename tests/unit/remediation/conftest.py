"""A repository with one open plan_change regression on a PostgreSQL-engine target, and a fake target
connection that records what remediation sends (no server needed for the state machine and rails)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.regressions import RegressionStore

DETECTED = datetime(2026, 11, 20, 12, 0)


@dataclass
class FakeTarget:
    """DB-API stand-in: every statement sent on any connection it opened, in order."""

    sent: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    fail_on: str | None = None  # a statement containing this text raises
    connections: int = 0

    def connect(self, database: str | None) -> Any:
        self.connections += 1
        return _Connection(self)

    @property
    def statements(self) -> list[str]:
        return [sql for sql, _ in self.sent if not sql.startswith("SELECT set_config")]


class _Cursor:
    def __init__(self, target: FakeTarget) -> None:
        self.target = target
        self.description = None

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self.target.fail_on and self.target.fail_on in sql:
            raise RuntimeError("lock timeout, password=hunter2")
        self.target.sent.append((sql, tuple(params)))

    def fetchall(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class _Connection:
    def __init__(self, target: FakeTarget) -> None:
        self.target = target
        self.autocommit = False

    def cursor(self) -> _Cursor:
        return _Cursor(self.target)

    def close(self) -> None:
        pass


@dataclass
class Seeded:
    repository: Repository
    target_id: int
    query_id: int
    plan_ids: dict[str, int]
    regression_id: int


def seed_regression(
    repository: Repository,
    *,
    name: str = "shop",
    mode: str = "approve",
    engine: str = "postgres",
    **spec: Any,
) -> Seeded:
    collection = CollectionStore(repository)
    target = repository.add_target(
        TargetSpec(
            name=name,
            engine=engine,
            conn_id=f"{name}_monitor",
            databases=("shop",),
            remediation_mode=mode,
            remediation_conn_id=f"{name}_fix",
            **spec,
        )
    )
    query_id = collection.upsert_queries(
        target.id, [QueryRecord("q1", "shop", query_text="SELECT ? FROM t")]
    )[("shop", "q1")]
    plan_ids = collection.upsert_plans(
        target.id,
        [PlanRecord("good", "q1", "shop", shape_hash="a"), PlanRecord("bad", "q1", "shop", shape_hash="b")],
    )
    [regression_id] = RegressionStore(repository).record_regressions(
        [
            {
                "target_id": target.id,
                "query_id": query_id,
                "kind": "plan_change",
                "severity": "high",
                "metric": "duration_us",
                "baseline_plan_id": plan_ids["good"],
                "current_plan_id": plan_ids["bad"],
                "baseline_mean": 100.0,
                "current_mean": 1000.0,
                "ratio": 10.0,
                "impact": 5.0,
                "p_value": 1e-6,
                "evidence": {
                    "baseline_plan": {"executions": 500, "mean": 100.0, "stdev": 10.0},
                    "current_plan": {"executions": 500, "mean": 1000.0, "stdev": 100.0},
                },
                "diff": None,
            }
        ],
        detected_at=DETECTED,
    )
    return Seeded(repository, target.id, query_id, plan_ids, regression_id)


def add_stats(seeded: Seeded, start: datetime, *, plan: str, mean: float, executions: int = 50) -> None:
    CollectionStore(seeded.repository).upsert_runtime_stats(
        [
            {
                "target_id": seeded.target_id,
                "plan_id": seeded.plan_ids[plan],
                "query_id": seeded.query_id,
                "interval_start": start,
                "interval_end": start + timedelta(minutes=1),
                "executions": executions,
                "duration_us_mean": mean,
                "duration_us_stdev": mean * 0.1,
            }
        ]
    )


def seed_with_plans(repository: Repository, *, mode: str = "approve") -> Seeded:
    """seed_regression, plus PostgreSQL plan documents (index scan -> seq scan) and an index snapshot
    in which the baseline's index was last seen before a newer snapshot of its table."""
    import zlib

    from sqlalchemy import insert, update

    from planmon.store.schema import index_snapshot, plan
    from tests.unit.remediation.test_proposals import INDEX_SCAN, SEQ_SCAN, SNAPSHOT

    seeded = seed_regression(repository, mode=mode)
    with repository.engine.begin() as connection:
        for key, body in (("good", INDEX_SCAN), ("bad", SEQ_SCAN)):
            connection.execute(
                update(plan).where(plan.c.id == seeded.plan_ids[key]).values(body=zlib.compress(body))
            )
        for snapshot in SNAPSHOT:
            connection.execute(
                insert(index_snapshot).values(
                    target_id=seeded.target_id,
                    database_name="shop",
                    table_name=snapshot.table.key(),
                    index_name=snapshot.index_name,
                    definition=snapshot.definition,
                    definition_hash=snapshot.index_name,
                    is_unique=snapshot.is_unique,
                    is_primary=snapshot.is_primary,
                    first_seen=snapshot.first_seen,
                    last_seen=snapshot.last_seen,
                )
            )
    return seeded


def seed_sqlserver_regression(repository: Repository, **spec: Any) -> int:
    """A plan_change of query 7 in database Sales on a SQL Server target ``sales`` (mode approve):
    plan 12 regressed, plan 11 (in Query Store) was the last good one; their recorded showplans."""
    import zlib

    from sqlalchemy import update

    from planmon.store.schema import plan
    from tests.unit.remediation.test_sqlserver import _showplans

    collection = CollectionStore(repository)
    target = repository.add_target(
        TargetSpec(
            name="sales",
            engine="sqlserver",
            remediation_mode="approve",
            **{"conn_id": "m", "remediation_conn_id": "f", **spec},
        )
    )
    query_id = collection.upsert_queries(target.id, [QueryRecord("7", "Sales")])[("Sales", "7")]
    plan_ids = collection.upsert_plans(
        target.id, [PlanRecord("11", "7", "Sales"), PlanRecord("12", "7", "Sales")]
    )
    with repository.engine.begin() as connection:
        for key, body in _showplans().items():
            if str(key) in plan_ids:
                connection.execute(
                    update(plan).where(plan.c.id == plan_ids[str(key)]).values(body=zlib.compress(body))
                )
    detection = {
        "target_id": target.id,
        "query_id": query_id,
        "kind": "plan_change",
        "severity": "high",
        "metric": "cpu_us",
        "baseline_plan_id": plan_ids["11"],
        "current_plan_id": plan_ids["12"],
        "baseline_mean": 1200.0,
        "current_mean": 40000.0,
        "evidence": {},
    }
    [regression_id] = RegressionStore(repository).record_regressions([detection], detected_at=DETECTED)
    return regression_id


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    with Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "r.db")))) as repo:
        repo.init_schema()
        yield repo


@pytest.fixture
def fake_target() -> FakeTarget:
    return FakeTarget()
