"""planmon_maintenance with dag.test(): the purge keeps the retention, and an operator's
PLANMON_RETENTION_DAYS wins over the repository setting."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest

from planmon.config import load_settings
from planmon.store import Repository
from planmon.store.retention import RetentionStore
from tests.harness.seeds import HOUR, T0, seed

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _run(logical_date: Any) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    from tests.conftest import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["planmon_maintenance"]
    run = dag.test(logical_date=logical_date)
    assert run.state == DagRunState.SUCCESS
    result: dict[str, Any] = run.get_task_instance("purge").xcom_pull(task_ids="purge")
    return result


def _stats_rows() -> int:
    with Repository.from_settings(load_settings()) as repository:
        return RetentionStore(repository).row_counts()["runtime_stats"]


def test_purge_by_the_setting_then_by_the_operators_variable(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    # the purge of collected rows, hour by hour: no roll-up yet (test_roll_up_... covers that)
    monkeypatch.setenv("PLANMON_STATS_FINE_DAYS", "90")
    monkeypatch.setenv("PLANMON_STATS_HOURLY_DAYS", "90")
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        seed(repository, slow_hours=3)  # hourly rows from T0 for 7 days + 3 hours
    total = _stats_rows()
    # retention 30 days (the setting): as of T0 + 30 days + 10 hours, the first 10 hours go
    first = _run((T0 + timedelta(days=30) + 10 * HOUR).replace(tzinfo=UTC))
    assert first == {"retention_days": 30, "deleted": first["deleted"]}
    assert first["deleted"]["runtime_stats"] == 10 and _stats_rows() == total - 10
    again = _run((T0 + timedelta(days=30) + 10 * HOUR).replace(tzinfo=UTC))
    assert again["deleted"]["runtime_stats"] == 0  # a re-run of the same date deletes nothing more

    monkeypatch.setenv("PLANMON_RETENTION_DAYS", "29")  # one day less: 24 more hours go
    third = _run((T0 + timedelta(days=30) + 10 * HOUR - timedelta(minutes=1)).replace(tzinfo=UTC))
    assert third["retention_days"] == 29
    assert third["deleted"]["runtime_stats"] == 24 and _stats_rows() == total - 34


def test_roll_up_then_purge_keeps_every_execution_inside_the_retention(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from planmon.store.stats import StatsStore
    from tests.conftest import PROJECT_ROOT

    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        target_id, _plans = seed(repository, slow_hours=3)  # hourly rows from T0 for 7 days + 3 hours
        executions = _executions(StatsStore(repository), target_id)
    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["planmon_maintenance"]
    # as of T0 + 10 days (defaults: 2 days collected grain, 8 days hourly): days 0-1 become daily
    # rows, days 2-7 hourly rows, nothing is older than the 30-day retention
    run = dag.test(logical_date=(T0 + timedelta(days=10)).replace(tzinfo=UTC))
    rolled = run.get_task_instance("roll_up").xcom_pull(task_ids="roll_up")
    assert rolled["hour_buckets"] == 7 * 24 + 3 and rolled["day_buckets"] == 2
    with Repository.from_settings(load_settings()) as repository:
        counts = RetentionStore(repository).row_counts()
        assert counts["runtime_stats"] == 0  # every row is older than 2 days
        assert counts["runtime_stats_rollup"] == 2 + (7 * 24 + 3 - 48)
        assert _executions(StatsStore(repository), target_id) == executions
    again = dag.test(logical_date=(T0 + timedelta(days=10)).replace(tzinfo=UTC))
    assert again.get_task_instance("roll_up").xcom_pull(task_ids="roll_up")["hour_buckets"] == 0


def _executions(store: Any, target_id: int) -> int:
    rows = store.window_rows(T0 - timedelta(days=1), T0 + timedelta(days=60), target_ids=[target_id])
    return int(rows["executions"].sum())
