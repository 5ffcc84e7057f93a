"""planmon_maintenance: daily housekeeping of planmon's repository: runtime statistics rolled up as
they age (collected rows older than PLANMON_STATS_FINE_DAYS into hourly rows, hourly rows older than
PLANMON_STATS_HOURLY_DAYS into daily rows; idempotent), then the retention purge (runtime
statistics, collection runs, probe results, sent alerts, finished remediations and resolved
regressions older than the retention, in bounded batches; open regressions, pending remediations and
the audit log stay). Wiring only: the work is in ``planmon.airflow.maintenance_tasks``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, dag, task

from planmon.airflow.defaults import PLANMON_TAG, default_args
from planmon.config import dag_setting

# Validated when the file is parsed (no I/O): a bad value fails this DAG's import naming the variable.
SCHEDULE = dag_setting("maintenance_schedule")


@dag(
    dag_id="planmon_maintenance",
    schedule=CronTriggerTimetable(SCHEDULE, timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=[PLANMON_TAG],
    default_args=default_args(execution_timeout=timedelta(hours=1)),
    doc_md=__doc__,
)
def planmon_maintenance() -> None:
    @task
    def roll_up(logical_date: Any = None) -> dict[str, Any]:
        from planmon.airflow.maintenance_tasks import roll_up as roll_up_stats

        return roll_up_stats(logical_date)

    @task
    def purge(logical_date: Any = None) -> dict[str, Any]:
        from planmon.airflow.maintenance_tasks import purge as purge_repository

        return purge_repository(logical_date)

    roll_up() >> purge()


planmon_maintenance()
