"""SQL Server proposals through Query Store, after reading the query's forcing state.

Order of preference: a Query Store hint (RECOMPILE, 2022+) for a parameter-sensitive query; forcing
the last good plan when it is in Query Store and nothing of the query is forced already (by a person
or by automatic plan correction, whose recommendation state is read first); evicting the regressed
plan from the cache when its handle is known; ``UPDATE STATISTICS`` on the plan's tables. Values
(query_id, plan_id, handles, hint text) are bound parameters; identifiers are bracket-quoted.

After a force, :func:`force_outcome` reads ``is_forced_plan`` / ``force_failure_count`` /
``last_force_failure_reason_desc`` and reports a failing force as the reason the action failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from planmon.engines._base import fetch_dicts
from planmon.engines._proposals import plan_tables, refresh_statistics
from planmon.engines.sqlserver.dialect import DIALECT, bind
from planmon.model import (
    Action,
    Evidence,
    ForcingSnapshot,
    PlanForcing,
    Proposal,
    QualifiedName,
    RegressionContext,
    RegressionKind,
    Remediation,
    Statement,
)
from planmon.sql import load_sql

HINTS_MIN_MAJOR = 16  # Query Store hints: SQL Server 2022
# APC has forced (or will force) a plan of the query; Unknown: its state could not be read
APC_ACTIVE_STATES = frozenset({"Active", "Verifying", "Success", "Unknown"})


@dataclass(frozen=True, slots=True)
class PlanState:
    plan_id: int
    is_forced: bool = False
    forcing_type: str = "NONE"  # NONE / MANUAL / AUTO
    force_failure_count: int = 0
    last_force_failure_reason: str = "NONE"


@dataclass(frozen=True, slots=True)
class QueryStoreState:
    """What SQL Server says about a query right before planmon acts on it."""

    query_id: int
    plans: Sequence[PlanState]
    apc_states: Sequence[str] = ()  # automatic plan correction recommendation states for this query
    major_version: int = 0
    plan_handle: bytes | None = None  # of the regressed plan in cache, when known
    planmon_forced: frozenset[int] = field(default_factory=frozenset)  # plans planmon forced itself

    def plan(self, plan_id: int) -> PlanState | None:
        return next((p for p in self.plans if p.plan_id == plan_id), None)

    def snapshot(self) -> ForcingSnapshot:
        """What a force proposal records of this state (to tell a failing force afterwards)."""
        return ForcingSnapshot(
            tuple(PlanForcing(p.plan_id, p.is_forced, p.forcing_type) for p in self.plans),
            tuple(self.apc_states),
        )

    def foreign_forces(self) -> list[str]:
        """Why a force would override someone else: forced plans not planmon's, APC at work."""
        reasons = [
            f"plan {p.plan_id} forced ({p.forcing_type})"
            for p in self.plans
            if p.is_forced and p.plan_id not in self.planmon_forced
        ]
        reasons += [
            f"automatic plan correction recommendation {s}" for s in self.apc_states if s in APC_ACTIVE_STATES
        ]
        return reasons


def state_from_results(
    query_id: int,
    plan_rows: Iterable[Mapping[str, Any]],
    recommendation_rows: Iterable[Mapping[str, Any]] = (),
    *,
    major_version: int = 0,
    plan_handle: bytes | None = None,
    planmon_forced: Iterable[int] = (),
) -> QueryStoreState:
    """State from sys.query_store_plan rows and sys.dm_db_tuning_recommendations rows (recorded or live)."""
    plans = [
        PlanState(
            plan_id=int(row["plan_id"]),
            is_forced=bool(row["is_forced_plan"]),
            forcing_type=str(row.get("plan_forcing_type_desc") or "NONE"),
            force_failure_count=int(row.get("force_failure_count") or 0),
            last_force_failure_reason=str(row.get("last_force_failure_reason_desc") or "NONE"),
        )
        for row in plan_rows
        if int(row["query_id"]) == query_id
    ]
    return QueryStoreState(
        query_id=query_id,
        plans=plans,
        apc_states=_apc_states(query_id, recommendation_rows),
        major_version=major_version,
        plan_handle=plan_handle,
        planmon_forced=frozenset(int(p) for p in planmon_forced),
    )


def _apc_states(query_id: int, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    states = []
    for row in rows:
        if row.get("type") != "FORCE_LAST_GOOD_PLAN":
            continue
        details, state = _json(row.get("details")), _json(row.get("state"))
        script = str((details.get("implementationDetails") or {}).get("script") or "")
        if f"@query_id = {query_id}," in script.replace("@query_id=", "@query_id = "):
            states.append(str(state.get("currentValue") or "unknown"))
    return states


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def state_from_context(context: RegressionContext) -> QueryStoreState:
    """State from the plans collection stored (used when the target cannot be read right now)."""
    plans = [
        PlanState(
            int(p.plan_key),
            p.is_forced,
            p.forcing_type or "NONE",
            p.force_failure_count or 0,
            p.last_force_failure_reason or "NONE",
        )
        for p in context.query_plans
        if p.plan_key and str(p.plan_key).isdigit()
    ]
    ours = [int(e["plan_id"]) for e in context.ledger if e.get("plan_id") is not None]
    return QueryStoreState(
        int(context.query_key) if context.query_key.isdigit() else 0, plans, planmon_forced=frozenset(ours)
    )


def propose(context: RegressionContext, state: QueryStoreState | None = None) -> list[Proposal]:
    state = state or state_from_context(context)
    proposals: list[Proposal] = []
    if context.kind == RegressionKind.PARAMETER_SENSITIVE and state.major_version >= HINTS_MIN_MAJOR:
        proposals.append(recompile_hint(context, state))
    baseline_key = context.baseline_plan.plan_key
    if baseline_key and baseline_key.isdigit() and baseline_key != context.current_plan.plan_key:
        baseline = state.plan(int(baseline_key))
        if baseline is not None and not state.foreign_forces():
            proposals.append(force_plan(context, state, baseline.plan_id))
    if state.plan_handle:
        proposals.append(evict_plan(context, state.plan_handle))
    tables = plan_tables(context, "sqlserver")
    if tables:
        proposals.append(update_statistics(context, tables))
    return proposals


def force_plan(context: RegressionContext, state: QueryStoreState, plan_id: int) -> Proposal:
    return Proposal(
        action=Action.FORCE_PLAN,
        database_name=context.database_name,
        statements=(
            Statement(
                "EXEC sys.sp_query_store_force_plan @query_id = %s, @plan_id = %s", (state.query_id, plan_id)
            ),
        ),
        rollback=(
            Statement(
                "EXEC sys.sp_query_store_unforce_plan @query_id = %s, @plan_id = %s",
                (state.query_id, plan_id),
            ),
        ),
        expected_effect=f"query {state.query_id} runs its last good plan {plan_id} again",
        evidence=Evidence(query_id=state.query_id, plan_id=plan_id, forcing_state=state.snapshot()),
    )


def unforce_plan(state: QueryStoreState, plan_id: int, *, database_name: str, undoes: int) -> Proposal:
    """Undo of planmon's own force (the rails refuse it for any other force)."""
    return Proposal(
        action=Action.UNFORCE_PLAN,
        database_name=database_name,
        statements=(
            Statement(
                "EXEC sys.sp_query_store_unforce_plan @query_id = %s, @plan_id = %s",
                (state.query_id, plan_id),
            ),
        ),
        rollback=(
            Statement(
                "EXEC sys.sp_query_store_force_plan @query_id = %s, @plan_id = %s", (state.query_id, plan_id)
            ),
        ),
        expected_effect=f"query {state.query_id} is optimised freely again",
        evidence=Evidence(query_id=state.query_id, plan_id=plan_id, undoes=undoes),
    )


def recompile_hint(context: RegressionContext, state: QueryStoreState) -> Proposal:
    return Proposal(
        action=Action.QUERY_STORE_HINT,
        database_name=context.database_name,
        statements=(
            Statement(
                "EXEC sys.sp_query_store_set_hints @query_id = %s, @query_hints = %s",
                (state.query_id, "OPTION(RECOMPILE)"),
            ),
        ),
        rollback=(Statement("EXEC sys.sp_query_store_clear_hints @query_id = %s", (state.query_id,)),),
        expected_effect="each execution compiles for its own parameter values (no sniffed plan reused)",
        evidence=Evidence(query_id=state.query_id, hint="OPTION(RECOMPILE)"),
    )


def evict_plan(context: RegressionContext, plan_handle: bytes) -> Proposal:
    return Proposal(
        action=Action.EVICT_PLAN,
        database_name=context.database_name,
        statements=(
            Statement(
                "DECLARE @plan_handle varbinary(64) = %s; DBCC FREEPROCCACHE (@plan_handle)", (plan_handle,)
            ),
        ),
        rollback=(),
        expected_effect="the next execution compiles a fresh plan (only this plan leaves the cache)",
        evidence=Evidence(plan_handle="0x" + plan_handle.hex()),
    )


def update_statistics(context: RegressionContext, tables: Sequence[QualifiedName]) -> Proposal:
    return refresh_statistics(
        context,
        Action.UPDATE_STATISTICS,
        tuple(Statement(f"UPDATE STATISTICS {DIALECT.quote(t)}") for t in tables),
        tables,
        "fresh statistics on the plan's tables may bring back the baseline plan",
    )


def force_outcome(before: PlanState | None, after: PlanState | None) -> tuple[bool, str]:
    """(ok, why) of a force from the plan's state before and after: forced, and no new failure."""
    if after is None:
        return False, "the plan is no longer in Query Store"
    if not after.is_forced:
        return False, f"the plan is not forced (last failure: {after.last_force_failure_reason})"
    failures_before = before.force_failure_count if before is not None else 0
    if after.force_failure_count > failures_before or after.last_force_failure_reason != "NONE":
        return (
            False,
            f"forcing fails: {after.last_force_failure_reason} "
            f"(force_failure_count {after.force_failure_count})",
        )
    return True, "forced"


def read_state(
    connection: Any, query_id: int, *, major_version: int = 0, planmon_forced: Iterable[int] = ()
) -> QueryStoreState:
    """The query's forcing state and APC's recommendations, read live (DB-API connection, read-only).

    Without VIEW SERVER STATE the recommendations cannot be read: then automatic plan correction's
    state is unknown and the proposal says so instead of assuming it is idle.
    """
    plans = _rows(connection, "remediation_query_plans", {"query_id": query_id})
    if not major_version:
        server = _rows(connection, "server_properties")
        version = str(server[0]["product_version"] or "0") if server else "0"
        major_version = int(version.split(".")[0] or 0)
    try:
        recommendations = _rows(connection, "tuning_recommendations")
    except Exception:  # permission denied or before SQL Server 2017: treated as "unknown"
        recommendations = [_unknown_recommendation(query_id)]
    return state_from_results(
        query_id, plans, recommendations, major_version=major_version, planmon_forced=planmon_forced
    )


def _unknown_recommendation(query_id: int) -> dict[str, Any]:
    script = f"exec sp_query_store_force_plan @query_id = {query_id}, @plan_id = 0"
    return {
        "type": "FORCE_LAST_GOOD_PLAN",
        "state": json.dumps({"currentValue": "Unknown"}),
        "details": json.dumps({"implementationDetails": {"script": script}}),
    }


def _rows(connection: Any, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    sql_text = load_sql("sqlserver", name)
    cursor = connection.cursor()
    try:
        if params is not None:
            cursor.execute(*bind(sql_text, params))
        else:
            cursor.execute(sql_text)
        return fetch_dicts(cursor)
    finally:
        cursor.close()


def applied_problem(remediation: Remediation, state: QueryStoreState) -> str | None:
    """Why planmon's force is not in effect (forced, and no new failure), read back live; None: it is."""
    if remediation.action is not Action.FORCE_PLAN or remediation.evidence.plan_id is None:
        return None
    plan_id = remediation.evidence.plan_id
    recorded = (
        remediation.evidence.forcing_state.plan(plan_id) if remediation.evidence.forcing_state else None
    )
    before = PlanState(plan_id) if recorded is None else PlanState(plan_id, recorded.is_forced)
    ok, why = force_outcome(before, state.plan(plan_id))
    return None if ok else f"plan {plan_id}: {why}"
