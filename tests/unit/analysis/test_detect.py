"""Detection on constructed data with known answers: each kind fires, and each trap does not."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from planmon.analysis.detect import _plan_moments, _prepare, _shape_moments, detect
from planmon.config import load_settings

WINDOW_START = datetime(2026, 11, 20, 12, 0)
WINDOW_END = WINDOW_START + timedelta(hours=1)
BASELINE_START = WINDOW_START - timedelta(days=7)
SETTINGS = load_settings({})
STEP = timedelta(minutes=15)


def rows(
    query: int,
    plan: int,
    start: datetime,
    end: datetime,
    *,
    n: float,
    cpu: float,
    sd: float = 0.0,
    execution_type: int = 0,
    duration: float | None = None,
    reads: float | None = None,
    no_cpu: bool = False,
    target: int = 1,
) -> list[dict[str, Any]]:
    out, t = [], start
    while t < end:
        out.append(
            {
                "target_id": target,
                "query_id": query,
                "plan_id": plan,
                "interval_start": t,
                "interval_end": t + STEP,
                "execution_type": execution_type,
                "executions": n,
                "errors": 0,
                "cpu_us_mean": None if no_cpu else cpu,
                "cpu_us_stdev": None if no_cpu else sd,
                "duration_us_mean": duration if duration is not None else cpu * 1.2,
                "duration_us_stdev": sd,
                "logical_reads_mean": reads,
                "rows_examined_mean": None,
            }
        )
        t += STEP
    return out


def baseline(query: int, plan: int, **kwargs: Any) -> list[dict[str, Any]]:
    return rows(query, plan, WINDOW_START - timedelta(days=2), WINDOW_START, **kwargs)


def current(query: int, plan: int, **kwargs: Any) -> list[dict[str, Any]]:
    return rows(query, plan, WINDOW_START, WINDOW_END, **kwargs)


def plans(*entries: tuple[int, int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "target_id": 1,
                "query_id": q,
                "plan_id": p,
                "shape_hash": s,
                "is_forced": False,
                "forcing_type": None,
                "force_failure_count": None,
            }
            for q, p, s in entries
        ]
    )


def run(data: list[dict[str, Any]], plan_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    return detect(
        pd.DataFrame(data),
        plan_frame if plan_frame is not None else plans(),
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        baseline_start=BASELINE_START,
        settings=SETTINGS,
    )


def test_plan_change_is_detected_with_its_numbers() -> None:
    data = baseline(7, 1, n=200, cpu=10_000, sd=1_000) + current(7, 2, n=200, cpu=30_000, sd=2_000)
    found = run(data, plans((7, 1, "aaa"), (7, 2, "bbb")))
    assert list(found["kind"]) == ["plan_change"]
    hit = found.iloc[0]
    assert (hit.baseline_plan_id, hit.current_plan_id) == (1, 2)
    assert hit.ratio == pytest.approx(3.0)
    assert hit.impact == pytest.approx((30_000 - 10_000) * 800 / 1 / 1e6)  # 800 executions in the hour
    assert hit.p_value < 1e-10 and hit.severity == "low"
    assert hit.evidence["elevated_intervals"] == 4


def test_same_shape_under_another_plan_id_is_same_plan() -> None:
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 2, n=200, cpu=25_000, sd=500)
    assert list(run(data, plans((7, 1, "aaa"), (7, 2, "aaa")))["kind"]) == ["same_plan"]


def test_a_faster_plan_is_not_a_regression() -> None:
    data = baseline(7, 1, n=100, cpu=30_000) + current(7, 2, n=100, cpu=10_000)
    assert run(data).empty


def test_a_one_interval_spike_is_not_a_regression() -> None:
    data = baseline(7, 1, n=100, cpu=10_000, sd=1_000)
    spike = current(7, 1, n=100, cpu=10_000, sd=1_000)
    spike[2]["cpu_us_mean"] = 200_000
    assert run(data + spike).empty


def test_noise_within_the_threshold_is_not_a_regression() -> None:
    data = baseline(7, 1, n=100, cpu=10_000, sd=9_000) + current(7, 1, n=100, cpu=13_000, sd=9_000)
    assert run(data).empty


def test_microsecond_changes_stay_below_the_impact_floor() -> None:
    data = baseline(7, 1, n=50, cpu=50) + current(7, 2, n=50, cpu=150)  # 3x, but 0.02 CPU-seconds per hour
    assert run(data, plans((7, 1, "a"), (7, 2, "b"))).empty


def test_too_few_executions_are_not_judged() -> None:
    data = baseline(7, 1, n=2, cpu=10_000) + current(7, 2, n=2, cpu=900_000)
    assert run(data).empty


def test_duration_only_slowdown_without_more_work_is_classified_as_waits() -> None:
    data = baseline(7, 1, n=200, cpu=0, duration=10_000, reads=100, no_cpu=True) + current(
        7, 1, n=200, cpu=0, duration=40_000, reads=100, no_cpu=True
    )
    hit = run(data).iloc[0]
    assert hit.kind == "same_plan" and hit.metric == "duration_us"
    assert hit.evidence["classification"] == "waits_or_blocking" and hit.severity == "low"


def test_duration_only_slowdown_with_more_reads_is_corroborated() -> None:
    data = baseline(7, 1, n=200, cpu=0, duration=10_000, reads=100, no_cpu=True) + current(
        7, 2, n=200, cpu=0, duration=40_000, reads=900, no_cpu=True
    )
    hit = run(data, plans((7, 1, "a"), (7, 2, "b"))).iloc[0]
    assert hit.kind == "plan_change" and hit.evidence["corroboration"]["status"] == "corroborated"


def alternating(base: float, fast: float, slow: float, *, cpu: float = 10_000, slow_cpu: float = 80_000,
                sd: float = 100, slow_sd: float = 1_000) -> list[dict[str, Any]]:  # fmt: skip
    """Query 7: plan 1 in the baseline (``base`` executions per row); in the window plan 1 (``fast``)
    alternating with plan 2 (``slow``, at ``slow_cpu``)."""
    return (
        baseline(7, 1, n=base, cpu=cpu, sd=sd)
        + current(7, 1, n=fast, cpu=cpu, sd=sd)
        + current(7, 2, n=slow, cpu=slow_cpu, sd=slow_sd)
    )


def test_alternating_plans_are_parameter_sensitive() -> None:
    data = alternating(100, 60, 40)
    found = run(data, plans((7, 1, "a"), (7, 2, "b")))
    assert list(found["kind"]) == ["parameter_sensitive"]
    assert found.iloc[0].ratio == pytest.approx(8.0)


def test_alternating_plans_must_also_be_slower_than_the_last_good_plan() -> None:
    """Both plans cost 20-22 ms in the baseline; in the window one runs at 27 ms and the other,
    luckily, at 13 ms: 2x apart, but the slow one is 1.35x the last good plan, no regression."""
    data = (
        baseline(7, 1, n=600, cpu=20_000, sd=200)
        + baseline(7, 2, n=400, cpu=22_000, sd=200)
        + current(7, 1, n=600, cpu=27_000, sd=200)
        + current(7, 2, n=400, cpu=13_000, sd=200)
    )
    assert run(data, plans((7, 1, "a"), (7, 2, "b"))).empty


def test_alternating_plans_under_the_impact_floor_are_info() -> None:
    """40 executions an hour at 10 ms, 32 at 80 ms: +70 ms per execution, but 2.2 CPU-seconds an hour."""
    found = run(alternating(20, 10, 8), plans((7, 1, "a"), (7, 2, "b")))
    assert list(found["kind"]) == ["parameter_sensitive"] and list(found["severity"]) == ["info"]
    assert found.iloc[0].impact < SETTINGS.impact_floor_cpu_seconds_per_hour
    assert "(info), +70000us/execution >= 250" in found.iloc[0].evidence["rule"]
    tiny = alternating(100, 60, 40, cpu=100, slow_cpu=300, sd=1, slow_sd=1)
    assert run(tiny, plans((7, 1, "a"), (7, 2, "b"))).empty  # +200 us per execution: nothing


def test_rising_error_share_is_error_prone() -> None:
    data = (
        baseline(7, 1, n=1000, cpu=1_000)
        + baseline(7, 1, n=1, cpu=1_000, execution_type=3)
        + current(7, 1, n=1000, cpu=1_000)
        + current(7, 1, n=80, cpu=1_000, execution_type=4)
    )
    found = run(data)
    assert list(found["kind"]) == ["error_prone"]
    assert found.iloc[0].current_mean == pytest.approx(320 / 4320)


def test_force_failures_count_their_rise_never_their_level() -> None:
    frame = plans((7, 1, "a"), (8, 2, "b"))
    frame["force_failure_count"] = [5, 3]
    frame["force_failure_count_before"] = [2, 3]  # query 8: failures happened long ago, none since
    found = run(baseline(9, 9, n=10, cpu=1), frame)
    assert list(zip(found["kind"], found["query_id"], strict=True)) == [("forced_plan_failure", 7)]


def test_variance_is_pooled_from_interval_moments_not_averaged() -> None:
    data = [
        {
            "target_id": 1,
            "query_id": 1,
            "plan_id": 1,
            "interval_start": WINDOW_START,
            "interval_end": WINDOW_END,
            "execution_type": 0,
            "executions": n,
            "errors": 0,
            "cpu_us_mean": mean,
            "cpu_us_stdev": sd,
            "duration_us_mean": mean,
            "duration_us_stdev": sd,
            "logical_reads_mean": None,
            "rows_examined_mean": None,
        }
        for n, mean, sd in ((10, 100.0, 10.0), (30, 200.0, 20.0))
    ]
    moments = _shape_moments(
        _plan_moments(_prepare(pd.DataFrame(data), WINDOW_START, WINDOW_END, BASELINE_START)), {}
    )
    pooled_mean = (10 * 100 + 30 * 200) / 40
    pooled_var = (10 * (10**2 + 100**2) + 30 * (20**2 + 200**2)) / 40 - pooled_mean**2
    assert moments.iloc[0]["mean"] == pytest.approx(pooled_mean)
    assert math.sqrt(moments.iloc[0]["var"]) == pytest.approx(math.sqrt(pooled_var))


def test_targets_and_queries_are_kept_apart() -> None:
    data = (
        baseline(7, 1, n=100, cpu=10_000, target=1)
        + current(7, 2, n=100, cpu=40_000, target=1)
        + baseline(7, 1, n=100, cpu=10_000, target=2)
        + current(7, 1, n=100, cpu=10_000, target=2)
    )
    found = run(data, plans((7, 1, "a"), (7, 2, "b")))
    assert list(zip(found["target_id"], found["kind"], strict=True)) == [(1, "plan_change")]


def test_nothing_to_analyse_gives_an_empty_frame_with_the_columns() -> None:
    from planmon.analysis.frames import DETECTION_COLUMNS, empty_runtime_stats

    found = detect(
        empty_runtime_stats(),
        plans(),
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        baseline_start=BASELINE_START,
        settings=SETTINGS,
    )
    assert found.empty and list(found.columns) == list(DETECTION_COLUMNS)


def first_half(query: int, plan: int, **kwargs: Any) -> list[dict[str, Any]]:
    return rows(query, plan, WINDOW_START, WINDOW_START + 2 * STEP, **kwargs)


def second_half(query: int, plan: int, **kwargs: Any) -> list[dict[str, Any]]:
    return rows(query, plan, WINDOW_START + 2 * STEP, WINDOW_END, **kwargs)


def test_a_plan_that_replaces_another_mid_window_is_a_plan_change_not_sensitivity() -> None:
    data = (
        baseline(7, 1, n=200, cpu=10_000, sd=500)
        + first_half(7, 1, n=200, cpu=10_000, sd=500)
        + rows(7, 2, WINDOW_START + STEP, WINDOW_END, n=300, cpu=50_000, sd=500)
    )
    found = run(data, plans((7, 1, "a"), (7, 2, "b")))
    assert list(found["kind"]) == ["plan_change"]


def test_switching_to_a_faster_plan_mid_window_is_not_a_regression() -> None:
    data = (
        baseline(7, 1, n=200, cpu=30_000, sd=500)
        + first_half(7, 1, n=200, cpu=30_000, sd=500)
        + second_half(7, 2, n=200, cpu=5_000, sd=500)
    )
    assert run(data, plans((7, 1, "a"), (7, 2, "b"))).empty


def test_a_recompile_to_the_same_shape_is_one_plan() -> None:
    steady = baseline(7, 1, n=200, cpu=10_000, sd=500) + first_half(7, 1, n=200, cpu=10_000, sd=500)
    recompiled = second_half(7, 2, n=200, cpu=10_200, sd=500)
    assert run(steady + recompiled, plans((7, 1, "a"), (7, 2, "a"))).empty
    slower = second_half(7, 2, n=400, cpu=60_000, sd=500)
    found = run(steady + slower, plans((7, 1, "a"), (7, 2, "a")))
    assert list(found["kind"]) == ["same_plan"]


def test_noise_between_intervals_is_not_mistaken_for_significance() -> None:
    """Each baseline interval's mean swings 0.3x-2.5x: a current window at 1.6x is within that noise."""
    noisy = []
    for i, row in enumerate(baseline(7, 1, n=500, cpu=10_000, sd=100)):
        row["cpu_us_mean"] = 10_000 * (0.3, 0.6, 1.0, 1.4, 2.5)[i % 5]
        noisy.append(row)
    data = noisy + current(7, 1, n=500, cpu=16_000 * 1.1, sd=100)
    assert run(data).empty


def _relabelled(data: list[dict[str, Any]], plan_frame: pd.DataFrame, relabel: Any) -> pd.DataFrame:
    moved = [{**row, **{k: relabel(row[k]) for k in ("target_id", "query_id", "plan_id")}} for row in data]
    frame = plan_frame.assign(**{k: plan_frame[k].map(relabel) for k in ("target_id", "query_id", "plan_id")})
    return run(moved, frame)


@pytest.mark.parametrize(
    "relabel",
    [
        pytest.param(lambda v: f"id-{v}", id="string ids are hashed"),
        pytest.param(lambda v: v * 2**40, id="id ranges too wide to combine by arithmetic"),
        pytest.param(lambda v: -v, id="negative ids"),
    ],
)
def test_detections_do_not_depend_on_how_ids_are_spelled(relabel: Any) -> None:
    data = (
        baseline(7, 1, n=100, cpu=10_000)
        + current(7, 2, n=100, cpu=40_000)
        + baseline(8, 3, n=100, cpu=10_000)
        + current(8, 3, n=100, cpu=10_000)
    )
    plan_frame = plans((7, 1, "a"), (7, 2, "b"), (8, 3, "c"))
    found = _relabelled(data, plan_frame, relabel)
    assert list(zip(found["query_id"], found["kind"], strict=True)) == [(relabel(7), "plan_change")]
    assert found.iloc[0]["current_plan_id"] == relabel(2)


def test_rows_outside_both_windows_and_timezone_aware_starts_are_handled() -> None:
    inside = baseline(7, 1, n=100, cpu=10_000) + current(7, 2, n=100, cpu=40_000)
    too_old = rows(7, 2, BASELINE_START - timedelta(days=3), BASELINE_START, n=100, cpu=10)
    too_new = rows(7, 1, WINDOW_END, WINDOW_END + timedelta(hours=2), n=100, cpu=10)
    frame = pd.DataFrame(too_old + inside + too_new)
    frame["interval_start"] = pd.to_datetime(frame["interval_start"]).dt.tz_localize("UTC")
    found = detect(
        frame,
        plans((7, 1, "a"), (7, 2, "b")),
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        baseline_start=BASELINE_START,
        settings=SETTINGS,
    )
    assert list(found["kind"]) == ["plan_change"]
    assert found.iloc[0]["current_mean"] == pytest.approx(40_000)
    assert found.iloc[0]["baseline_mean"] == pytest.approx(10_000)


def test_a_query_with_cpu_beside_one_without_uses_each_ones_metric() -> None:
    with_cpu = baseline(7, 1, n=100, cpu=10_000) + current(7, 2, n=100, cpu=40_000)
    without_cpu = baseline(8, 3, n=100, cpu=10_000, no_cpu=True) + current(
        8, 4, n=100, cpu=40_000, no_cpu=True
    )
    found = run(with_cpu + without_cpu, plans((7, 1, "a"), (7, 2, "b"), (8, 3, "c"), (8, 4, "d")))
    assert dict(zip(found["query_id"], found["metric"], strict=True)) == {7: "cpu_us", 8: "duration_us"}


# -- plan identity: same_plan only when the plan is known (issue 17) ------------------------------------


def cumulative_plans(*entries: tuple[int, int, str | None, bool, bool]) -> pd.DataFrame:
    """A plans frame as the service builds it for an engine whose statistics name no plan:
    (query, plan, shape, identity_known, captured_in_window)."""
    frame = plans(*[(q, p, s) for q, p, s, _, _ in entries])  # type: ignore[arg-type]
    return frame.assign(
        identity_known=[known for *_, known, _ in entries],
        captured_in_window=[inside for *_, inside in entries],
    )


def test_no_plan_ever_captured_is_plan_unknown_never_same_plan() -> None:
    """MariaDB with events_statements_current off: every interval lands on the placeholder plan."""
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 1, n=200, cpu=25_000, sd=500)
    found = run(data, cumulative_plans((7, 1, None, False, False)))
    assert list(found["kind"]) == ["plan_unknown"]
    evidence = found.iloc[0].evidence
    assert evidence["plan_unknown"] is True
    assert "baseline and current" in evidence["plan_unknown_reason"]
    assert "plans aspect" in evidence["hint"]


def test_same_shape_without_a_capture_inside_the_window_is_plan_unknown() -> None:
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 1, n=200, cpu=25_000, sd=500)
    found = run(data, cumulative_plans((7, 1, "aaa", True, False)))
    assert list(found["kind"]) == ["plan_unknown"]
    assert "inside the window" in found.iloc[0].evidence["plan_unknown_reason"]


def test_same_shape_captured_inside_the_window_is_same_plan() -> None:
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 1, n=200, cpu=25_000, sd=500)
    found = run(data, cumulative_plans((7, 1, "aaa", True, True)))
    assert list(found["kind"]) == ["same_plan"]
    assert "plan_unknown" not in found.iloc[0].evidence


def test_a_capture_of_another_shape_does_not_make_the_baseline_shape_seen() -> None:
    """Plan 2 (another shape, captured in the window but hardly run) proves nothing about plan 1."""
    data = (
        baseline(7, 1, n=200, cpu=10_000, sd=500)
        + current(7, 1, n=200, cpu=25_000, sd=500)
        + current(7, 2, n=1, cpu=25_000, sd=500)
    )
    found = run(data, cumulative_plans((7, 1, "aaa", True, False), (7, 2, "bbb", True, True)))
    assert list(found["kind"]) == ["plan_unknown"]


def test_a_change_from_an_unknown_baseline_plan_is_not_claimed_as_plan_change() -> None:
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 2, n=200, cpu=25_000, sd=500)
    found = run(data, cumulative_plans((7, 1, None, False, False), (7, 2, "bbb", True, True)))
    assert list(found["kind"]) == ["plan_unknown"]
    assert "for the baseline side" in found.iloc[0].evidence["plan_unknown_reason"]


def test_a_known_plan_change_stays_a_plan_change_without_captures_in_the_window() -> None:
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 2, n=200, cpu=25_000, sd=500)
    found = run(data, cumulative_plans((7, 1, "aaa", True, False), (7, 2, "bbb", True, False)))
    assert list(found["kind"]) == ["plan_change"]


# -- the plan change ratio (issue 19) ---------------------------------------------------------------


def test_a_known_plan_change_counts_from_the_plan_change_ratio_a_same_plan_slowdown_does_not() -> None:
    base = baseline(7, 1, n=200, cpu=10_000, sd=500)
    changed = run(base + current(7, 2, n=200, cpu=13_000, sd=500), plans((7, 1, "aaa"), (7, 2, "bbb")))
    assert list(changed["kind"]) == ["plan_change"] and changed.iloc[0].ratio == pytest.approx(1.3)
    assert ">= 1.25 (plan change ratio)" in changed.iloc[0].evidence["rule"]
    same_shape = run(base + current(7, 2, n=200, cpu=13_000, sd=500), plans((7, 1, "aaa"), (7, 2, "aaa")))
    assert same_shape.empty  # load and data drift move the same plan's cost: 1.5x needed
    same_plan = run(base + current(7, 1, n=200, cpu=13_000, sd=500), plans((7, 1, "aaa")))
    assert same_plan.empty
    slower = run(base + current(7, 1, n=200, cpu=16_000, sd=500), plans((7, 1, "aaa")))
    assert list(slower["kind"]) == ["same_plan"]
    assert ">= 1.5 (regression ratio)" in slower.iloc[0].evidence["rule"]


def test_a_small_change_from_a_plan_never_captured_needs_the_regression_ratio() -> None:
    """planmon cannot claim a plan change when it never saw the baseline's plan: 1.3x is not enough."""
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 2, n=200, cpu=13_000, sd=500)
    frame = cumulative_plans((7, 1, None, False, False), (7, 2, "bbb", True, True))
    assert run(data, frame).empty
    known = cumulative_plans((7, 1, "aaa", True, False), (7, 2, "bbb", True, True))
    assert list(run(data, known)["kind"]) == ["plan_change"]
    slower = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 2, n=200, cpu=16_000, sd=500)
    assert list(run(slower, frame)["kind"]) == ["plan_unknown"]


def test_a_plan_change_under_the_plan_change_ratio_is_not_a_regression() -> None:
    data = baseline(7, 1, n=200, cpu=10_000, sd=500) + current(7, 2, n=200, cpu=12_000, sd=500)
    assert run(data, plans((7, 1, "aaa"), (7, 2, "bbb"))).empty  # 1.2x: a recompile's usual spread


# -- info tier, change points, day-aware baselines (issue 19) --------------------------------------


def test_a_solid_regression_under_the_impact_floor_is_info() -> None:
    data = baseline(7, 1, n=50, cpu=5_000, sd=500) + current(7, 2, n=50, cpu=15_000, sd=500)
    found = run(data, plans((7, 1, "a"), (7, 2, "b")))  # 3x, p tiny, 200 executions: 2 extra CPU-s/h
    assert list(found["kind"]) == ["plan_change"] and list(found["severity"]) == ["info"]
    assert found.iloc[0].impact < SETTINGS.impact_floor_cpu_seconds_per_hour
    assert "(info)" in found.iloc[0].evidence["rule"]


def test_the_per_execution_floor_keeps_only_info_out() -> None:
    tiny = baseline(7, 1, n=50, cpu=100) + current(7, 2, n=50, cpu=300)  # +200 us, 0.04 s/h: nothing
    assert run(tiny, plans((7, 1, "a"), (7, 2, "b"))).empty
    busy = baseline(7, 1, n=100_000, cpu=100, sd=5) + current(7, 2, n=100_000, cpu=300, sd=5)
    found = run(busy, plans((7, 1, "a"), (7, 2, "b")))  # +200 us x 400k/h = 80 s/h: material
    assert list(found["severity"]) == ["medium"]


DAY_START = datetime(2026, 11, 21)  # a Saturday
HOURLY = timedelta(hours=1)


def hourly(query: int, plan_of: Any, cpu_of: Any, *, days: int = 8, n: float = 400) -> list[dict[str, Any]]:
    """Hourly rows from DAY_START - 7 days for ``days`` days: plan and CPU per interval start."""
    out = []
    for h in range(days * 24):
        t = DAY_START - timedelta(days=7) + h * HOURLY
        cpu = cpu_of(t) * (1.0 + 0.03 * ((h * 7) % 5 - 2))
        out += [dict(row, interval_end=t + HOURLY) for row in rows(query, plan_of(t), t, t + HOURLY, n=n,
                                                                      cpu=cpu, sd=cpu * 0.2)]  # fmt: skip
    return out


def run_day(data: list[dict[str, Any]], plan_frame: pd.DataFrame) -> pd.DataFrame:
    return detect(
        pd.DataFrame(data), plan_frame, window_start=DAY_START, window_end=DAY_START + timedelta(days=1),
        baseline_start=DAY_START - timedelta(days=7), settings=SETTINGS,
    )  # fmt: skip


def test_a_plan_change_in_the_last_hours_of_a_day_is_found_after_its_onset() -> None:
    onset = DAY_START + 21 * HOURLY
    data = hourly(7, lambda t: 2 if t >= onset else 1, lambda t: 50_000.0 if t >= onset else 10_000.0)
    found = run_day(data, plans((7, 1, "a"), (7, 2, "b")))
    assert list(found["kind"]) == ["plan_change"] and found.iloc[0].severity != "info"
    assert found.iloc[0].ratio == pytest.approx(5.0, rel=0.1)
    assert found.iloc[0].evidence["onset"] == onset.isoformat() and found.iloc[0].evidence["onset_moved"]


def test_busy_hours_that_are_always_dear_are_not_a_regression() -> None:
    def cost(t: datetime) -> float:
        return 25_000.0 if t.hour >= 20 else 10_000.0  # the last four hours of every day

    found = run_day(hourly(7, lambda t: 1, cost), plans((7, 1, "a")))
    assert found.empty
    # without the day-aware baseline the same evening is 2.5x the day's mean: a false alarm
    flat = hourly(8, lambda t: 1, lambda t: 10_000.0 if t < DAY_START else cost(t))
    assert list(run_day(flat, plans((8, 1, "a")))["kind"]) == ["same_plan"]


def test_a_regression_hidden_in_quiet_hours_is_found_against_those_hours() -> None:
    onset = DAY_START + 18 * HOURLY

    def cost(t: datetime) -> float:
        normal = 4_000.0 if t.hour >= 18 else 12_000.0  # evenings are cheap
        return normal * (2.0 if t >= onset else 1.0)  # 2x from 18:00: still under the day's mean

    found = run_day(hourly(7, lambda t: 1, cost), plans((7, 1, "a")))
    assert list(found["kind"]) == ["same_plan"]
    evidence = found.iloc[0].evidence
    assert evidence["baseline"]["kind"] != "overall" and evidence["baseline"]["factor"] < 0.6
    assert found.iloc[0].ratio == pytest.approx(2.0, rel=0.15)


def test_a_late_change_against_a_flat_baseline_is_tested_against_every_baseline_interval() -> None:
    """No hour or day stands out in the baseline: the expectation is the overall mean (kind overall),
    and the t-test counts all its intervals, not only the matched hours' few (issue 19)."""
    onset = DAY_START + 22 * HOURLY  # the last two hours

    data = hourly(7, lambda t: 2 if t >= onset else 1, lambda t: _day_noise(t) * (5.0 if t >= onset else 1.0))
    found = run_day(data, plans((7, 1, "a"), (7, 2, "b")))
    assert list(found["kind"]) == ["plan_change"]
    evidence = found.iloc[0].evidence
    assert evidence["onset"] == onset.isoformat() and evidence["onset_moved"]
    assert evidence["baseline"] == {
        "kind": "overall",
        "factor": 1.0,
        "overall_mean": pytest.approx(found.iloc[0].baseline_mean),
    }


def _day_noise(t: datetime) -> float:
    """10 ms, some days dearer than others (+-20%), every hour of a day alike."""
    return 10_000.0 * (0.8, 1.2, 1.0, 0.9, 1.1, 1.15, 0.85, 1.0)[(t - DAY_START).days + 7]


def test_a_late_change_that_swings_is_tested_with_the_baseline_variance_degrees_of_freedom() -> None:
    """Weekends are cheaper (a day-aware expectation on the matched hours' 4 baseline intervals); the
    last two hours run 2.2x and 7.8x. Their own variance has 1 degree of freedom, the baseline's ~180:
    the t-test counts the latter, not the 4 intervals the expectation rests on (issue 19)."""
    onset = DAY_START + 22 * HOURLY
    # per day from the baseline's Saturday: Saturday, Sunday, Monday, ..., the Saturday analysed
    day_cost = (0.8, 0.8, 0.9, 1.2, 1.0, 1.1, 1.0, 0.8)

    def cost(t: datetime) -> float:
        late = (2.2, 7.8)[t.hour - 22] if t >= onset else 1.0
        return 10_000.0 * day_cost[(t - DAY_START).days + 7] * late

    found = run_day(hourly(7, lambda t: 2 if t >= onset else 1, cost), plans((7, 1, "a"), (7, 2, "b")))
    assert list(found["kind"]) == ["plan_change"]
    evidence = found.iloc[0].evidence
    assert evidence["onset"] == onset.isoformat()
    assert evidence["baseline"]["kind"] == "hour_of_day_and_daytype"
    assert found.iloc[0].p_value <= SETTINGS.p_value_max / 24


def test_a_plan_running_since_the_morning_is_compared_from_its_takeover_not_from_a_dear_evening() -> None:
    """A new plan at 1.2x from 08:00 whose last three hours run 1.7x: the plan did not change in the
    evening, so the plan change is compared from 08:00 (1.2x: no regression), not claimed at 21:00."""
    takeover, evening = DAY_START + 8 * HOURLY, DAY_START + 21 * HOURLY

    def cost(t: datetime) -> float:
        return 10_000.0 * (1.7 if t >= evening else 1.2 if t >= takeover else 1.0)

    found = run_day(hourly(7, lambda t: 2 if t >= takeover else 1, cost), plans((7, 1, "a"), (7, 2, "b")))
    assert found.empty, found[["kind", "ratio", "evidence"]].to_dict("records")
    # the same evening on the baseline's own plan is that plan getting slower, found from 21:00
    same = run_day(hourly(8, lambda t: 1, lambda t: 10_000.0 * (1.7 if t >= evening else 1.0)),
                   plans((8, 1, "a")))  # fmt: skip
    assert list(same["kind"]) == ["same_plan"] and same.iloc[0].evidence["onset"] == evening.isoformat()


def test_a_plan_change_near_the_plan_change_ratio_must_clear_it_by_a_standard_error() -> None:
    """1.27x on a plan whose interval means spread 30%: over 1.25, but not by a standard error (an
    equivalent plan's noise reaches that far); the same 1.27x with a tight spread is a plan change."""

    def spread(t: datetime, wide: float) -> float:
        return 1.0 + wide * ((t.hour * 5 + t.day) % 7 - 3) / 3  # repeatable noise of +-``wide``

    def data(query: int, wide: float) -> list[dict[str, Any]]:
        return hourly(
            query, lambda t: 2 if t >= DAY_START else 1,
            lambda t: 10_000.0 * spread(t, wide) * (1.27 if t >= DAY_START else 1.0), n=2000,
        )  # fmt: skip

    noisy = run_day(data(7, 0.3), plans((7, 1, "a"), (7, 2, "b")))
    assert noisy.empty, noisy[["kind", "ratio", "t_statistic"]].to_dict("records")
    tight = run_day(data(8, 0.02), plans((8, 1, "a"), (8, 2, "b")))
    assert list(tight["kind"]) == ["plan_change"] and tight.iloc[0].ratio == pytest.approx(1.27, rel=0.03)
