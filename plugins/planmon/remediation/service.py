"""The remediation steps, each idempotent and each audited: propose, rails, decision, apply, verify,
keep or roll back. No Airflow here: ``planmon.airflow.remediate_tasks`` and the CLI call these.

State machine (``remediation.state``)::

    proposed -> refused | approved | rejected
    approved -> applied | failed | refused (rails re-checked at apply time)
    applied  -> kept | rolled_back | failed

A step that finds its remediation already past it does nothing, so a retried task never applies or
rolls back twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from planmon.config import Settings
from planmon.errors import EngineError, EngineErrorReason, RefusalReason, RemediationRefused
from planmon.model import Target
from planmon.remediation import mysql, postgres, rails, sqlserver
from planmon.remediation.context import IndexInspector, RegressionContext
from planmon.remediation.execute import Connect, run_statements
from planmon.remediation.model import Action, Proposal, State, Statement
from planmon.remediation.verify import Verdict, judge, post_apply_moments, regression_moments
from planmon.store.remediations import RemediationStore
from planmon.store.repository import Repository, as_utc_naive, utcnow

log = logging.getLogger(__name__)

SYSTEM = "planmon"
TIMEOUT_ACTOR = "planmon:approval-timeout"


@dataclass(frozen=True, slots=True)
class Proposed:
    """A stored proposal and what the approval step shows."""

    row: Mapping[str, Any]
    created: bool
    needs_approval: bool
    subject: str
    body: str
    assigned_users: tuple[str, ...]
    ledger_warnings: tuple[str, ...] = ()

    @property
    def id(self) -> int:
        return int(self.row["id"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "regression_id": int(self.row["regression_id"]),
            "target_id": int(self.row["target_id"]),
            "action": self.row["action"],
            "state": self.row["state"],
            "sql": self.row["sql_text"],
            "rollback_sql": self.row["rollback_sql"],
            "expected_effect": self.row["expected_effect"],
            "created": self.created,
            "needs_approval": self.needs_approval,
            "subject": self.subject,
            "body": self.body,
            "assigned_users": list(self.assigned_users),
            "ledger_warnings": list(self.ledger_warnings),
        }


QueryStoreReader = Callable[[RegressionContext, frozenset[int]], sqlserver.QueryStoreState]
"""SQL Server: reads a query's forcing state live (context, plans planmon forced) -> state."""


def build_proposals(
    context: RegressionContext,
    inspector: IndexInspector | None = None,
    query_store: sqlserver.QueryStoreState | None = None,
) -> list[Proposal]:
    engine = context.target.engine
    if engine == "postgres":
        return postgres.propose(context, inspector)
    if engine == "mysql":
        return mysql.propose(context, inspector)
    return sqlserver.propose(context, query_store)


def planmon_forces(store: RemediationStore, target_id: int) -> frozenset[int]:
    """Plan ids planmon itself forced and has not undone (applied or kept force_plan remediations)."""
    return frozenset(
        int((entry.get("evidence") or {})["plan_id"])
        for entry in store.remediations(target_id=target_id)
        if entry["action"] == Action.FORCE_PLAN.value
        and entry["state"] in (State.APPLIED.value, State.KEPT.value)
    )


def _unhelpful(context: RegressionContext, proposal: Proposal) -> list[str]:
    """Ledger entries saying this same action did not help this query before."""
    return [
        f"{entry['action']} (remediation {entry['id']}) was tried on this query before and "
        f"{entry['state'].replace('_', ' ')}: {entry['outcome_reason'] or 'no reason recorded'}"
        for entry in context.ledger
        if entry["action"] == proposal.action.value
        and entry["sql_text"] == proposal.sql_text
        and entry["state"] in (State.ROLLED_BACK.value, State.FAILED.value)
    ]


def choose(context: RegressionContext, proposals: Sequence[Proposal]) -> tuple[Proposal, list[str]]:
    """The first proposal that has not failed this query before; else the first, with the warnings."""
    for proposal in proposals:
        if not _unhelpful(context, proposal):
            skipped = [w for p in proposals[: proposals.index(proposal)] for w in _unhelpful(context, p)]
            return proposal, [f"skipped: {w}" for w in skipped]
    return proposals[0], _unhelpful(context, proposals[0])


def propose(
    repository: Repository,
    regression_id: int,
    *,
    inspector: IndexInspector | None = None,
    query_store_reader: QueryStoreReader | None = None,
    actor: str = SYSTEM,
    dag_run_id: str | None = None,
) -> Proposed:
    """Build and store the proposal for a regression (or return the open one); refuse when none fits."""
    store = RemediationStore(repository)
    context = store.regression_context(regression_id)
    if context.regression["status"] != "open":
        raise RemediationRefused(
            f"regression {regression_id} is {context.regression['status']}",
            reason=RefusalReason.REGRESSION_CLOSED,
        )
    if context.target.remediation_mode == "off":
        repository.audit(
            actor,
            "remediation.refused",
            target_id=context.target.id,
            subject=f"regression:{regression_id}",
            details={"reason": RefusalReason.MODE_OFF.value},
        )
        raise RemediationRefused(
            f"target {context.target.name!r} has remediation mode off", reason=RefusalReason.MODE_OFF
        )
    query_store = None
    if context.target.engine == "sqlserver" and query_store_reader is not None:
        # read right before proposing: a person or automatic plan correction may have forced since
        query_store = query_store_reader(context, planmon_forces(store, context.target.id))
    proposals = build_proposals(context, inspector, query_store)
    if not proposals:
        raise RemediationRefused(
            f"no remediation fits regression {regression_id} ({context.kind} on {context.target.engine})",
            reason=RefusalReason.NO_ACTION,
            hint="see docs/remediation.md for what each engine can do",
        )
    proposal, warnings = choose(context, proposals)
    if warnings:
        proposal = Proposal(**{**_fields(proposal), "evidence": {**proposal.evidence, "ledger": warnings}})
    row, created = store.create(context, proposal, actor=actor, dag_run_id=dag_run_id)
    action = Action(row["action"])
    policy = rails.policy_of(context.target)
    log.info(
        "regression %d: proposal %d (%s, %s)",
        regression_id,
        row["id"],
        action.value,
        "new" if created else "existing",
    )
    return Proposed(
        row=row,
        created=created,
        needs_approval=rails.needs_approval(context.target, action),
        subject=f"planmon: {action.value} on {context.target.name} for regression {regression_id}",
        body=approval_body(context, row, warnings),
        assigned_users=policy.assigned_users,
        ledger_warnings=tuple(warnings),
    )


def _fields(proposal: Proposal) -> dict[str, Any]:
    return {name: getattr(proposal, name) for name in Proposal.__dataclass_fields__}


def approval_body(context: RegressionContext, row: Mapping[str, Any], warnings: Sequence[str]) -> str:
    """The approval task's markdown: the regression, plan diff, findings, exact SQL and rollback."""
    regression = context.regression
    diff = regression.get("diff") or {}
    lines = [
        f"## {row['action']} on `{context.target.name}` ({context.target.engine}), "
        f"database `{context.database_name}`",
        "",
        f"Regression {regression['id']}: **{regression['kind']}**, severity {regression['severity']}, "
        f"{regression['metric']} mean {regression.get('baseline_mean') or 0:.0f} -> "
        f"{regression.get('current_mean') or 0:.0f} (x{regression.get('ratio') or 0:.2f}), "
        f"impact {regression.get('impact') or 0:.1f} s/h.",
        "",
        f"Query `{context.query_key}`: `{(context.query_text or '')[:300]}`",
        "",
        "### Plan diff",
        "```",
        str(diff.get("text") or "no diff stored (a plan document is missing)"),
        "```",
        "### Findings",
        _findings(context),
        "",
        "### SQL to run",
        "```sql",
        str(row["sql_text"]),
        "```",
        "### Rollback",
        "```sql",
        str(
            row["rollback_sql"]
            or "-- none: this action cannot be undone (verification records whether it helped)"
        ),
        "```",
        f"**Expected effect:** {row['expected_effect']}",
    ]
    if warnings:
        lines += ["", "### Ledger", *[f"- {warning}" for warning in warnings]]
    lines += ["", f"Remediation id {row['id']}. Reject (or no answer before the timeout) runs nothing."]
    return "\n".join(lines)


def _findings(context: RegressionContext) -> str:
    from planmon.errors import PlanParseError
    from planmon.plans import find_all, parse_plan

    body = context.current_plan.body
    if not body:
        return "- none known (the regressed plan's document is not stored)"
    try:
        plan = parse_plan(body)
    except PlanParseError:
        return "- the regressed plan could not be parsed"
    findings = [
        f
        for statement in plan.statements
        if statement.root is not None
        for f in find_all(statement, plan.engine)
    ]
    return "\n".join(f"- {f.id} ({f.severity}): {f.message}" for f in findings) or "- none"


# -- rails -------------------------------------------------------------------------------------------


def foreign_forces(context: RegressionContext, store: RemediationStore) -> list[str]:
    """Plans of the query forced by someone other than planmon (manually, or by APC)."""
    ours = {str(plan_id) for plan_id in planmon_forces(store, context.target.id)}
    return [
        f"plan {p.plan_key} ({p.forcing_type or 'forced'})"
        for p in context.query_plans
        if p.is_forced and str(p.plan_key) not in ours
    ]


def _foreign_forces(
    context: RegressionContext, store: RemediationStore, reader: QueryStoreReader | None
) -> list[str]:
    if context.target.engine == "sqlserver" and reader is not None:
        return reader(context, planmon_forces(store, context.target.id)).foreign_forces()
    return foreign_forces(context, store)


def check_rails(
    repository: Repository,
    remediation_id: int,
    *,
    settings: Settings,
    now: datetime | None = None,
    query_store_reader: QueryStoreReader | None = None,
) -> dict[str, Any]:
    """Check every rail for a stored proposal; record a refusal (and raise it) when one says no.

    Mode propose (dry run) raises too, but leaves the proposal in state proposed. On SQL Server the
    forcing state is read live when a reader is given (else the last collection's state is used).
    """
    store = RemediationStore(repository)
    row = store.get(remediation_id)
    context = store.regression_context(int(row["regression_id"]))
    moment = as_utc_naive(now or utcnow())
    rail_input = rails.RailInput(
        target=context.target,
        action=Action(row["action"]),
        now=moment,
        applied_last_hour=store.applied_since(context.target.id, moment - timedelta(hours=1)),
        max_actions_per_hour=settings.remediation_max_actions_per_hour,
        foreign_forces=_foreign_forces(context, store, query_store_reader),
        undoes=(row.get("evidence") or {}).get("undoes"),
    )
    try:
        rails.check(rail_input)
    except RemediationRefused as refusal:
        _record_refusal(store, row, refusal)
        raise
    store.audit(
        remediation_id,
        context.target.id,
        actor=SYSTEM,
        action="remediation.rails_passed",
        details={"mode": context.target.remediation_mode},
    )
    return row


def _record_refusal(store: RemediationStore, row: Mapping[str, Any], refusal: RemediationRefused) -> None:
    details = {"reason": refusal.reason.value, "message": refusal.message}
    if refusal.reason is RefusalReason.DRY_RUN:
        store.audit(
            int(row["id"]), int(row["target_id"]), actor=SYSTEM, action="remediation.dry_run", details=details
        )
        return
    if row["state"] in (State.PROPOSED.value, State.APPROVED.value):
        store.transition(
            int(row["id"]),
            State.REFUSED,
            actor=SYSTEM,
            values={"outcome_reason": f"{refusal.reason.value}: {refusal.message}"},
            details=details,
        )


# -- decision ----------------------------------------------------------------------------------------


def record_decision(
    repository: Repository,
    remediation_id: int,
    *,
    approved: bool,
    responded_by: str | None,
    responded_at: datetime | None = None,
    via: str = "airflow approval",
) -> dict[str, Any]:
    """Store the person's answer (or the timeout's default) with their identity; idempotent."""
    store = RemediationStore(repository)
    row = store.get(remediation_id)
    wanted = State.APPROVED if approved else State.REJECTED
    if row["state"] != State.PROPOSED.value:
        return row  # already decided (a retried task): the first answer stands
    at = as_utc_naive(responded_at) if responded_at else utcnow()
    if approved:
        if not responded_by:
            raise RemediationRefused(
                "an approval needs the approver's identity", reason=RefusalReason.NOT_APPROVED
            )
        values: dict[str, Any] = {"approved_by": responded_by, "approved_at": at}
    else:
        reason = (
            f"rejected by {responded_by}"
            if responded_by
            else "no answer before the approval timeout (default Reject)"
        )
        values = {"outcome_reason": reason}
    actor = responded_by or TIMEOUT_ACTOR
    return store.transition(
        remediation_id,
        wanted,
        actor=actor,
        values=values,
        details={"via": via, "responded_at": at.isoformat()},
    )


def auto_approve(repository: Repository, remediation_id: int) -> dict[str, Any]:
    """Mode auto, allow-listed action: approved by planmon itself (audited as such)."""
    return record_decision(
        repository, remediation_id, approved=True, responded_by="planmon:auto", via="mode auto"
    )


# -- apply -------------------------------------------------------------------------------------------


def apply(
    repository: Repository,
    remediation_id: int,
    *,
    settings: Settings,
    connect: Connect,
    actor: str = SYSTEM,
    now: datetime | None = None,
    after_apply: Callable[[], datetime] | None = None,
    query_store_reader: QueryStoreReader | None = None,
) -> dict[str, Any]:
    """Run an approved proposal through the remediation connection; never twice.

    ``after_apply`` (collection of the target right after the statements) returns the moment from
    which runtime stats count as post-apply.
    """
    store = RemediationStore(repository)
    row = store.get(remediation_id)
    if row["state"] in (State.APPLIED.value, State.KEPT.value, State.ROLLED_BACK.value):
        log.info("remediation %d is already %s: nothing runs again", remediation_id, row["state"])
        return row
    if row["state"] != State.APPROVED.value:
        raise RemediationRefused(
            f"remediation {remediation_id} is {row['state']}: only an approved remediation runs",
            reason=RefusalReason.NOT_APPROVED
            if row["state"] == State.PROPOSED.value
            else RefusalReason.WRONG_STATE,
            hint=_approve_hint(remediation_id),
        )
    # the wait for approval may have crossed a rail (window, rate, someone forced a plan meanwhile)
    check_rails(repository, remediation_id, settings=settings, now=now, query_store_reader=query_store_reader)
    target = repository.get_target(str(row.get("target") or _target_name(store, row)))
    evidence = row.get("evidence") or {}
    statements = [Statement.from_dict(s) for s in evidence.get("statements") or []]
    try:
        ran = run_statements(
            target.engine,
            connect,
            evidence.get("database_name") or None,
            statements,
            lock_timeout_ms=settings.remediation_lock_timeout_ms,
            statement_timeout_ms=settings.remediation_statement_timeout_ms,
            target=target.name,
        )
    except EngineError as exc:
        if exc.reason is EngineErrorReason.UNREACHABLE:  # nothing ran: still approved, a retry may try again
            store.audit(
                remediation_id,
                target.id,
                actor=actor,
                action="remediation.apply_unreachable",
                details={"error": exc.message},
            )
            raise
        cleanup = _clean_up_failed(target.engine, connect, row, settings, target.name)
        store.transition(
            remediation_id,
            State.FAILED,
            actor=actor,
            values={"outcome": "failed", "outcome_reason": f"apply failed: {exc.message}{cleanup}"},
            details={"error": exc.message},
        )
        raise
    applied_at = after_apply() if after_apply is not None else utcnow()
    return store.transition(
        remediation_id,
        State.APPLIED,
        actor=actor,
        values={"applied_at": applied_at},
        details={"ran": ran, "approved_by": row["approved_by"]},
    )


def _target_name(store: RemediationStore, row: Mapping[str, Any]) -> str:
    return store._target_name(int(row["target_id"]))


def _approve_hint(remediation_id: int) -> str:
    return (
        f"a person approves remediation {remediation_id} in Airflow's Required Actions page on the "
        'planmon_remediate run that proposed it (trigger one with conf {"regression_id": <id>})'
    )


def _clean_up_failed(
    engine: str, connect: Connect, row: Mapping[str, Any], settings: Settings, target: str
) -> str:
    """A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind: drop it (its rollback)."""
    if row["action"] != Action.RECREATE_INDEX.value or engine != "postgres":
        return ""
    evidence = row.get("evidence") or {}
    rollback = [Statement.from_dict(s) for s in evidence.get("rollback_statements") or []]
    try:
        run_statements(
            engine,
            connect,
            evidence.get("database_name") or None,
            rollback,
            lock_timeout_ms=settings.remediation_lock_timeout_ms,
            statement_timeout_ms=settings.remediation_statement_timeout_ms,
            target=target,
        )
    except EngineError as exc:
        return f"; dropping the partial index failed too: {exc.message}"
    return "; the partial index was dropped"


# -- verify, keep or roll back ----------------------------------------------------------------------


def collect_until_now(
    repository: Repository, target: Target, settings: Settings, connect: Connect
) -> datetime:
    """Collect the target from its last collection up to now (fresh runtime stats for verification,
    or the counters' reading right after apply); return the moment collected up to."""
    from planmon.collect import collect_target

    now = utcnow()
    start = repository.last_collected_until(target.id)
    if start is None or start >= now:
        return now
    collect_target(repository, target, start, now, settings=settings, connect=connect, now=now)
    return now


def verify(
    repository: Repository, remediation_id: int, *, settings: Settings, now: datetime | None = None
) -> Verdict:
    """Judge the post-apply runtime stats already in the repository (collect the target first)."""
    store = RemediationStore(repository)
    row = store.get(remediation_id)
    if row["state"] != State.APPLIED.value or row["applied_at"] is None:
        raise RemediationRefused(
            f"remediation {remediation_id} is {row['state']}, not applied", reason=RefusalReason.WRONG_STATE
        )
    context = store.regression_context(int(row["regression_id"]))
    moment = as_utc_naive(now or utcnow())
    applied_at = row["applied_at"]
    stats = repository.runtime_stats(
        applied_at, moment + timedelta(seconds=1), target_ids=[context.target.id]
    )
    post = post_apply_moments(
        stats,
        target_id=context.target.id,
        query_id=int(row["query_id"]),
        applied_at=applied_at,
        now=moment + timedelta(seconds=1),
    )
    baseline, regressed = regression_moments(context.regression, settings)
    minutes = (moment - applied_at).total_seconds() / 60.0
    verdict = judge(
        post, baseline=baseline, regressed=regressed, minutes_since_apply=minutes, settings=settings
    )
    log.info("remediation %d: %s", remediation_id, verdict.reason)
    return verdict


def check_force(repository: Repository, remediation_id: int, state_after: sqlserver.QueryStoreState) -> bool:
    """SQL Server: is planmon's force in place and not failing? A failing force (force_failure_count
    rising, last_force_failure_reason_desc set) makes the remediation failed, with that reason."""
    store = RemediationStore(repository)
    row = store.get(remediation_id)
    evidence = row.get("evidence") or {}
    if row["action"] != Action.FORCE_PLAN.value or row["state"] != State.APPLIED.value:
        return True
    plan_id = int(evidence["plan_id"])
    before = next(
        (p for p in (evidence.get("forcing_state") or {}).get("plans", []) if p["plan_id"] == plan_id), None
    )
    before_state = (
        sqlserver.PlanState(plan_id)
        if before is None
        else sqlserver.PlanState(plan_id, bool(before["is_forced"]))
    )
    ok, why = sqlserver.force_outcome(before_state, state_after.plan(plan_id))
    if not ok:
        store.transition(
            remediation_id,
            State.FAILED,
            actor=SYSTEM,
            values={"outcome": "failed", "outcome_reason": f"plan {plan_id}: {why}"},
            details={"force_state": why},
        )
    return ok


def conclude(
    repository: Repository,
    remediation_id: int,
    verdict: Verdict,
    *,
    settings: Settings,
    connect: Connect | None,
) -> dict[str, Any]:
    """Keep a remediation that helped (and resolve its regression); roll back one that did not."""
    store = RemediationStore(repository)
    row = store.get(remediation_id)
    if row["state"] != State.APPLIED.value:
        return row  # concluded already (a retried task)
    verification = verdict.as_dict()
    if verdict.keep:
        kept = store.transition(
            remediation_id,
            State.KEPT,
            actor=SYSTEM,
            values={"outcome": "kept", "outcome_reason": verdict.reason, "verification": verification},
            details=verification,
        )
        repository.resolve_regressions(
            [int(row["regression_id"])],
            resolved_at=utcnow(),
            reason=f"remediation {remediation_id} ({row['action']}) verified: {verdict.reason}",
        )
        return kept
    return _roll_back(store, row, verdict.reason, verification, settings=settings, connect=connect)


def _roll_back(
    store: RemediationStore,
    row: Mapping[str, Any],
    reason: str,
    verification: Mapping[str, Any],
    *,
    settings: Settings,
    connect: Connect | None,
) -> dict[str, Any]:
    remediation_id = int(row["id"])
    evidence = row.get("evidence") or {}
    rollback = [Statement.from_dict(s) for s in evidence.get("rollback_statements") or []]
    target = store.repository.get_target(_target_name(store, row))
    note = ""
    if rollback:
        if connect is None:
            raise RemediationRefused(
                "rolling back needs the remediation connection", reason=RefusalReason.NO_CONNECTION
            )
        try:
            run_statements(
                target.engine,
                connect,
                evidence.get("database_name") or None,
                rollback,
                lock_timeout_ms=settings.remediation_lock_timeout_ms,
                statement_timeout_ms=settings.remediation_statement_timeout_ms,
                target=target.name,
            )
        except EngineError as exc:
            return store.transition(
                remediation_id,
                State.FAILED,
                actor=SYSTEM,
                values={
                    "outcome": "failed",
                    "verification": dict(verification),
                    "outcome_reason": f"{reason}; rollback failed: {exc.message}",
                },
                details={"error": exc.message},
            )
    else:
        note = " (this action has no rollback: nothing was undone)"
    return store.transition(
        remediation_id,
        State.ROLLED_BACK,
        actor=SYSTEM,
        values={
            "outcome": "rolled_back",
            "outcome_reason": reason + note,
            "verification": dict(verification),
        },
        details={**verification, "rolled_back": bool(rollback)},
    )
