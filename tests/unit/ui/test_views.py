"""The regression's chart range: around the regression by default, never past now."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from planmon.ui.views import regression_windows

HOUR = timedelta(hours=1)
FIRST = datetime(2026, 11, 17, 1)
ROW = {"first_detected": FIRST, "last_detected": FIRST + 2 * HOUR, "evidence": {"current_intervals": 1}}
LATER = datetime(2026, 12, 31)


def test_around_the_regression_three_times_its_length_before_and_once_after() -> None:
    windows = regression_windows(ROW, 7, HOUR, now=LATER)
    assert (windows.regressed.start, windows.regressed.end) == (FIRST - HOUR, FIRST + 2 * HOUR)
    assert windows.chart_start == FIRST - HOUR - 12 * HOUR  # 3 x 3 h is less than 12 intervals
    assert windows.chart_end == FIRST + 2 * HOUR + 4 * HOUR  # 3 h is less than 4 intervals
    assert windows.baseline_shown == 12 * HOUR and windows.baseline.start == FIRST - HOUR - timedelta(days=7)


def test_a_long_regression_gets_three_times_its_length_of_baseline_capped_at_the_window() -> None:
    row = {**ROW, "last_detected": FIRST + 47 * HOUR}  # 48 hours regressed
    windows = regression_windows(row, 7, HOUR, now=LATER)
    assert windows.chart_start == FIRST - HOUR - 144 * HOUR and windows.chart_end == FIRST + 95 * HOUR
    capped = regression_windows(row, 2, HOUR, now=LATER)  # 3 x 48 h is more than a 2-day baseline
    assert capped.chart_start == capped.baseline.start


def test_an_ongoing_regression_is_charted_up_to_now_not_into_the_future() -> None:
    now = FIRST + 3 * HOUR
    assert regression_windows(ROW, 7, HOUR, now=now).chart_end == now
    assert regression_windows(ROW, 7, HOUR, now=FIRST).chart_end == ROW["last_detected"]


def test_a_resolution_after_the_last_detection_is_shown_with_what_followed() -> None:
    row = {**ROW, "resolved_at": FIRST + 10 * HOUR}
    assert regression_windows(row, 7, HOUR, now=LATER).chart_end == FIRST + 14 * HOUR


def test_the_full_span_is_the_whole_baseline_to_a_day_after() -> None:
    windows = regression_windows(ROW, 7, HOUR, now=LATER, span="full")
    assert windows.chart_start == windows.baseline.start
    assert windows.chart_end == ROW["last_detected"] + timedelta(hours=24)
    with pytest.raises(ValueError, match="span must be one of incident, full, not 'week'"):
        regression_windows(ROW, 7, HOUR, now=LATER, span="week")
