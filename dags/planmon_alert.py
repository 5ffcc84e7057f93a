"""planmon_alert: send new and escalated regressions through the configured channels (dedup,
cooldown, retries of failed deliveries), a daily digest where configured, and gauges of the open
regressions by severity and kind. Runs when the analysis DAG updates ``planmon://regressions`` and on
its own cron (``PLANMON_ALERT_SCHEDULE``, default every 30 minutes) so failed deliveries are retried
and the digest goes out even on quiet days. Wiring only: the work is in ``planmon.airflow.alert_tasks``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from planmon.airflow.assets import REGRESSIONS
from planmon.airflow.defaults import PLANMON_TAG, default_args
from planmon.alerting.settings import alert_schedule

DAG_ID = "planmon_alert"
# Validated when the file is parsed (no I/O): a bad value fails this DAG's import naming the variable.
SCHEDULE = alert_schedule()


@dag(
    dag_id=DAG_ID,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(SCHEDULE, timezone="UTC"), assets=[REGRESSIONS]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two dispatches at once could both send the same new alert
    tags=[PLANMON_TAG],
    default_args=default_args(execution_timeout=timedelta(minutes=10)),
    doc_md=__doc__,
)
def planmon_alert() -> None:
    @task
    def dispatch(run_id: str | None = None) -> dict[str, Any]:
        from planmon.airflow.alert_tasks import dispatch_alerts

        return dispatch_alerts(DAG_ID, run_id)

    @task(trigger_rule="all_done")
    def digest(run_id: str | None = None) -> dict[str, Any]:
        from planmon.airflow.alert_tasks import send_digest

        return send_digest(DAG_ID, run_id)

    @task(trigger_rule="all_done")
    def open_regression_metrics() -> dict[str, int]:
        from planmon.airflow.alert_tasks import emit_open_regressions

        return emit_open_regressions()

    sent = dispatch()
    sent >> [digest(), open_regression_metrics()]


planmon_alert()
