"""planmon_collect end to end with dag.test(): a live PostgreSQL target and one that is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from tests.harness.servers import PostgresServer, free_port

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]


def _load_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["planmon_collect"]
    for task in dag.tasks:
        task.retries = 0  # a down target would otherwise be retried with real back-off delays
    return dag


def _asset_event_extras(run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return [event.extra for event in session.query(AssetEvent).filter(AssetEvent.source_run_id == run_id)]


@pytest.fixture
def shop(postgres: PostgresServer) -> str:
    """A database with pg_stat_statements and a small table, as a DBA would set it up."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_dag")
        conn.execute("CREATE DATABASE shop_dag")
    with psycopg.connect(postgres.dsn("shop_dag"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE orders (id int primary key, customer int, total numeric)")
        conn.execute("INSERT INTO orders SELECT g, g % 100, g FROM generate_series(1, 2000) g")
        conn.execute("CREATE INDEX orders_customer ON orders (customer)")
    return "shop_dag"


def _workload(postgres: PostgresServer, database: str, runs: int) -> None:
    with psycopg.connect(postgres.dsn(database), autocommit=True) as conn:
        for value in range(runs):
            conn.execute("SELECT sum(total) FROM orders WHERE customer = %s", (value % 100,))


def test_collect_two_targets_one_down(
    airflow_db: None, postgres: PostgresServer, shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_PG", f"postgres://postgres@127.0.0.1:{postgres.port}/{shop}")
    monkeypatch.setenv("AIRFLOW_CONN_DOWN_PG", f"postgres://postgres:hunter2secret@127.0.0.1:{free_port()}/x")
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        shop_id = repository.add_target(TargetSpec(name="shop", engine="postgres", conn_id="shop_pg")).id
        repository.add_target(TargetSpec(name="down", engine="postgres", conn_id="down_pg"))

    dag = _load_dag()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = dag.test(logical_date=now - timedelta(minutes=15))  # baseline reading of the counters
    _workload(postgres, shop, runs=25)
    second = dag.test(logical_date=now)

    for run in (first, second):
        assert run.state == DagRunState.SUCCESS  # the summary ran although one target failed
        states = {
            ti.rendered_map_index: ti.state for ti in run.get_task_instances() if ti.task_id == "collect"
        }
        assert states == {"shop": TaskInstanceState.SUCCESS, "down": TaskInstanceState.FAILED}
    summary = second.get_task_instance("summarize").xcom_pull(task_ids="summarize")
    assert summary["by_status"] == {"ok": 1}
    assert _asset_event_extras(second.run_id) == [  # what the asset-triggered analysis will analyse
        {
            "data_interval_start": second.data_interval_start.isoformat(),
            "data_interval_end": second.data_interval_end.isoformat(),
        }
    ]

    with Repository.from_settings(load_settings()) as repository:
        collection = CollectionStore(repository)
        runs = collection.collection_runs()
        assert set(runs["status"]) == {"ok", "error"}
        assert not runs["error"].dropna().str.contains("hunter2secret").any()
        start = now - timedelta(days=1)
        stats = collection.runtime_stats(start, now + timedelta(days=1), target_ids=[shop_id])
    workload = stats[stats["executions"] == 25]
    assert len(workload) == 1, stats[["executions", "query_id"]]
