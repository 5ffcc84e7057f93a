"""The interval a planmon_collect run collects, with and without a data interval."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from planmon.airflow.collect_tasks import collection_window

QUARTERS = "*/15 * * * *"


def _at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 12, 3, hour, minute, second, tzinfo=UTC)


def test_a_scheduled_or_backfilled_run_collects_its_data_interval() -> None:
    start, end = datetime(2026, 12, 3, 12, 0, tzinfo=UTC), datetime(2026, 12, 3, 12, 15, tzinfo=UTC)
    assert collection_window(start, end, run_after=None, schedule=QUARTERS) == (start, end)


@pytest.mark.parametrize(
    ("run_after", "expected"),
    [
        (_at(12, 7, 30), (_at(11, 45), _at(12, 0))),
        # on a fire time: the interval that just ended is complete, so it is the one collected
        (_at(12, 15), (_at(12, 0), _at(12, 15))),
    ],
)  # fmt: skip
def test_a_run_without_a_data_interval_collects_the_last_complete_interval(
    run_after: datetime, expected: tuple[datetime, datetime]
) -> None:
    assert collection_window(None, None, run_after=run_after, schedule=QUARTERS) == expected


def test_hourly_schedule_and_no_run_after() -> None:
    moment = datetime(2026, 12, 3, 12, 40, tzinfo=UTC)
    assert collection_window(None, None, run_after=moment, schedule="0 * * * *") == (
        datetime(2026, 12, 3, 11, 0, tzinfo=UTC),
        datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="no interval to collect"):
        collection_window(None, None, run_after=None, schedule=QUARTERS)
