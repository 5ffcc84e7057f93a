"""Task callable of ``planmon_analyze``: analyse the run's data interval on the repository."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from planmon.analysis.service import analyze_repository
from planmon.config import load_settings
from planmon.store import Repository

MIN_WINDOW = timedelta(minutes=15)
DEFAULT_WINDOW = timedelta(hours=1)


def analysis_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The window to analyse for a run's data interval.

    Scheduled and backfilled runs analyse their interval exactly (idempotent per interval). A run
    triggered by the collection asset has an interval spanning its asset events, often only
    seconds: it analyses the whole hour ending at the top of the hour of its end instead.
    """
    if end - start >= MIN_WINDOW:
        return start, end
    top = end.replace(minute=0, second=0, microsecond=0)
    return top - DEFAULT_WINDOW, top


def analyze_interval(start: datetime, end: datetime) -> dict[str, Any]:
    settings = load_settings()
    window_start, window_end = analysis_window(start, end)
    with Repository.from_settings(settings) as repository:
        repository.require_schema()
        summary = analyze_repository(
            repository, window_start=window_start, window_end=window_end, settings=settings
        )
    return summary.as_dict()  # open-regression gauges are emitted by planmon_alert


def remediation_confs(summary: dict[str, Any] | None) -> list[dict[str, int]]:
    """planmon_remediate confs for this run's regressions on targets whose mode allows remediation
    (propose: a dry-run proposal; approve/auto: the approval flow) and that have none yet."""
    from planmon.store.remediations import RemediationStore

    ids = list((summary or {}).get("regression_ids") or [])
    if not ids:
        return []
    with Repository.from_settings(load_settings()) as repository:
        chosen = RemediationStore(repository).remediation_candidates(ids)
    return [{"regression_id": regression_id} for regression_id in chosen]
