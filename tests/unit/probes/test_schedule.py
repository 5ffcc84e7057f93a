"""Which probes are due in a planmon_probes run, and the run_at their results are keyed on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from planmon.model import Target
from planmon.model.probes import ProbeDefinition
from planmon.probes.service import due_run_at, plan_runs, streak_start
from planmon.store.probes import ProbeResultRow, StoredProbe


@pytest.mark.parametrize(
    ("schedule", "start", "end", "expected"),
    [
        ("*/5 * * * *", (12, 0), (12, 5), (12, 5)),
        ("*/5 * * * *", (12, 5), (12, 10), (12, 10)),
        ("* * * * *", (12, 0), (12, 5), (12, 5)),  # more often than the DAG: once, at the latest time
        ("0 * * * *", (12, 55), (13, 0), (13, 0)),
        ("0 * * * *", (12, 0), (12, 5), None),  # hourly probe: not due in this interval
        ("3 * * * *", (12, 0), (12, 5), (12, 3)),
        ("*/5 * * * *", (12, 5), (12, 5), (12, 5)),  # trigger-style run: start == end
    ],
)
def test_due_run_at(
    schedule: str, start: tuple[int, int], end: tuple[int, int], expected: tuple[int, int] | None
) -> None:
    day = datetime(2026, 11, 27)
    at = due_run_at(
        schedule, day.replace(hour=start[0], minute=start[1]), day.replace(hour=end[0], minute=end[1])
    )
    assert at == (None if expected is None else day.replace(hour=expected[0], minute=expected[1]))


def test_due_run_at_accepts_aware_times() -> None:
    start, end = datetime(2026, 11, 27, 12, 0, tzinfo=UTC), datetime(2026, 11, 27, 12, 5, tzinfo=UTC)
    assert due_run_at("*/5 * * * *", start, end) == datetime(2026, 11, 27, 12, 5)


def _target(name: str, engine: str, *, enabled: bool = True) -> Target:
    now = datetime(2026, 1, 1)
    return Target(
        id=hash(name) % 1000, name=name, engine=engine, conn_id="c", environment="prod", tags={},  # type: ignore[arg-type]
        databases=(), enabled=enabled, remediation_mode="propose", remediation_conn_id=None,
        created_at=now, updated_at=now,
    )  # fmt: skip


def _stored(definition: ProbeDefinition, probe_id: int, *, enabled: bool = True) -> StoredProbe:
    return StoredProbe(probe_id, definition, "x.yaml", enabled, datetime(2026, 1, 1))


def test_plan_runs_maps_due_probes_to_the_targets_they_select() -> None:
    every5 = ProbeDefinition(name="a", sql={"postgres": "SELECT 1", "mysql": "SELECT 1"}, critical=1)
    hourly = ProbeDefinition(name="b", sql="SELECT 1", critical=1, schedule="0 * * * *")
    only_pg = ProbeDefinition(name="c", sql="SELECT 1", critical=1, targets={"names": ["pg"]})
    off = ProbeDefinition(name="d", sql="SELECT 1", critical=1)
    targets = [_target("pg", "postgres"), _target("maria", "mysql"), _target("mss", "sqlserver"),
               _target("old", "postgres", enabled=False)]  # fmt: skip
    runs = plan_runs(
        [_stored(every5, 1), _stored(hourly, 2), _stored(only_pg, 3), _stored(off, 4, enabled=False)],
        targets,
        datetime(2026, 11, 27, 12, 0),
        datetime(2026, 11, 27, 12, 5),
    )
    assert [(r.probe, r.target) for r in runs] == [("a", "pg"), ("a", "maria"), ("c", "pg")]
    assert {r.run_at for r in runs} == {datetime(2026, 11, 27, 12, 5)}


def _row(status: str, minute: int) -> ProbeResultRow:
    return ProbeResultRow(minute, 1, 1, datetime(2026, 11, 27, 12, minute), None, status, None, None, None)


def test_streak_start_walks_back_over_the_same_status() -> None:
    current = _row("critical", 20)
    previous = [_row("critical", 15), _row("critical", 10), _row("warning", 5), _row("critical", 0)]
    assert streak_start(current, previous) == datetime(2026, 11, 27, 12, 10)
    assert streak_start(current, []) == current.run_at
    assert streak_start(current, [_row("ok", 15)]) == current.run_at
