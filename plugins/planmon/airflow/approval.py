"""The approval step of ``planmon_remediate``: Airflow's ApprovalOperator fed by the proposal, and
the recording of its answer on the remediation.

Kept apart from ``remediate_tasks`` so the DAG file imports only this class at parse time (the
workflow, and the settings it reads, are imported when a task runs). ``remediate_tasks`` imports
from here, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

PROPOSE, APPROVAL, APPLY = "propose", "approval", "apply"
DECISION_KEY = "decision"  # the approval's answer, pushed by RemediationApproval


class RemediationApproval(ApprovalOperator):
    """The human-in-the-loop step: subject, markdown body and assigned users come from the proposal."""

    def execute(self, context: Any) -> Any:
        """Show the proposal as of now (rails passed, prediction, links) and tell the approvers'
        channels that it waits, with the exact Required Actions link (planmon.airflow.approval_desk)."""
        from planmon.airflow.approval_desk import await_approval

        proposal = context["ti"].xcom_pull(task_ids=PROPOSE)
        described = await_approval(proposal, context, timeout=self.response_timeout)
        self.subject = described.subject
        self.body = described.body
        users = described.assigned_users
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
            proposal = context["ti"].xcom_pull(task_ids=PROPOSE)
            record_answer(proposal, decision)
            from planmon.airflow.approval_desk import announce_answer

            announce_answer(proposal, decision, context, timed_out=bool(event.get("timedout")))
        return super().execute_complete(context, event)


def record_answer(proposal: Mapping[str, Any] | None, decision: Mapping[str, Any] | None) -> None:
    """Store an approval's answer on the remediation (idempotent: the first answer stands)."""
    if not proposal or proposal.get("refused") or not decision:
        return
    from planmon.airflow.connections import open_repository
    from planmon.config import load_settings
    from planmon.remediation.workflow import RemediationWorkflow

    settings = load_settings()
    with open_repository(settings) as repository:
        RemediationWorkflow(repository, settings).record_decision(
            int(proposal["id"]),
            approved=(decision.get("chosen_options") or [None])[0] == ApprovalOperator.APPROVE,
            responded_by=_responder(decision),
            responded_at=_responded_at(decision),
        )


def _responder(decision: Mapping[str, Any]) -> str | None:
    user = decision.get("responded_by_user") or None
    if not user:
        return None
    return str(user.get("id") or user.get("name"))


def _responded_at(decision: Mapping[str, Any]) -> datetime | None:
    value = decision.get("responded_at")
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)
