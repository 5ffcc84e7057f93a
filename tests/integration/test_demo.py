"""`make demo`'s program end to end, as a separate process exactly as `make demo` runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.airflow, pytest.mark.slow]


@pytest.fixture
def demo_home() -> Iterator[Path]:
    # not under pytest's tmp_path: that is private to root, and PostgreSQL runs as 'postgres'
    parent = Path(tempfile.mkdtemp(prefix="planmon-demo-test-"))
    parent.chmod(0o755)
    try:
        yield parent / "demo"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def run_demo(home: Path) -> tuple[str, dict[str, Any]]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "PLANMON_"))  # the demo configures its own Airflow
    }
    command = [
        sys.executable,
        "-m",
        "planmon.demo",
        "--home",
        str(home),
        "--dags",
        str(PROJECT_ROOT / "dags"),
    ]
    completed = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=580, env=environment, check=False
    )
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-4000:]
    report, _, payload = completed.stdout.partition("\n{")
    return report, json.loads("{" + payload)


@pytest.mark.timeout(600)
def test_the_demo_finds_alerts_and_fixes_the_dropped_index(demo_home: Path) -> None:
    report, result = run_demo(demo_home)
    regression = next(r for r in result["regressions"] if r["kind"] == "plan_change")
    assert "orders_customer_id_idx" in regression["diff"]
    assert "FOUND  regression" in report and "orders_customer_id_idx" in report
    assert result["alerts"]["sent"] >= 1
    assert "plan_change" in (demo_home / "alerts.log").read_text()
    assert not (demo_home / "postgres").exists()  # the demo's PostgreSQL was stopped and removed
    fix = result["remediation"]
    assert fix["action"] == "recreate_index" and fix["state"] == "kept", fix
    assert fix["approved_by"] == "demo-dba" and fix["regression_status"] == "resolved"
    assert "CREATE INDEX CONCURRENTLY orders_customer_id_idx" in fix["sql_text"]
    trail = [entry["action"] for entry in result["audit"]]
    assert "remediation.approved" in trail and trail[-1] == "remediation.kept"
    assert "Password for user" not in report  # Airflow printed no credential
