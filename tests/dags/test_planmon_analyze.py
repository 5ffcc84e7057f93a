"""planmon_analyze with dag.test(): one interval finds the regression; running it again changes nothing."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from planmon.store.regressions import RegressionStore
from tests.harness.seeds import HOUR, SLOW, seed

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_analyze_an_interval_twice(airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    from tests.conftest import PROJECT_ROOT

    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("PLANMON_ANALYZE_BATCH_TARGETS", "1")  # two targets: two mapped batches
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        seed(repository, slow_hours=3)
        repository.add_target(TargetSpec(name="quiet", engine="postgres", conn_id="q"))
    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["planmon_analyze"]
    # a manual run's logical date is its interval's end: this analyses [SLOW+1h, SLOW+2h)
    summaries = []
    for _ in range(2):  # the same interval twice (a re-run reuses the run and clears it first)
        run = dag.test(logical_date=(SLOW + 2 * HOUR).replace(tzinfo=UTC))
        assert run.state == DagRunState.SUCCESS
        batches = [ti for ti in run.get_task_instances() if ti.task_id == "analyze"]
        assert sorted(ti.rendered_map_index for ti in batches) == ["quiet..quiet", "sales..sales"]
        summaries.append(run.get_task_instance("merge").xcom_pull(task_ids="merge"))
    assert summaries[0]["window_start"] == (SLOW + HOUR).isoformat()
    assert summaries[0]["by_kind"] == {"plan_change": 1} and summaries[0]["targets"] == 2
    assert summaries[0]["regression_ids"] == summaries[1]["regression_ids"]
    with Repository.from_settings(load_settings()) as repository:
        assert len(RegressionStore(repository).regressions()) == 1
