"""The benchmarks' labelled data generator and the reference rules planmon is compared with."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from bench._synthetic import SCENARIO_NAMES, SCENARIOS, SyntheticData, generate
from bench.detection_quality import apc_rule, query_store_check, score
from planmon.analysis.frames import PLAN_COLUMNS, RUNTIME_STATS_COLUMNS

BASELINE_START = datetime(2026, 1, 1)
WINDOW_START = BASELINE_START + timedelta(days=7)
WINDOW_END = WINDOW_START + timedelta(hours=24)
WINDOWS = {"baseline_start": BASELINE_START, "window_start": WINDOW_START, "window_end": WINDOW_END}


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(60, seed=3)


def test_same_seed_same_data_other_seed_other_data(data: SyntheticData) -> None:
    again = generate(60, seed=3)
    pd.testing.assert_frame_equal(data.stats, again.stats)
    pd.testing.assert_frame_equal(data.plans, again.plans)
    assert data.labels == again.labels and data.scenarios == again.scenarios
    other = generate(60, seed=4)
    assert len(other.stats) != len(data.stats) or not other.stats.equals(data.stats)


def test_frames_have_exactly_the_contract_columns_and_dtypes(data: SyntheticData) -> None:
    assert tuple(data.stats.columns) == RUNTIME_STATS_COLUMNS
    assert tuple(data.plans.columns) == PLAN_COLUMNS
    floats = {"cpu_us_mean", "cpu_us_stdev", "duration_us_mean", "duration_us_stdev", "logical_reads_mean",
              "rows_examined_mean"}  # fmt: skip
    for name, dtype in data.stats.dtypes.items():
        if name in floats:
            assert dtype == "float64", name
        elif name in ("interval_start", "interval_end"):
            assert dtype == "datetime64[us]", name
        else:
            assert dtype == "int64", name
    assert dict(data.plans.dtypes.astype(str)) == {
        "plan_id": "int64",
        "query_id": "int64",
        "target_id": "int64",
        "shape_hash": "str",
        "is_forced": "bool",
        "forcing_type": "str",
        "force_failure_count": "int64",
    }


def test_rows_are_hourly_query_store_rows_inside_the_windows(data: SyntheticData) -> None:
    stats = data.stats
    assert (data.baseline_start, data.window_start, data.window_end) == (
        BASELINE_START,
        WINDOW_START,
        WINDOW_END,
    )
    assert stats["interval_start"].min() >= pd.Timestamp(BASELINE_START)
    assert stats["interval_start"].max() < pd.Timestamp(WINDOW_END)
    assert (stats["interval_end"] - stats["interval_start"] == pd.Timedelta(hours=1)).all()
    assert (stats["executions"] > 0).all()
    assert set(stats["execution_type"]) == {0, 3, 4}
    failed = stats["execution_type"].isin((3, 4))
    assert (stats.loc[failed, "errors"] == stats.loc[failed, "executions"]).all()
    assert (stats.loc[~failed, "errors"] == 0).all()
    assert not stats.duplicated(["plan_id", "interval_start", "execution_type"]).any()
    assert data.plans["plan_id"].is_unique
    assert set(stats["plan_id"]) == set(data.plans["plan_id"])
    owner = data.plans.set_index("plan_id")["query_id"]
    assert (stats["plan_id"].map(owner) == stats["query_id"]).all()


def test_labels_cover_every_scenario_with_its_kind(data: SyntheticData) -> None:
    assert set(data.scenarios.values()) == set(SCENARIO_NAMES)
    assert data.labels.keys() == data.scenarios.keys()
    assert len(data.labels) == 60
    for key, scenario in data.scenarios.items():
        assert data.labels[key] == SCENARIOS[scenario][0]
    kinds = set(data.labels.values())
    assert {"plan_change", "same_plan", "error_prone", None} <= kinds


def test_scenarios_look_like_what_they_claim(data: SyntheticData) -> None:
    shapes = data.plans.groupby("query_id")["shape_hash"].nunique()
    failed = data.stats[data.stats["execution_type"].isin((3, 4))]
    window_errors = (
        failed[failed["interval_start"] >= pd.Timestamp(WINDOW_START)].groupby("query_id")["errors"].sum()
    )
    for (_target, query), scenario in data.scenarios.items():
        if scenario.startswith("plan_change") or scenario in ("faster_plan", "microsecond_change"):
            assert shapes[query] == 2, scenario
        if scenario == "same_plan_2x":
            assert shapes[query] == 1
        if scenario == "error_rise":
            assert window_errors.get(query, 0) >= 10
        plans = data.plans[data.plans["query_id"] == query]
        forced = scenario == "forced_old_failures"
        assert plans["is_forced"].any() == forced
        assert (plans["force_failure_count"] > 0).any() == forced


def rows(*entries: tuple[int, datetime, int, int, float, float]) -> pd.DataFrame:
    """Runtime stats from (plan_id, interval_start, execution_type, executions, cpu_us, duration_us)."""
    frame = pd.DataFrame(
        [
            {
                "target_id": 1,
                "query_id": 10,
                "plan_id": plan_id,
                "interval_start": start,
                "interval_end": start + timedelta(hours=1),
                "execution_type": execution_type,
                "executions": executions,
                "errors": executions if execution_type else 0,
                "cpu_us_mean": cpu,
                "cpu_us_stdev": 0.0,
                "duration_us_mean": duration,
                "duration_us_stdev": 0.0,
                "logical_reads_mean": 10.0,
                "rows_examined_mean": float("nan"),
            }
            for plan_id, start, execution_type, executions, cpu, duration in entries
        ]
    )
    return frame.loc[:, list(RUNTIME_STATS_COLUMNS)]


BEFORE = WINDOW_START - timedelta(hours=5)
NOW = WINDOW_START + timedelta(hours=2)


@pytest.mark.parametrize(
    ("current", "fires"),
    [
        # (100 + 100) x (60,000 - 1,000) us = 11.8 s > 10 s
        ([(2, NOW, 0, 100, 60_000.0, 70_000.0)], True),
        # (100 + 100) x (40,000 - 1,000) us = 7.8 s: not enough gain
        ([(2, NOW, 0, 100, 40_000.0, 50_000.0)], False),
        # no gain, but the new plan aborted once where the recommended one never failed
        ([(2, NOW, 0, 100, 1_000.0, 1_200.0), (2, NOW, 3, 1, 2_000.0, 30_000.0)], True),
        # same plan, 100x slower: not a plan change, so automatic plan correction never sees it
        ([(1, NOW, 0, 100, 100_000.0, 120_000.0)], False),
    ],
)
def test_apc_rule(current: list[tuple[int, datetime, int, int, float, float]], fires: bool) -> None:
    stats = rows((1, BEFORE, 0, 100, 1_000.0, 1_200.0), *current)
    fired = apc_rule(stats, **WINDOWS)
    assert (len(fired) == 1) == fires
    if fires:
        assert (fired.loc[0, "plan_id_regressed"], fired.loc[0, "plan_id_recommended"]) == (2, 1)


def test_apc_recommends_the_cheapest_baseline_plan_and_counts_all_its_executions() -> None:
    stats = rows(
        (1, BEFORE, 0, 50, 1_000.0, 1_200.0),
        (1, BEFORE - timedelta(hours=1), 0, 50, 1_000.0, 1_200.0),
        (3, BEFORE, 0, 500, 30_000.0, 40_000.0),
        (2, NOW, 0, 100, 60_000.0, 70_000.0),
    )
    fired = apc_rule(stats, **WINDOWS)
    assert fired.loc[0, "plan_id_recommended"] == 1
    assert fired.loc[0, "estimated_gain"] == pytest.approx((100 + 100) * 59_000 / 1e6)


@pytest.mark.parametrize(
    ("current", "fires"),
    [
        ((2, NOW, 0, 10, 1_000.0, 2_500.0), True),  # 2.5x the other plan's duration
        ((2, NOW, 0, 10, 1_000.0, 1_900.0), False),  # 1.9x
        ((1, NOW, 0, 10, 1_000.0, 10_000.0), False),  # 10x, but the same plan: not its check
    ],
)
def test_query_store_check(current: tuple[int, datetime, int, int, float, float], fires: bool) -> None:
    stats = rows((1, BEFORE, 0, 100, 1_000.0, 1_000.0), current)
    fired = query_store_check(stats, **WINDOWS)
    assert (len(fired) == 1) == fires
    if fires:
        assert fired.loc[0, "ratio"] == pytest.approx(2.5)


def test_query_store_check_ignores_rows_outside_the_windows() -> None:
    stats = rows(
        (1, BASELINE_START - timedelta(hours=1), 0, 100, 1_000.0, 1_000.0), (2, NOW, 0, 10, 1.0, 9_000.0)
    )
    assert query_store_check(stats, **WINDOWS).empty


def test_score_counts_flags_and_kinds() -> None:
    labels = {(1, 1): "plan_change", (1, 2): "same_plan", (1, 3): None, (1, 4): None}
    result = score(labels, {(1, 1), (1, 2), (1, 3)}, {(1, 1): {"plan_change"}, (1, 2): {"plan_change"}})
    assert (result["tp"], result["fp"], result["fn"]) == (2, 1, 0)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == 1.0
    assert result["f1"] == pytest.approx(0.8)
    assert result["kind"] == 1


def test_positive_share_sets_the_share_of_regressing_queries() -> None:
    few = generate(400, seed=5, positive_share=0.05)
    share = sum(1 for kind in few.labels.values() if kind is not None) / len(few.labels)
    assert 0.02 <= share <= 0.09
    assert set(few.scenarios.values()) == set(SCENARIO_NAMES)
    with pytest.raises(ValueError, match="positive_share"):
        generate(10, positive_share=1.5)


def test_the_extended_mix_adds_its_scenarios_and_leaves_the_original_alone() -> None:
    from bench._synthetic import EXTENDED_NAMES, EXTENDED_START, INFO_TIER

    extended = generate(120, seed=3, extended=True, start=EXTENDED_START)
    assert set(extended.scenarios.values()) == set(EXTENDED_NAMES)
    assert extended.window_start.weekday() == 5  # a Saturday: weekend baselines matter
    assert set(EXTENDED_NAMES) >= INFO_TIER
    late = [k for k, name in extended.scenarios.items() if name == "late_plan_change_5x"]
    stats = extended.stats
    for target_id, query_id in late:  # the new plan runs only in the window's last 2-4 hours
        rows = stats[(stats["target_id"] == target_id) & (stats["query_id"] == query_id)]
        new_plan = rows[rows["plan_id"] == rows["plan_id"].max()]
        assert new_plan["interval_start"].min() >= extended.window_end - timedelta(hours=4)
    shapes = extended.plans.groupby("query_id")["shape_hash"].nunique()
    for (target_id, query_id), name in extended.scenarios.items():
        if name != "neutral_plan_change":
            continue
        rows = stats[
            (stats["target_id"] == target_id)
            & (stats["query_id"] == query_id)
            & (stats["execution_type"] == 0)
        ]
        assert shapes[query_id] == 2  # another shape ...
        mean = rows.groupby("plan_id")["cpu_us_mean"].mean()
        assert 0.7 <= mean.iloc[1] / mean.iloc[0] <= 1.4  # ... at about the same CPU
        new_plan = rows[rows["plan_id"] == rows["plan_id"].max()]
        assert new_plan["interval_start"].min() >= extended.window_start
    plain = generate(60, seed=3)
    pd.testing.assert_frame_equal(plain.stats, generate(60, seed=3, extended=False).stats)
