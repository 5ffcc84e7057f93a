"""The collector on a fake engine: deltas, plan budget and back-off, backfill, atomic writes, failures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from planmon import collect
from planmon.config import load_settings
from planmon.engines.base import (
    OK,
    Aspect,
    AspectState,
    AspectStatus,
    Capabilities,
    CapturedPlan,
    IndexDefinition,
    PlanCaptureFailure,
    StatementStats,
)
from planmon.errors import EngineError, EngineErrorReason
from planmon.model import QualifiedName, Target, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.schema import collection_run, index_snapshot, plan, runtime_stats

T0 = datetime(2026, 11, 20, 12, 0)
STEP = timedelta(minutes=15)
PG_PLAN = b'[{"Plan": {"Node Type": "Index Scan", "Relation Name": "orders", "Schema": "public", "Index Name": "orders_pkey", "Total Cost": 8.3, "Plan Rows": 1}}]'  # noqa: E501
PG_PLAN_SEQ = PG_PLAN.replace(b'"Index Scan"', b'"Seq Scan"').replace(b', "Index Name": "orders_pkey"', b"")


@dataclass
class FakeEngine:
    """Scripted server: cumulative counters per statement, plans per statement, failures on demand."""

    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    plan_bodies: dict[str, bytes] = field(default_factory=dict)
    unexplainable: set[str] = field(default_factory=set)
    down: bool = False
    killed_during_plans: bool = False  # the connection dies while plans are captured
    killed_during_stats: bool = False  # ... while runtime statistics are read
    aspects: dict[Aspect, AspectStatus] = field(default_factory=dict)  # overrides of the probe's answer
    backfillable: bool = False
    plan_requests: list[list[str]] = field(default_factory=list)
    sent: int = 0


class FakeAdapter:
    engine = "postgres"
    server: FakeEngine

    def __init__(self, connect: Any, *, target_name: str, databases: Sequence[str], settings: Any) -> None:
        self.server = connect(None)

    def close(self) -> None:
        pass

    def capabilities(self) -> Capabilities:
        self.server.sent += 1
        if self.server.down:
            raise EngineError(
                "connection refused, password=hunter2secret", reason=EngineErrorReason.UNREACHABLE
            )
        aspects = {a: OK for a in (Aspect.RUNTIME_STATS, Aspect.PLANS, Aspect.OBJECT_DEFINITIONS)}
        aspects[Aspect.FORCING_STATE] = AspectStatus(
            AspectState.NOT_APPLICABLE, hint="no plan forcing in PostgreSQL"
        )
        aspects.update(self.server.aspects)
        return Capabilities(server_version="15", aspects=aspects, backfillable=self.server.backfillable)

    def runtime_stats(self, start: datetime, end: datetime) -> list[StatementStats]:
        self.server.sent += 1
        if self.server.killed_during_stats:
            raise EngineError(
                "server closed the connection unexpectedly", reason=EngineErrorReason.UNREACHABLE
            )
        return [
            StatementStats(
                query_key=key,
                database_name="shop",
                executions=c["calls"],
                duration_us_total=c["time"],
                duration_us_sum_squares=c.get("squares"),
                rows_total=c.get("rows"),
                logical_reads_total=c.get("reads"),
                query_text=f"SELECT ? FROM {key}",
                cumulative=True,
            )
            for key, c in self.server.counters.items()
        ]

    def plans(
        self, statements: Sequence[StatementStats]
    ) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
        self.server.sent += 1
        self.server.plan_requests.append(sorted(s.query_key for s in statements))
        if self.server.killed_during_plans:
            raise EngineError(
                "server closed the connection unexpectedly", reason=EngineErrorReason.UNREACHABLE
            )
        plans, failures = [], []
        for s in statements:
            if s.query_key in self.server.unexplainable:
                failures.append(PlanCaptureFailure(s.query_key, s.database_name, "syntax error at $1"))
            else:
                body = self.server.plan_bodies.get(s.query_key, PG_PLAN)
                plans.append(
                    CapturedPlan(
                        s.query_key,
                        s.database_name,
                        body,
                        "pg_json",
                        objects=(QualifiedName("public", "orders"),),
                    )
                )
        return plans, failures

    def index_definitions(self, database_name: str, tables: Sequence[str]) -> list[IndexDefinition]:
        self.server.sent += 1
        return [
            IndexDefinition(
                database_name,
                QualifiedName("public", "orders"),
                "orders_pkey",
                "CREATE UNIQUE INDEX ...",
                True,
                True,
            )
        ]

    def runtime_stats_notes(self) -> list[str]:
        return []

    def statements_sent(self) -> int:
        return self.server.sent


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    repo = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    repo.init_schema()
    yield repo
    repo.close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    monkeypatch.setattr(collect, "get_engine", lambda name: SimpleNamespace(adapter=FakeAdapter))
    return FakeEngine()


def target(repository: Repository) -> Target:
    return repository.add_target(TargetSpec(name="shop-db", engine="postgres", conn_id="shop"))


def run(
    repository: Repository, server: FakeEngine, tgt: Target, step: int, *, early_s: float = 0, **settings: str
) -> collect.CollectionSummary:
    """Collect interval ``step``, 30 s after it ended (``early_s`` earlier: a run that came early)."""
    start = T0 + step * STEP
    env = {f"PLANMON_{k.upper()}": v for k, v in settings.items()}
    return collect.collect_target(
        repository,
        tgt,
        start,
        start + STEP,
        settings=load_settings(env),
        connect=lambda db: server,
        now=start + STEP + timedelta(seconds=30 - early_s),
    )


def stats(repository: Repository) -> list[Any]:
    with repository.engine.connect() as connection:
        return connection.execute(select(runtime_stats).order_by(runtime_stats.c.interval_start)).all()


def test_first_reading_is_a_baseline_and_later_readings_are_deltas(
    repository: Repository, server: FakeEngine
) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 100, "time": 100_000, "squares": 100 * 1000.0**2}}
    assert run(repository, server, tgt, 0).rows == 0  # baseline
    server.counters["q1"] = {"calls": 130, "time": 100_000 + 30 * 2000, "squares": 100 * 1e6 + 30 * 4e6}
    summary = run(repository, server, tgt, 1)
    assert summary.status == "ok" and summary.rows == 1
    row = stats(repository)[0]
    assert row.executions == 30 and row.duration_us_mean == pytest.approx(2000)
    assert row.duration_us_stdev == pytest.approx(0, abs=1e-6)
    assert row.interval_start == T0 + STEP and row.interval_end == T0 + 2 * STEP


def test_new_statement_after_a_complete_reading_counts_from_zero(
    repository: Repository, server: FakeEngine
) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters["q2"] = {"calls": 7, "time": 700}
    run(repository, server, tgt, 1)
    assert [(r.executions) for r in stats(repository)] == [7]


def test_counters_that_went_down_count_since_the_reset(repository: Repository, server: FakeEngine) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 500, "time": 50_000}}
    run(repository, server, tgt, 0)
    server.counters = {"q1": {"calls": 12, "time": 1200}}
    run(repository, server, tgt, 1)
    assert stats(repository)[0].executions == 12


def test_recollecting_the_same_window_changes_nothing(repository: Repository, server: FakeEngine) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters = {"q1": {"calls": 20, "time": 3000}}
    run(repository, server, tgt, 1)
    first = [tuple(r) for r in stats(repository)]
    run(repository, server, tgt, 1)  # a retry of the same interval: counters unchanged since
    assert [tuple(r)[:4] for r in stats(repository)] == [r[:4] for r in first]
    with repository.engine.connect() as connection:
        assert len(connection.execute(select(collection_run)).all()) == 2


def test_plans_are_captured_within_the_hourly_budget(repository: Repository, server: FakeEngine) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    for step in range(1, 9):  # two hours of 15-minute runs, steady cost
        server.counters["q1"] = {"calls": 10 + step * 10, "time": 1000 + step * 1000}
        run(repository, server, tgt, step, plans_per_query_per_hour="2")
    assert len(server.plan_requests) == 4  # 2 per hour over 2 hours


def test_the_budget_tolerates_runs_that_come_a_little_early(
    repository: Repository, server: FakeEngine
) -> None:
    """Default budget (4 an hour) on the 15-minute schedule: every run captures, even when each run
    starts 5 s earlier than the last (a busy scheduler); without tolerance every other run would skip."""
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    for step in range(1, 9):
        server.counters["q1"] = {"calls": 10 + step * 10, "time": 1000 + step * 1000}
        run(repository, server, tgt, step, early_s=5 * step)
    assert len(server.plan_requests) == 8


def test_the_budget_still_caps_captures_of_jittered_runs(repository: Repository, server: FakeEngine) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    for step in range(1, 9):
        server.counters["q1"] = {"calls": 10 + step * 10, "time": 1000 + step * 1000}
        run(repository, server, tgt, step, early_s=5 * step, plans_per_query_per_hour="2")
    assert len(server.plan_requests) == 4  # 2 an hour over 2 hours, jitter or not


STEADY = {
    "calls": 100.0,
    "time": 100 * 1000.0,
    "squares": 100 * (1000.0**2 + 50.0**2),
    "rows": 500.0,
    "reads": 400.0,
}


def _steady_then(
    server: FakeEngine, repository: Repository, tgt: Target, last: dict[str, float], steady: dict[str, float]
) -> None:
    """A baseline reading, two ``steady`` intervals of q1 (budget 1 an hour: one capture), then
    one interval of ``last``."""
    counters = dict.fromkeys(STEADY, 0.0)
    for step in range(4):
        counters = {k: counters[k] + (last if step == 3 else steady)[k] for k in counters}
        server.counters["q1"] = dict(counters)
        run(repository, server, tgt, step, plans_per_query_per_hour="1")


@pytest.mark.parametrize(
    ("interval", "why"),
    [
        # time 1.4x of a steady query (executions spread 50 us around 1 ms at capture): beyond its noise
        ({"calls": 100, "time": 100 * 1400.0, "squares": 100 * 1400.0**2, "rows": 500, "reads": 400}, "time"),
        # time unchanged, rows per execution 5 -> 2,000: the data changed under the plan
        (
            {"calls": 100, "time": 100 * 1000.0, "squares": 100 * 1000.0**2, "rows": 200_000, "reads": 400},
            "rows",
        ),
        # time unchanged, pages per execution 4 -> 900: another access path
        (
            {"calls": 100, "time": 100 * 1000.0, "squares": 100 * 1000.0**2, "rows": 500, "reads": 90_000},
            "work",
        ),
    ],
)
def test_a_marked_statistics_shift_forces_a_capture_past_the_budget(
    repository: Repository, server: FakeEngine, interval: dict[str, float], why: str
) -> None:
    tgt = target(repository)
    _steady_then(server, repository, tgt, interval, STEADY)
    assert len(server.plan_requests) == 2, why  # the budget's one, then the forced one


@pytest.mark.parametrize(
    "interval",
    [
        # 1.4x, but executions at capture spread +-1 ms around 1 ms: within its noise
        {"calls": 100, "time": 100 * 1400.0, "squares": 100 * 1400.0**2, "rows": 500, "reads": 400},
        # rows per execution doubled, but only 5 -> 10: under the floor
        {"calls": 100, "time": 100 * 1000.0, "squares": 100 * 1000.0**2, "rows": 1000, "reads": 400},
    ],
)
def test_noise_and_small_moves_do_not_force_a_capture(
    repository: Repository, server: FakeEngine, interval: dict[str, float]
) -> None:
    tgt = target(repository)
    noisy = interval["rows"] == 500  # the first case: executions spread 1 ms around their mean of 1 ms
    steady = {**STEADY, "squares": 100 * 2 * 1000.0**2} if noisy else STEADY
    _steady_then(server, repository, tgt, interval, steady)
    assert len(server.plan_requests) == 1


def test_a_cost_shift_recaptures_at_once(repository: Repository, server: FakeEngine) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters["q1"] = {"calls": 20, "time": 2000}
    run(repository, server, tgt, 1, plans_per_query_per_hour="1")
    server.counters["q1"] = {"calls": 30, "time": 3000}
    run(repository, server, tgt, 2, plans_per_query_per_hour="1")  # budget spent, cost steady
    server.plan_bodies["q1"] = PG_PLAN_SEQ
    server.counters["q1"] = {"calls": 40, "time": 3000 + 10 * 500}  # 5x slower per execution
    run(repository, server, tgt, 3, plans_per_query_per_hour="1")
    assert len(server.plan_requests) == 2
    with repository.engine.connect() as connection:
        shapes = connection.execute(select(plan.c.plan_key, plan.c.shape_hash)).all()
    assert len({s.shape_hash for s in shapes}) == 2
    latest = stats(repository)[-1]
    with repository.engine.connect() as connection:
        key = connection.execute(select(plan.c.plan_key).where(plan.c.id == latest.plan_id)).scalar_one()
    assert key.endswith(dict(shapes)[key]) and dict(shapes)[key] is not None  # stats follow the new plan


def test_unexplainable_statements_back_off(repository: Repository, server: FakeEngine) -> None:
    tgt = target(repository)
    server.counters = {"bad": {"calls": 10, "time": 1000}}
    server.unexplainable = {"bad"}
    run(repository, server, tgt, 0)
    attempted_at = []
    for step in range(1, 10):  # runs every 15 minutes; retries wait 15, 30, then 60 minutes
        server.counters["bad"] = {"calls": 10 + 10 * step, "time": 1000 + 1000 * step}
        before = len(server.plan_requests)
        run(repository, server, tgt, step)
        if len(server.plan_requests) > before:
            attempted_at.append(step)
    assert attempted_at == [1, 2, 4, 8]
    captures = CollectionStore(repository).plan_captures(tgt.id)[("shop", "bad")]
    assert captures.failures == 4 and "syntax error" in (captures.last_error or "")


def test_index_definitions_of_planned_tables_are_snapshotted(
    repository: Repository, server: FakeEngine
) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters["q1"] = {"calls": 20, "time": 2000}
    run(repository, server, tgt, 1)
    with repository.engine.connect() as connection:
        rows = connection.execute(select(index_snapshot.c.table_name, index_snapshot.c.index_name)).all()
    assert rows == [("public.orders", "orders_pkey")]


def test_past_interval_of_a_cumulative_engine_is_not_backfillable(
    repository: Repository, server: FakeEngine
) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    start = T0
    summary = collect.collect_target(
        repository,
        tgt,
        start,
        start + STEP,
        settings=load_settings({}),
        connect=lambda db: server,
        now=start + timedelta(days=3),
    )
    assert summary.status == "not_backfillable"
    assert "not backfillable" in (summary.aspects["runtime_stats"]["hint"] or "")
    assert stats(repository) == [] and CollectionStore(repository).counter_readings(tgt.id)[0] == {}


def test_unreachable_target_is_recorded_and_raised_without_secrets(
    repository: Repository, server: FakeEngine
) -> None:
    tgt = target(repository)
    server.down = True
    with pytest.raises(EngineError, match="connection refused"):
        run(repository, server, tgt, 0)
    runs = CollectionStore(repository).collection_runs(target_id=tgt.id)
    assert list(runs["status"]) == ["error"]
    assert "hunter2secret" not in runs["error"][0]


def test_a_run_that_fails_after_the_capability_check_claims_no_aspect(
    repository: Repository, server: FakeEngine
) -> None:
    """The capabilities said ok, then the server went away: nothing was stored, so the run and every
    aspect say error, and the interval does not count as collected."""
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.killed_during_stats = True
    with pytest.raises(EngineError):
        run(repository, server, tgt, 1)
    runs = CollectionStore(repository).collection_runs(target_id=tgt.id)
    failed = runs[runs["interval_start"] == T0 + STEP].iloc[0]
    assert failed["status"] == "error"
    claimed = {name: a["status"] for name, a in failed["aspects"].items()}
    assert claimed["runtime_stats"] == "error" and "ok" not in claimed.values(), claimed
    assert CollectionStore(repository).last_collected_until(tgt.id) == T0 + STEP  # interval 0's end


def test_a_failed_write_leaves_nothing_behind(
    repository: Repository, server: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = CollectionStore(repository)
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters["q1"] = {"calls": 20, "time": 2000}
    original = CollectionStore._record_counters

    def explode(*args: Any) -> None:
        original(*args)
        raise RuntimeError("disk full")

    # collect_target makes its own CollectionStore: break the write in the class
    monkeypatch.setattr(CollectionStore, "_record_counters", staticmethod(explode))
    with pytest.raises(RuntimeError):
        run(repository, server, tgt, 1)
    monkeypatch.undo()
    assert stats(repository) == []
    assert collection.counter_readings(tgt.id)[0][("shop", "q1")].executions == 10
    assert list(collection.collection_runs(target_id=tgt.id)["status"]) == ["ok"]


def test_summary_is_small_and_serialisable(repository: Repository, server: FakeEngine) -> None:
    import json

    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    summary = run(repository, server, tgt, 0).as_dict()
    assert json.loads(json.dumps(summary))["aspects"]["forcing_state"]["status"] == "not_applicable"
    assert summary["statements_sent"] >= 2


def test_past_the_deadline_statistics_are_kept_and_plans_skipped(
    repository: Repository, server: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters["q1"] = {"calls": 20, "time": 2000}
    monkeypatch.setattr(collect._Run, "past_deadline", lambda self: True)
    summary = run(repository, server, tgt, 1)
    assert summary.rows == 1 and server.plan_requests == []
    assert "deadline" in summary.aspects["plans"]["detail"]


# -- the run's status is the worst of its aspects ---------------------------------------------------


def test_plan_capture_killed_midway_stores_statistics_and_status_error(
    repository: Repository, server: FakeEngine
) -> None:
    """The case of issue 17: a failed aspect (with its hint) was stored as status=ok."""
    collection = CollectionStore(repository)
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters["q1"] = {"calls": 20, "time": 2000}
    server.killed_during_plans = True
    summary = run(repository, server, tgt, 1, plans_per_query_per_hour="60")
    assert server.plan_requests[-1] == ["q1"]
    assert summary.aspects["plans"]["status"] == "error" and summary.aspects["plans"]["hint"]
    assert summary.status == "error" and summary.rows == 1
    stored = collection.collection_runs(target_id=tgt.id).set_index("interval_start")["status"]
    assert stored[T0 + STEP] == "error"
    # its statistics were stored, so the next collection starts where it ended
    assert collection.last_collected_until(tgt.id) == T0 + 2 * STEP


@pytest.mark.parametrize(
    ("aspect", "state", "expected"),
    [
        (Aspect.PLANS, AspectState.PERMISSION_DENIED, "degraded"),
        (Aspect.PLANS, AspectState.UNAVAILABLE, "degraded"),
        (Aspect.OBJECT_DEFINITIONS, AspectState.ERROR, "error"),
        (Aspect.FORCING_STATE, AspectState.NOT_APPLICABLE, "ok"),
        (Aspect.RUNTIME_STATS, AspectState.UNAVAILABLE, "error"),
        (Aspect.RUNTIME_STATS, AspectState.PERMISSION_DENIED, "error"),
    ],
)
def test_a_stored_run_is_as_bad_as_its_worst_aspect(
    repository: Repository, server: FakeEngine, aspect: Aspect, state: AspectState, expected: str
) -> None:
    collection = CollectionStore(repository)
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    server.aspects = {aspect: AspectStatus(state, hint=f"fix {aspect.value}")}
    summary = run(repository, server, tgt, 0)
    assert summary.status == expected
    assert list(collection.collection_runs(target_id=tgt.id)["status"]) == [expected]
    collected = aspect is not Aspect.RUNTIME_STATS
    assert (collection.last_collected_until(tgt.id) is not None) is collected


def test_plans_are_stamped_with_the_collection_time_detection_reads(
    repository: Repository, server: FakeEngine
) -> None:
    """plan.first_seen / last_seen say when the collector captured a plan (detection's same_plan rule)."""
    tgt = target(repository)
    server.counters = {"q1": {"calls": 10, "time": 1000}}
    run(repository, server, tgt, 0)
    server.counters["q1"] = {"calls": 20, "time": 2000}
    run(repository, server, tgt, 1)
    with repository.engine.connect() as connection:
        seen = connection.execute(
            select(plan.c.first_seen, plan.c.last_seen).where(plan.c.body.is_not(None))
        ).one()
    captured_at = T0 + 2 * STEP + timedelta(seconds=30)  # the run's now
    assert (seen.first_seen, seen.last_seen) == (captured_at, captured_at)
