"""Task callables of ``planmon_collect``: list targets, collect one, summarise. Settings are read
and validated when a task starts, never when the DAG file is parsed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from planmon.airflow.connections import connection_factory, open_repository
from planmon.airflow.xcom import mapped_results
from planmon.collect import CollectionSummary, collect_target
from planmon.config import load_settings
from planmon.errors import EngineError

log = logging.getLogger(__name__)

METRIC_PREFIX = "planmon.collect"


def enabled_target_names() -> list[str]:
    """Names of the enabled targets: one mapped collection task each."""
    settings = load_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        names = [target.name for target in repository.list_targets(enabled_only=True)]
    log.info("collecting %d enabled target(s)", len(names))
    return names


def collection_window(
    start: datetime | None, end: datetime | None, *, run_after: datetime | None, schedule: str
) -> tuple[datetime, datetime]:
    """The interval a run collects: its data interval (scheduled and backfilled runs); a run with
    none (triggered by hand or through the REST API without a logical date, Airflow 3) collects the
    last complete interval of the collect schedule at or before its ``run_after``, so it writes the
    same rows the scheduled run of that interval would."""
    if start is not None and end is not None:
        return start, end
    if run_after is None:
        raise ValueError("a run with no data interval and no run_after has no interval to collect")
    from croniter import croniter  # type: ignore[import-untyped]

    fire_times = croniter(schedule, run_after + timedelta(microseconds=1))
    last_end = fire_times.get_prev(datetime)
    return fire_times.get_prev(datetime), last_end


def run_window(
    start: datetime | None, end: datetime | None, run_after: datetime | None
) -> tuple[datetime, datetime]:
    """:func:`collection_window` at the collect schedule in force (PLANMON_COLLECT_SCHEDULE)."""
    return collection_window(start, end, run_after=run_after, schedule=load_settings().collect_schedule)


def collect_one(
    target_name: str, start: datetime | None, end: datetime | None, *, run_after: datetime | None = None
) -> dict[str, Any]:
    """Collect one target for the run's interval (:func:`collection_window`); the summary (no
    secrets, no plans) goes to XCom.

    A target that cannot be reached fails this task (after its status is stored), so Airflow shows
    it and retries it; the other targets' tasks are independent.
    """
    settings = load_settings()
    start, end = collection_window(start, end, run_after=run_after, schedule=settings.collect_schedule)
    with open_repository(settings) as repository:
        target = repository.get_target(target_name)
        connect = connection_factory(target.engine, target.conn_id)
        try:
            summary = collect_target(repository, target, start, end, settings=settings, connect=connect)
        except EngineError:
            emit_metrics_failed(target_name)
            raise
    emit_metrics(summary)
    return summary.as_dict()


def summarize(summaries: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Counts over the targets that finished; the asset tells the analysis DAG new stats exist."""
    finished = mapped_results(summaries)
    by_status: dict[str, int] = {}
    for summary in finished:
        by_status[summary["status"]] = by_status.get(summary["status"], 0) + 1
    totals = {
        "targets": len(finished),
        "by_status": by_status,
        "rows": sum(s["rows"] for s in finished),
        "plans_captured": sum(s["plans_captured"] for s in finished),
    }
    log.info("collection run: %s", totals)
    return totals


def emit_metrics(summary: CollectionSummary) -> None:
    """Per-target duration, rows, plans and aspect errors through Airflow's metrics (StatsD/OTel)."""
    from airflow.sdk.observability.stats import Stats

    tags = {"target": summary.target, "status": summary.status}
    Stats.timing(f"{METRIC_PREFIX}.duration", summary.duration_ms, tags=tags)
    Stats.gauge(f"{METRIC_PREFIX}.rows", summary.rows, tags=tags)
    Stats.gauge(f"{METRIC_PREFIX}.plans_captured", summary.plans_captured, tags=tags)
    for aspect, status in summary.aspects.items():
        if status["status"] not in ("ok", "unavailable", "not_applicable"):
            Stats.incr(
                f"{METRIC_PREFIX}.aspect_errors", tags={**tags, "aspect": aspect, "state": status["status"]}
            )


def emit_metrics_failed(target_name: str) -> None:
    from airflow.sdk.observability.stats import Stats

    Stats.incr(f"{METRIC_PREFIX}.target_failures", tags={"target": target_name})
