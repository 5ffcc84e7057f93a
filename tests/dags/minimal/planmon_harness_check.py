"""A minimal DAG the harness runs with ``dag.test()``: planmon's library inside a real Airflow run."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from planmon.airflow.defaults import PLANMON_TAG, default_args


@dag(
    dag_id="planmon_harness_check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=[PLANMON_TAG],
    default_args=default_args(),
)
def planmon_harness_check() -> None:
    @task
    def read_settings() -> dict[str, int]:
        from planmon.config import load_settings

        settings = load_settings()
        return {"baseline_days": settings.baseline_days, "row_limit": settings.collect_row_limit}

    @task
    def double(values: dict[str, int]) -> int:
        return values["baseline_days"] * 2

    double(read_settings())


planmon_harness_check()
