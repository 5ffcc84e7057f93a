"""planmon_analyze's task callables without Airflow: the window each kind of run analyses, the
batches of targets, the merged summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from planmon.airflow.analyze_tasks import (
    analysis_window,
    collected_event_extra,
    collected_intervals,
    merge_summaries,
    plan_batches,
)
from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def test_a_scheduled_or_backfilled_run_analyses_its_interval_exactly() -> None:
    assert analysis_window(NOON - timedelta(hours=1), NOON) == (NOON - timedelta(hours=1), NOON)


def test_an_asset_triggered_run_analyses_the_collected_intervals_widened_to_an_hour() -> None:
    # Airflow 3.3 gives an asset-triggered run no data interval
    one = [(NOON - QUARTER, NOON)]
    assert analysis_window(None, None, collected=one) == (NOON - timedelta(hours=1), NOON)
    # several collections queued behind one analysis run: all of them, however long they span
    many = [
        (NOON + QUARTER, NOON + 2 * QUARTER),
        (NOON - timedelta(hours=2), NOON - timedelta(hours=2) + QUARTER),
    ]
    assert analysis_window(None, None, collected=many) == (NOON - timedelta(hours=2), NOON + 2 * QUARTER)


def test_a_run_with_no_interval_to_go_by_analyses_the_last_complete_hour() -> None:
    run_after = NOON + timedelta(minutes=7, seconds=3)
    assert analysis_window(None, None, run_after=run_after) == (NOON - timedelta(hours=1), NOON)
    # an interval of seconds (an older Airflow's asset-triggered run) says the same
    assert analysis_window(run_after - timedelta(seconds=2), run_after) == (NOON - timedelta(hours=1), NOON)
    with pytest.raises(ValueError, match="no window"):
        analysis_window(None, None)


@dataclass
class _Event:
    extra: dict[str, Any] = field(default_factory=dict)


def test_collected_intervals_come_from_the_events_that_name_one() -> None:
    extra = collected_event_extra(NOON - QUARTER, NOON)
    events = {"planmon_runtime_stats": [_Event(extra), _Event({})]}  # the second was created by hand
    assert collected_intervals(events) == [(NOON - QUARTER, NOON)]
    assert collected_intervals(None) == [] and collected_event_extra(None, NOON) == {}


def test_the_fleet_is_split_into_batches_that_carry_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("PLANMON_ANALYZE_BATCH_TARGETS", "2")
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        for name in ("a", "b", "c"):
            repository.add_target(TargetSpec(name=name, engine="postgres", conn_id=name))
        repository.add_target(TargetSpec(name="off", engine="postgres", conn_id="off", enabled=False))
    batches = plan_batches(None, None, run_after=NOON)
    assert [batch["targets"] for batch in batches] == [["a", "b"], ["c"]]
    assert {(batch["window_start"], batch["window_end"]) for batch in batches} == {
        ((NOON - timedelta(hours=1)).isoformat(), NOON.isoformat())
    }


def test_batch_summaries_merge_into_one_run_summary() -> None:
    window = {"window_start": "2026-12-03T11:00:00", "window_end": "2026-12-03T12:00:00"}
    parts = [
        {**window, "targets": 2, "detected": 1, "regression_ids": [7], "resolved": 0,
         "by_kind": {"plan_change": 1}, "by_severity": {"high": 1}},
        {**window, "targets": 1, "detected": 2, "regression_ids": [8, 9], "resolved": 1,
         "by_kind": {"plan_change": 1, "same_plan": 1}, "by_severity": {"low": 2}},
    ]  # fmt: skip
    merged = merge_summaries(parts)
    assert merged == {
        **window, "targets": 3, "detected": 3, "regression_ids": [7, 8, 9], "resolved": 1,
        "by_kind": {"plan_change": 2, "same_plan": 1}, "by_severity": {"high": 1, "low": 2},
    }  # fmt: skip
    assert merge_summaries([]) == {} and merge_summaries(None) == {}
