"""planmon_probes: run the DBA's own check queries (probes) and the built-in ones on every target
they select, store each result, and alert on breaches through the alerting pipeline.

Every run (``PLANMON_PROBES_SCHEDULE``, default every 5 minutes) syncs the probe files into the
store, runs each probe whose own cron fires inside the run's data interval (one mapped task per
probe and target, in the ``planmon_targets`` pool) and summarises. A probe that fails is a recorded
result, never a blocked run. Wiring only: the work is in ``planmon.airflow.probe_tasks``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, task

from planmon.airflow.defaults import PLANMON_TAG, default_args
from planmon.config import dag_setting

DAG_ID = "planmon_probes"
# Validated when the file is parsed (no I/O): a bad value fails this DAG's import naming the variable.
SCHEDULE = dag_setting("probes_schedule")
POOL = dag_setting("targets_pool")


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=[PLANMON_TAG],
    default_args=default_args(execution_timeout=timedelta(minutes=10)),
    doc_md=__doc__,
)
def planmon_probes() -> None:
    @task
    def plan(data_interval_start: Any = None, data_interval_end: Any = None) -> list[dict[str, str]]:
        from planmon.airflow.probe_tasks import plan_probe_runs

        return plan_probe_runs(data_interval_start, data_interval_end)

    @task(
        pool=POOL,
        map_index_template="{{ task.op_kwargs['run']['probe'] }}@{{ task.op_kwargs['run']['target'] }}",
    )
    def run_probe(run: dict[str, str], run_id: str | None = None) -> dict[str, Any]:
        from planmon.airflow.probe_tasks import run_probe_task

        return run_probe_task(run, DAG_ID, run_id)

    @task(trigger_rule="all_done")
    def summarize(summaries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        from planmon.airflow.probe_tasks import summarize as summarize_run

        return summarize_run(summaries)

    summarize(run_probe.expand(run=plan()))


planmon_probes()
