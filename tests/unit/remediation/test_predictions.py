"""Predictions that need no server: SQL Server forcing (the last good plan's measured statistics and
its forcing history), MariaDB/MySQL (none available), and the rails' "passed" lines."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from planmon.config import load_settings
from planmon.engines import get_engine
from planmon.model import Action, Evidence, PlanInfo, RegressionContext, Remediation, RemediationState
from planmon.remediation import rails
from tests.unit.remediation.test_sqlserver import _target

SETTINGS = load_settings({})


def _context(
    *, failures: int | None = None, ledger: list[dict[str, object]] | None = None
) -> RegressionContext:
    regression = {
        "id": 5,
        "kind": "plan_change",
        "severity": "high",
        "metric": "cpu_us",
        "baseline_mean": 1200.0,
        "current_mean": 3900.0,
        "evidence": {"baseline_plan": {"executions": 120.0}},
    }
    good = PlanInfo(
        11,
        "11",
        None,
        force_failure_count=failures,
        last_force_failure_reason="NO_INDEX" if failures else None,
    )
    return RegressionContext(
        regression=regression,
        target=_target(),
        database_name="Sales",
        query_key="7",
        query_text="SELECT ...",
        baseline_plan=good,
        current_plan=PlanInfo(12, "12", None),
        query_plans=(good, PlanInfo(12, "12", None)),
        ledger=ledger or [],
    )


def _force(action: Action = Action.FORCE_PLAN) -> Remediation:
    return Remediation(
        id=3, regression_id=5, target_id=1, query_id=70, action=action, state=RemediationState.PROPOSED,
        database_name="Sales", statements=(), rollback=(), evidence=Evidence(plan_id=11),
        sql_text="EXEC sys.sp_query_store_force_plan @query_id = 7, @plan_id = 11;", rollback_sql=None,
        expected_effect="the last good plan",
    )  # fmt: skip


def test_forcing_shows_the_plans_measured_statistics_and_clean_history() -> None:
    prediction = get_engine("sqlserver").predict(None, _context(), _force(), SETTINGS)
    assert prediction.available and prediction.method == "query_store" and not prediction.contradicts
    assert prediction.lines == (
        "Query Store: plan 11 measured 1.20 ms cpu_us per execution over 120 executions in the "
        "baseline window, against 3.90 ms now",
        "forcing history: not forced now, force_failure_count 0",
    )


def test_earlier_failed_forces_contradict_the_proposal() -> None:
    ledger = [{"id": 1, "action": "force_plan", "state": "rolled_back"}]
    prediction = get_engine("sqlserver").predict(
        None, _context(failures=2, ledger=ledger), _force(), SETTINGS
    )
    assert prediction.contradicts
    assert "force_failure_count 2, last failure NO_INDEX" in prediction.lines[1]
    assert prediction.lines[2] == "planmon forced a plan of this query before (remediation 1): rolled_back"
    assert prediction.lines[-1].startswith("WARNING: forcing this plan failed or did not help before")


def test_other_sqlserver_actions_and_mariadb_have_no_prediction() -> None:
    hint = get_engine("sqlserver").predict(None, _context(), _force(Action.UPDATE_STATISTICS), SETTINGS)
    assert not hint.available and "update_statistics" in hint.lines[0]
    mariadb = get_engine("mysql").predict(None, _context(), _force(Action.RECREATE_INDEX), SETTINGS)
    assert mariadb.lines == ("no prediction is available on MariaDB/MySQL: it has no hypothetical indexes",)
    analyze = get_engine("postgres").predict(None, _context(), _force(Action.ANALYZE), SETTINGS)
    assert analyze.lines == ("no prediction for analyze: its effect cannot be measured before it runs",)


def test_rails_passed_say_what_each_rail_looked_at() -> None:
    target = replace(
        _target(
            policy={
                "allowed_actions": ["force_plan"],
                "maintenance_windows": [{"start": "08:00", "end": "18:00"}],
            }
        ),
    )
    lines = rails.passed(
        rails.RailInput(
            target=target, action=Action.FORCE_PLAN, now=datetime(2026, 11, 20, 9, 30),
            applied_last_hour=1, max_actions_per_hour=2,
        )
    )  # fmt: skip
    assert lines == [
        "mode approve: runs only after a person approves",
        "acts through the remediation connection sales_fix, not the collection one",
        "force_plan is on the allow-list",
        "1 of at most 2 action(s) applied on the target in the last hour",
        "inside the maintenance window 08:00-18:00 UTC",
        "no plan of the query is forced by someone else",
        "checked at 2026-11-20 09:30 UTC",
    ]


def test_a_policy_names_its_approval_channels() -> None:
    assert rails.RemediationPolicy.from_dict({"approval_channels": "dba-desk"}).approval_channels == (
        "dba-desk",
    )
    policy = rails.RemediationPolicy.from_dict({"approval_channels": ["a", "b"]})
    assert policy.approval_channels == ("a", "b") and policy.as_dict()["approval_channels"] == ["a", "b"]
