"""SQL Server remediation on recorded Query Store / automatic tuning result sets: which action is
proposed in which state, the exact statements (values bound, identifiers bracket-quoted), the rails
against forces placed by others, and how a failing force is read back."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from planmon.config import load_settings
from planmon.engines import get_engine
from planmon.engines.sqlserver import remediation as sqlserver
from planmon.errors import RefusalReason, RemediationRefused
from planmon.model import Action, PlanInfo, QualifiedName, RegressionContext, Target
from planmon.model import RemediationState as State
from planmon.remediation import rails

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RECORDED = FIXTURES / "remediation" / "sqlserver"


def _result(name: str, folder: Path = RECORDED) -> list[dict[str, Any]]:
    data = json.loads((folder / f"result.{name}.json").read_text())
    return [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]


def _showplans() -> dict[int, bytes]:
    rows = _result("query_store_plans.sales", FIXTURES / "engines" / "sqlserver")
    return {int(row["plan_id"]): str(row["query_plan"]).encode() for row in rows}


def _target(mode: str = "approve", policy: dict[str, Any] | None = None) -> Target:
    now = datetime(2026, 11, 20)
    return Target(
        1,
        "sales",
        "sqlserver",
        "sales_monitor",
        None,
        {},
        (),
        True,
        mode,  # type: ignore[arg-type]
        "sales_fix",
        now,
        now,
        policy or {},
    )


def _context(kind: str = "plan_change") -> RegressionContext:
    bodies = _showplans()
    regression = {"id": 5, "kind": kind, "query_id": 70, "severity": "high", "metric": "cpu_us"}
    return RegressionContext(
        regression=regression,
        target=_target(),
        database_name="Sales",
        query_key="7",
        query_text="SELECT ...",
        baseline_plan=PlanInfo(101, "11", bodies[11]),
        current_plan=PlanInfo(102, "12", bodies[12]),
    )


def _state(plans: str, recommendations: str | None = None, **kwargs: Any) -> sqlserver.QueryStoreState:
    recs = _result(f"tuning_recommendations.{recommendations}") if recommendations else []
    return sqlserver.state_from_results(7, _result(f"remediation_query_plans.{plans}"), recs, **kwargs)


def test_free_query_gets_a_force_of_the_last_good_plan_with_bound_ids() -> None:
    proposals = sqlserver.propose(_context(), _state("free", "active_other_query", major_version=16))
    assert [p.action for p in proposals] == [Action.FORCE_PLAN, Action.UPDATE_STATISTICS]
    force = proposals[0]
    assert force.statements[0].sql == "EXEC sys.sp_query_store_force_plan @query_id = %s, @plan_id = %s"
    assert force.statements[0].params == (7, 11)
    assert force.rollback[0].sql == "EXEC sys.sp_query_store_unforce_plan @query_id = %s, @plan_id = %s"
    assert force.sql_text.endswith("-- parameters: 7, 11")
    assert proposals[1].statements[0].sql == "UPDATE STATISTICS [dbo].[Orders]"


@pytest.mark.parametrize(
    ("plans", "recommendations", "why"),
    [
        ("forced_manual", None, "plan 12 forced (MANUAL)"),
        ("free", "verifying_query_7", "automatic plan correction recommendation Verifying"),
    ],
)
def test_no_force_over_someone_elses_force_or_apc_at_work(
    plans: str, recommendations: str | None, why: str
) -> None:
    state = _state(plans, recommendations)
    proposals = sqlserver.propose(_context(), state)
    assert Action.FORCE_PLAN not in [p.action for p in proposals]
    assert state.foreign_forces() == [why]
    update = next(p for p in proposals if p.action is Action.UPDATE_STATISTICS)
    with pytest.raises(RemediationRefused) as refused:  # the rails refuse even the harmless action
        rails.check(
            rails.RailInput(
                _target(),
                update.action,
                datetime(2026, 11, 25, 12),
                0,
                2,
                foreign_forces=state.foreign_forces(),
            )
        )
    assert refused.value.reason is RefusalReason.FORCED_BY_OTHERS


def test_a_reverted_apc_recommendation_does_not_block() -> None:
    state = _state("free", "reverted_query_7")
    assert state.apc_states == ["Reverted"] and state.foreign_forces() == []


def test_planmons_own_force_is_not_foreign_and_only_it_may_be_unforced() -> None:
    state = _state("forced_by_planmon", planmon_forced=[11])
    assert state.foreign_forces() == []
    undo = sqlserver.unforce_plan(state, 11, database_name="Sales", undoes=41)
    assert undo.statements[0].params == (7, 11) and undo.evidence.undoes == 41
    rails.check(rails.RailInput(_target(), Action.UNFORCE_PLAN, datetime(2026, 11, 25, 12), 0, 2, undoes=41))
    with pytest.raises(RemediationRefused) as refused:
        rails.check(rails.RailInput(_target(), Action.UNFORCE_PLAN, datetime(2026, 11, 25, 12), 0, 2))
    assert refused.value.reason is RefusalReason.NOT_OURS
    assert _state("forced_by_planmon").foreign_forces() == ["plan 11 forced (MANUAL)"]  # not in our ledger


def test_parameter_sensitive_query_gets_a_recompile_hint_on_2022_only() -> None:
    on_2022 = sqlserver.propose(_context("parameter_sensitive"), _state("free", major_version=16))
    assert on_2022[0].action is Action.QUERY_STORE_HINT
    assert on_2022[0].statements[0].params == (7, "OPTION(RECOMPILE)")
    assert on_2022[0].rollback[0].sql == "EXEC sys.sp_query_store_clear_hints @query_id = %s"
    on_2019 = sqlserver.propose(_context("parameter_sensitive"), _state("free", major_version=15))
    assert Action.QUERY_STORE_HINT not in [p.action for p in on_2019]


def test_evicting_one_plan_binds_its_handle() -> None:
    handle = bytes.fromhex("0600050012ab34cd")
    proposals = sqlserver.propose(_context(), _state("forced_manual", plan_handle=handle))
    evict = next(p for p in proposals if p.action is Action.EVICT_PLAN)
    assert (
        evict.statements[0].sql
        == "DECLARE @plan_handle varbinary(64) = %s; DBCC FREEPROCCACHE (@plan_handle)"
    )
    assert evict.statements[0].params == (handle,) and evict.rollback == ()


def test_identifiers_are_bracket_quoted() -> None:
    assert get_engine("sqlserver").quote(QualifiedName("dbo", "Order]s")) == "[dbo].[Order]]s]"
    assert (
        get_engine("sqlserver").quote(QualifiedName("dbo", "Sales.Orders")) == "[dbo].[Sales.Orders]"
    )  # one name


@pytest.mark.parametrize(
    ("before", "after", "ok", "why"),
    [
        ("free", "forced_by_planmon", True, "forced"),
        ("free", "force_failing", False, "forcing fails: NO_INDEX (force_failure_count 3)"),
        ("free", "free", False, "the plan is not forced (last failure: NONE)"),
    ],
)
def test_force_outcome_reads_last_force_failure_reason(before: str, after: str, ok: bool, why: str) -> None:
    assert sqlserver.force_outcome(_state(before).plan(11), _state(after).plan(11)) == (ok, why)


class _RecordedConnection:
    """Replays recorded result sets in the order read_state asks for them."""

    def __init__(self, *results: list[dict[str, Any]] | Exception) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, Any]] = []

    def cursor(self) -> Any:
        return _RecordedCursor(self)


class _RecordedCursor:
    def __init__(self, connection: _RecordedConnection) -> None:
        self.connection = connection
        self.rows: list[dict[str, Any]] = []
        self.description: list[tuple[str]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.connection.sent.append((sql, params))
        result = self.connection.results.pop(0)
        if isinstance(result, Exception):
            raise result
        self.rows = result
        self.description = [(name,) for name in (result[0] if result else {})]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self.rows]

    def close(self) -> None:
        pass


def test_read_state_reads_plans_and_apc_live_with_bound_query_id() -> None:
    connection = _RecordedConnection(
        [],  # remediation_query_variants: query 7 is no PSP variant
        _result("remediation_query_plans.free"),
        [],  # query_store_query_hints: none
        _result("tuning_recommendations.verifying_query_7"),
    )
    state = sqlserver.read_state(connection, 7, major_version=16)
    assert [p.plan_id for p in state.plans] == [11, 12] and state.apc_states == ["Verifying"]
    variants_sql, variants_params = connection.sent[0]
    assert "sys.query_store_query_variant" in variants_sql and variants_params == {"query_id": 7}
    sql, params = connection.sent[1]
    assert "WHERE p.query_id IN (%(query_ids_0)s)" in sql and params == {"query_ids_0": 7}


def test_unreadable_apc_state_blocks_a_force() -> None:
    """Without VIEW SERVER STATE planmon cannot know whether APC is forcing: it does not force."""
    connection = _RecordedConnection(
        _result("server_properties.2022"),
        [],  # remediation_query_variants
        _result("remediation_query_plans.free"),
        [],  # query_store_query_hints
        PermissionError("VIEW SERVER STATE"),
    )
    state = sqlserver.read_state(connection, 7)
    assert state.major_version == 16
    assert state.apc_states == ["Unknown"]
    assert state.foreign_forces() == ["automatic plan correction recommendation Unknown"]
    assert Action.FORCE_PLAN not in [p.action for p in sqlserver.propose(_context(), state)]


def test_the_dag_proposes_from_the_state_read_right_before(tmp_path: Path) -> None:
    """The workflow proposes from the state read live (with planmon's own forces), not stored state."""
    from sqlalchemy.engine import URL

    from planmon.remediation.workflow import ForcingStateReader, RemediationWorkflow
    from planmon.store import Repository
    from planmon.store.connection import create_repository_engine
    from planmon.store.remediations import RemediationStore
    from tests.unit.remediation.conftest import seed_sqlserver_regression

    with Repository(
        create_repository_engine(URL.create("sqlite", database=str(tmp_path / "r.db")))
    ) as repository:
        repository.init_schema()
        regression_id = seed_sqlserver_regression(repository)
        asked: list[frozenset[int]] = []

        def reader(plans: str) -> ForcingStateReader:
            def read(context: RegressionContext, ours: frozenset[int]) -> sqlserver.QueryStoreState:
                asked.append(ours)
                return _state(plans, planmon_forced=ours)

            return read

        settings = load_settings({})

        def workflow(plans: str) -> RemediationWorkflow:
            return RemediationWorkflow(repository, settings, forcing_state_reader=reader(plans))

        elsewhere = workflow("forced_manual").propose(regression_id)
        assert elsewhere.remediation.action == "update_statistics"  # never a force over someone else's
        RemediationStore(repository).transition(elsewhere.id, State.REFUSED, actor="test")
        free = workflow("free").propose(regression_id)
        assert free.remediation.action == "force_plan" and "sp_query_store_force_plan" in free.body
        assert asked == [frozenset(), frozenset()]
        # someone forces a plan while the approval waits: the rails, reading live again, refuse
        with pytest.raises(RemediationRefused) as refused:
            workflow("forced_manual").check_rails(free.id, now=datetime(2026, 11, 25, 12))
        assert refused.value.reason is RefusalReason.FORCED_BY_OTHERS
        assert RemediationStore(repository).get(free.id)["state"] == "refused"
