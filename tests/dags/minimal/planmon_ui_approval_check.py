"""A DAG with one approval task, so the UI test can see a pending approval as Airflow stores it."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import dag

from planmon.airflow.defaults import PLANMON_TAG, default_args


@dag(
    dag_id="planmon_ui_approval_check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=[PLANMON_TAG],
    default_args=default_args(),
)
def planmon_ui_approval_check() -> None:
    ApprovalOperator(task_id="approval", subject="Approve recreate_index on shop?", body="CREATE INDEX ...")


planmon_ui_approval_check()
