"""The demo's closing report: what was found, the diff, the evidence, what was done, where to look."""

from __future__ import annotations

import textwrap
from typing import Any

from planmon.demo.flow import DEMO_USER, DemoPaths, DemoResult
from planmon.model import RegressionKind


def render_report(result: DemoResult, paths: DemoPaths, *, seconds: float) -> str:
    lines = ["", f"planmon demo finished in {seconds:.0f} s", ""]
    regression = _plan_change(result.regressions)
    if regression:
        lines += _found(regression)
    lines += _alerts(result, paths)
    lines += _remediation(result.remediation)
    lines += _next(paths)
    return "\n".join(lines)


def _plan_change(regressions: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in regressions if r["kind"] == RegressionKind.PLAN_CHANGE), None)


def _found(regression: dict[str, Any]) -> list[str]:
    query = " ".join((regression.get("query_text") or "").split())
    lines = [
        f"FOUND  regression #{regression['id']} on target '{regression['target']}': {regression['kind']}, "
        f"severity {regression['severity']}",
        f"  query     {textwrap.shorten(query, 100)}",
        f"  evidence  {regression['metric']} mean {regression['baseline_mean'] / 1000:.2f} ms -> "
        f"{regression['current_mean'] / 1000:.2f} ms (x{regression['ratio']:.1f}), "
        f"p={regression['p_value']:.2g}, impact {regression['impact']:.1f} extra s/hour",
        "  plan diff",
    ]
    diff = regression.get("diff") or "(no diff)"
    lines += [f"    {line}" for line in str(diff).splitlines()[:12]]
    return [*lines, ""]


def _alerts(result: DemoResult, paths: DemoPaths) -> list[str]:
    sent = result.alerts.get("sent", 0)
    return [f"ALERT  {sent} alert(s) written by the default log channel to {paths.alerts_log}", ""]


def _remediation(remediation: dict[str, Any]) -> list[str]:
    if not remediation:
        return ["FIX    (no remediation ran)", ""]
    lines = [
        f"FIX    proposal #{remediation.get('id')}: {remediation.get('action')}",
        f"  SQL       {remediation.get('sql_text')}",
        f"  rollback  {remediation.get('rollback_sql')}",
        f"  approved  by {remediation.get('approved_by')} (user '{DEMO_USER}', Airflow's approval route)",
        f"  outcome   {remediation.get('state')}: {remediation.get('outcome_reason')}",
        f"  regression now {remediation.get('regression_status')}",
    ]
    return [*lines, ""]


def _next(paths: DemoPaths) -> list[str]:
    return [
        "WHERE TO LOOK NEXT",
        f"  alerts        {paths.alerts_log}",
        f"  regressions   PLANMON_HOME={paths.home} .venv/bin/planmon regressions --json",
        f"  remediations  PLANMON_HOME={paths.home} .venv/bin/planmon remediate list",
        f"  Airflow UI    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS={DEMO_USER}:admin \\",
        f"                  make airflow AIRFLOW_HOME_DIR={paths.airflow_home} PLANMON_HOME={paths.home}",
        f"                then http://127.0.0.1:8080/ as '{DEMO_USER}' (password in",
        f"                {paths.airflow_home}/simple_auth_manager_passwords.json.generated):",
        "                planmon_* DAG runs, the approval in Required Actions, and planmon's pages",
        "                (the demo's PostgreSQL is stopped: new collections there report it down)",
    ]
