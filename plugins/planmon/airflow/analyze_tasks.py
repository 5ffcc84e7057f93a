"""Task callables of ``planmon_analyze``: choose the window, split the fleet into batches of targets
(one mapped task each), analyse a batch, merge the batches' summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from planmon.airflow.connections import open_repository
from planmon.airflow.xcom import mapped_results
from planmon.analysis.service import AnalysisSummary, analyze_repository
from planmon.config import load_settings

MIN_WINDOW = timedelta(minutes=15)
DEFAULT_WINDOW = timedelta(hours=1)
# the keys planmon_collect puts in its RUNTIME_STATS asset event: the data interval it collected
COLLECTED_START, COLLECTED_END = "data_interval_start", "data_interval_end"


def analysis_window(
    start: datetime | None,
    end: datetime | None,
    *,
    collected: Sequence[tuple[datetime, datetime]] = (),
    run_after: datetime | None = None,
) -> tuple[datetime, datetime]:
    """The window a run analyses.

    - Scheduled and backfilled runs analyse their data interval exactly (idempotent per interval).
    - A run triggered by the collection asset has no data interval (Airflow 3.3): it analyses the
      intervals the triggering collections produced (their asset events say which), widened to the
      hour ending where the newest one ends when they span less.
    - Any other run (a manual run, an asset event without intervals, an interval shorter than
      ``MIN_WINDOW``) analyses the last complete hour before its interval's end or its ``run_after``.
    """
    if start is not None and end is not None and end - start >= MIN_WINDOW:
        return start, end
    if collected:
        newest_end = max(interval_end for _, interval_end in collected)
        oldest_start = min(interval_start for interval_start, _ in collected)
        return min(oldest_start, newest_end - DEFAULT_WINDOW), newest_end
    anchor = end or run_after
    if anchor is None:
        raise ValueError("a run with no data interval and no run_after has no window to analyse")
    top = anchor.replace(minute=0, second=0, microsecond=0)
    return top - DEFAULT_WINDOW, top


def collected_intervals(triggering_asset_events: Any) -> list[tuple[datetime, datetime]]:
    """The collected data intervals named by a run's triggering asset events (none when the run was
    not asset-triggered, or an event, such as one created by hand, names no interval)."""
    if not triggering_asset_events:
        return []
    intervals = []
    for asset in triggering_asset_events:
        for event in triggering_asset_events[asset]:
            extra = event.extra or {}
            if extra.get(COLLECTED_START) and extra.get(COLLECTED_END):
                intervals.append(
                    (
                        datetime.fromisoformat(str(extra[COLLECTED_START])),
                        datetime.fromisoformat(str(extra[COLLECTED_END])),
                    )
                )
    return intervals


def collected_event_extra(start: datetime | None, end: datetime | None) -> dict[str, str]:
    """The RUNTIME_STATS asset event's extra: the data interval collection covered."""
    if start is None or end is None:
        return {}
    return {COLLECTED_START: start.isoformat(), COLLECTED_END: end.isoformat()}


def plan_batches(
    start: datetime | None,
    end: datetime | None,
    *,
    collected: Sequence[tuple[datetime, datetime]] = (),
    run_after: datetime | None = None,
) -> list[dict[str, Any]]:
    """One entry per batch of ``PLANMON_ANALYZE_BATCH_TARGETS`` enabled targets, each carrying the
    run's window: the mapped ``analyze`` tasks' inputs (empty when no target is enabled)."""
    settings = load_settings()
    window_start, window_end = analysis_window(start, end, collected=collected, run_after=run_after)
    with open_repository(settings) as repository:
        repository.require_schema()
        names = [target.name for target in repository.list_targets(enabled_only=True)]
    size = settings.analyze_batch_targets
    return [
        {
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "targets": names[i : i + size],
        }
        for i in range(0, len(names), size)
    ]


def analyze_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Analyse one batch of targets over the run's window (idempotent: a retry stores the same)."""
    settings = load_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        summary = analyze_repository(
            repository,
            window_start=datetime.fromisoformat(batch["window_start"]),
            window_end=datetime.fromisoformat(batch["window_end"]),
            settings=settings,
            target_names=batch["targets"],
        )
    return summary.as_dict()  # open-regression gauges are emitted by planmon_alert


def merge_summaries(summaries: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    """The run's summary over all its batches."""
    parts = [AnalysisSummary.from_dict(summary) for summary in mapped_results(summaries)]
    if not parts:
        return {}
    return AnalysisSummary.merged(parts).as_dict()


def remediation_confs(summary: dict[str, Any] | None) -> list[dict[str, int]]:
    """planmon_remediate confs for this run's regressions on targets whose mode allows remediation
    (propose: a dry-run proposal; approve/auto: the approval flow) and that have none yet."""
    from planmon.store.remediations import RemediationStore

    ids = list((summary or {}).get("regression_ids") or [])
    if not ids:
        return []
    with open_repository(load_settings()) as repository:
        chosen = RemediationStore(repository).remediation_candidates(ids)
    return [{"regression_id": regression_id} for regression_id in chosen]
