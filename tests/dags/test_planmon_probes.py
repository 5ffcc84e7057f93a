"""planmon_probes end to end with dag.test(): a live PostgreSQL target, probe files with one failing
probe, a target that is down, and the built-ins; no probe blocks another."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from planmon.store.schema import alert, probe, probe_result, target
from tests.harness.servers import PostgresServer, free_port
from tests.integration.probes.live import postgres_probe_role

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]

PROBES = """\
probes:
  - name: orders_backlog
    kind: health
    targets: {names: [shop]}
    sql: SELECT count(*) FROM orders WHERE state = 'new'
    operator: ">"
    critical: 2
  - name: broken_probe
    kind: custom
    targets: {names: [shop]}
    sql: SELECT count(*) FROM no_such_table
    critical: 1
  - name: sneaky_write
    kind: custom
    targets: {names: [shop]}
    sql: DELETE FROM orders
    critical: 1
  - name: hourly_only
    sql: SELECT 1
    critical: 5
    schedule: "7 * * * *"
"""


def _load_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["planmon_probes"]
    for task in dag.tasks:
        task.retries = 0
    return dag


@pytest.fixture
def shop(postgres: PostgresServer) -> str:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_probes")
        conn.execute("CREATE DATABASE shop_probes")
    with psycopg.connect(postgres.dsn("shop_probes"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE orders (id int primary key, state text)")
        conn.execute(
            "INSERT INTO orders SELECT g, CASE WHEN g <= 3 THEN 'new' ELSE 'done' END "
            "FROM generate_series(1, 50) g"
        )
    return "shop_probes"


def test_probes_dag_runs_every_probe_despite_failures(
    airflow_db: None, postgres: PostgresServer, shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    probes_dir = tmp_path / "probes"
    probes_dir.mkdir()
    (probes_dir / "shop.yaml").write_text(PROBES, encoding="utf-8")
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("PLANMON_PROBES_DIR", str(probes_dir))
    monkeypatch.setenv("PLANMON_ALERT_LOG_PATH", str(tmp_path / "alerts.log"))
    postgres_probe_role(postgres, shop)  # docs/probes.md's probe role: a superuser would be refused
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_PG", f"postgres://planmon_probe@127.0.0.1:{postgres.port}/{shop}")
    monkeypatch.setenv("AIRFLOW_CONN_DOWN_PG", f"postgres://postgres:hunter2secret@127.0.0.1:{free_port()}/x")
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        repository.add_target(TargetSpec(name="shop", engine="postgres", conn_id="shop_pg"))
        repository.add_target(TargetSpec(name="down", engine="postgres", conn_id="down_pg"))

    dag = _load_dag()
    logical_date = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    run = dag.test(logical_date=logical_date)
    assert run.state == DagRunState.SUCCESS
    states = {ti.rendered_map_index: ti.state for ti in run.get_task_instances() if ti.task_id == "run_probe"}
    expected = {
        "orders_backlog@shop", "broken_probe@shop", "sneaky_write@shop",
        "builtin.connectivity@shop", "builtin.connectivity@down",
        "builtin.pg_stat_statements_present@shop", "builtin.pg_stat_statements_present@down",
        "builtin.pg_stat_statements_fill@shop", "builtin.pg_stat_statements_fill@down",
    }  # fmt: skip
    assert set(states) == expected  # hourly_only is not due; no SQL Server/MySQL built-ins on postgres
    assert set(states.values()) == {TaskInstanceState.SUCCESS}
    summary = run.get_task_instance("summarize").xcom_pull(task_ids="summarize")
    assert summary["runs"] == len(expected)

    with Repository.from_settings(load_settings()) as repository, repository.engine.connect() as connection:
        rows = (
            connection.execute(
                select(probe.c.name, target.c.name.label("target"), probe_result)
                .join(probe, probe.c.id == probe_result.c.probe_id)
                .join(target, target.c.id == probe_result.c.target_id)
            )
            .mappings()
            .all()
        )
        alerts = connection.execute(select(alert)).mappings().all()
    results = {(row["name"], row["target"]): row for row in rows}
    assert {key: row["status"] for key, row in results.items()} == {
        ("orders_backlog", "shop"): "critical",
        ("broken_probe", "shop"): "error",
        ("sneaky_write", "shop"): "refused",
        ("builtin.connectivity", "shop"): "ok",
        ("builtin.connectivity", "down"): "error",
        ("builtin.pg_stat_statements_present", "shop"): "ok",
        ("builtin.pg_stat_statements_present", "down"): "error",
        ("builtin.pg_stat_statements_fill", "shop"): "ok",
        ("builtin.pg_stat_statements_fill", "down"): "error",
    }
    assert results[("orders_backlog", "shop")]["value"] == 3.0
    assert results[("builtin.pg_stat_statements_present", "shop")]["value"] == 2.0
    assert 'relation "no_such_table" does not exist' in results[("broken_probe", "shop")]["error"]
    assert {row["run_at"] for row in rows} == {datetime(2026, 11, 27, 12, 0)}
    assert len(alerts) == 6  # one per result that is not ok, all on the default log channel
    assert all(row["status"] == "sent" and row["probe_result_id"] for row in alerts)
    everything = json.dumps([dict(r) for r in rows], default=str) + (tmp_path / "alerts.log").read_text()
    assert "hunter2secret" not in everything

    again = dag.test(logical_date=logical_date)  # the same interval again: same rows, no new alert
    assert again.state == DagRunState.SUCCESS
    with Repository.from_settings(load_settings()) as repository, repository.engine.connect() as connection:
        assert len(connection.execute(select(probe_result)).all()) == len(expected)
        assert len(connection.execute(select(alert)).all()) == 6
