"""Task callables and the approval operator of ``planmon_remediate``.

Every callable reads settings when it starts, opens the repository, and calls one step of
``planmon.remediation.service``; what goes to XCom is ids, states and texts a DBA reads (never a
credential, never a plan body). Collection and remediation use different Airflow connection ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from planmon.airflow.approval import APPLY, APPROVAL
from planmon.airflow.connections import connection_exists, connection_factory, open_repository
from planmon.config import Settings, load_settings
from planmon.errors import RefusalReason, RemediationRefused
from planmon.model import Target
from planmon.remediation import service
from planmon.remediation.context import IndexInspector
from planmon.remediation.model import Action, State
from planmon.remediation.verify import Outcome
from planmon.store import Repository
from planmon.store.remediations import RemediationStore

log = logging.getLogger(__name__)


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


def index_inspector(target: Target, settings: Settings) -> IndexInspector:
    """Live, read-only look at the target's current indexes through its *collection* connection."""
    from planmon.engines import get_engine

    def inspect(database: str, tables: Any) -> set[tuple[str, str]]:
        connect = connection_factory(target.engine, target.conn_id)
        adapter = get_engine(target.engine)(
            connect, target_name=target.name, databases=target.databases, settings=settings
        )
        try:
            return {(d.table, d.index_name) for d in adapter.index_definitions(database, tables)}
        finally:
            adapter.close()

    return inspect


def query_store_reader(target: Target) -> service.QueryStoreReader:
    """SQL Server: the query's forcing state and APC's recommendations, read live before proposing."""
    from planmon.remediation.context import RegressionContext
    from planmon.remediation.sqlserver import QueryStoreState, read_state

    def read(context: RegressionContext, ours: frozenset[int]) -> QueryStoreState:
        connection = connection_factory(target.engine, target.conn_id)(context.database_name or None)
        try:
            return read_state(connection, int(context.query_key), planmon_forced=ours)
        finally:
            connection.close()

    return read


def propose(conf: Mapping[str, Any] | None, run_id: str | None) -> dict[str, Any]:
    """Build (or find) the proposal; a refusal is returned as data so the gate can stop the run."""
    settings = load_settings()
    regression_id = regression_id_from(conf)
    with open_repository(settings) as repository:
        repository.require_schema()
        context_target = RemediationStore(repository).regression_context(regression_id).target
        inspector = None
        if connection_exists(context_target.conn_id):
            inspector = index_inspector(context_target, settings)
        else:  # proposals then rest on the index snapshot alone
            log.warning(
                "target %s: connection %s does not resolve; no live index check",
                context_target.name,
                context_target.conn_id,
            )
        reader = query_store_reader(context_target) if context_target.engine == "sqlserver" else None
        try:
            proposed = service.propose(
                repository, regression_id, dag_run_id=run_id, inspector=inspector, query_store_reader=reader
            )
        except RemediationRefused as refusal:
            log.warning("regression %d: no proposal: %s", regression_id, refusal)
            return {"refused": refusal.reason.value, "message": str(refusal), "regression_id": regression_id}
    return proposed.as_dict()


def gate(proposal: Mapping[str, Any]) -> list[str]:
    """Rails, then where the run goes: approval (a person), apply (mode auto, allow-listed), or nowhere."""
    if proposal.get("refused"):
        return []
    settings = load_settings()
    with open_repository(settings) as repository:
        row = RemediationStore(repository).get(int(proposal["id"]))
        if row["state"] in (State.APPROVED.value, State.APPLIED.value):
            return [APPLY]  # a re-run after the decision: apply is idempotent
        if row["state"] != State.PROPOSED.value:
            log.info("remediation %d is %s: nothing to do", row["id"], row["state"])
            return []
        try:
            target = RemediationStore(repository).regression_context(int(row["regression_id"])).target
            reader = query_store_reader(target) if target.engine == "sqlserver" else None
            service.check_rails(repository, int(proposal["id"]), settings=settings, query_store_reader=reader)
        except RemediationRefused as refusal:
            log.warning("remediation %s refused: %s", proposal["id"], refusal)
            return []
        if not proposal["needs_approval"]:
            service.auto_approve(repository, int(proposal["id"]))
            return [APPLY]
    return [APPROVAL]


def record_answer(proposal: Mapping[str, Any] | None, decision: Mapping[str, Any] | None) -> None:
    """Store an approval's answer on the remediation (idempotent: the first answer stands)."""
    if not proposal or proposal.get("refused") or not decision:
        return
    with open_repository(load_settings()) as repository:
        approved = (decision.get("chosen_options") or [None])[0] == ApprovalOperator.APPROVE
        service.record_decision(
            repository,
            int(proposal["id"]),
            approved=approved,
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


def collect_now(repository: Repository, target: Target, settings: Settings) -> datetime:
    """Collect the target up to now through its collection connection (fresh runtime stats)."""
    return service.collect_until_now(
        repository, target, settings, connection_factory(target.engine, target.conn_id)
    )


def apply(proposal: Mapping[str, Any], decision: Mapping[str, Any] | None) -> dict[str, Any]:
    """Record the approval (with the approver's identity), then run the SQL through the remediation
    connection; collect right after, so verification counts only executions after the action."""
    settings = load_settings()
    remediation_id = int(proposal["id"])
    with open_repository(settings) as repository:
        store = RemediationStore(repository)
        record_answer(proposal, decision)  # normally recorded by the approval task already
        row = store.get(remediation_id)
        target = repository.get_target(store._target_name(int(row["target_id"])))
        if not target.remediation_conn_id:
            raise RemediationRefused(
                f"target {target.name!r} has no remediation connection id", reason=RefusalReason.NO_CONNECTION
            )
        connect = connection_factory(target.engine, target.remediation_conn_id)
        row = service.apply(
            repository,
            remediation_id,
            settings=settings,
            connect=connect,
            after_apply=lambda: collect_now(repository, target, settings),
            query_store_reader=query_store_reader(target) if target.engine == "sqlserver" else None,
        )
    return {"id": remediation_id, "state": row["state"], "applied_at": str(row["applied_at"])}


def poke_verification(proposal: Mapping[str, Any]) -> dict[str, Any] | None:
    """One look: collect the target, judge; None while still waiting for N executions / M minutes."""
    settings = load_settings()
    remediation_id = int(proposal["id"])
    with open_repository(settings) as repository:
        store = RemediationStore(repository)
        row = store.get(remediation_id)
        if row["state"] != State.APPLIED.value:
            return {"outcome": "concluded", "state": row["state"]}
        target = repository.get_target(store._target_name(int(row["target_id"])))
        if not _force_holds(repository, target, row):
            return {"outcome": "concluded", "state": State.FAILED.value}
        moment = collect_now(repository, target, settings)
        verdict = service.verify(repository, remediation_id, settings=settings, now=moment)
    if verdict.outcome is Outcome.WAITING:
        log.info("remediation %d: %s", remediation_id, verdict.reason)
        return None
    return verdict.as_dict()


def _force_holds(repository: Repository, target: Target, row: Mapping[str, Any]) -> bool:
    """SQL Server forces: read the plan's forcing state live (collection connection, read-only)."""
    if target.engine != "sqlserver" or row["action"] != Action.FORCE_PLAN.value:
        return True
    from planmon.remediation.sqlserver import read_state

    evidence = row.get("evidence") or {}
    connection = connection_factory(target.engine, target.conn_id)(evidence.get("database_name") or None)
    try:
        state = read_state(connection, int(evidence["query_id"]))
    finally:
        connection.close()
    return service.check_force(repository, int(row["id"]), state)


def conclude(proposal: Mapping[str, Any], verdict: Mapping[str, Any]) -> dict[str, Any]:
    """Keep (and resolve the regression) or roll back, from the verification's verdict."""
    from planmon.analysis.statistics import Moments
    from planmon.remediation.verify import Verdict

    settings = load_settings()
    remediation_id = int(proposal["id"])
    if verdict.get("outcome") == "concluded":
        return {"id": remediation_id, "state": verdict["state"]}

    def moments(value: Mapping[str, Any] | None) -> Moments | None:
        return None if value is None else Moments(value["mean"], value["stdev"] ** 2, value["executions"])

    restored = Verdict(
        Outcome(verdict["outcome"]),
        verdict["reason"],
        moments(verdict["post_apply"]),
        moments(verdict["regressed"]) or Moments(0, 0, 0),
        moments(verdict["baseline"]) or Moments(0, 0, 0),
        verdict.get("p_value"),
        bool(verdict.get("back_at_baseline")),
    )
    with open_repository(settings) as repository:
        store = RemediationStore(repository)
        row = store.get(remediation_id)
        target = repository.get_target(store._target_name(int(row["target_id"])))
        connect = (
            connection_factory(target.engine, target.remediation_conn_id)
            if target.remediation_conn_id
            else None
        )
        row = service.conclude(repository, remediation_id, restored, settings=settings, connect=connect)
    return {"id": remediation_id, "state": row["state"], "outcome_reason": row["outcome_reason"]}


def finalize(proposal: Mapping[str, Any] | None, decision: Mapping[str, Any] | None) -> dict[str, Any]:
    """Always runs last: records a rejection (or the timeout's default Reject) and reports the state."""
    if not proposal or proposal.get("refused"):
        return dict(proposal or {})
    settings = load_settings()
    remediation_id = int(proposal["id"])
    record_answer(proposal, decision)  # normally recorded by the approval task already
    with open_repository(settings) as repository:
        row = RemediationStore(repository).get(remediation_id)
    log.info("remediation %d ends the run %s: %s", remediation_id, row["state"], row["outcome_reason"] or "")
    return {
        "id": remediation_id,
        "state": row["state"],
        "action": Action(row["action"]).value,
        "approved_by": row["approved_by"],
        "outcome_reason": row["outcome_reason"],
    }
