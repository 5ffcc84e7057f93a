"""The command line sees connections stored in Airflow's metadata database (issue 17): a real metadata
DB (SQLite in a temporary AIRFLOW_HOME, ``airflow db migrate``), a connection added with ``airflow
connections add`` and no AIRFLOW_CONN_* variable, then ``planmon targets add`` and ``planmon collect``
against a live PostgreSQL through it, each a process of its own. The hooks planmon opens look the
connection up again themselves, so the collection shows that they see it too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PROJECT_ROOT
from tests.harness.servers import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.airflow, pytest.mark.slow]

PASSWORD = "db-stored-s3cret"  # the harness' server trusts local connections: never needed, never shown


def _environment(home: Path) -> dict[str, str]:
    """A newcomer's environment: Airflow's own home and metadata DB, no connection in variables."""
    dropped = (
        "AIRFLOW_CONN_", "PLANMON_", "AIRFLOW__DATABASE__", "AIRFLOW__CORE__UNIT_TEST_MODE",
        "_AIRFLOW_PROCESS_CONTEXT",  # set in this test process by an earlier lookup outside a task
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PLANMON_HOME": str(home / "planmon"),
        }
    )
    return env


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=env, cwd=PROJECT_ROOT, check=False
    )


def _airflow(*args: str, env: dict[str, str]) -> None:
    completed = _run([str(Path(sys.executable).with_name("airflow")), *args], env)
    assert completed.returncode == 0, (args[:2], completed.stderr[-3000:])


def _planmon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([str(Path(sys.executable).with_name("planmon")), *args], env)


@pytest.mark.timeout(600)
def test_cli_sees_a_connection_stored_in_airflows_metadata_db(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_metadb")
        conn.execute("CREATE DATABASE shop_metadb")
    with psycopg.connect(postgres.dsn("shop_metadb"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    env = _environment(tmp_path)
    _airflow("db", "migrate", env=env)
    connection = {"conn_type": "postgres", "host": postgres.host, "port": postgres.port,
                  "login": "postgres", "password": PASSWORD, "schema": "shop_metadb"}  # fmt: skip
    _airflow("connections", "add", "shop_metadb", "--conn-json", json.dumps(connection), env=env)

    outputs = []
    for args in (
        ("init",),
        ("targets", "add", "shop", "--engine", "postgres", "--conn-id", "shop_metadb"),
        ("collect", "--target", "shop", "--json"),
    ):
        completed = _planmon(*args, env=env)
        outputs.append(completed.stdout + completed.stderr)
        assert completed.returncode == 0, (args, completed.stderr[-3000:])
    (summary,) = json.loads(completed.stdout)
    assert summary["target"] == "shop" and summary["status"] == "ok", summary

    missing = _planmon("targets", "add", "other", "--engine", "postgres", "--conn-id", "not_defined", env=env)
    assert missing.returncode == 1
    assert "cannot resolve connection id 'not_defined'" in missing.stderr
    assert "airflow connections add not_defined" in missing.stderr
    assert "AIRFLOW_CONN_NOT_DEFINED" in missing.stderr
    assert all(PASSWORD not in text for text in [*outputs, missing.stdout + missing.stderr])
