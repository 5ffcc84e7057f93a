"""SQL Server proposals through Query Store, after reading the query's forcing state.

Order of preference: a Query Store hint (RECOMPILE, 2022+) for a parameter-sensitive query; forcing
the last good plan when it is in Query Store and nothing of the query is forced already (by a person
or by automatic plan correction, whose recommendation state is read first); evicting the regressed
plan from the cache when its handle is known; ``UPDATE STATISTICS`` on the plan's tables. Values
(query_id, plan_id, handles, hint text) are bound parameters; identifiers are bracket-quoted.

After a force, :func:`force_outcome` reads ``is_forced_plan`` / ``force_failure_count`` /
``last_force_failure_reason_desc`` and reports a failing force as the reason the action failed.

SQL Server 2022+ parameter-sensitive plan optimisation: a variant has its own query_id and plans; its
parent query holds a dispatcher plan with no runtime statistics. planmon forces the variant's plan under
the variant's query_id, never a dispatcher plan (forcing one switches off the variants forced under
other dispatchers), and not while another variant of the same parent is forced by someone else.
Secondary replicas (2025, Azure): a negative query or plan id is a placeholder, never forced.
Query Store hints: ``sp_query_store_set_hints`` replaces the whole hint string, so the string read
before is kept in the evidence, merged with the new hint and set again by the rollback; a query whose
hints the engine wrote (non-zero ``source``) is left alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from planmon.engines._base import fetch_dicts
from planmon.engines._proposals import plan_tables, refresh_statistics
from planmon.engines.sqlserver.dialect import DIALECT, bind
from planmon.errors import RefusalReason, RemediationRefused
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

log = logging.getLogger(__name__)

HINTS_MIN_MAJOR = 16  # Query Store hints: SQL Server 2022
VARIANTS_MIN_MAJOR = 16  # sys.query_store_query_variant: SQL Server 2022
PLAN_FORCING_TYPE_MIN_MAJOR = 14  # plan_forcing_type_desc: SQL Server 2017
AZURE_ENGINE_EDITIONS = frozenset({5, 8})  # Azure SQL Database, Managed Instance: ProductVersion says 12
RECOMPILE = "RECOMPILE"
_OPTION = re.compile(r"(?is)^\s*OPTION\s*\((.*)\)\s*$")
# APC has forced (or will force) a plan of the query; Unknown: its state could not be read
APC_ACTIVE_STATES = frozenset({"Active", "Verifying", "Success", "Unknown"})


@dataclass(frozen=True, slots=True)
class PlanState:
    plan_id: int
    is_forced: bool = False
    forcing_type: str = "NONE"  # NONE / MANUAL / AUTO
    force_failure_count: int = 0
    last_force_failure_reason: str = "NONE"
    query_id: int | None = None  # the query the plan belongs to (None: the query acted on)


@dataclass(frozen=True, slots=True)
class VariantRelation:
    """One row of sys.query_store_query_variant: a variant query, its parent, its dispatcher plan."""

    variant_query_id: int
    parent_query_id: int
    dispatcher_plan_id: int


@dataclass(frozen=True, slots=True)
class HintState:
    """One row of sys.query_store_query_hints for the query."""

    query_hint_text: str
    source: int = 0  # 0: a user's hint; non-zero: written by the engine's feedback features
    source_desc: str = "User"
    replica_group_id: int | None = None
    failure_count: int = 0
    last_failure_reason: str = "NONE"


@dataclass(frozen=True, slots=True)
class QueryStoreState:
    """What SQL Server says about a query right before planmon acts on it."""

    query_id: int
    plans: Sequence[PlanState]
    apc_states: Sequence[str] = ()  # automatic plan correction recommendation states for this query
    major_version: int = 0
    plan_handle: bytes | None = None  # of the regressed plan in cache, when known
    planmon_forced: frozenset[int] = field(default_factory=frozenset)  # plans planmon forced itself
    variants: Sequence[VariantRelation] = ()  # PSP relations of the query's parent (2022+)
    hints: Sequence[HintState] = ()  # the query's Query Store hints (2022+)
    hints_readable: bool = True  # False: sys.query_store_query_hints could not be read

    def plan(self, plan_id: int) -> PlanState | None:
        """A plan of the query acted on (a sibling variant's plans are not its own)."""
        return next(
            (p for p in self.plans if p.plan_id == plan_id and p.query_id in (None, self.query_id)), None
        )

    @property
    def dispatcher_plan_ids(self) -> frozenset[int]:
        return frozenset(v.dispatcher_plan_id for v in self.variants)

    @property
    def parent_query_id(self) -> int | None:
        return next((v.parent_query_id for v in self.variants if v.variant_query_id == self.query_id), None)

    @property
    def sibling_query_ids(self) -> frozenset[int]:
        """The other variants of the query's parent (or the variants of the query, when it is the parent)."""
        parent = self.parent_query_id if self.parent_query_id is not None else self.query_id
        return frozenset(
            v.variant_query_id
            for v in self.variants
            if v.parent_query_id == parent and v.variant_query_id != self.query_id
        )

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
            if p.query_id in (None, self.query_id)
            else f"plan {p.plan_id} of variant query {p.query_id} (same parent) forced ({p.forcing_type})"
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
    variant_rows: Iterable[Mapping[str, Any]] = (),
    hint_rows: Iterable[Mapping[str, Any]] | None = (),
) -> QueryStoreState:
    """State from sys.query_store_plan, sys.query_store_query_variant, sys.query_store_query_hints and
    sys.dm_db_tuning_recommendations rows (recorded or live); ``hint_rows`` None: unreadable."""
    variants = [
        VariantRelation(
            int(row["query_variant_query_id"]), int(row["parent_query_id"]), int(row["dispatcher_plan_id"])
        )
        for row in variant_rows
    ]
    state = QueryStoreState(query_id=query_id, plans=(), variants=variants)
    related = {query_id} | state.sibling_query_ids
    plan_forcing_type = "MANUAL" if 0 < major_version < PLAN_FORCING_TYPE_MIN_MAJOR else "NONE"
    plans = [
        PlanState(
            plan_id=int(row["plan_id"]),
            is_forced=bool(row["is_forced_plan"]),
            # SQL Server 2016 has no automatic tuning: a forced plan there is a user's
            forcing_type=str(
                row.get("plan_forcing_type_desc") or (plan_forcing_type if row["is_forced_plan"] else "NONE")
            ),
            force_failure_count=int(row.get("force_failure_count") or 0),
            last_force_failure_reason=str(row.get("last_force_failure_reason_desc") or "NONE"),
            query_id=None if int(row["query_id"]) == query_id else int(row["query_id"]),
        )
        for row in plan_rows
        if int(row["query_id"]) in related
    ]
    hints = [
        HintState(
            query_hint_text=str(row.get("query_hint_text") or ""),
            source=int(row.get("source") or 0),
            source_desc=str(row.get("source_desc") or "User"),
            replica_group_id=None if row.get("replica_group_id") is None else int(row["replica_group_id"]),
            failure_count=int(row.get("query_hint_failure_count") or 0),
            last_failure_reason=str(row.get("last_query_hint_failure_reason_desc") or "NONE"),
        )
        for row in hint_rows or ()
        if int(row["query_id"]) == query_id
    ]
    return QueryStoreState(
        query_id=query_id,
        plans=plans,
        apc_states=_apc_states(related, recommendation_rows),
        major_version=major_version,
        plan_handle=plan_handle,
        planmon_forced=frozenset(int(p) for p in planmon_forced),
        variants=variants,
        hints=hints,
        hints_readable=hint_rows is not None,
    )


def _apc_states(query_ids: Iterable[int], rows: Iterable[Mapping[str, Any]]) -> list[str]:
    wanted = set(query_ids)
    states = []
    for row in rows:
        if row.get("type") != "FORCE_LAST_GOOD_PLAN":
            continue
        details, state = _json(row.get("details")), _json(row.get("state"))
        script = str((details.get("implementationDetails") or {}).get("script") or "")
        script = script.replace("@query_id=", "@query_id = ")
        if any(f"@query_id = {query_id}," in script for query_id in wanted):
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
    """The proposals that are safe in ``state``; a refused force or hint is left out, its reason logged
    (:func:`check_force`, :func:`previous_hint` name it)."""
    state = state or state_from_context(context)
    proposals: list[Proposal] = []
    if context.kind == RegressionKind.PARAMETER_SENSITIVE and state.major_version >= HINTS_MIN_MAJOR:
        try:
            proposals.append(recompile_hint(context, state))
        except RemediationRefused as refused:  # engine-written or unreadable hints: no hint proposal
            log.info(
                "query %s: no Query Store hint proposed (%s): %s",
                state.query_id,
                refused.reason.value,
                refused,
            )
    baseline_key = context.baseline_plan.plan_key
    if baseline_key and baseline_key.lstrip("-").isdigit() and baseline_key != context.current_plan.plan_key:
        baseline = state.plan(int(baseline_key))
        if baseline is not None and not state.foreign_forces():
            try:
                proposals.append(force_plan(context, state, baseline.plan_id))
            except RemediationRefused as refused:  # a dispatcher plan, a temporary id, a forced variant
                log.info(
                    "query %s: no force proposed (%s): %s", state.query_id, refused.reason.value, refused
                )
    if state.plan_handle:
        proposals.append(evict_plan(context, state.plan_handle))
    tables = plan_tables(context, "sqlserver")
    if tables:
        proposals.append(update_statistics(context, tables))
    return proposals


def check_force(state: QueryStoreState, plan_id: int) -> None:
    """Raise RemediationRefused, naming the reason, when forcing ``plan_id`` for the query is not safe."""
    if state.query_id < 0 or plan_id < 0:
        raise RemediationRefused(
            f"query {state.query_id} / plan {plan_id}: a negative id is a temporary placeholder from a "
            "secondary replica that names nothing once the primary persists it",
            reason=RefusalReason.TEMPORARY_ID,
            hint="wait for the next collection, which reads the persisted ids",
        )
    if plan_id in state.dispatcher_plan_ids:
        raise RemediationRefused(
            f"plan {plan_id} is a parameter-sensitive plan optimisation dispatcher plan: forcing it switches "
            "off the variants forced under other dispatchers",
            reason=RefusalReason.DISPATCHER_PLAN,
            hint="force the plan of the regressed variant under the variant's own query_id",
        )
    others = [
        p for p in state.plans if p.query_id not in (None, state.query_id) and p.is_forced
        and p.plan_id not in state.planmon_forced
    ]  # fmt: skip
    if others:
        raise RemediationRefused(
            f"query {state.query_id}: variant query {others[0].query_id} of the same parent has plan "
            f"{others[0].plan_id} forced by someone else ({others[0].forcing_type})",
            reason=RefusalReason.FORCED_BY_OTHERS,
            hint="leave the variants to whoever forced them, or unforce that plan first",
        )
    if state.plan(plan_id) is None:
        raise RemediationRefused(
            f"plan {plan_id} is not a plan of query {state.query_id} in Query Store",
            reason=RefusalReason.NO_ACTION,
        )


def force_plan(context: RegressionContext, state: QueryStoreState, plan_id: int) -> Proposal:
    """Force ``plan_id`` under the query's own query_id (a variant's, for a PSP variant)."""
    check_force(state, plan_id)
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


def previous_hint(state: QueryStoreState) -> str | None:
    """The query's current (user) hint string, after refusing engine-written or unreadable hints."""
    if not state.hints_readable:
        raise RemediationRefused(
            f"query {state.query_id}: its current Query Store hints could not be read "
            "(sys.query_store_query_hints), so a new hint string could wipe them",
            reason=RefusalReason.HINTS_UNKNOWN,
            hint="GRANT VIEW SERVER PERFORMANCE STATE to the collection login (SQL Server 2022+)",
        )
    engine = [h for h in state.hints if h.source != 0]
    if engine:
        raise RemediationRefused(
            f"query {state.query_id}: its Query Store hints were written by the engine "
            f"({engine[0].source_desc}, source {engine[0].source}): planmon neither replaces nor clears them",
            reason=RefusalReason.ENGINE_HINT,
        )
    groups = {h.replica_group_id for h in state.hints}
    if len(groups) > 1:  # hints are per replica group; which one a set_hints here replaces is not read
        raise RemediationRefused(
            f"query {state.query_id} has Query Store hints in replica groups "
            f"{', '.join(str(g) for g in sorted(groups, key=str))}: planmon sets hints only where one "
            "string is known",
            reason=RefusalReason.HINTS_UNKNOWN,
            hint="set the hint per replica group (sys.sp_query_store_set_hints @replica_group_id) by hand",
        )
    texts = [h.query_hint_text for h in state.hints if h.query_hint_text]
    return texts[0] if texts else None


def merged_hint(previous: str | None, hint: str) -> str | None:
    """``previous`` (an ``OPTION(...)`` string) with ``hint`` added; None when it already holds it."""
    if not previous:
        return f"OPTION({hint})"
    match = _OPTION.match(previous)
    inner = match.group(1).strip() if match else previous.strip()
    if re.search(rf"(?i)\b{re.escape(hint)}\b", inner):
        return None
    return f"OPTION({inner}, {hint})"


def recompile_hint(context: RegressionContext, state: QueryStoreState) -> Proposal:
    """OPTION(RECOMPILE) added to the query's hint string; the rollback sets the previous string again
    (``sp_query_store_set_hints`` replaces the whole string; clearing would drop the user's other hints)."""
    previous = previous_hint(state)
    hints = merged_hint(previous, RECOMPILE)
    if hints is None:
        raise RemediationRefused(
            f"query {state.query_id} already has {previous}", reason=RefusalReason.NO_ACTION
        )
    rollback = (
        Statement(
            "EXEC sys.sp_query_store_set_hints @query_id = %s, @query_hints = %s", (state.query_id, previous)
        )
        if previous
        else Statement("EXEC sys.sp_query_store_clear_hints @query_id = %s", (state.query_id,))
    )
    return Proposal(
        action=Action.QUERY_STORE_HINT,
        database_name=context.database_name,
        statements=(
            Statement(
                "EXEC sys.sp_query_store_set_hints @query_id = %s, @query_hints = %s", (state.query_id, hints)
            ),
        ),
        rollback=(rollback,),
        expected_effect="each execution compiles for its own parameter values (no sniffed plan reused)",
        evidence=Evidence(query_id=state.query_id, hint=hints, previous_hint=previous),
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
    state is unknown and the proposal says so instead of assuming it is idle. The version is read first
    (unless given), because the files differ by version: SQL Server 2016 has no plan_forcing_type_desc
    (error 207), variants and hints exist from 2022 (Azure SQL: whatever ProductVersion says).
    """
    engine_edition = None
    if not major_version:
        server = _rows(connection, "server_properties")
        version = str(server[0]["product_version"] or "0") if server else "0"
        major_version = int(version.split(".")[0] or 0)
        engine_edition = server[0].get("engine_edition") if server else None
    current = major_version >= VARIANTS_MIN_MAJOR or engine_edition in AZURE_ENGINE_EDITIONS
    variants = _rows(connection, "remediation_query_variants", {"query_id": query_id}) if current else []
    related = sorted({query_id} | {int(v["query_variant_query_id"]) for v in variants})
    old = major_version < PLAN_FORCING_TYPE_MIN_MAJOR and engine_edition not in AZURE_ENGINE_EDITIONS
    name = "remediation_query_plans_2016" if old else "remediation_query_plans"
    plans = _rows(connection, name, {"query_ids": related})
    hints: list[dict[str, Any]] | None = []
    if current:
        try:
            hints = _rows(connection, "query_store_query_hints", {"query_id": query_id})
        except Exception:  # VIEW SERVER PERFORMANCE STATE missing: unknown hints, no hint is proposed
            hints = None
    try:  # automatic tuning exists from SQL Server 2017: on 2016 nothing forces but people
        recommendations = [] if old else _rows(connection, "tuning_recommendations")
    except Exception:  # permission denied: treated as "unknown"
        recommendations = [_unknown_recommendation(query_id)]
    return state_from_results(
        query_id,
        plans,
        recommendations,
        major_version=major_version,
        planmon_forced=planmon_forced,
        variant_rows=variants,
        hint_rows=hints,
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
