"""Task callables of ``planmon_probes``: sync and plan the due probe runs, run one, summarise.

Settings, probe files and connections are read when a task starts, never when the DAG is parsed. A
probe that fails (refused, timed out, unreachable target, bad SQL) is a recorded result and an
alert, not a failed task: the other probes run regardless. A bad probe file, a bad setting or an
unreachable repository fails the task (configuration Airflow should show).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from planmon.airflow.alert_tasks import open_dispatcher
from planmon.airflow.connections import connection_factory, open_repository
from planmon.alerting.settings import load_planmon_settings
from planmon.engines.base import ConnectionFactory
from planmon.model import Target
from planmon.probes.service import plan_runs, record_run, sync_definitions
from planmon.store.probes import ProbeStore

log = logging.getLogger(__name__)

METRIC_PREFIX = "planmon.probe"


def plan_probe_runs(start: datetime, end: datetime) -> list[dict[str, str]]:
    """Sync the probe files and built-ins into the store; the (probe, target, run_at) runs due now."""
    settings = load_planmon_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        store = ProbeStore(repository)
        sync_definitions(store, settings)
        probes = store.probes(enabled_only=True)
        targets = repository.list_targets(enabled_only=True)
    runs = plan_runs(probes, targets, start, end)
    log.info(
        "%d probe run(s) due in (%s, %s] over %d probe(s) and %d target(s)",
        len(runs),
        start,
        end,
        len(probes),
        len(targets),
    )
    return [run.as_dict() for run in runs]


def _connect_for(target: Target) -> ConnectionFactory:
    return connection_factory(target.engine, target.conn_id)


def run_probe_task(
    run: dict[str, str], dag_id: str | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """Run one planned probe on one target, store the result, send its alerts; counts for XCom.

    The result is stored before alerting is set up: a broken routing file fails the task (Airflow
    shows it) without losing the result, and the alert goes out with the next result of the streak.
    The XCom holds the status, value, timings and alert keys; never result rows (they may hold
    business data) nor anything of the connection.
    """
    settings = load_planmon_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        store = ProbeStore(repository)
        summary, alerts = record_run(
            store.get(run["probe"]),
            repository.get_target(run["target"]),
            datetime.fromisoformat(run["run_at"]),
            connect_for=_connect_for,
            settings=settings,
            store=store,
        )
    summary["breaching_rows"] = len(summary["breaching_rows"])
    emit_metrics(summary)
    if alerts:
        with open_dispatcher(dag_id, run_id) as dispatcher:
            summary["delivery"] = dispatcher.send_probe_alerts(alerts).as_dict()
    return summary


def summarize(summaries: list[dict[str, Any]] | None) -> dict[str, Any]:
    finished = [s for s in summaries or [] if s]
    by_status: dict[str, int] = {}
    for summary in finished:
        by_status[summary["status"]] = by_status.get(summary["status"], 0) + 1
    totals = {
        "runs": len(finished),
        "by_status": dict(sorted(by_status.items())),
        "alerts_raised": sum(len(s["alerts_raised"]) for s in finished),
        "not_ok": sorted(f"{s['probe']}@{s['target']}" for s in finished if s["status"] != "ok"),
    }
    log.info("probe run: %s", totals)
    return totals


def emit_metrics(summary: dict[str, Any]) -> None:
    from airflow.sdk.observability.stats import Stats

    tags = {"probe": summary["probe"], "target": summary["target"], "status": summary["status"]}
    if summary.get("duration_ms") is not None:
        Stats.timing(f"{METRIC_PREFIX}.duration", summary["duration_ms"], tags=tags)
    if summary.get("value") is not None:
        Stats.gauge(f"{METRIC_PREFIX}.value", summary["value"], tags=tags)
    Stats.incr(f"{METRIC_PREFIX}.runs", tags=tags)
