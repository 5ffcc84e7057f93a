"""planmon_remediate: one regression (conf ``{"regression_id": N}``) -> proposal -> safety rails ->
approval by a person (Required Actions; Reject or no answer before the timeout runs nothing) -> apply
through the target's remediation connection, inside lock and statement timeouts -> verification
without holding a worker slot (a rescheduling sensor re-collects the target until N executions or M
minutes) -> keep and resolve the regression, or roll back and record why. Every step is audited.
Wiring only: the work is in ``planmon.airflow.remediate_tasks`` and ``planmon.remediation``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import PokeReturnValue, dag, task

from planmon.airflow.approval import APPLY, APPROVAL, DECISION_KEY, RemediationApproval
from planmon.airflow.defaults import PLANMON_TAG, default_args
from planmon.config import dag_setting

DAG_ID = "planmon_remediate"


# Validated when the file is parsed (no I/O): a bad value fails this DAG's import naming the variable.
APPROVAL_TIMEOUT = timedelta(hours=dag_setting("remediation_approval_timeout_hours"))
POKE_SECONDS = dag_setting("remediation_poke_seconds")
VERIFY_DEADLINE = timedelta(minutes=dag_setting("remediation_verify_minutes") + 30.0)


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=[PLANMON_TAG],
    default_args=default_args(execution_timeout=timedelta(hours=2), retries=1),
    doc_md=__doc__,
    params={"regression_id": None},
)
def planmon_remediate() -> None:
    @task
    def propose(dag_run: Any = None, run_id: str | None = None) -> dict[str, Any]:
        from planmon.airflow.remediate_tasks import propose as propose_step

        return propose_step(dag_run.conf if dag_run is not None else {}, run_id)

    @task.branch
    def gate(proposal: dict[str, Any]) -> list[str]:
        from planmon.airflow.remediate_tasks import gate as gate_step

        return gate_step(proposal)

    approval = RemediationApproval(
        task_id=APPROVAL,
        subject="planmon remediation",  # replaced by the proposal's subject when the task runs
        body=None,
        defaults=["Reject"],
        response_timeout=APPROVAL_TIMEOUT,
    )

    # a retry never runs an action twice: once statements ran, a failure is recorded as failed and
    # a retry refuses; only a remediation connection that could not be opened leaves it approved
    @task(task_id=APPLY, trigger_rule="none_failed_min_one_success")
    def apply(proposal: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        from planmon.airflow.remediate_tasks import apply as apply_step

        return apply_step(proposal, ti.xcom_pull(task_ids=APPROVAL, key=DECISION_KEY))

    @task.sensor(mode="reschedule", poke_interval=POKE_SECONDS, timeout=VERIFY_DEADLINE.total_seconds())
    def wait_for_verification(proposal: dict[str, Any]) -> PokeReturnValue:
        from planmon.airflow.remediate_tasks import poke_verification

        verdict = poke_verification(proposal)
        return PokeReturnValue(is_done=verdict is not None, xcom_value=verdict)

    @task
    def conclude(proposal: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
        from planmon.airflow.remediate_tasks import conclude as conclude_step

        return conclude_step(proposal, verdict)

    @task(trigger_rule="all_done")
    def finalize(proposal: dict[str, Any] | None = None, ti: Any = None) -> dict[str, Any]:
        from planmon.airflow.remediate_tasks import finalize as finalize_step

        return finalize_step(proposal, ti.xcom_pull(task_ids=APPROVAL, key=DECISION_KEY))

    proposal = propose()
    gated = gate(proposal)
    applied = apply(proposal)
    gated >> [approval, applied]
    approval >> applied
    verdict = wait_for_verification(proposal)
    applied >> verdict
    concluded = conclude(proposal, verdict)
    concluded >> finalize(proposal)


planmon_remediate()
