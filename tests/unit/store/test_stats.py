"""The repository sums the baseline where the data is, and rolls runtime stats up as they age,
without changing what the detector concludes (SQLite and live PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, text

from planmon.analysis.detect import baseline_buckets, baseline_moments, detect
from planmon.analysis.onset import hours_of_day
from planmon.config import Settings
from planmon.model import (
    BASELINE_BUCKET_COLUMNS,
    BASELINE_MOMENT_COLUMNS,
    PlanRecord,
    QueryRecord,
    TargetSpec,
)
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.partitions import partitions
from planmon.store.retention import RetentionStore
from planmon.store.schema import query, runtime_stats
from planmon.store.stats import StatsStore
from tests.harness.servers import PostgresServer
from tests.unit.store.conftest import fresh_postgres_url

HOUR = timedelta(hours=1)
T0 = datetime(2026, 11, 1)
WINDOW_START = T0 + timedelta(days=7)
WINDOW_END = WINDOW_START + timedelta(hours=6)
QUARTER = timedelta(minutes=15)
BUSY_HOURS = 4


def _seed(repository: Repository, *, queries: int = 6, seed: int = 7) -> tuple[list[int], pd.DataFrame]:
    """Two targets, ``queries`` queries each with two plans, 15-minute rows over the baseline and the
    window: SQL Server-like rows (CPU, aborted executions), PostgreSQL-like ones (duration only,
    some without reads), a regressed plan in the window, and a last query 2.5x dearer every day in
    the first BUSY_HOURS hours (which the window starts with). Returns target ids and the rows
    stored."""
    collection = CollectionStore(repository)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    target_ids = []
    for number, engine in enumerate(("sqlserver", "postgres")):
        target_id = repository.add_target(TargetSpec(name=f"t{number}", engine=engine, conn_id="c")).id
        target_ids.append(target_id)
        records = [QueryRecord(f"q{q}") for q in range(queries)]
        query_ids = collection.upsert_queries(target_id, records)
        plans = [PlanRecord(f"p{q}{v}", f"q{q}", shape_hash=f"s{q}{v}") for q in range(queries) for v in "ab"]
        plan_ids = collection.upsert_plans(target_id, plans)
        moment = T0
        while moment < WINDOW_END:
            current = moment >= WINDOW_START
            for q in range(queries):
                plan = f"p{q}b" if current and q % 2 == 0 else f"p{q}a"
                mean = 1000.0 * (q + 1) * (4.0 if plan.endswith("b") else 1.0) * rng.uniform(0.8, 1.2)
                if q == queries - 1 and moment.hour < BUSY_HOURS:  # a daily cycle: dearer after midnight
                    mean *= 2.5
                cpu = engine == "sqlserver"
                for execution_type in (0, 3) if cpu and q == 1 else (0,):
                    rows.append({
                        "target_id": target_id, "query_id": query_ids[("", f"q{q}")],
                        "plan_id": plan_ids[plan], "interval_start": moment, "interval_end": moment + QUARTER,
                        "execution_type": execution_type,
                        "executions": int(rng.integers(5, 400)) if execution_type == 0 else 3,
                        "errors": int(rng.integers(0, 3)),
                        "cpu_us_mean": mean if cpu else None, "cpu_us_stdev": mean * 0.1 if cpu else None,
                        "cpu_us_min": mean * 0.5 if cpu else None, "cpu_us_max": mean * 2 if cpu else None,
                        "duration_us_mean": mean * 1.3, "duration_us_stdev": mean * 0.2,
                        "logical_reads_mean": None if q == 3 else mean / 10, "rows_examined_mean": 5.0,
                    })  # fmt: skip
            moment += QUARTER
    collection.upsert_runtime_stats(rows)
    return target_ids, pd.DataFrame(rows)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["target_id", "query_id", "plan_id"]).reset_index(drop=True)


def _assert_moments_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    actual, expected = _sorted(actual), _sorted(expected)
    assert list(actual.columns) == list(BASELINE_MOMENT_COLUMNS)
    for name in BASELINE_MOMENT_COLUMNS:
        np.testing.assert_allclose(
            actual[name].to_numpy(float), expected[name].to_numpy(float), rtol=1e-9, err_msg=name
        )


def _detections(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["target_id", "query_id", "kind", "baseline_plan_id", "current_plan_id", "severity"]
    return frame[columns].sort_values(columns[:3]).reset_index(drop=True)


def test_the_repository_sums_the_baseline_exactly_as_the_detector(repository: Repository) -> None:
    target_ids, stored = _seed(repository)
    sums = StatsStore(repository).baseline_moments(T0, WINDOW_START, target_ids=target_ids)
    expected = baseline_moments(stored, baseline_start=T0, window_start=WINDOW_START)
    assert len(sums) == 12  # 2 targets x 6 queries: only their first plan ran in the baseline
    _assert_moments_equal(sums, expected)


def _assert_buckets_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    keys = ["target_id", "query_id", "plan_id", "bucket"]
    actual = actual.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    assert list(actual.columns) == list(BASELINE_BUCKET_COLUMNS)
    for name in BASELINE_BUCKET_COLUMNS:
        np.testing.assert_allclose(
            actual[name].to_numpy(float), expected[name].to_numpy(float), rtol=1e-9, err_msg=name
        )


@pytest.mark.parametrize("hours", [None, frozenset({0, 1, 23})], ids=["every-hour", "window-hours"])
def test_the_repository_sums_the_day_buckets_exactly_as_the_detector(
    repository: Repository, hours: frozenset[int] | None
) -> None:
    target_ids, stored = _seed(repository)
    sums = StatsStore(repository).baseline_buckets(T0, WINDOW_START, target_ids=target_ids, hours=hours)
    expected = baseline_buckets(stored, baseline_start=T0, window_start=WINDOW_START, hours=hours)
    # 12 plans that ran in the baseline, in 48 buckets (7 days: weekdays and a weekend), or 6 + 1
    assert len(sums) == 12 * (48 if hours is None else 2 * len(hours) + 1)
    _assert_buckets_equal(sums, expected)


def test_roll_up_to_hours_keeps_the_day_buckets(repository: Repository) -> None:
    target_ids, _stored = _seed(repository, queries=2)
    store = StatsStore(repository)
    before = store.baseline_buckets(T0, WINDOW_START, target_ids=target_ids)
    summary = store.roll_up(now=WINDOW_END, fine_days=2, hourly_days=30)
    assert summary.hour_buckets > 0 and summary.day_buckets == 0
    _assert_buckets_equal(store.baseline_buckets(T0, WINDOW_START, target_ids=target_ids), before)


def test_detection_from_sums_and_window_rows_equals_detection_from_every_row(repository: Repository) -> None:
    target_ids, stored = _seed(repository)
    store = StatsStore(repository)
    plans = repository.plans_frame(target_ids).assign(force_failure_count_before=None)
    windows = {"window_start": WINDOW_START, "window_end": WINDOW_END, "baseline_start": T0}
    settings = Settings(impact_floor_cpu_seconds_per_hour=0.0)
    everything = detect(stored, plans, settings=settings, **windows)
    window = store.window_rows(WINDOW_START, WINDOW_END, target_ids=target_ids)
    baseline = store.baseline_moments(T0, WINDOW_START, target_ids=target_ids)
    buckets = store.baseline_buckets(
        T0, WINDOW_START, target_ids=target_ids, hours=hours_of_day(WINDOW_START, WINDOW_END)
    )
    split = detect(window, plans, settings=settings, baseline=baseline, baseline_buckets=buckets, **windows)
    assert len(everything) >= 4  # the regressed plans of both targets are found
    pd.testing.assert_frame_equal(_detections(split), _detections(everything))

    def baselines(found: pd.DataFrame) -> list[tuple[str, float, float]]:
        evidence = found.sort_values(["target_id", "query_id", "kind"])["evidence"]
        return [
            (e["baseline"]["kind"], e["baseline"]["factor"], e["baseline"]["overall_mean"]) for e in evidence
        ]

    kinds, numbers = zip(*((kind, (factor, mean)) for kind, factor, mean in baselines(split)), strict=True)
    expected_kinds, expected = zip(
        *((kind, (factor, mean)) for kind, factor, mean in baselines(everything)), strict=True
    )
    assert kinds == expected_kinds
    np.testing.assert_allclose(np.array(numbers), np.array(expected), rtol=1e-6)
    # the daily cycle of the last query is its normal: found only against a baseline without hours
    cycling = set(stored.loc[stored["query_id"].isin(_last_queries(repository, target_ids)), "query_id"])
    assert not cycling & set(split["query_id"])
    overall = detect(window, plans, settings=settings, baseline=baseline, **windows)
    assert cycling <= set(overall["query_id"])


def _last_queries(repository: Repository, target_ids: list[int]) -> set[int]:
    """The query ids of each target's last query (the one with a daily cycle)."""
    statement = select(query.c.id).where(query.c.query_key == "q5", query.c.target_id.in_(target_ids))
    with repository.engine.connect() as connection:
        return {int(row[0]) for row in connection.execute(statement)}


def test_roll_up_keeps_the_baseline_sums_and_every_execution(repository: Repository) -> None:
    retention = RetentionStore(repository)
    target_ids, _stored = _seed(repository)
    store = StatsStore(repository)
    before = store.baseline_moments(T0, WINDOW_START, target_ids=target_ids)
    fine_before = retention.row_counts()["runtime_stats"]
    now = WINDOW_END
    summary = store.roll_up(now=now, fine_days=2, hourly_days=4)
    counts = retention.row_counts()
    assert summary.hour_buckets > 0 and summary.day_buckets > 0
    assert counts["runtime_stats_rollup"] > 0
    assert counts["runtime_stats"] < fine_before
    after = store.baseline_moments(T0, WINDOW_START, target_ids=target_ids)
    _assert_moments_equal(after, before)
    # rows younger than the fine horizon keep their grain; nothing older does
    rows = store.window_rows(T0, WINDOW_END, target_ids=target_ids)
    assert int(rows["executions"].sum()) == int(_stored["executions"].sum())
    fine_horizon = (now - timedelta(days=2)).replace(minute=0)
    fine = CollectionStore(repository).runtime_stats(T0, WINDOW_END, target_ids=target_ids)
    assert pd.to_datetime(fine["interval_start"]).min() >= pd.Timestamp(fine_horizon)


def test_roll_up_twice_changes_nothing_and_late_rows_join_their_bucket(repository: Repository) -> None:
    target_ids, stored = _seed(repository, queries=2)
    store = StatsStore(repository)
    store.roll_up(now=WINDOW_END, fine_days=2, hourly_days=4)
    first = store.window_rows(T0, WINDOW_END, target_ids=target_ids)
    again = store.roll_up(now=WINDOW_END, fine_days=2, hourly_days=4)
    assert again.hour_buckets == 0 and again.day_buckets == 0
    pd.testing.assert_frame_equal(store.window_rows(T0, WINDOW_END, target_ids=target_ids), first)
    # a row arriving late for a day already rolled is pooled into that day, not lost or doubled
    late = stored.iloc[[0]].copy()
    late["interval_start"] = late["interval_start"] + timedelta(minutes=7)
    CollectionStore(repository).upsert_runtime_stats(late.replace({np.nan: None}).to_dict("records"))
    rolled = store.roll_up(now=WINDOW_END, fine_days=2, hourly_days=4)
    assert rolled.hour_buckets == 1 and rolled.day_buckets == 1
    total = store.window_rows(T0, WINDOW_END, target_ids=target_ids)["executions"].sum()
    assert int(total) == int(stored["executions"].sum()) + int(late["executions"].sum())


def test_hourly_must_not_be_shorter_than_fine(repository: Repository) -> None:
    with pytest.raises(ValueError, match="hourly_days"):
        StatsStore(repository).roll_up(now=WINDOW_END, fine_days=3, hourly_days=2)


@pytest.mark.postgres
def test_a_whole_rolled_day_leaves_an_empty_partition_not_dead_rows(
    repository_postgres: PostgresServer,
) -> None:
    repository = Repository(create_repository_engine(fresh_postgres_url(repository_postgres)))
    try:
        repository.init_schema()
        _rolled_days_are_truncated(repository)
    finally:
        repository.close()


def _rolled_days_are_truncated(repository: Repository) -> None:
    target_ids, stored = _seed(repository, queries=2)
    store = StatsStore(repository)
    now = WINDOW_END
    summary = store.roll_up(now=now, fine_days=2, hourly_days=4)
    cutoff = (now - timedelta(days=2)).replace(minute=0)
    with repository.engine.connect() as connection:
        found = partitions(connection, runtime_stats) or []
        sizes = {
            p.lower: int(connection.execute(text(f"SELECT pg_relation_size('{p.name}')")).scalar_one())
            for p in found
            if p.lower is not None and p.upper is not None and p.upper <= cutoff
        }
    assert sizes and set(sizes.values()) == {0}, sizes  # emptied by TRUNCATE: no pages left
    assert summary.hour_rows_replaced == int((pd.to_datetime(stored["interval_start"]) < cutoff).sum())
    rows = store.window_rows(T0, WINDOW_END, target_ids=target_ids)
    assert int(rows["executions"].sum()) == int(stored["executions"].sum())
