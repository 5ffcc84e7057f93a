"""The approver's desk: what the approval step of ``planmon_remediate`` shows and whom it tells.

When the approval starts waiting, the body is rebuilt from the store (the rails that passed, the
predicted effect, the links) and a "waiting" message goes through planmon's alert routing with the
exact Required Actions link (Airflow's ``generate_link_to_ui_from_context``, from
``PLANMON_BASE_URL`` or ``[api] base_url``). On an answer the channels hear who answered; on the
timeout, that nothing ran. Reminders are sent by ``planmon_alert``'s runs (``remind_approvals``).
A message that cannot be delivered is recorded (and retried) and never fails the approval.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from planmon.airflow.connections import AirflowConnections, open_repository
from planmon.alerting.approvals import ApprovalEvent, ApprovalFacts, build_approval_message
from planmon.alerting.messages import RunLinks, TargetInfo
from planmon.config import Settings, load_settings
from planmon.errors import PlanmonError
from planmon.remediation import rails
from planmon.remediation.workflow import Proposed, RemediationWorkflow
from planmon.store.repository import as_utc_naive, utcnow

log = logging.getLogger(__name__)


def approval_link(context: Mapping[str, Any], settings: Settings) -> str | None:
    """The exact Required Actions link of this task (None, logged, when no base URL is configured)."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    try:
        return HITLOperator.generate_link_to_ui_from_context(context=context, base_url=settings.base_url)  # type: ignore[arg-type]
    except ValueError as exc:
        log.warning("no Required Actions link in approval messages: %s (set PLANMON_BASE_URL)", exc)
        return None


def _regression_line(proposed: Proposed, regression: Mapping[str, Any], target: str) -> str:
    metric = str(regression.get("metric") or "")
    return (
        f"{regression.get('kind')} on {target}, severity {regression.get('severity')}: {metric} mean "
        f"{regression.get('baseline_mean') or 0:.0f} -> {regression.get('current_mean') or 0:.0f} "
        f"(x{regression.get('ratio') or 0:.2f}), impact {regression.get('impact') or 0:.1f} s/h"
    )


def _facts(
    steps: RemediationWorkflow,
    proposed: Proposed,
    *,
    run_id: str | None,
    approval_url: str | None,
    waiting_since: datetime | None,
    timeout: timedelta | None,
) -> ApprovalFacts:
    record = proposed.remediation
    context = steps.context(record)
    target = context.target
    settings = steps.settings
    timeout_at = waiting_since + timeout if waiting_since and timeout else None
    share = settings.remediation_reminder_share
    reminder_at = waiting_since + timeout * share if waiting_since and timeout and share > 0 else None
    return ApprovalFacts(
        remediation_id=record.id,
        regression_id=record.regression_id,
        run_id=run_id,
        target=TargetInfo(target.name, target.engine, target.environment, dict(target.tags)),
        severity=str(context.regression.get("severity") or "medium"),
        action=record.action.value,
        sql=record.sql_text,
        regression_line=_regression_line(proposed, context.regression, target.name),
        body=proposed.body,
        approval_url=approval_url,
        regression_url=RunLinks(settings.base_url).regression_url(record.regression_id),
        channels=rails.policy_of(target).approval_channels,
        waiting_since=waiting_since,
        timeout_at=timeout_at,
        reminder_at=reminder_at,
        assigned_users=proposed.assigned_users,
    )


def _send(facts: ApprovalFacts, event: ApprovalEvent, responded_by: str | None = None) -> None:
    from planmon.airflow.alert_tasks import emit_delivery_metrics, open_dispatcher

    message = build_approval_message(facts, event, responded_by=responded_by)
    try:
        with open_dispatcher("planmon_remediate", facts.run_id) as dispatcher:
            result = dispatcher.send_approval_message(message)
    except PlanmonError as exc:  # a bad routing file: said in the log, the approval itself goes on
        log.error("approval message %s not sent: %s", message.dedup_key, exc)
        return
    emit_delivery_metrics(result)


def await_approval(
    proposal: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    timeout: timedelta | None,
) -> Proposed:
    """The approval's subject and body as of now; tells the approvers' channels it waits."""
    settings = load_settings()
    approval_url = approval_link(context, settings)
    run_id = context.get("run_id")
    with open_repository(settings) as repository:
        repository.require_schema()
        steps = RemediationWorkflow(repository, settings, AirflowConnections())
        proposed = steps.describe(int(proposal["id"]), approval_url=approval_url)
        facts = _facts(
            steps, proposed, run_id=run_id, approval_url=approval_url, waiting_since=utcnow(), timeout=timeout
        )
    if settings.remediation_notify:
        _send(facts, ApprovalEvent.WAITING)
    return proposed


def announce_answer(
    proposal: Mapping[str, Any] | None,
    decision: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    timed_out: bool,
) -> None:
    """Tell the approvers' channels who answered, or that the timeout applied and nothing ran."""
    if not proposal or proposal.get("refused"):
        return
    settings = load_settings()
    if not settings.remediation_notify:
        return
    user = decision.get("responded_by_user") or {}
    responded_by = str(user.get("id") or user.get("name")) if user else None
    approved = (decision.get("chosen_options") or [None])[0] == "Approve"
    if timed_out or not responded_by:
        event = ApprovalEvent.TIMEOUT
    else:
        event = ApprovalEvent.APPROVED if approved else ApprovalEvent.REJECTED
    approval_url = approval_link(context, settings)
    with open_repository(settings) as repository:
        repository.require_schema()
        steps = RemediationWorkflow(repository, settings, AirflowConnections())
        record = steps.remediation(int(proposal["id"]))
        proposed = Proposed(
            remediation=record,
            created=False,
            needs_approval=True,
            subject=str(proposal.get("subject") or ""),
            body=str(proposal.get("body") or ""),
            assigned_users=tuple(proposal.get("assigned_users") or ()),
        )
        waiting_since = _waiting_since(context)
        facts = _facts(
            steps,
            proposed,
            run_id=context.get("run_id"),
            approval_url=approval_url,
            waiting_since=waiting_since,
            timeout=getattr(context.get("task"), "response_timeout", None),
        )
    _send(facts, event, responded_by=responded_by)


def _waiting_since(context: Mapping[str, Any]) -> datetime | None:
    ti = context.get("ti")
    start = getattr(ti, "start_date", None)
    return as_utc_naive(start) if isinstance(start, datetime) else None
