"""The approval step of ``planmon_remediate``: Airflow's ApprovalOperator fed by the proposal.

Kept apart from ``remediate_tasks`` so the DAG file imports only this class at parse time (the task
callables, and the settings they read, are imported when a task runs).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

PROPOSE, APPROVAL, APPLY = "propose", "approval", "apply"
DECISION_KEY = "decision"  # the approval's answer, pushed by RemediationApproval


class RemediationApproval(ApprovalOperator):
    """The human-in-the-loop step: subject, markdown body and assigned users come from the proposal."""

    def execute(self, context: Any) -> Any:
        proposal = context["ti"].xcom_pull(task_ids=PROPOSE)
        self.subject = proposal["subject"]
        self.body = proposal["body"]
        users = proposal.get("assigned_users") or []
        self.assigned_users = [{"id": user, "name": user} for user in users] or None
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Record the answer (who, when, which option) before the operator acts on it: a Reject skips
        the downstream tasks by raising, so its return value never reaches XCom."""
        if "error" not in event:
            decision = {
                "chosen_options": list(event.get("chosen_options") or []),
                "responded_by_user": event.get("responded_by_user"),
                "responded_at": _iso(event.get("responded_at")),
            }
            context["ti"].xcom_push(key=DECISION_KEY, value=decision)
            from planmon.airflow.remediate_tasks import record_answer

            record_answer(context["ti"].xcom_pull(task_ids=PROPOSE), decision)
        return super().execute_complete(context, event)


def _iso(value: Any) -> str | None:
    from datetime import datetime

    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)
