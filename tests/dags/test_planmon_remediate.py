"""planmon_remediate with dag.test() without a live server: mode propose records the proposal and
stops before any approval or execution; planmon_analyze triggers it for new regressions of targets
whose mode allows it. Approval-reaching runs are in tests/integration/test_remediate_live_*.py."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from planmon.config import load_settings
from planmon.store import Repository
from planmon.store.remediations import RemediationStore
from tests.harness.approvals import approval_responder
from tests.harness.seeds import HOUR, SLOW, seed
from tests.unit.remediation.conftest import seed_with_plans

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _dag(dag_id: str) -> object:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[dag_id]


@pytest.mark.timeout(180, method="thread")
def test_mode_propose_records_the_proposal_and_runs_nothing(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        regression_id = seed_with_plans(repository, mode="propose").regression_id
    dag = _dag("planmon_remediate")
    with approval_responder("planmon_remediate", timeout=120) as responder:  # must never be needed
        run = dag.test(run_conf={"regression_id": regression_id})  # type: ignore[attr-defined]
    assert run.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["propose"] == "success" and states["gate"] == "success"
    assert states["approval"] == states["apply"] == states["wait_for_verification"] == "skipped"
    assert responder.answered == []
    with Repository.from_settings(load_settings()) as repository:
        store = RemediationStore(repository)
        [row] = store.remediations()
        trail = [entry["action"] for entry in store.audit_trail(int(row["id"]))]
    assert row["state"] == "proposed" and row["action"] == "recreate_index" and row["applied_at"] is None
    assert trail == ["remediation.propose", "remediation.dry_run"]


@pytest.mark.timeout(180, method="thread")
def test_analyze_triggers_one_remediation_run_per_new_regression(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        seed(repository, slow_hours=3)  # target mode: propose (the default)
    with create_session() as session:
        before = session.query(DagRun).filter(DagRun.dag_id == "planmon_remediate").count()
    run = _dag("planmon_analyze").test(logical_date=(SLOW + 2 * HOUR).replace(tzinfo=UTC))  # type: ignore[attr-defined]
    assert run.state == DagRunState.SUCCESS
    [regression_id] = run.get_task_instance("merge").xcom_pull(task_ids="merge")["regression_ids"]
    with create_session() as session:
        triggered = session.query(DagRun).filter(DagRun.dag_id == "planmon_remediate").all()[before:]
        confs = [dict(r.conf or {}) for r in triggered]
    assert confs == [{"regression_id": regression_id}]
