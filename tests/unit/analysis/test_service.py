"""Analysis on a repository: regressions stored once per (target, query, kind), idempotent windows,
backfills in any order, auto-resolve after the query is back at baseline."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from planmon.analysis.service import analyze_repository
from planmon.config import load_settings
from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.regressions import RegressionStore
from tests.harness.seeds import HOUR, SLOW, T0, seed, seed_late_plan_change

SETTINGS = load_settings({"PLANMON_RESOLVE_AFTER_INTERVALS": "3"})


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    repo = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    repo.init_schema()
    return repo


def analyze(repository: Repository, hour: int) -> Any:
    start = SLOW + hour * HOUR
    return analyze_repository(repository, window_start=start, window_end=start + HOUR, settings=SETTINGS)


def test_a_plan_change_opens_one_regression_that_later_hours_update(repository: Repository) -> None:
    seed(repository, slow_hours=3)
    first, second = analyze(repository, 0), analyze(repository, 1)
    assert first.by_kind == {"plan_change": 1} and first.regression_ids == second.regression_ids
    regressions = RegressionStore(repository).regressions()
    assert len(regressions) == 1
    row = regressions.iloc[0]
    assert (row.status, row.kind, row.baseline_plan_key, row.current_plan_key) == (
        "open",
        "plan_change",
        "p1",
        "p2",
    )
    assert row.ratio == pytest.approx(4.0)
    assert row.impact == pytest.approx(30_000 * 600 / 1e6)  # 18 extra CPU-seconds in the hour
    assert row.last_detected == SLOW + 2 * HOUR and row.first_detected == SLOW + HOUR


def test_reanalysing_a_window_and_backfilling_backwards_change_nothing(repository: Repository) -> None:
    seed(repository, slow_hours=3)
    for hour in (2, 1, 0, 2, 0):  # a backfill run backwards, then repeats
        analyze(repository, hour)
    reference = RegressionStore(repository).regressions().drop(columns=["id"])
    analyze(repository, 1)
    again = RegressionStore(repository).regressions().drop(columns=["id"])
    assert len(again) == 1
    assert again.equals(reference)
    assert again.iloc[0].first_detected == SLOW + HOUR and again.iloc[0].last_detected == SLOW + 3 * HOUR


def test_it_resolves_after_the_query_is_back_at_baseline(repository: Repository) -> None:
    seed(repository, slow_hours=2, recovered_hours=4)
    analyze(repository, 1)
    assert analyze(repository, 3).resolved == 0  # one good hour is not enough
    assert analyze(repository, 5).resolved == 1  # three good hours in a row
    regressions = RegressionStore(repository).regressions()
    assert list(regressions["status"]) == ["resolved"]
    assert regressions.iloc[0].open_key == str(regressions.iloc[0].id)
    actions = list(repository.audit_entries()["action"])
    assert "regression.open" in actions and "regression.resolve" in actions


def test_backfilling_windows_before_the_regression_leaves_it_open(repository: Repository) -> None:
    seed(repository, slow_hours=2)
    found = analyze(repository, 1)  # the live run: open since the slow plan appeared
    states = []
    for _ in range(2):  # a backfill from before the slowdown (at baseline back then), twice
        for hour in (-4, -3, -2, -1, 0, 1):
            assert analyze(repository, hour).resolved == 0, hour
        states.append(RegressionStore(repository).regressions())
    first, second = states
    assert list(first["status"]) == ["open"] and list(first["id"]) == found.regression_ids
    assert first.iloc[0].first_detected == SLOW + HOUR  # the backfill found its start
    assert second.equals(first)


def test_a_new_regression_after_resolution_opens_a_new_row(repository: Repository) -> None:
    seed(repository, slow_hours=2, recovered_hours=4)
    analyze(repository, 1)
    analyze(repository, 5)
    assert analyze(repository, 0).detected == 1
    statuses = sorted(RegressionStore(repository).regressions()["status"])
    assert statuses == ["open", "resolved"]


def test_a_rising_force_failure_count_is_reported_in_the_window_that_saw_it(repository: Repository) -> None:
    from planmon.store.repository import utcnow

    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="forced", engine="sqlserver", conn_id="c")).id
    collection.upsert_queries(target_id, [QueryRecord("77")])
    forced = PlanRecord("9", "77", shape_hash="f", is_forced=True, forcing_type="MANUAL")
    collection.upsert_plans(target_id, [replace(forced, force_failure_count=23)])  # a level: never alerts
    now = utcnow()
    quiet = analyze_repository(repository, window_start=now - HOUR, window_end=now + HOUR, settings=SETTINGS)
    assert quiet.detected == 0
    collection.upsert_plans(target_id, [replace(forced, force_failure_count=25)])  # the count rose
    moment = utcnow()
    found = analyze_repository(
        repository, window_start=moment - HOUR, window_end=moment + HOUR, settings=SETTINGS
    )
    assert found.by_kind == {"forced_plan_failure": 1}
    earlier = analyze_repository(
        repository, window_start=moment - 3 * HOUR, window_end=moment - 2 * HOUR, settings=SETTINGS
    )
    assert earlier.detected == 0
    regression = RegressionStore(repository).regressions().iloc[0]
    assert (regression.baseline_mean, regression.current_mean) == (23, 25)


def test_plan_identity_comes_from_captures_where_statistics_name_no_plan(repository: Repository) -> None:
    """PostgreSQL: a plan is seen in a window only when captured in it; the placeholder is unknown.
    SQL Server: Query Store names the plan of every statistic, so its plans are always known."""
    from datetime import timedelta

    from planmon.analysis.service import _with_plan_identity
    from planmon.store.repository import utcnow

    collection = CollectionStore(repository)
    ids = {}
    for engine in ("postgres", "sqlserver"):
        target_id = repository.add_target(TargetSpec(name=engine, engine=engine, conn_id=engine)).id
        collection.upsert_queries(target_id, [QueryRecord("q1", query_text="SELECT 1")])
        collection.upsert_plans(
            target_id,
            [
                PlanRecord("q1:captured", "q1", shape_hash="aaa", body_format="pg_json", body=b"[]"),
                PlanRecord("q1:unknown", "q1"),  # statistics kept before any plan was captured
            ],
        )
        ids[engine] = target_id
    now = utcnow()
    frame = repository.plans_frame(list(ids.values()))

    def identity(start: Any, end: Any) -> dict[tuple[str, str], tuple[bool, bool]]:
        marked = _with_plan_identity(frame, start, end)
        return {
            (r.engine, r.plan_key): (bool(r.identity_known), bool(r.captured_in_window))
            for r in marked.itertuples()
        }

    assert identity(now - timedelta(hours=1), now) == {
        ("postgres", "q1:captured"): (True, True),
        ("postgres", "q1:unknown"): (False, False),
        ("sqlserver", "q1:captured"): (True, True),
        ("sqlserver", "q1:unknown"): (True, True),
    }
    a_day_ago = now - timedelta(days=1)  # captured after that window: not seen inside it
    assert identity(a_day_ago - timedelta(hours=1), a_day_ago)[("postgres", "q1:captured")] == (True, False)


def test_a_backfilled_day_finds_a_regression_that_began_in_its_last_three_hours(
    repository: Repository,
) -> None:
    """planmon_analyze's task calls analyze_repository: over a 24-hour window (a backfill, an offline
    day) a plan change 5x slower in the last 3 hours is found, compared after its onset."""
    day_start = T0 + timedelta(days=7)
    onset = seed_late_plan_change(repository, day_start=day_start)
    summary = analyze_repository(
        repository, window_start=day_start, window_end=day_start + 24 * HOUR, settings=SETTINGS
    )
    assert summary.by_kind == {"plan_change": 1}
    row = RegressionStore(repository).regressions().iloc[0]
    assert (row.kind, row.baseline_plan_key, row.current_plan_key) == ("plan_change", "p1", "p2")
    assert row.ratio == pytest.approx(5.0, rel=0.1)  # the part after the onset, not the diluted day
    assert row.severity != "info"  # ~25 extra CPU-seconds per hour in those hours: over the floor
    assert row.evidence["onset"] == onset.isoformat() and row.evidence["onset_moved"] is True
    # the day-aware baseline of the repository's bucket sums: this flat week has no daily cycle
    assert row.evidence["baseline"]["factor"] == pytest.approx(1.0, abs=0.05)


def test_info_regressions_are_stored_and_listed_but_never_remediation_candidates(
    repository: Repository,
) -> None:
    from planmon.store.remediations import RemediationStore

    target_id, plan_ids = seed(repository, slow_hours=3)
    analyze(repository, 0)
    material = RegressionStore(repository).regressions().iloc[0]
    query_id = int(material.query_id)
    info = {
        "target_id": target_id, "query_id": query_id, "kind": "same_plan", "severity": "info",
        "metric": "cpu_us", "baseline_plan_id": plan_ids["p1"], "current_plan_id": plan_ids["p1"],
        "baseline_mean": 10_000.0, "current_mean": 30_000.0, "ratio": 3.0, "impact": 2.0,
        "p_value": 1e-9, "evidence": {"rule": "under the floor (info)"}, "diff": None,
    }  # fmt: skip
    [info_id] = RegressionStore(repository).record_regressions([info], detected_at=SLOW + HOUR)
    listed = RegressionStore(repository).regressions()
    assert set(listed["severity"]) == {"low", "info"}
    assert RemediationStore(repository).remediation_candidates([int(material.id), info_id]) == [
        int(material.id)
    ]


def test_an_hourly_analysis_compares_each_hour_with_the_same_hours_of_its_baseline(
    repository: Repository,
) -> None:
    """planmon_analyze's hourly window against the repository's day-aware baseline: a query that is
    3x dearer from 09:00 to 12:00 every day is normal at 10:00, and a query whose night is cheap is
    found when its night triples although it is still under its day's mean."""
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="sales", engine="sqlserver", conn_id="c")).id
    queries = collection.upsert_queries(target_id, [QueryRecord("busy"), QueryRecord("night")])
    plans = collection.upsert_plans(target_id, [
        PlanRecord("b1", "busy", shape_hash="a"), PlanRecord("n1", "night", shape_hash="b"),
        PlanRecord("n2", "night", shape_hash="c"),
    ])  # fmt: skip
    day_seven = T0 + timedelta(days=7)
    changed = day_seven + 2 * HOUR  # the night query's new plan, 3x its night cost, from 02:00
    rows = []
    for hour in range(8 * 24):
        start = T0 + hour * HOUR
        of_day = start.hour
        noise = 1.0 + 0.04 * ((hour * 7) % 5 - 2)
        busy = 30_000.0 if 9 <= of_day < 12 else 10_000.0
        night = (3_000.0 if of_day < 6 else 10_000.0) * (3.0 if start >= changed else 1.0)
        for key, plan, cpu in (("busy", "b1", busy), ("night", "n2" if start >= changed else "n1", night)):
            rows.append({
                "target_id": target_id, "plan_id": plans[plan], "query_id": queries[("", key)],
                "interval_start": start, "interval_end": start + HOUR, "executions": 3000,
                "cpu_us_mean": cpu * noise, "cpu_us_stdev": cpu * 0.2, "duration_us_mean": cpu * 1.1,
            })  # fmt: skip
    collection.upsert_runtime_stats(rows)
    night_hour = day_seven + 2 * HOUR
    analyze_repository(repository, window_start=night_hour, window_end=night_hour + HOUR, settings=SETTINGS)
    [row] = RegressionStore(repository).regressions().itertuples()
    assert row.query_id == queries[("", "night")]
    assert (row.kind, row.baseline_plan_key, row.current_plan_key) == ("plan_change", "n1", "n2")
    assert row.ratio == pytest.approx(3.0, rel=0.15)  # against its nights (this one 8% under), not x1.0
    assert row.evidence["baseline"]["kind"] != "overall"
    assert row.evidence["baseline"]["factor"] == pytest.approx(0.3 / 0.825, rel=0.1)  # night / overall
    busy_hour = day_seven + 10 * HOUR
    analyze_repository(repository, window_start=busy_hour, window_end=busy_hour + HOUR, settings=SETTINGS)
    found = RegressionStore(repository).regressions()
    assert list(found["query_id"]) == [queries[("", "night")]]  # the busy hour is the busy query's normal


def test_a_small_plan_change_stays_open_while_the_new_plan_still_runs(repository: Repository) -> None:
    """A 1.3x plan change is detected at PLANMON_PLAN_CHANGE_RATIO; quiet hours (too few executions to
    detect anything) still at 1.3x are not back at baseline, as they would be under the 1.5 ratio."""
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="sales", engine="sqlserver", conn_id="c")).id
    query_id = collection.upsert_queries(target_id, [QueryRecord("42", query_text="SELECT 1")])[("", "42")]
    plan_ids = collection.upsert_plans(
        target_id, [PlanRecord("p1", "42", shape_hash="a"), PlanRecord("p2", "42", shape_hash="b")]
    )

    def hours(first: int, count: int, plan: str, cpu: float, executions: int) -> list[dict[str, Any]]:
        return [
            {"target_id": target_id, "plan_id": plan_ids[plan], "query_id": query_id,
             "interval_start": SLOW + h * HOUR, "interval_end": SLOW + (h + 1) * HOUR,
             "executions": executions, "cpu_us_mean": cpu, "cpu_us_stdev": cpu * 0.05,
             "duration_us_mean": cpu * 1.1}
            for h in range(first, first + count)
        ]  # fmt: skip

    collection.upsert_runtime_stats(
        hours(-7 * 24, 7 * 24, "p1", 10_000.0, 6000)
        + hours(0, 1, "p2", 13_000.0, 6000)  # 1.3x, 18 extra CPU-seconds in the hour
        + hours(1, 4, "p2", 13_000.0, 10)  # still 1.3x, but too quiet to detect
        + hours(5, 3, "p1", 10_000.0, 10)  # the good plan is back
    )
    first = analyze(repository, 0)
    assert first.by_kind == {"plan_change": 1}
    for hour in range(1, 5):
        assert analyze(repository, hour).resolved == 0, hour
    assert analyze(repository, 7).resolved == 1
