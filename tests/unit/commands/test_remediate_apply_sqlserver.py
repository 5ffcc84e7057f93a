"""`planmon remediate apply` on SQL Server reads the query's Query Store forcing state and automatic
plan correction live, exactly as the planmon_remediate DAG does, and refuses a force approved while
someone else (a person, or automatic plan correction) forced a plan of the query since.

The target's Airflow connections are real ones (``AIRFLOW_CONN_*``) whose MsSqlHook is answered by a
recorded server: the collection connection replays recorded DMV result sets
(tests/fixtures/remediation/sqlserver), the remediation connection records what it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from planmon.cli import main
from planmon.config import load_settings
from planmon.engines.sqlserver.dialect import bind
from planmon.errors import RefusalReason, RemediationRefused
from planmon.remediation.workflow import RemediationWorkflow
from planmon.sql import load_sql
from planmon.store import Repository
from planmon.store.remediations import RemediationStore
from tests.unit.remediation.conftest import seed_sqlserver_regression
from tests.unit.remediation.test_sqlserver import _result

STATE_FILES = ("remediation_query_plans", "server_properties", "tuning_recommendations")
NONE_HERE = ("remediation_query_variants", "query_store_query_hints")  # query 7: no PSP variant, no hints


@dataclass
class RecordedSqlServer:
    """What the target answers: the recorded result set of each Query Store state query, by case."""

    plans: str = "free"
    recommendations: str = "active_other_query"
    state_reads: list[str] = field(default_factory=list)
    remediation_sent: list[str] = field(default_factory=list)

    def answer(self, sql: str) -> list[dict[str, Any]]:
        for name in NONE_HERE:
            if sql == bind(load_sql("sqlserver", name), {"query_id": 7})[0]:
                return []
        for name in STATE_FILES:
            if sql == bind(load_sql("sqlserver", name), {"query_id": 7, "query_ids": [7]})[0]:
                self.state_reads.append(name)
                case = {"remediation_query_plans": self.plans, "server_properties": "2022"}
                return _result(f"{name}.{case.get(name, self.recommendations)}")
        raise AssertionError(f"the collection connection was sent something else: {sql[:120]}")


class _Cursor:
    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.description: list[tuple[str]] | None = None
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Mapping[str, Any] | tuple[Any, ...] | None = None) -> None:
        server = self.connection.server
        if self.connection.conn_id == "sales_fix":
            server.remediation_sent.append(sql)
            return
        rows = server.answer(sql)
        self.description = [(column,) for column in (rows[0] if rows else {})]
        self.rows = [tuple(row.values()) for row in rows]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def close(self) -> None:
        pass


class _Connection:
    def __init__(self, server: RecordedSqlServer, conn_id: str) -> None:
        self.server = server
        self.conn_id = conn_id

    def autocommit(self, status: bool) -> None:
        pass

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def close(self) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RecordedSqlServer]:
    """PLANMON_HOME with a repository, the target's two Airflow connections, and the recorded server."""
    from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    for conn_id in ("sales_monitor", "sales_fix"):
        connection = {"conn_type": "mssql", "host": "sales-db", "login": conn_id, "schema": "Sales"}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    recorded = RecordedSqlServer()
    monkeypatch.setattr(MsSqlHook, "get_conn", lambda hook: _Connection(recorded, hook.mssql_conn_id))
    yield recorded


def _regression() -> int:
    """A plan_change of query 7 on SQL Server (tests/unit/remediation/conftest.py), through the
    ``sales_monitor`` / ``sales_fix`` Airflow connections."""
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        return seed_sqlserver_regression(
            repository, conn_id="sales_monitor", remediation_conn_id="sales_fix", databases=("Sales",)
        )


def _approve(remediation_id: int) -> None:
    """The person's answer as the approval task records it (approval itself only happens in Airflow)."""
    with Repository.from_settings(load_settings()) as repository:
        steps = RemediationWorkflow(repository, load_settings())
        steps.record_decision(remediation_id, approved=True, responded_by="dba_alice")


def _row(remediation_id: int) -> dict[str, Any]:
    with Repository.from_settings(load_settings()) as repository:
        return RemediationStore(repository).get(remediation_id)


FORCED_ELSEWHERE = [
    ("forced_manual", "active_other_query", "plan 12 forced (MANUAL)"),
    ("free", "verifying_query_7", "automatic plan correction recommendation Verifying"),
]


@pytest.mark.parametrize(("plans", "recommendations", "why"), FORCED_ELSEWHERE)
def test_cli_apply_refuses_a_force_over_someone_elses_exactly_as_the_dag(
    server: RecordedSqlServer, capsys: pytest.CaptureFixture[str], plans: str, recommendations: str, why: str
) -> None:
    from planmon.airflow import remediate_tasks

    regression_id = _regression()

    # the CLI door: proposed while Query Store shows no force, approved, then someone forces
    assert main(["remediate", "propose", str(regression_id), "--json"]) == 0
    proposal = json.loads(capsys.readouterr().out)
    assert proposal["action"] == "force_plan" and proposal["sql"].startswith(
        "EXEC sys.sp_query_store_force_plan"
    )
    assert "remediation_query_plans" in server.state_reads  # read live, not from the last collection
    _approve(proposal["id"])
    server.plans, server.recommendations, server.state_reads[:] = plans, recommendations, []
    assert main(["remediate", "apply", str(proposal["id"])]) == 1
    error = capsys.readouterr().err
    assert "forced by someone else" in error and why in error
    assert "remediation_query_plans" in server.state_reads and "tuning_recommendations" in server.state_reads
    by_cli = _row(proposal["id"])
    assert by_cli["state"] == "refused" and by_cli["applied_at"] is None

    # the DAG door, on a new proposal for the same regression, in the same situation
    server.plans, server.recommendations = "free", "active_other_query"
    dag_proposal = remediate_tasks.propose({"regression_id": regression_id}, "manual__1")
    assert dag_proposal["action"] == "force_plan" and dag_proposal["id"] != proposal["id"]
    _approve(dag_proposal["id"])
    server.plans, server.recommendations = plans, recommendations
    with pytest.raises(RemediationRefused) as refused:
        remediate_tasks.apply(dag_proposal, None)
    assert refused.value.reason is RefusalReason.FORCED_BY_OTHERS
    by_dag = _row(dag_proposal["id"])

    assert (by_dag["state"], by_dag["outcome_reason"]) == (by_cli["state"], by_cli["outcome_reason"])
    assert by_cli["outcome_reason"].startswith("forced_by_others: ") and why in by_cli["outcome_reason"]
    assert server.remediation_sent == []  # neither door ran a statement on the target
