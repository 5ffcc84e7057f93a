"""A live regression to remediate: an index dropped on a throwaway server, collected and analysed.

Shared by the PostgreSQL and MariaDB end-to-end remediation tests (and reusable by the demo): the
baseline intervals run with the index, then it is dropped, and ``planmon_analyze``'s service finds
the plan_change. A background workload keeps the regressed query running while the DAG verifies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from planmon.analysis.service import analyze_repository
from planmon.collect import collect_target
from planmon.config import Settings
from planmon.demo.workload import in_background as background  # noqa: F401  (the tests' traffic thread)
from planmon.model import Target
from planmon.store import Repository

T0 = datetime(2026, 11, 20, 9, 0)
STEP = timedelta(minutes=15)
DROP_AT = 6
INTERVALS = 10


def collect_history(
    repository: Repository,
    target: Target,
    settings: Settings,
    connect: Callable[[str | None], Any],
    *,
    workload: Callable[[], None],
    drop_index: Callable[[], None],
) -> int:
    """Collect ten 15-minute intervals (the index dropped before the sixth); return the regression id."""

    def collect(interval: int) -> None:
        start = T0 + interval * STEP
        summary = collect_target(
            repository,
            target,
            start,
            start + STEP,
            settings=settings,
            connect=connect,
            now=start + STEP + timedelta(seconds=20),
        )
        assert summary.status == "ok", summary.aspects

    collect(0)  # the counters' first reading
    for interval in range(1, INTERVALS):
        if interval == DROP_AT:
            drop_index()
        workload()
        collect(interval)
    summary = analyze_repository(
        repository,
        window_start=T0 + DROP_AT * STEP,
        window_end=T0 + INTERVALS * STEP,
        baseline_start=T0,
        settings=settings,
    )
    assert summary.by_kind == {"plan_change": 1}, summary
    return summary.regression_ids[0]


def small_workload_settings(monkeypatch: Any, home: Any) -> None:
    """Settings for a test-sized workload: a low impact floor, and verification after 30 executions
    within a minute, polled every second."""
    monkeypatch.setenv("PLANMON_HOME", str(home))
    monkeypatch.setenv("PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR", "0.2")
    monkeypatch.setenv("PLANMON_REMEDIATION_VERIFY_EXECUTIONS", "30")
    monkeypatch.setenv("PLANMON_REMEDIATION_VERIFY_MINUTES", "1")
    monkeypatch.setenv("PLANMON_REMEDIATION_POKE_SECONDS", "1")
