"""The demo's closing report: what was found, the diff, the evidence, what was done, where to look."""

from __future__ import annotations

import textwrap
from typing import Any

from planmon.demo.flow import DEMO_USER, DemoPaths, DemoResult
from planmon.demo.target import CONN_ID, REMEDIATION_CONN_ID
from planmon.model import RegressionKind


def render_report(result: DemoResult, paths: DemoPaths, *, seconds: float) -> str:
    on = f" on PostgreSQL {result.postgres_version}" if result.postgres_version else ""
    lines = ["", f"planmon demo finished in {seconds:.0f} s{on}", ""]
    regression = _plan_change(result.regressions)
    if regression:
        lines += _found(regression)
    lines += _alerts(result, paths)
    lines += _remediation(result.remediation)
    lines += _next(result, paths)
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


def _next(result: DemoResult, paths: DemoPaths) -> list[str]:
    resolved = f"PLANMON_HOME={paths.home} .venv/bin/planmon regressions --status resolved --json"
    first, _ = result.timeline.hours
    analysed, end = result.timeline.window
    return [
        "WHERE TO LOOK NEXT",
        f"  alerts        {paths.alerts_log}",
        f"  regressions   {resolved}",
        "                (resolved by the fix: planmon's regression page lists open ones unless asked)",
        f"  remediations  PLANMON_HOME={paths.home} .venv/bin/planmon remediate list",
        "  Airflow UI    make airflow   (Airflow's metadata DB and planmon's repository are the demo's:",
        f"                a PostgreSQL kept in {paths.airflow_home}/postgres, {paths.home})",
        f"                then http://127.0.0.1:8080/ as 'admin' (password in {paths.airflow_home}/",
        "                simple_auth_manager_passwords.json.generated, written at its first start):",
        "                planmon_* DAG runs, the answered approval, and planmon's pages",
        "                (/planmon/regressions?status=resolved shows the demo's regression)",
        f"  demo target   PostgreSQL {result.postgres_version} left running on "
        f"127.0.0.1:{result.postgres_port}",
        f"                (data in {result.postgres_data}); its connections {CONN_ID} and",
        f"                {REMEDIATION_CONN_ID} are in Airflow's metadata DB, so planmon_collect",
        "                keeps collecting it under make airflow (which starts it again if it is down);",
        "                `make clean` stops and deletes it, the next `make demo` replaces it",
        f"  backfill      the demo's history is the hours [{first:%H:%M}, {analysed:%H:%M}) healthy and",
        f"                [{analysed:%H:%M}, {end:%H:%M}) UTC regressed; with make airflow running:",
        f"                . {paths.airflow_home}/env.sh   (written by make airflow: its metadata DB)",
        "                .venv/bin/airflow dags unpause planmon_analyze",
        "                .venv/bin/airflow backfill create \\",
        f"                  --dag-id planmon_analyze --from-date {first:%Y-%m-%dT%H:%M:%S}+00:00 \\",
        f"                  --to-date {analysed:%Y-%m-%dT%H:%M:%S}+00:00",
        "                re-derives the regression from the stored history (a new open one)",
    ]
