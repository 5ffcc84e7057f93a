"""Messages about approvals (the approver's desk): waiting, reminder, timeout, answered.

A remediation waiting in Airflow's Required Actions page is announced through alert routing like a
regression alert (the target's environment, tags and the regression's severity pick the channels),
or to the target policy's ``approval_channels`` when it names some. The message carries the
regression in one line, the action, the exact SQL and two links (the Required Actions task, built
by Airflow's own HITL link helper, and planmon's regression page); its lines are the approval
body's markdown, so the Required Actions page and the messages read the same.

Dedup keys ``approval:{remediation}:{run}:{event}`` are sent once per channel; deliveries are rows
of the ``alert`` table like every alert (pending -> sent / failed, retried by ``planmon_alert``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from planmon.alerting.messages import AlertMessage, TargetInfo

APPROVAL_KIND = "approval"
KEY_PREFIX = "approval:"


class ApprovalEvent(enum.StrEnum):
    WAITING = "waiting"
    REMINDER = "reminder"
    TIMEOUT = "timeout"
    APPROVED = "approved"
    REJECTED = "rejected"


def approval_dedup_key(remediation_id: int, run_id: str | None, event: ApprovalEvent) -> str:
    return f"{KEY_PREFIX}{remediation_id}:{run_id or '-'}:{event.value}"


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    """What every approval message says: the remediation, its regression and where to answer."""

    remediation_id: int
    regression_id: int
    run_id: str | None
    target: TargetInfo
    severity: str
    action: str
    sql: str
    regression_line: str  # the regression in one line (kind, metric, numbers, impact)
    body: str  # the approval body (markdown), exactly as the Required Actions page shows it
    approval_url: str | None = None
    regression_url: str | None = None
    channels: tuple[str, ...] = ()  # the target policy's approval_channels (empty: routed like alerts)
    waiting_since: datetime | None = None
    timeout_at: datetime | None = None
    reminder_at: datetime | None = None
    assigned_users: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


def build_approval_message(
    facts: ApprovalFacts, event: ApprovalEvent, *, responded_by: str | None = None
) -> AlertMessage:
    """The message for one approval event; ``responded_by`` names who answered (approved/rejected)."""
    where = f"{facts.action} on {facts.target.name}"
    head = {
        ApprovalEvent.WAITING: f"Approval waiting: {where} (regression {facts.regression_id})",
        ApprovalEvent.REMINDER: f"Reminder, approval still waiting: {where} "
        f"(regression {facts.regression_id})",
        ApprovalEvent.TIMEOUT: f"Approval timed out, nothing ran: {where} (regression {facts.regression_id})",
        ApprovalEvent.APPROVED: f"Approved by {responded_by}: {where} (regression {facts.regression_id})",
        ApprovalEvent.REJECTED: f"Rejected by {responded_by}: {where}, nothing ran "
        f"(regression {facts.regression_id})",
    }[event]
    lines = [f"Regression: {facts.regression_line}", f"Action: {facts.action}", "SQL:", facts.sql]
    if event is ApprovalEvent.WAITING or event is ApprovalEvent.REMINDER:
        who = ", ".join(facts.assigned_users) or "anyone who may run planmon_remediate"
        lines += [
            f"Who may answer: {who}. No answer by {_when(facts.timeout_at)} means Reject: nothing runs.",
            "",
            facts.body,
        ]
    elif event is ApprovalEvent.TIMEOUT:
        lines.append(
            f"Nobody answered by {_when(facts.timeout_at)}: the default Reject applied and nothing ran "
            "on the target. Trigger planmon_remediate again to ask again."
        )
    elif event is ApprovalEvent.APPROVED:
        lines.append(f"{responded_by} approved it: planmon runs the SQL now, then verifies it.")
    else:
        lines.append(f"{responded_by} rejected it: nothing ran on the target.")
    links = tuple(
        (label, url)
        for label, url in (
            ("Required Actions", facts.approval_url),
            ("planmon regression", facts.regression_url),
        )
        if url
    )
    details = {
        "event": event.value,
        "remediation_id": facts.remediation_id,
        "regression_id": facts.regression_id,
        "run_id": facts.run_id,
        "target": facts.target.name,
        "action": facts.action,
        "responded_by": responded_by,
        "approval_url": facts.approval_url,
        "waiting_since": facts.waiting_since.isoformat() if facts.waiting_since else None,
        "timeout_at": facts.timeout_at.isoformat() if facts.timeout_at else None,
        "reminder_at": facts.reminder_at.isoformat() if facts.reminder_at else None,
        "channels": list(facts.channels),
        "environment": facts.target.environment,
        "tags": dict(facts.target.tags),
        "engine": facts.target.engine,
        "body_markdown": facts.body,
        "reason": "new",
    }
    return AlertMessage(
        dedup_key=approval_dedup_key(facts.remediation_id, facts.run_id, event),
        kind=APPROVAL_KIND,
        severity=facts.severity,
        title=f"planmon: {head}",
        lines=tuple(lines),
        facts=(
            ("Target", f"{facts.target.name} ({facts.target.engine or 'engine unknown'})"),
            ("Remediation", str(facts.remediation_id)),
            ("Waiting since", _when(facts.waiting_since)),
            ("Times out", _when(facts.timeout_at)),
        ),
        links=links,
        details=details,
    )


def reminder_from(waiting: AlertMessage) -> AlertMessage:
    """The reminder of a stored waiting message (same lines and links, its own key)."""
    details = dict(waiting.details)
    details["event"] = ApprovalEvent.REMINDER.value
    key = waiting.dedup_key.rsplit(":", 1)[0] + f":{ApprovalEvent.REMINDER.value}"
    title = waiting.title.replace("Approval waiting:", "Reminder, approval still waiting:", 1)
    return AlertMessage(
        dedup_key=key,
        kind=APPROVAL_KIND,
        severity=waiting.severity,
        title=title,
        lines=waiting.lines,
        facts=waiting.facts,
        links=waiting.links,
        details=details,
    )


def target_of(message: AlertMessage) -> TargetInfo:
    """The target an approval message is about, as routing needs it (from its details)."""
    details = message.details
    tags = details.get("tags") or {}
    return TargetInfo(
        name=str(details.get("target") or ""),
        engine=str(details.get("engine") or ""),
        environment=details.get("environment"),
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {},
    )


def channels_of(message: AlertMessage) -> Sequence[str]:
    return [str(c) for c in message.details.get("channels") or ()]
