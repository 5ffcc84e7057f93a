"""planmon_maintenance with dag.test(): the purge keeps the retention, and an operator's
PLANMON_RETENTION_DAYS wins over the repository setting."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest

from planmon.config import load_settings
from planmon.store import Repository
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
        return repository.row_counts()["runtime_stats"]


def test_purge_by_the_setting_then_by_the_operators_variable(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
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
