"""planmon_collect: every data interval, collect runtime statistics and new plans from each enabled
target (one mapped task per target in the ``planmon_targets`` pool) and announce the asset the
analysis DAG runs on. Wiring only: the work lives in ``planmon.airflow.collect_tasks``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, task

from planmon.airflow.assets import RUNTIME_STATS
from planmon.airflow.defaults import PLANMON_TAG, default_args
from planmon.config import dag_setting

# Validated when the file is parsed (no I/O): a bad value fails this DAG's import naming the variable.
SCHEDULE = dag_setting("collect_schedule")
POOL = dag_setting("targets_pool")


@dag(
    dag_id="planmon_collect",
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=[PLANMON_TAG],
    default_args=default_args(execution_timeout=timedelta(minutes=10)),
    doc_md=__doc__,
)
def planmon_collect() -> None:
    @task
    def list_targets() -> list[str]:
        from planmon.airflow.collect_tasks import enabled_target_names

        return enabled_target_names()

    @task(pool=POOL, map_index_template="{{ task.op_kwargs['target_name'] }}")
    def collect(
        target_name: str,
        data_interval_start: Any = None,
        data_interval_end: Any = None,
        dag_run: Any = None,
    ) -> dict[str, Any]:
        from planmon.airflow.collect_tasks import collect_one

        run_after = getattr(dag_run, "run_after", None)
        return collect_one(target_name, data_interval_start, data_interval_end, run_after=run_after)

    @task(trigger_rule="all_done", outlets=[RUNTIME_STATS])
    def summarize(
        summaries: list[dict[str, Any]] | None = None,
        data_interval_start: Any = None,
        data_interval_end: Any = None,
        outlet_events: Any = None,
        dag_run: Any = None,
    ) -> dict[str, Any]:
        from planmon.airflow.analyze_tasks import collected_event_extra
        from planmon.airflow.collect_tasks import run_window
        from planmon.airflow.collect_tasks import summarize as summarize_run

        # the asset event names the interval collected: the analysis it triggers analyses that
        if outlet_events is not None:
            window = run_window(data_interval_start, data_interval_end, getattr(dag_run, "run_after", None))
            outlet_events[RUNTIME_STATS].extra = collected_event_extra(*window)
        return summarize_run(summaries)

    summarize(collect.expand(target_name=list_targets()))


planmon_collect()
