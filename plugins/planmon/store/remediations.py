"""Reads and writes of remediation: proposals, their state machine, the ledger, target policies.

All of remediation's SQL lives here. A state change is a compare-and-set (``UPDATE ... WHERE state
IN (allowed previous states)``) written in the same transaction as its audit entry, so a retried
task can never apply twice, and every transition names its actor. A proposal is created once per
(regression, action) while one is open: proposing again returns the open one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update

from planmon.errors import ConfigError
from planmon.model import (
    OPEN_STATES,
    TRANSITIONS,
    IndexSnapshot,
    PlanInfo,
    Proposal,
    QualifiedName,
    RegressionContext,
    RemediationState,
    Severity,
)
from planmon.store.audit import AuditEntry, append_audit
from planmon.store.repository import RepositoryConflict, RepositoryError, RepositoryView, utcnow
from planmon.store.schema import audit_log, index_snapshot, plan, query, regression, remediation, target

REMEDIATION_COLUMNS = tuple(c.name for c in remediation.columns)


class StaleTransition(RepositoryError):
    """A transition found the remediation in a state it does not start from (another run moved it)."""


class RemediationStore(RepositoryView):
    """Remediation's view of the repository."""

    # -- context ----------------------------------------------------------------------------------

    def regression_context(self, regression_id: int) -> RegressionContext:
        """The regression with its target, query, plans (bodies), index snapshot and the query's ledger."""
        with self._errors(f"reading regression {regression_id}"), self.engine.connect() as connection:
            row = (
                connection.execute(select(regression).where(regression.c.id == regression_id))
                .mappings()
                .first()
            )
            if row is None:
                raise ConfigError(
                    f"no regression with id {regression_id}", hint="`planmon regressions` lists them"
                )
            query_row = (
                connection.execute(select(query).where(query.c.id == row["query_id"])).mappings().one()
            )
            plans = (
                connection.execute(select(plan).where(plan.c.query_id == row["query_id"])).mappings().all()
            )
            snapshots = (
                connection.execute(
                    select(index_snapshot).where(
                        index_snapshot.c.target_id == row["target_id"],
                        index_snapshot.c.database_name == query_row["database_name"],
                    )
                )
                .mappings()
                .all()
            )
        target_name = self._target_name(int(row["target_id"]))
        by_id = {int(p["id"]): _plan_info(p) for p in plans}
        empty = PlanInfo(None, None, None)
        return RegressionContext(
            regression=dict(row),
            target=self.repository.get_target(target_name),
            database_name=str(query_row["database_name"] or ""),
            query_key=str(query_row["query_key"]),
            query_text=query_row["query_text"],
            baseline_plan=by_id.get(int(row["baseline_plan_id"] or 0), empty),
            current_plan=by_id.get(int(row["current_plan_id"] or 0), empty),
            indexes=[_snapshot(s) for s in snapshots],
            query_plans=list(by_id.values()),
            ledger=self.ledger(query_id=int(row["query_id"])),
        )

    def _target_name(self, target_id: int) -> str:
        with self._errors("reading a target"), self.engine.connect() as connection:
            return str(connection.execute(select(target.c.name).where(target.c.id == target_id)).scalar_one())

    # -- proposals --------------------------------------------------------------------------------

    def create(
        self, context: RegressionContext, proposal: Proposal, *, actor: str, dag_run_id: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Store a proposal (state proposed); return (row, created). An open one for the same
        regression and action is returned instead of a second one, also when another run stored it
        at the same moment (the unique key on regression, action and open_key refuses the second)."""
        try:
            return self._create(context, proposal, actor=actor, dag_run_id=dag_run_id)
        except RepositoryConflict:
            existing = self._open_proposal(context.regression_id, proposal.action.value)
            if existing is None:
                raise
            return existing, False

    def _open_proposal(self, regression_id: int, action: str) -> dict[str, Any] | None:
        statement = select(remediation).where(
            remediation.c.regression_id == regression_id,
            remediation.c.action == action,
            remediation.c.open_key == "open",
        )
        with self._errors("reading the open proposal"), self.engine.connect() as connection:
            row = connection.execute(statement).mappings().first()
        return None if row is None else dict(row)

    def _create(
        self, context: RegressionContext, proposal: Proposal, *, actor: str, dag_run_id: str | None
    ) -> tuple[dict[str, Any], bool]:
        existing = self._open_proposal(context.regression_id, proposal.action.value)
        if existing is not None:
            return existing, False
        with self._errors("storing a proposal"), self.engine.begin() as connection:
            now = utcnow()
            values = {
                "regression_id": context.regression_id,
                "target_id": context.target.id,
                "query_id": int(context.regression["query_id"]),
                "action": proposal.action.value,
                "state": RemediationState.PROPOSED.value,
                "sql_text": proposal.sql_text,
                "rollback_sql": proposal.rollback_text,
                "expected_effect": proposal.expected_effect,
                "evidence": proposal.stored_evidence(),
                "dag_run_id": dag_run_id,
                "created_at": now,
                "updated_at": now,
            }
            new_id = int(
                connection.execute(
                    insert(remediation).values(**values).returning(remediation.c.id)
                ).scalar_one()
            )
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action="remediation.propose",
                    target_id=context.target.id,
                    subject=f"remediation:{new_id}",
                    details={
                        "regression_id": context.regression_id,
                        "action": proposal.action.value,
                        "dag_run_id": dag_run_id,
                    },
                ),
            )
            row = connection.execute(select(remediation).where(remediation.c.id == new_id)).mappings().one()
        return dict(row), True

    def get(self, remediation_id: int) -> dict[str, Any]:
        """One remediation row, with its target's name (``target``)."""
        statement = (
            select(remediation, target.c.name.label("target"))
            .join(target, target.c.id == remediation.c.target_id)
            .where(remediation.c.id == remediation_id)
        )
        with self._errors(f"reading remediation {remediation_id}"), self.engine.connect() as connection:
            row = connection.execute(statement).mappings().first()
        if row is None:
            raise ConfigError(
                f"no remediation with id {remediation_id}", hint="`planmon remediate list` lists them"
            )
        return dict(row)

    def remediations(self, *, target_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Remediations newest first, with their target name and regression's query."""
        statement = (
            select(remediation, target.c.name.label("target"))
            .join(target, target.c.id == remediation.c.target_id)
            .order_by(remediation.c.id.desc())
            .limit(limit)
        )
        if target_id is not None:
            statement = statement.where(remediation.c.target_id == target_id)
        with self._errors("listing remediations"), self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(statement).mappings()]

    # -- state machine ----------------------------------------------------------------------------

    def transition(
        self,
        remediation_id: int,
        to: RemediationState,
        *,
        actor: str,
        values: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Move a remediation to ``to`` from one of the states allowed before it, audited in the same
        transaction; raise StaleTransition when it is not in such a state (nothing is written)."""
        allowed = [s.value for s in TRANSITIONS[to]]
        changes = {**dict(values or {}), "state": to.value, "updated_at": utcnow()}
        if to not in OPEN_STATES:  # final: no longer the open one of its regression and action
            changes["open_key"] = str(remediation_id)
        with (
            self._errors(f"moving remediation {remediation_id} to {to.value}"),
            self.engine.begin() as connection,
        ):
            result = connection.execute(
                update(remediation)
                .where(and_(remediation.c.id == remediation_id, remediation.c.state.in_(allowed)))
                .values(**changes)
            )
            if result.rowcount != 1:
                current = connection.execute(
                    select(remediation.c.state).where(remediation.c.id == remediation_id)
                ).scalar_one_or_none()
                raise StaleTransition(
                    f"remediation {remediation_id} is {current or 'missing'}, not {' or '.join(allowed)}: "
                    f"it cannot become {to.value}"
                )
            row = (
                connection.execute(select(remediation).where(remediation.c.id == remediation_id))
                .mappings()
                .one()
            )
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action=f"remediation.{to.value}",
                    target_id=int(row["target_id"]),
                    subject=f"remediation:{remediation_id}",
                    details=dict(details or {}),
                ),
            )
        return dict(row)

    def audit(
        self, remediation_id: int, target_id: int, *, actor: str, action: str, details: Mapping[str, Any]
    ) -> None:
        self.repository.audit(
            actor, action, target_id=target_id, subject=f"remediation:{remediation_id}", details=details
        )

    def audit_trail(self, remediation_id: int) -> list[dict[str, Any]]:
        statement = select(audit_log).where(audit_log.c.subject == f"remediation:{remediation_id}")
        with self._errors("reading the audit log"), self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(statement.order_by(audit_log.c.id)).mappings()]

    def remediation_candidates(self, regression_ids: Sequence[int]) -> list[int]:
        """Of these regressions, the open ones on targets whose mode is not off and that have no
        remediation yet (a rejected or rolled-back one is not re-proposed automatically); never an
        ``info`` one (under the impact floor: worth knowing, not worth a change to the server)."""
        if not regression_ids:
            return []
        has_remediation = (
            select(remediation.c.id).where(remediation.c.regression_id == regression.c.id).exists()
        )
        statement = (
            select(regression.c.id)
            .join(target, target.c.id == regression.c.target_id)
            .where(regression.c.id.in_(sorted(set(regression_ids))), regression.c.status == "open")
            .where(target.c.remediation_mode != "off", ~has_remediation)
            .where(regression.c.severity != Severity.INFO.value)
            .order_by(regression.c.id)
        )
        with self._errors("choosing regressions to remediate"), self.engine.connect() as connection:
            return [int(i) for i in connection.execute(statement).scalars()]

    # -- rails' inputs ----------------------------------------------------------------------------

    def applied_since(self, target_id: int, since: datetime) -> int:
        """Remediations applied on the target since ``since`` (whatever became of them later)."""
        statement = select(func.count()).where(
            remediation.c.target_id == target_id, remediation.c.applied_at >= since
        )
        with self._errors("counting applied remediations"), self.engine.connect() as connection:
            return int(connection.execute(statement.select_from(remediation)).scalar_one())

    def ledger(self, *, query_id: int) -> list[dict[str, Any]]:
        """Earlier remediations of a query that reached an outcome (or failed): what helped, and why not."""
        statement = (
            select(
                remediation.c.id,
                remediation.c.action,
                remediation.c.state,
                remediation.c.outcome,
                remediation.c.outcome_reason,
                remediation.c.applied_at,
                remediation.c.sql_text,
            )
            .where(remediation.c.query_id == query_id)
            .where(
                remediation.c.state.in_(
                    [
                        RemediationState.KEPT.value,
                        RemediationState.ROLLED_BACK.value,
                        RemediationState.FAILED.value,
                    ]
                )
            )
            .order_by(remediation.c.id)
        )
        with self._errors("reading the remediation ledger"), self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(statement).mappings()]

    def set_policy(self, target_name: str, policy: Mapping[str, Any], *, actor: str) -> None:
        existing = self.repository.get_target(target_name)
        with self._errors(f"updating target {target_name!r}"), self.engine.begin() as connection:
            connection.execute(
                update(target)
                .where(target.c.id == existing.id)
                .values(remediation_policy=dict(policy), updated_at=utcnow())
            )
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action="target.remediation_policy",
                    target_id=existing.id,
                    subject=f"target:{target_name}",
                    details=dict(policy),
                ),
            )

    def set_mode(
        self, target_name: str, mode: str, *, actor: str, remediation_conn_id: str | None = None
    ) -> None:
        existing = self.repository.get_target(target_name)
        values: dict[str, Any] = {"remediation_mode": mode, "updated_at": utcnow()}
        if remediation_conn_id is not None:
            values["remediation_conn_id"] = remediation_conn_id
        with self._errors(f"updating target {target_name!r}"), self.engine.begin() as connection:
            connection.execute(update(target).where(target.c.id == existing.id).values(**values))
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action="target.remediation_mode",
                    target_id=existing.id,
                    subject=f"target:{target_name}",
                    details={"mode": mode, "remediation_conn_id": remediation_conn_id},
                ),
            )


def _plan_info(row: Any) -> PlanInfo:
    import zlib

    body = row["body"]
    return PlanInfo(
        plan_id=int(row["id"]),
        plan_key=row["plan_key"],
        body=zlib.decompress(body) if body else None,
        is_forced=bool(row["is_forced"]),
        forcing_type=row["forcing_type"],
        force_failure_count=row["force_failure_count"],
        last_force_failure_reason=row["last_force_failure_reason"],
    )


def _snapshot(row: Any) -> IndexSnapshot:
    return IndexSnapshot(
        table=QualifiedName.from_key(row["table_name"]),
        index_name=row["index_name"],
        definition=row["definition"],
        is_unique=bool(row["is_unique"]),
        is_primary=bool(row["is_primary"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
    )


__all__: Sequence[str] = ("REMEDIATION_COLUMNS", "RemediationStore", "StaleTransition")
