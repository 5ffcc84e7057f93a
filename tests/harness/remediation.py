"""A live regression to remediate: an index dropped on a throwaway server, collected and analysed.

Shared by the PostgreSQL and MariaDB end-to-end remediation tests (and reusable by the demo): the
baseline intervals run with the index, then it is dropped, and ``planmon_analyze``'s service finds
the plan_change. A background workload keeps the regressed query running while the DAG verifies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from planmon.analysis.service import analyze_repository
from planmon.collect import collect_target
from planmon.config import Settings
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


@contextmanager
def background(run_once: Callable[[], None], pause: float = 0.02) -> Iterator[dict[str, int]]:
    """Run ``run_once`` in a loop in a daemon thread while the block runs (the application's traffic)."""
    stop = threading.Event()
    counts = {"runs": 0, "errors": 0}

    def loop() -> None:
        while not stop.is_set():
            try:
                run_once()
                counts["runs"] += 1
            except Exception:  # the workload must outlive a lock timeout or a reconnect
                counts["errors"] += 1
                time.sleep(0.2)
            time.sleep(pause)

    thread = threading.Thread(target=loop, name="workload", daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=10)
