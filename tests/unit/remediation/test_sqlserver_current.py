"""SQL Server 2016 / 2022 / 2025 remediation on recorded result sets: the version read before any
version-gated file, parameter-sensitive plan optimisation variants (force the variant's plan, never the
dispatcher, never over a sibling forced by someone else), temporary secondary-replica ids, and Query
Store hints that keep and restore the string that was there before."""

from __future__ import annotations

from typing import Any

import pytest

from planmon.engines.sqlserver import remediation as sqlserver
from planmon.errors import RefusalReason, RemediationRefused
from planmon.model import Action, PlanInfo, RegressionContext
from tests.unit.remediation.test_sqlserver import _context, _RecordedConnection, _result, _showplans, _target


def _variant_context(kind: str = "plan_change") -> RegressionContext:
    """Variant 22 of PSP parent 20 regressed from plan 32 to plan 34."""
    bodies = _showplans()
    return RegressionContext(
        regression={"id": 9, "kind": kind, "query_id": 220, "severity": "high", "metric": "cpu_us"},
        target=_target(),
        database_name="Sales",
        query_key="22",
        query_text="SELECT ...",
        baseline_plan=PlanInfo(320, "32", bodies[11]),
        current_plan=PlanInfo(340, "34", bodies[12]),
    )


def _psp_state(plans: str = "psp_free", **kwargs: Any) -> sqlserver.QueryStoreState:
    return sqlserver.state_from_results(
        22,
        _result(f"remediation_query_plans.{plans}"),
        major_version=16,
        variant_rows=_result("remediation_query_variants.psp"),
        **kwargs,
    )


# --- defect: SQL Server 2016 ---------------------------------------------------------------------------


def test_sql_server_2016_reads_the_version_first_and_plans_without_plan_forcing_type_desc() -> None:
    connection = _RecordedConnection(
        _result("server_properties.2016"), _result("remediation_query_plans_2016.forced_manual")
    )
    state = sqlserver.read_state(connection, 7)
    assert state.major_version == 13
    sent = [sql for sql, _ in connection.sent]
    assert "SERVERPROPERTY" in sent[0]  # the version before any version-gated file
    assert "plan_forcing_type_desc" not in sent[1]  # error 207 on 2016
    assert len(sent) == 2  # no variants, hints or automatic tuning on 2016
    assert state.plan(12) == sqlserver.PlanState(12, True, "MANUAL")
    assert state.foreign_forces() == ["plan 12 forced (MANUAL)"]


def test_sql_server_2016_proposes_a_force_when_nothing_is_forced() -> None:
    connection = _RecordedConnection(
        _result("server_properties.2016"), _result("remediation_query_plans_2016.free")
    )
    state = sqlserver.read_state(connection, 7)
    assert state.apc_states == []  # automatic tuning does not exist there: not "unknown"
    force = sqlserver.propose(_context(), state)[0]
    assert force.action is Action.FORCE_PLAN and force.statements[0].params == (7, 11)


# --- PSP variants ----------------------------------------------------------------------------------------


def test_the_regressed_variants_own_plan_is_forced_under_the_variants_query_id() -> None:
    state = _psp_state()
    assert state.parent_query_id == 20 and state.sibling_query_ids == {21, 23}
    assert state.dispatcher_plan_ids == {30}
    force = next(p for p in sqlserver.propose(_variant_context(), state) if p.action is Action.FORCE_PLAN)
    assert force.statements[0].params == (22, 32)  # the variant's query and plan, not parent 20 / plan 30
    assert force.rollback[0].params == (22, 32)


def test_a_dispatcher_plan_is_never_forced() -> None:
    state = _psp_state()
    with pytest.raises(RemediationRefused) as refused:
        sqlserver.check_force(state, 30)
    assert refused.value.reason is RefusalReason.DISPATCHER_PLAN
    assert "dispatcher" in str(refused.value)


def test_no_force_while_a_sibling_variant_is_forced_by_someone_else() -> None:
    state = _psp_state("psp_sibling_forced")
    with pytest.raises(RemediationRefused) as refused:
        sqlserver.check_force(state, 32)
    assert refused.value.reason is RefusalReason.FORCED_BY_OTHERS
    assert "variant query 21" in str(refused.value)
    assert state.foreign_forces() == ["plan 31 of variant query 21 (same parent) forced (MANUAL)"]
    assert Action.FORCE_PLAN not in [p.action for p in sqlserver.propose(_variant_context(), state)]
    # planmon's own force of the sibling is no one else's
    assert _psp_state("psp_sibling_forced", planmon_forced=[31]).foreign_forces() == []


def test_a_sibling_variants_plan_is_not_the_querys_own() -> None:
    state = _psp_state()
    assert state.plan(31) is None and state.plan(32) is not None
    with pytest.raises(RemediationRefused) as refused:
        sqlserver.check_force(state, 31)
    assert refused.value.reason is RefusalReason.NO_ACTION


def test_read_state_reads_the_variants_then_the_plans_of_every_sibling() -> None:
    connection = _RecordedConnection(
        _result("remediation_query_variants.psp"), _result("remediation_query_plans.psp_free"), [], []
    )
    state = sqlserver.read_state(connection, 22, major_version=16)
    _, plan_params = connection.sent[1]
    assert sorted(plan_params.values()) == [21, 22, 23]
    assert [p.plan_id for p in state.plans if p.query_id is None] == [32, 34]


@pytest.mark.parametrize(("query_id", "plan_id"), [(-3, 11), (7, -9)])
def test_a_temporary_negative_id_is_never_forced(query_id: int, plan_id: int) -> None:
    state = sqlserver.state_from_results(query_id, [], major_version=17)
    with pytest.raises(RemediationRefused) as refused:
        sqlserver.check_force(state, plan_id)
    assert refused.value.reason is RefusalReason.TEMPORARY_ID


# --- Query Store hints: keep and restore the previous string -------------------------------------------


def _hinted(hints: str | None) -> sqlserver.QueryStoreState:
    return sqlserver.state_from_results(
        7,
        _result("remediation_query_plans.free"),
        major_version=16,
        hint_rows=None if hints is None else _result(f"query_store_query_hints.{hints}"),
    )


def test_a_hint_is_added_to_the_users_hints_and_the_rollback_sets_them_again() -> None:
    [hint] = [p for p in sqlserver.propose(_context("parameter_sensitive"), _hinted("user_maxdop"))
              if p.action is Action.QUERY_STORE_HINT]  # fmt: skip
    assert hint.statements[0].params == (7, "OPTION(MAXDOP 1, RECOMPILE)")
    assert hint.rollback[0].sql == "EXEC sys.sp_query_store_set_hints @query_id = %s, @query_hints = %s"
    assert hint.rollback[0].params == (7, "OPTION(MAXDOP 1)")  # restored, not cleared
    assert hint.evidence.previous_hint == "OPTION(MAXDOP 1)"
    assert hint.stored_evidence()["previous_hint"] == "OPTION(MAXDOP 1)"


def test_without_previous_hints_the_rollback_clears() -> None:
    hint = sqlserver.recompile_hint(
        _context("parameter_sensitive"), sqlserver.QueryStoreState(7, (), major_version=16)
    )
    assert hint.statements[0].params == (7, "OPTION(RECOMPILE)")
    assert hint.rollback[0].sql == "EXEC sys.sp_query_store_clear_hints @query_id = %s"
    assert hint.evidence.previous_hint is None


@pytest.mark.parametrize(
    ("hints", "reason"),
    [
        ("engine_feedback", RefusalReason.ENGINE_HINT),
        (None, RefusalReason.HINTS_UNKNOWN),
        ("two_replica_groups", RefusalReason.HINTS_UNKNOWN),  # per replica group: which one is replaced?
    ],
)
def test_engine_written_or_unreadable_hints_are_never_touched(
    hints: str | None, reason: RefusalReason
) -> None:
    state = _hinted(hints)
    with pytest.raises(RemediationRefused) as refused:
        sqlserver.recompile_hint(_context("parameter_sensitive"), state)
    assert refused.value.reason is reason
    actions = [p.action for p in sqlserver.propose(_context("parameter_sensitive"), state)]
    assert Action.QUERY_STORE_HINT not in actions


def test_read_state_reads_the_hints_before_proposing_one() -> None:
    connection = _RecordedConnection(
        [], _result("remediation_query_plans.free"), _result("query_store_query_hints.user_maxdop"), []
    )
    state = sqlserver.read_state(connection, 7, major_version=16)
    assert [h.query_hint_text for h in state.hints] == ["OPTION(MAXDOP 1)"]
    assert "sys.query_store_query_hints" in connection.sent[2][0] and connection.sent[2][1] == {"query_id": 7}
    failing = _RecordedConnection(
        [], _result("remediation_query_plans.free"), PermissionError("VIEW SERVER PERFORMANCE STATE"), []
    )
    assert sqlserver.read_state(failing, 7, major_version=16).hints_readable is False
