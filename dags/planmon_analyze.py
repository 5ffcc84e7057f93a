"""planmon_analyze: detect regressions for each data interval (hourly) against its baseline window,
and again whenever collection announces new statistics (then over the intervals that collection
produced, at least the hour ending with the newest; see planmon.airflow.analyze_tasks.analysis_window).
The enabled targets are split into batches of PLANMON_ANALYZE_BATCH_TARGETS, one mapped ``analyze``
task each, at most PLANMON_ANALYZE_PARALLEL_BATCHES at once; ``merge`` announces the regressions
once per run. Idempotent per interval, so
`airflow backfill create --dag-id planmon_analyze --from-date ... --to-date ...` re-derives history
and a second backfill of the same dates changes nothing. New regressions on targets whose remediation
mode is not ``off`` each trigger one planmon_remediate run. Wiring only: see planmon.analysis.service.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, dag, task

from planmon.airflow.assets import REGRESSIONS, RUNTIME_STATS
from planmon.airflow.defaults import PLANMON_TAG, default_args
from planmon.config import dag_setting

# Validated when the file is parsed (no I/O): a bad value fails this DAG's import naming the variable.
SCHEDULE = dag_setting("analyze_schedule")
# how many batches of targets one run analyses at once (each holds one batch's window in memory)
BATCH_LABEL = "{{ task.op_kwargs['batch']['targets'][0] }}..{{ task.op_kwargs['batch']['targets'][-1] }}"
PARALLEL_BATCHES = dag_setting("analyze_parallel_batches")


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
    @task
    def plan_batches(
        data_interval_start: Any = None,
        data_interval_end: Any = None,
        triggering_asset_events: Any = None,
        dag_run: Any = None,
    ) -> list[dict[str, Any]]:
        from planmon.airflow.analyze_tasks import collected_intervals
        from planmon.airflow.analyze_tasks import plan_batches as batches

        return batches(
            data_interval_start,
            data_interval_end,
            collected=collected_intervals(triggering_asset_events),
            run_after=getattr(dag_run, "run_after", None),
        )

    @task(
        max_active_tis_per_dagrun=PARALLEL_BATCHES,
        map_index_template=BATCH_LABEL,
    )
    def analyze(batch: dict[str, Any]) -> dict[str, Any]:
        from planmon.airflow.analyze_tasks import analyze_batch

        return analyze_batch(batch)

    @task(outlets=[REGRESSIONS])
    def merge(summaries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        from planmon.airflow.analyze_tasks import merge_summaries

        return merge_summaries(summaries)

    @task
    def remediation_confs(summary: dict[str, Any]) -> list[dict[str, int]]:
        from planmon.airflow.analyze_tasks import remediation_confs as confs

        return confs(summary)

    summary = merge(analyze.expand(batch=plan_batches()))
    # one planmon_remediate run per new regression on a target whose mode allows it (none: skipped)
    TriggerDagRunOperator.partial(
        task_id="trigger_remediation", trigger_dag_id="planmon_remediate", wait_for_completion=False
    ).expand(conf=remediation_confs(summary))


planmon_analyze()
