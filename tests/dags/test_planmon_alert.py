"""planmon_alert end to end with dag.test(): dedup over two runs, a failing webhook recorded (the other
channel still delivered, the run still succeeds), the digest once, and the open-regression gauges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from planmon.config import load_settings
from planmon.store import Repository
from planmon.store.alerts import AlertStore
from tests.harness.servers import free_port
from tests.unit.alerting.seed import insert_regression, seed_target

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _load_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["planmon_alert"]
    for task in dag.tasks:
        task.retries = 0
    return dag


def test_alert_dag_dedups_and_records_a_failing_channel(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.observability.stats import Stats
    from airflow.utils.state import DagRunState, TaskInstanceState

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "channels:\n"
        f"  broken-hook: {{type: webhook, url: 'http://127.0.0.1:{free_port()}/hook', timeout_seconds: 2}}\n"
        "routes:\n"
        "  - match: {environment: prod}\n"
        "    channels: [log, broken-hook]\n"
        "digest: {channels: [log], hour_utc: 0}\n"
    )
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("PLANMON_ALERT_ROUTES", str(routes))
    monkeypatch.setenv("PLANMON_BASE_URL", "https://airflow.example.org")
    gauges: dict[str, float] = {}
    monkeypatch.setattr(
        Stats, "gauge", lambda stat, value, *args, tags=None, **kw: gauges.__setitem__(stat, value)
    )
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        target_id, queries, plans = seed_target(repository)
        ids = [
            insert_regression(repository, target_id, queries["q-4711"], plans=plans, severity="high"),
            insert_regression(repository, target_id, queries["q-815"], kind="same_plan", severity="medium"),
        ]

    dag = _load_dag()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = dag.test(logical_date=now - timedelta(minutes=30))
    with Repository.from_settings(load_settings()) as repository:
        after_first = {(r.dedup_key, r.channel): r for r in AlertStore(repository).all_alerts()}
    second = dag.test(logical_date=now)

    for run in (first, second):
        assert run.state == DagRunState.SUCCESS
        assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {
            "dispatch": TaskInstanceState.SUCCESS,
            "digest": TaskInstanceState.SUCCESS,
            "open_regression_metrics": TaskInstanceState.SUCCESS,
        }
    counts = first.get_task_instance("dispatch").xcom_pull(task_ids="dispatch")
    assert (counts["sent"], counts["failed"]) == (2, 2)

    keys = [f"regression:{ids[0]}:high", f"regression:{ids[1]}:medium"]
    for key in keys:
        hook = after_first[(key, "broken-hook")]
        assert (hook.status, hook.attempts) == ("failed", 1)
        assert hook.last_error is not None and "unreachable" in hook.last_error
        assert after_first[(key, "log")].status == "sent"

    with Repository.from_settings(load_settings()) as repository:
        rows = {(r.dedup_key, r.channel): r for r in AlertStore(repository).all_alerts()}
    regression_rows = {k: r for k, r in rows.items() if k[0].startswith("regression:")}
    assert set(regression_rows) == {(key, channel) for key in keys for channel in ("log", "broken-hook")}
    assert [regression_rows[(key, "broken-hook")].attempts for key in keys] == [2, 2]  # retried once
    assert sum(1 for key in rows if key[0].startswith("digest:")) == 1

    lines = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    assert sorted(line["dedup_key"] for line in lines if line["kind"] == "regression") == sorted(keys)
    assert sum(1 for line in lines if line["kind"] == "digest") == 1
    message = next(line for line in lines if line["dedup_key"] == keys[0])
    links = dict(message["links"])
    assert links["planmon"] == f"https://airflow.example.org/planmon/regressions/{ids[0]}"
    assert links["Airflow run"].startswith("https://airflow.example.org/dags/planmon_alert/runs/")
    assert "bob@x.org" not in json.dumps(lines)

    assert gauges["planmon.regressions.open.high.plan_change"] == 1
    assert gauges["planmon.regressions.open.critical.plan_change"] == 0
    assert gauges["planmon.regressions.open.total"] == 2
