"""The remediation workflow, once: propose, gate (every rail), decide, apply, verify, conclude.

``planmon.airflow.remediate_tasks`` (the DAG) and ``planmon.commands.remediate`` (the CLI) are thin
callers of :class:`RemediationWorkflow`, so every rail runs whichever door a person uses, including,
on SQL Server, the live read of the query's Query Store forcing state and of automatic plan
correction (at proposal, at each rails check, right before apply and after it). No Airflow here:
connections come in through :class:`TargetConnections`.

State machine (``remediation.state``)::

    proposed -> refused | approved | rejected
    approved -> applied | failed | refused (rails re-checked at apply time)
    applied  -> kept | rolled_back | failed

A step that finds its remediation already past it does nothing, so a retried task never applies or
rolls back twice. Each step reads the stored remediation as a typed :class:`planmon.model.Remediation`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from planmon.alerting.messages import RunLinks
from planmon.config import Settings
from planmon.engines import Engine, get_engine
from planmon.engines.base import ConnectionFactory, ForcingState
from planmon.errors import (
    ConfigError,
    EngineError,
    EngineErrorReason,
    PlanmonError,
    RefusalReason,
    RemediationRefused,
    scrub_secrets,
)
from planmon.model import (
    Action,
    Prediction,
    Proposal,
    QualifiedName,
    RegressionContext,
    Remediation,
    RemediationState,
    Statement,
    Target,
)
from planmon.remediation import rails
from planmon.remediation.verify import Verdict, judge, post_apply_moments, regression_moments
from planmon.store.collection import CollectionStore
from planmon.store.regressions import RegressionStore
from planmon.store.remediations import RemediationStore
from planmon.store.repository import Repository, as_utc_naive, utcnow

log = logging.getLogger(__name__)

SYSTEM = "planmon"
AUTO_APPROVER = "planmon:auto"
TIMEOUT_ACTOR = "planmon:approval-timeout"
State = RemediationState


class TargetConnections(Protocol):
    """How the workflow reaches a target: the read-only collection connection (state, indexes,
    runtime stats) and the remediation connection (the only one that acts)."""

    def can_collect(self, target: Target) -> bool:
        """True when the target's collection connection resolves (else proposals rest on snapshots)."""
        ...

    def collection(self, target: Target) -> ConnectionFactory: ...

    def remediation(self, target: Target) -> ConnectionFactory: ...


@dataclass(frozen=True, slots=True)
class FixedConnections:
    """Connections given as factories (tests, the demo); None: that connection cannot be opened."""

    collect: ConnectionFactory | None = None
    remediate: ConnectionFactory | None = None

    def can_collect(self, target: Target) -> bool:
        return self.collect is not None

    def collection(self, target: Target) -> ConnectionFactory:
        if self.collect is None:
            raise ConfigError(f"target {target.name!r}: no collection connection")
        return self.collect

    def remediation(self, target: Target) -> ConnectionFactory:
        if self.remediate is None:
            raise ConfigError(f"target {target.name!r}: no remediation connection")
        return self.remediate


ForcingStateReader = Callable[[RegressionContext, frozenset[int]], ForcingState | None]
"""(context, plans planmon forced) -> the query's forcing state read live (None: the engine has none)."""


class Route(enum.StrEnum):
    """Where a proposal goes after the gate."""

    APPROVAL = "approval"  # a person decides
    APPLY = "apply"  # approved already (mode auto and allow-listed, or a re-run after the decision)
    STOP = "stop"  # refused, dry run, or decided


@dataclass(frozen=True, slots=True)
class Proposed:
    """A stored proposal and what the approval step shows."""

    remediation: Remediation
    created: bool
    needs_approval: bool
    subject: str
    body: str
    assigned_users: tuple[str, ...]
    ledger_warnings: tuple[str, ...] = ()
    prediction: Prediction | None = None
    rails_passed: tuple[str, ...] = ()

    @property
    def id(self) -> int:
        return self.remediation.id

    def as_dict(self) -> dict[str, Any]:
        record = self.remediation
        return {
            "id": record.id,
            "regression_id": record.regression_id,
            "target_id": record.target_id,
            "action": record.action.value,
            "state": record.state.value,
            "sql": record.sql_text,
            "rollback_sql": record.rollback_sql,
            "expected_effect": record.expected_effect,
            "created": self.created,
            "needs_approval": self.needs_approval,
            "subject": self.subject,
            "body": self.body,
            "assigned_users": list(self.assigned_users),
            "ledger_warnings": list(self.ledger_warnings),
            "prediction": self.prediction.as_dict() if self.prediction is not None else None,
            "rails_passed": list(self.rails_passed),
        }


class RemediationWorkflow:
    """Proposes, gates, records decisions, applies, verifies and concludes remediations of one
    repository; every step audited, every rail checked (docs/adr/0003-remediation-safety-rails.md).

    ``connections`` reaches the targets (None: nothing live is read, nothing can run). ``clock``
    gives "now" (UTC) to steps not given a ``now``. ``forcing_state_reader`` replaces the engine's
    live read of a query's forcing state (tests).
    """

    def __init__(
        self,
        repository: Repository,
        settings: Settings,
        connections: TargetConnections | None = None,
        *,
        actor: str = SYSTEM,
        clock: Callable[[], datetime] = utcnow,
        forcing_state_reader: ForcingStateReader | None = None,
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.connections = connections
        self.actor = actor
        self.clock = clock
        self.store = RemediationStore(repository)
        self.collection = CollectionStore(repository)
        self._forcing_state_reader = forcing_state_reader

    # -- reading -------------------------------------------------------------------------------------

    def remediation(self, remediation_id: int) -> Remediation:
        return Remediation.from_row(self.store.get(remediation_id))

    def context(self, remediation: Remediation) -> RegressionContext:
        return self.store.regression_context(remediation.regression_id)

    def planmon_forces(self, target_id: int) -> frozenset[int]:
        """Plan ids planmon itself forced and has not undone (applied or kept force_plan remediations)."""
        forces = (Remediation.from_row(row) for row in self.store.remediations(target_id=target_id))
        return frozenset(
            r.evidence.plan_id
            for r in forces
            if r.action is Action.FORCE_PLAN
            and r.state in (State.APPLIED, State.KEPT)
            and r.evidence.plan_id is not None
        )

    def _move(
        self,
        remediation_id: int,
        to: RemediationState,
        *,
        actor: str,
        values: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Remediation:
        """A compare-and-set transition with its audit entry (``RemediationStore.transition``)."""
        row = self.store.transition(remediation_id, to, actor=actor, values=values, details=details)
        return Remediation.from_row(row)

    def _now(self, now: datetime | None) -> datetime:
        return as_utc_naive(now or self.clock())

    def _collection(self, target: Target) -> ConnectionFactory:
        if self.connections is None:
            raise ConfigError(f"target {target.name!r}: no connections to read it live")
        return self.connections.collection(target)

    def _forcing_state(self, context: RegressionContext, engine: Engine) -> ForcingState | None:
        """The query's forcing state read live right now (engines without plan forcing: None).

        Never taken from the last collection on an engine that has it: a person or automatic plan
        correction may have forced a plan since. If it cannot be read, the step fails (nothing runs).
        """
        ours = self.planmon_forces(context.target.id)
        if self._forcing_state_reader is not None:
            return self._forcing_state_reader(context, ours)
        if not engine.has_live_forcing_state:
            return None
        return engine.read_forcing_state(self._collection(context.target), context, ours)

    def _foreign_forces(self, context: RegressionContext, engine: Engine) -> list[str]:
        state = self._forcing_state(context, engine)
        if state is not None:
            return state.foreign_forces()
        ours = {str(plan_id) for plan_id in self.planmon_forces(context.target.id)}
        return [  # the stored state, for engines whose forcing state is not read live
            f"plan {p.plan_key} ({p.forcing_type or 'forced'})"
            for p in context.query_plans
            if p.is_forced and str(p.plan_key) not in ours
        ]

    def _inspector(self, target: Target, engine: Engine) -> Any:
        """A live, read-only look at the target's current indexes, when its collection connection resolves."""
        if self.connections is None or not self.connections.can_collect(target):
            log.info("target %s: collection connection does not resolve; no live index check", target.name)
            return None
        connect = self.connections.collection(target)

        def present(database: str, tables: Sequence[QualifiedName]) -> set[tuple[QualifiedName, str]]:
            return engine.present_indexes(connect, target, self.settings, database, tables)

        return present

    # -- propose -------------------------------------------------------------------------------------

    def propose(self, regression_id: int, *, dag_run_id: str | None = None) -> Proposed:
        """Build and store the proposal for a regression (or return the open one); refuse when none fits."""
        context = self.store.regression_context(regression_id)
        if context.regression["status"] != "open":
            raise RemediationRefused(
                f"regression {regression_id} is {context.regression['status']}",
                reason=RefusalReason.REGRESSION_CLOSED,
            )
        target = context.target
        if target.remediation_mode == "off":
            self.repository.audit(
                self.actor,
                "remediation.refused",
                target_id=target.id,
                subject=f"regression:{regression_id}",
                details={"reason": RefusalReason.MODE_OFF.value},
            )
            raise RemediationRefused(
                f"target {target.name!r} has remediation mode off", reason=RefusalReason.MODE_OFF
            )
        engine = get_engine(target.engine)
        # read right before proposing: a person or automatic plan correction may have forced since
        proposals = engine.propose(
            context,
            inspector=self._inspector(target, engine),
            forcing_state=self._forcing_state(context, engine),
        )
        if not proposals:
            raise RemediationRefused(
                f"no remediation fits regression {regression_id} ({context.kind} on {target.engine})",
                reason=RefusalReason.NO_ACTION,
                hint="see docs/remediation.md for what each engine can do",
            )
        proposal, warnings = choose(context, proposals)
        if warnings:
            proposal = replace(proposal, evidence=replace(proposal.evidence, ledger=tuple(warnings)))
        row, created = self.store.create(context, proposal, actor=self.actor, dag_run_id=dag_run_id)
        record = Remediation.from_row(row)
        log.info(
            "regression %d: proposal %d (%s, %s)",
            regression_id,
            record.id,
            record.action.value,
            "new" if created else "existing",
        )
        return self._proposed(context, record, warnings, created=created)

    def _proposed(
        self,
        context: RegressionContext,
        record: Remediation,
        warnings: Sequence[str],
        *,
        created: bool = False,
        approval_url: str | None = None,
    ) -> Proposed:
        target = context.target
        prediction = self.predict(context, record)
        passed = self.rails_passed(record.id)
        return Proposed(
            remediation=record,
            created=created,
            needs_approval=rails.needs_approval(target, record.action),
            subject=f"planmon: {record.action.value} on {target.name} for regression {context.regression_id}",
            body=approval_body(
                context,
                record,
                warnings,
                regression_url=RunLinks(self.settings.base_url).regression_url(context.regression_id),
                approval_url=approval_url,
                prediction=prediction,
                rails_passed=passed,
            ),
            assigned_users=rails.policy_of(target).assigned_users,
            ledger_warnings=tuple(warnings),
            prediction=prediction,
            rails_passed=tuple(passed or ()),
        )

    def describe(self, remediation_id: int, *, approval_url: str | None = None) -> Proposed:
        """A stored proposal as the approver sees it now: the body with the rails that passed, the
        prediction and the links (the approval step's body and its messages are both this)."""
        record = self.remediation(remediation_id)
        context = self.context(record)
        return self._proposed(context, record, record.evidence.ledger, approval_url=approval_url)

    def predict(self, context: RegressionContext, record: Remediation) -> Prediction | None:
        """The proposal's predicted effect, measured read-only (None: predictions are switched off).
        A prediction that fails says so instead of failing the step."""
        if not self.settings.remediation_predict:
            return None
        engine = get_engine(context.target.engine)
        connect = None
        if self.connections is not None and self.connections.can_collect(context.target):
            connect = self.connections.collection(context.target)
        try:
            return engine.predict(connect, context, record, self.settings)
        except (PlanmonError, OSError, ValueError) as exc:
            reason = (
                scrub_secrets(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            log.warning("target %s: no prediction: %s", context.target.name, reason)
            return Prediction.unavailable(f"no prediction: it failed ({reason})")
        except Exception as exc:  # driver errors of any kind (psycopg, pymssql): said, never raised
            if not engine.is_driver_error(exc):
                raise
            reason = engine.error_message(exc)
            log.warning("target %s: no prediction: %s", context.target.name, reason)
            return Prediction.unavailable(f"no prediction: it failed ({reason})")

    def rails_passed(self, remediation_id: int) -> list[str] | None:
        """What the last rails check that passed looked at (None: the rails have not run yet)."""
        entries = [
            e for e in self.store.audit_trail(remediation_id) if e["action"] == "remediation.rails_passed"
        ]
        if not entries:
            return None
        details = entries[-1].get("details") or {}
        return [str(line) for line in details.get("passed") or ()] or None

    # -- gate ----------------------------------------------------------------------------------------

    def check_rails(self, remediation_id: int, *, now: datetime | None = None) -> Remediation:
        """Check every rail for a stored proposal; record a refusal (and raise it) when one says no.

        Mode propose (dry run) raises too, but leaves the proposal in state proposed. On SQL Server
        the forcing state and automatic plan correction are read live here, every time.
        """
        record = self.remediation(remediation_id)
        context = self.context(record)
        engine = get_engine(context.target.engine)
        moment = self._now(now)
        rail_input = rails.RailInput(
            target=context.target,
            action=record.action,
            now=moment,
            applied_last_hour=self.store.applied_since(context.target.id, moment - timedelta(hours=1)),
            max_actions_per_hour=self.settings.remediation_max_actions_per_hour,
            foreign_forces=self._foreign_forces(context, engine),
            undoes=record.evidence.undoes,
        )
        try:
            rails.check(rail_input)
        except RemediationRefused as refusal:
            self._record_refusal(record, refusal)
            raise
        self.store.audit(
            remediation_id,
            context.target.id,
            actor=SYSTEM,
            action="remediation.rails_passed",
            details={"mode": context.target.remediation_mode, "passed": rails.passed(rail_input)},
        )
        return record

    def gate(self, remediation_id: int, *, now: datetime | None = None) -> Route:
        """Rails, then where the proposal goes: a person, straight to apply (mode auto), or nowhere."""
        record = self.remediation(remediation_id)
        if record.state in (State.APPROVED, State.APPLIED):
            return Route.APPLY  # a re-run after the decision: apply is idempotent
        if record.state is not State.PROPOSED:
            log.info("remediation %d is %s: nothing to do", record.id, record.state.value)
            return Route.STOP
        try:
            self.check_rails(remediation_id, now=now)
        except RemediationRefused as refusal:
            log.warning("remediation %d refused: %s", remediation_id, refusal)
            return Route.STOP
        target = self.context(record).target
        if not rails.needs_approval(target, record.action):
            self.record_decision(remediation_id, approved=True, responded_by=AUTO_APPROVER, via="mode auto")
            return Route.APPLY
        return Route.APPROVAL

    def _record_refusal(self, record: Remediation, refusal: RemediationRefused) -> None:
        details = {"reason": refusal.reason.value, "message": refusal.message}
        if refusal.reason is RefusalReason.DRY_RUN:
            self.store.audit(
                record.id, record.target_id, actor=SYSTEM, action="remediation.dry_run", details=details
            )
            return
        if record.state in (State.PROPOSED, State.APPROVED):
            self.store.transition(
                record.id,
                State.REFUSED,
                actor=SYSTEM,
                values={"outcome_reason": f"{refusal.reason.value}: {refusal.message}"},
                details=details,
            )

    # -- decision ------------------------------------------------------------------------------------

    def record_decision(
        self,
        remediation_id: int,
        *,
        approved: bool,
        responded_by: str | None,
        responded_at: datetime | None = None,
        via: str = "airflow approval",
    ) -> Remediation:
        """Store the person's answer (or the timeout's default) with their identity; idempotent."""
        record = self.remediation(remediation_id)
        if record.state is not State.PROPOSED:
            return record  # already decided (a retried task): the first answer stands
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
        return self._move(
            remediation_id,
            State.APPROVED if approved else State.REJECTED,
            actor=responded_by or TIMEOUT_ACTOR,
            values=values,
            details={"via": via, "responded_at": at.isoformat()},
        )

    # -- apply ---------------------------------------------------------------------------------------

    def apply(self, remediation_id: int, *, now: datetime | None = None) -> Remediation:
        """Run an approved proposal's stored statements through the remediation connection; never twice.

        The rails run again first (the wait for approval may have crossed one: a window closed, the
        rate was reached, someone forced a plan). Right after the statements the target is collected,
        so verification counts only executions after the action.
        """
        record = self.remediation(remediation_id)
        if record.state in (State.APPLIED, State.KEPT, State.ROLLED_BACK):
            log.info("remediation %d is already %s: nothing runs again", remediation_id, record.state.value)
            return record
        if record.state is not State.APPROVED:
            raise RemediationRefused(
                f"remediation {remediation_id} is {record.state.value}: only an approved remediation runs",
                reason=RefusalReason.NOT_APPROVED
                if record.state is State.PROPOSED
                else RefusalReason.WRONG_STATE,
                hint=approve_hint(remediation_id),
            )
        self.check_rails(remediation_id, now=now)
        target = self.context(record).target
        engine = get_engine(target.engine)
        if self.connections is None:
            raise ConfigError(f"target {target.name!r}: no remediation connection to act through")
        connect = self.connections.remediation(target)
        try:
            ran = self._run(engine, connect, record, record.statements, target)
        except EngineError as exc:
            if (
                exc.reason is EngineErrorReason.UNREACHABLE
            ):  # nothing ran: still approved, a retry may try again
                self.store.audit(
                    remediation_id,
                    target.id,
                    actor=self.actor,
                    action="remediation.apply_unreachable",
                    details={"error": exc.message},
                )
                raise
            cleanup = self._clean_up_failed(engine, connect, record, target)
            self.store.transition(
                remediation_id,
                State.FAILED,
                actor=self.actor,
                values={"outcome": "failed", "outcome_reason": f"apply failed: {exc.message}{cleanup}"},
                details={"error": exc.message},
            )
            raise
        applied_at = self.collect_until_now(target, now=now)
        return self._move(
            remediation_id,
            State.APPLIED,
            actor=self.actor,
            values={"applied_at": applied_at},
            details={"ran": ran, "approved_by": record.approved_by},
        )

    def _run(
        self,
        engine: Engine,
        connect: ConnectionFactory,
        record: Remediation,
        statements: Sequence[Statement],
        target: Target,
    ) -> list[dict[str, Any]]:
        return engine.run_statements(
            connect,
            record.database_name or None,
            statements,
            lock_timeout_ms=self.settings.remediation_lock_timeout_ms,
            statement_timeout_ms=self.settings.remediation_statement_timeout_ms,
            target=target.name,
        )

    def _clean_up_failed(
        self, engine: Engine, connect: ConnectionFactory, record: Remediation, target: Target
    ) -> str:
        """What a failed apply left behind its rollback removes (PostgreSQL: an invalid index)."""
        if not engine.rolls_back_failed(record.action):
            return ""
        try:
            self._run(engine, connect, record, record.rollback, target)
        except EngineError as exc:
            return f"; dropping the partial index failed too: {exc.message}"
        return "; the partial index was dropped"

    # -- verify, keep or roll back -------------------------------------------------------------------

    def collect_until_now(self, target: Target, *, now: datetime | None = None) -> datetime:
        """Collect the target from its last collection up to now (fresh runtime stats for verification,
        or the counters' reading right after apply); return the moment collected up to."""
        from planmon.collect import collect_target

        moment = self._now(now)
        start = self.collection.last_collected_until(target.id)
        if start is None or start >= moment:
            return moment
        collect_target(
            self.repository,
            target,
            start,
            moment,
            settings=self.settings,
            connect=self._collection(target),
            now=moment,
        )
        return moment

    def check_applied(self, remediation_id: int) -> Remediation:
        """Read back live whether an applied action is in effect; one that is not (SQL Server: a force
        not in place, or failing with ``last_force_failure_reason_desc``) fails with that reason."""
        record = self.remediation(remediation_id)
        if record.state is not State.APPLIED:
            return record
        context = self.context(record)
        engine = get_engine(context.target.engine)
        problem = engine.applied_problem(record, lambda: self._forcing_state(context, engine))
        if problem is None:
            return record
        return self._move(
            remediation_id,
            State.FAILED,
            actor=SYSTEM,
            values={"outcome": "failed", "outcome_reason": problem},
            details={"force_state": problem},
        )

    def verify(self, remediation_id: int, *, now: datetime | None = None) -> Verdict:
        """Judge the post-apply runtime stats already in the repository (see :meth:`look`)."""
        record = self.remediation(remediation_id)
        if record.state is not State.APPLIED or record.applied_at is None:
            raise RemediationRefused(
                f"remediation {remediation_id} is {record.state.value}, not applied",
                reason=RefusalReason.WRONG_STATE,
            )
        context = self.context(record)
        moment = self._now(now)
        end = moment + timedelta(seconds=1)
        stats = self.collection.runtime_stats(record.applied_at, end, target_ids=[context.target.id])
        post = post_apply_moments(
            stats,
            target_id=context.target.id,
            query_id=record.query_id,
            applied_at=record.applied_at,
            now=end,
        )
        baseline, regressed = regression_moments(context.regression, self.settings)
        minutes = (moment - record.applied_at).total_seconds() / 60.0
        verdict = judge(
            post, baseline=baseline, regressed=regressed, minutes_since_apply=minutes, settings=self.settings,
            kind=str(context.regression.get("kind") or ""),
        )  # fmt: skip
        log.info("remediation %d: %s", remediation_id, verdict.reason)
        return verdict

    def look(self, remediation_id: int) -> Verdict | Remediation:
        """One verification look at an applied remediation: its action still in effect (else it fails,
        and the failed remediation is returned), the target collected up to now, the executions since
        apply judged."""
        if self.remediation(remediation_id).state is not State.APPLIED:
            return self.verify(remediation_id)  # refuses: only an applied remediation is verified
        record = self.check_applied(remediation_id)
        if record.state is not State.APPLIED:
            return record
        target = self.context(record).target
        return self.verify(remediation_id, now=self.collect_until_now(target))

    def conclude(self, remediation_id: int, verdict: Verdict) -> Remediation:
        """Keep a remediation that helped (and resolve its regression); roll back one that did not."""
        record = self.remediation(remediation_id)
        if record.state is not State.APPLIED:
            return record  # concluded already (a retried task)
        verification = verdict.as_dict()
        if verdict.keep:
            row = self.store.transition(
                remediation_id,
                State.KEPT,
                actor=SYSTEM,
                values={"outcome": "kept", "outcome_reason": verdict.reason, "verification": verification},
                details=verification,
            )
            RegressionStore(self.repository).resolve_regressions(
                [record.regression_id],
                resolved_at=utcnow(),
                reason=f"remediation {remediation_id} ({record.action.value}) verified: {verdict.reason}",
            )
            return Remediation.from_row(row)
        return self._roll_back(record, verdict.reason, verification)

    def _roll_back(self, record: Remediation, reason: str, verification: Mapping[str, Any]) -> Remediation:
        target = self.context(record).target
        note = ""
        if record.rollback:
            if self.connections is None:
                raise RemediationRefused(
                    "rolling back needs the remediation connection", reason=RefusalReason.NO_CONNECTION
                )
            try:
                self._run(
                    get_engine(target.engine),
                    self.connections.remediation(target),
                    record,
                    record.rollback,
                    target,
                )
            except EngineError as exc:
                return self._move(
                    record.id,
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
        return self._move(
            record.id,
            State.ROLLED_BACK,
            actor=SYSTEM,
            values={
                "outcome": "rolled_back",
                "outcome_reason": reason + note,
                "verification": dict(verification),
            },
            details={**verification, "rolled_back": bool(record.rollback)},
        )


# -- choosing and showing a proposal ----------------------------------------------------------------


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


def approve_hint(remediation_id: int) -> str:
    return (
        f"a person approves remediation {remediation_id} in Airflow's Required Actions page on the "
        'planmon_remediate run that proposed it (trigger one with conf {"regression_id": <id>})'
    )


def approval_body(
    context: RegressionContext,
    record: Remediation,
    warnings: Sequence[str],
    *,
    regression_url: str | None = None,
    approval_url: str | None = None,
    prediction: Prediction | None = None,
    rails_passed: Sequence[str] | None = None,
) -> str:
    """The approval task's markdown: the regression, plan diff, findings, exact SQL and rollback,
    expected and predicted effect, the rails that passed, ledger warnings and links.

    Markdown joins lines that are not separated by a blank line into one paragraph, so every block
    stands alone and the diff is a list (one item per change) rather than preformatted lines.
    """
    regression = context.regression
    lines = [
        f"## {record.action.value} on `{context.target.name}` ({context.target.engine}), "
        f"database `{context.database_name}`",
        "",
        f"Regression {regression['id']}: **{regression['kind']}**, severity {regression['severity']}, "
        f"{regression['metric']} mean {regression.get('baseline_mean') or 0:.0f} -> "
        f"{regression.get('current_mean') or 0:.0f} (x{regression.get('ratio') or 0:.2f}), "
        f"impact {regression.get('impact') or 0:.1f} s/h.",
        "",
        f"Query `{context.query_key}`: `{_inline_code(context.query_text or '')[:300]}`",
        "",
        "### Plan diff",
        "",
        *_diff_items(regression.get("diff") or {}),
        "",
        "### Findings",
        "",
        _findings(context),
        "",
        "### SQL to run",
        "",
        "```sql",
        record.sql_text,
        "```",
        "",
        "### Rollback",
        "",
        "```sql",
        record.rollback_sql
        or "-- none: this action cannot be undone (verification records whether it helped)",
        "```",
        "",
        f"**Expected effect:** {record.expected_effect}",
        "",
        "### Predicted effect",
        "",
        *_prediction_items(prediction),
        "",
        "### Rails passed",
        "",
        *(
            [f"- {_markdown_text(line)}" for line in rails_passed]
            if rails_passed
            else [
                "- not checked yet: the rails run before the approval is asked, and again right before apply"
            ]
        ),
    ]
    if warnings:
        lines += ["", "### Ledger", "", *[f"- {_markdown_text(warning)}" for warning in warnings]]
    links = [
        f"- [{label}]({url})"
        for label, url in (
            (f"Regression {regression['id']} in planmon", regression_url),
            ("This approval in Airflow's Required Actions", approval_url),
        )
        if url
    ]
    if links:
        lines += ["", "### Links", "", *links]
    lines += ["", f"Remediation id {record.id}. Reject (or no answer before the timeout) runs nothing."]
    return "\n".join(lines)


def _prediction_items(prediction: Prediction | None) -> list[str]:
    """The prediction as list items; a contradiction is a bold warning of its own."""
    if prediction is None:
        return ["- no prediction: PLANMON_REMEDIATION_PREDICT is off"]
    items = []
    for line in prediction.lines:
        if line.startswith("WARNING: "):
            items += ["", f"**Warning:** {_markdown_text(line.removeprefix('WARNING: '))}", ""]
        else:
            items.append(f"- {_markdown_text(line)}")
    return items


def _diff_items(diff: Mapping[str, Any]) -> list[str]:
    """The stored plan diff as markdown: its shapes, then one list item per change."""
    changes = [c for c in diff.get("changes") or () if isinstance(c, Mapping) and c.get("message")]
    notes = [f"**Note:** {_markdown_text(str(note))}" for note in diff.get("notes") or ()]
    notes = [line for note in notes for line in (note, "")]
    if changes:
        shapes = f"Shape `{diff.get('before_hash') or '-'}` -> `{diff.get('after_hash') or '-'}`:"
        return [*notes, shapes, "", *[f"- {_markdown_text(str(c['message']))}" for c in changes]]
    text = [line.strip() for line in str(diff.get("text") or "").splitlines() if line.strip()]
    if text:
        return [f"- {_markdown_text(line)}" for line in text]
    return ["- no diff stored (a plan document is missing)"]


_MARKDOWN_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]<>#|~"})


def _markdown_text(text: str) -> str:
    """Text shown as itself in markdown (predicates hold ``*``, ``_``, ``<`` and ``|``)."""
    return " ".join(text.split()).translate(_MARKDOWN_SPECIAL)


def _inline_code(text: str) -> str:
    """Text for inside single backticks: one line, no backticks of its own."""
    return " ".join(text.split()).replace("`", "'")


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
    return "\n".join(f"- {f.id} ({f.severity}): {_markdown_text(f.message)}" for f in findings) or "- none"
