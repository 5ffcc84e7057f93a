"""What forcing the last good plan is predicted to do on SQL Server, from what Query Store measured.

Nothing is run for it: the prediction is the forced plan's own measured statistics in the baseline
window (the regression's evidence) and its forcing history (Query Store's ``force_failure_count``
and last failure reason as last collected, and planmon's ledger of earlier forces of this query).
A plan whose earlier forces failed, or were rolled back, is a warning that contradicts the proposal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planmon.model import Action, Prediction, RegressionContext, Remediation


def _amount(metric: str, value: Any) -> str:
    if value is None:
        return "?"
    number = float(value)
    return f"{number / 1000:.2f} ms" if metric.endswith("_us") else f"{number:.2f}"


def _baseline_executions(regression: Mapping[str, Any]) -> str:
    evidence = regression.get("evidence") or {}
    if not isinstance(evidence, Mapping):
        return "?"
    side = evidence.get("baseline_plan")
    value = side.get("executions") if isinstance(side, Mapping) else evidence.get("baseline_executions")
    return "?" if value is None else f"{float(value):.0f}"


def predict_force(context: RegressionContext, record: Remediation) -> Prediction:
    """force_plan: the last good plan's measured statistics and its forcing history."""
    if record.action is not Action.FORCE_PLAN:
        return Prediction.unavailable(
            f"no prediction for {record.action.value}: its effect cannot be measured before it runs"
        )
    regression = context.regression
    metric = str(regression.get("metric") or "cpu_us")
    plan_id = record.evidence.plan_id
    lines = [
        f"Query Store: plan {plan_id} measured {_amount(metric, regression.get('baseline_mean'))} "
        f"{metric} per execution over {_baseline_executions(regression)} executions in the "
        f"baseline window, against {_amount(metric, regression.get('current_mean'))} now",
    ]
    plan = next((p for p in context.query_plans if p.plan_id == plan_id), None)
    failures = plan.force_failure_count if plan is not None else None
    if plan is not None:
        lines.append(
            f"forcing history: {'forced' if plan.is_forced else 'not forced'} now, "
            f"force_failure_count {failures or 0}"
            + (f", last failure {plan.last_force_failure_reason}" if plan.last_force_failure_reason else "")
        )
    earlier = [
        entry
        for entry in context.ledger
        if entry.get("action") == Action.FORCE_PLAN.value and entry.get("id") != record.id
    ]
    for entry in earlier:
        lines.append(
            f"planmon forced a plan of this query before (remediation {entry['id']}): {entry['state']}"
        )
    bad = [e for e in earlier if e.get("state") in ("rolled_back", "failed")]
    contradicts = bool(failures) or bool(bad)
    if contradicts:
        lines.append(
            "WARNING: forcing this plan failed or did not help before: "
            "the prediction contradicts the proposal"
        )
    return Prediction(
        available=True,
        lines=tuple(lines),
        method="query_store",
        contradicts=contradicts,
        details={"plan_id": plan_id, "force_failure_count": failures, "earlier_forces": len(earlier)},
    )
