"""planmon_analyze: detect regressions for each data interval (hourly) against its baseline window,
and again whenever collection announces new statistics. Idempotent per interval, so
`airflow backfill create --dag-id planmon_analyze --from-date ... --to-date ...` re-derives history
and a second backfill of the same dates changes nothing. New regressions on targets whose remediation
mode is not ``off`` each trigger one planmon_remediate run. Wiring only: see planmon.analysis.service.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, dag, task

from planmon.airflow.assets import REGRESSIONS, RUNTIME_STATS
from planmon.airflow.defaults import PLANMON_TAG, default_args

SCHEDULE = os.environ.get("PLANMON_ANALYZE_SCHEDULE", "0 * * * *")


@dag(
    dag_id="planmon_analyze",
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"), assets=RUNTIME_STATS
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=[PLANMON_TAG],
    default_args=default_args(execution_timeout=timedelta(minutes=20)),
    doc_md=__doc__,
)
def planmon_analyze() -> None:
    @task(outlets=[REGRESSIONS])
    def analyze(data_interval_start: Any = None, data_interval_end: Any = None) -> dict[str, Any]:
        from planmon.airflow.analyze_tasks import analyze_interval

        return analyze_interval(data_interval_start, data_interval_end)

    @task
    def remediation_confs(summary: dict[str, Any]) -> list[dict[str, int]]:
        from planmon.airflow.analyze_tasks import remediation_confs as confs

        return confs(summary)

    summary = analyze()
    # one planmon_remediate run per new regression on a target whose mode allows it (none: skipped)
    TriggerDagRunOperator.partial(
        task_id="trigger_remediation", trigger_dag_id="planmon_remediate", wait_for_completion=False
    ).expand(conf=remediation_confs(summary))


planmon_analyze()
