"""Every DAG imports cleanly, does no I/O at import, follows planmon's policy, and can run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.airflow

DAGS_FOLDER = PROJECT_ROOT / "dags"
MINIMAL_FOLDER = Path(__file__).parent / "minimal"


class ImportTimeIO(AssertionError):
    pass


@contextmanager
def no_io_allowed() -> Iterator[None]:
    """Fail on network connections, subprocesses or planmon settings reads while DAG files import."""
    import subprocess

    import planmon.config

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise ImportTimeIO("DAG files must do no I/O at import (network, subprocess or settings read)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(subprocess, "Popen", refuse)
        patch.setattr(planmon.config, "load_settings", refuse)
        yield


def load_dagbag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with no_io_allowed():
        return DagBag(dag_folder=str(folder))


def policy_violations(dag: Any) -> list[str]:
    """What in a DAG breaks planmon's policy (empty when it complies)."""
    problems = []
    if "planmon" not in (dag.tags or set()):
        problems.append("missing tag 'planmon'")
    for task in dag.tasks:
        where = f"{dag.dag_id}.{task.task_id}"
        if not task.owner or task.owner == "airflow":
            problems.append(f"{where}: no owner (set owner, e.g. via planmon.airflow.defaults.default_args)")
        if (task.retries or 0) < 1:
            problems.append(f"{where}: retries < 1")
        if not task.retry_exponential_backoff:
            problems.append(f"{where}: retries without exponential back-off")
        if not isinstance(task.execution_timeout, timedelta):
            problems.append(f"{where}: no execution_timeout")
    return problems


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))


def test_project_dags_import_without_errors_or_io() -> None:
    dagbag = load_dagbag(DAGS_FOLDER)
    assert dagbag.import_errors == {}
    for path in dag_files():
        assert any(Path(d.fileloc) == path for d in dagbag.dags.values()), f"{path.name} defines no DAG"


@pytest.mark.parametrize(
    ("variable", "dag_file"),
    [
        ("PLANMON_COLLECT_SCHEDULE", "planmon_collect.py"),
        ("PLANMON_ANALYZE_PARALLEL_BATCHES", "planmon_analyze.py"),
        ("PLANMON_ALERT_SCHEDULE", "planmon_alert.py"),
        ("PLANMON_REMEDIATION_POKE_SECONDS", "planmon_remediate.py"),
    ],
)
def test_a_bad_parse_time_setting_fails_the_import_naming_it(
    variable: str, dag_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "not-a-value")
    errors = load_dagbag(DAGS_FOLDER).import_errors
    failed = {Path(path).name: message for path, message in errors.items()}
    assert dag_file in failed and variable in failed[dag_file], errors


def test_project_dags_follow_policy() -> None:
    dagbag = load_dagbag(DAGS_FOLDER)
    problems = [problem for dag in dagbag.dags.values() for problem in policy_violations(dag)]
    assert problems == []


def test_minimal_dag_follows_policy() -> None:
    dagbag = load_dagbag(MINIMAL_FOLDER)
    assert dagbag.import_errors == {}
    assert policy_violations(dagbag.dags["planmon_harness_check"]) == []


def test_policy_catches_a_dag_that_breaks_it(tmp_path: Path) -> None:
    (tmp_path / "bad_dag.py").write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import dag, task\n"
        "@dag(dag_id='bad', schedule=None, start_date=datetime(2026, 1, 1))\n"
        "def bad():\n"
        "    @task\n"
        "    def t():\n"
        "        return 1\n"
        "    t()\n"
        "bad()\n"
    )
    problems = policy_violations(load_dagbag(tmp_path).dags["bad"])
    assert "missing tag 'planmon'" in problems
    assert any("retries < 1" in p for p in problems)
    assert any("no execution_timeout" in p for p in problems)


def test_import_time_io_is_detected(tmp_path: Path) -> None:
    (tmp_path / "io_dag.py").write_text(
        "import socket\n"
        "from airflow.sdk import dag  # noqa: F401  (DagBag only reads files that mention airflow and dag)\n"
        "socket.create_connection(('127.0.0.1', 9))\n"
    )
    dagbag = load_dagbag(tmp_path)
    assert any("no I/O at import" in str(error) for error in dagbag.import_errors.values())


def test_minimal_dag_runs_end_to_end(airflow_db: None) -> None:
    from airflow.utils.state import DagRunState

    dag = load_dagbag(MINIMAL_FOLDER).dags["planmon_harness_check"]
    run = dag.test()
    assert run.state == DagRunState.SUCCESS
    assert run.get_task_instance("double").xcom_pull(task_ids="double") == 14
