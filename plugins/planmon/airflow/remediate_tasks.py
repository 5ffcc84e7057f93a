"""Task callables of ``planmon_remediate``: each reads settings when it starts, opens the repository,
and calls one step of :class:`planmon.remediation.workflow.RemediationWorkflow` with the targets'
Airflow connections. What goes to XCom is ids, states and texts a DBA reads (never a credential,
never a plan body). Collection and remediation use different Airflow connection ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from planmon.airflow.approval import APPLY, APPROVAL, record_answer
from planmon.airflow.connections import AirflowConnections, open_repository
from planmon.analysis.statistics import Moments
from planmon.config import load_settings
from planmon.errors import RefusalReason, RemediationRefused
from planmon.model import Remediation, RemediationState
from planmon.remediation.verify import Outcome, Verdict
from planmon.remediation.workflow import RemediationWorkflow, Route

log = logging.getLogger(__name__)


@contextmanager
def workflow() -> Iterator[RemediationWorkflow]:
    """The remediation workflow on the configured repository, through the targets' Airflow connections."""
    settings = load_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        yield RemediationWorkflow(repository, settings, AirflowConnections())


def regression_id_from(conf: Mapping[str, Any] | None) -> int:
    """The regression id from the run's conf (``{"regression_id": 12}``)."""
    value = (conf or {}).get("regression_id")
    if value is None:
        raise RemediationRefused(
            'planmon_remediate needs conf {"regression_id": <id>}',
            reason=RefusalReason.NO_ACTION,
            hint="trigger it from the UI with that conf, or let planmon_analyze trigger it",
        )
    return int(value)


def propose(conf: Mapping[str, Any] | None, run_id: str | None) -> dict[str, Any]:
    """Build (or find) the proposal; a refusal is returned as data so the gate can stop the run."""
    regression_id = regression_id_from(conf)
    with workflow() as steps:
        try:
            proposed = steps.propose(regression_id, dag_run_id=run_id)
        except RemediationRefused as refusal:
            log.warning("regression %d: no proposal: %s", regression_id, refusal)
            return {"refused": refusal.reason.value, "message": str(refusal), "regression_id": regression_id}
    return proposed.as_dict()


def gate(proposal: Mapping[str, Any]) -> list[str]:
    """Rails, then where the run goes: approval (a person), apply (mode auto, allow-listed), or nowhere."""
    if proposal.get("refused"):
        return []
    with workflow() as steps:
        route = steps.gate(int(proposal["id"]))
    return {Route.APPROVAL: [APPROVAL], Route.APPLY: [APPLY], Route.STOP: []}[route]


def apply(proposal: Mapping[str, Any], decision: Mapping[str, Any] | None) -> dict[str, Any]:
    """Record the approval (with the approver's identity), then run the SQL through the remediation
    connection; the workflow collects right after, so verification counts only executions after it."""
    record_answer(proposal, decision)  # normally recorded by the approval task already
    with workflow() as steps:
        applied = steps.apply(int(proposal["id"]))
    return {"id": applied.id, "state": applied.state.value, "applied_at": str(applied.applied_at)}


def poke_verification(proposal: Mapping[str, Any]) -> dict[str, Any] | None:
    """One look: the action still in effect, the target collected, judged; None while still waiting
    for N executions / M minutes."""
    with workflow() as steps:
        current = steps.remediation(int(proposal["id"]))
        looked = steps.look(current.id) if current.state is RemediationState.APPLIED else current
    if isinstance(looked, Remediation):
        return {"outcome": "concluded", "state": looked.state.value}
    if looked.outcome is Outcome.WAITING:
        log.info("remediation %s: %s", proposal["id"], looked.reason)
        return None
    return looked.as_dict()


def _verdict(value: Mapping[str, Any]) -> Verdict:
    """A verdict back from XCom (``Verdict.as_dict``)."""

    def moments(side: Mapping[str, Any] | None) -> Moments | None:
        return None if side is None else Moments(side["mean"], side["stdev"] ** 2, side["executions"])

    return Verdict(
        Outcome(value["outcome"]),
        value["reason"],
        moments(value["post_apply"]),
        moments(value["regressed"]) or Moments(0, 0, 0),
        moments(value["baseline"]) or Moments(0, 0, 0),
        value.get("p_value"),
        bool(value.get("back_at_baseline")),
    )


def conclude(proposal: Mapping[str, Any], verdict: Mapping[str, Any]) -> dict[str, Any]:
    """Keep (and resolve the regression) or roll back, from the verification's verdict."""
    remediation_id = int(proposal["id"])
    if verdict.get("outcome") == "concluded":
        return {"id": remediation_id, "state": verdict["state"]}
    with workflow() as steps:
        concluded = steps.conclude(remediation_id, _verdict(verdict))
    return {"id": remediation_id, "state": concluded.state.value, "outcome_reason": concluded.outcome_reason}


def finalize(proposal: Mapping[str, Any] | None, decision: Mapping[str, Any] | None) -> dict[str, Any]:
    """Always runs last: records a rejection (or the timeout's default Reject) and reports the state."""
    if not proposal or proposal.get("refused"):
        return dict(proposal or {})
    record_answer(proposal, decision)  # normally recorded by the approval task already
    with workflow() as steps:
        final = steps.remediation(int(proposal["id"]))
    log.info("remediation %d ends the run %s: %s", final.id, final.state.value, final.outcome_reason or "")
    return {
        "id": final.id,
        "state": final.state.value,
        "action": final.action.value,
        "approved_by": final.approved_by,
        "outcome_reason": final.outcome_reason,
    }
