"""docker-compose.yml is complete and safe even where no `docker compose` CLI can validate it.

`make test` also runs `docker compose config -q` on machines that have the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
AIRFLOW_COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_stack_has_airflow_components_postgres_and_sql_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*AIRFLOW_COMPONENTS, "airflow-init", "postgres", "mssql", "mssql-init"):
        assert name in services, f"service {name} missing"
    assert services["mssql"]["image"].startswith("mcr.microsoft.com/mssql/server:2022")
    assert services["mssql"]["environment"]["MSSQL_PID"] == "Developer"
    assert "healthcheck" in services["mssql"]
    assert "healthcheck" in services["postgres"]


def test_airflow_runs_on_postgres_with_the_project_mounted(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_COMPONENTS:
        service = compose["services"][name]
        assert service["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert "./:/opt/planmon" in service["volumes"]
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_demo_database_gets_query_store_on() -> None:
    init_sql = (PROJECT_ROOT / "docker" / "mssql" / "init.sql").read_text()
    assert re.search(r"SET QUERY_STORE = ON", init_sql)
    assert "OPERATION_MODE = READ_WRITE" in init_sql


def test_published_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all addresses"


def test_no_literal_secret_in_the_compose_file(compose: dict[str, Any]) -> None:
    """Every password or secret is a ${VARIABLE} from .env, in plain variables and in connection JSON."""
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if re.search(r"PASSWORD|SECRET", key):
                assert str(value).startswith("${"), f"{name}: {key} holds a literal value"
            for secret in re.findall(r'"password":\s*"([^"]*)"', str(value)):
                assert secret.startswith("${"), f"{name}: {key} holds a literal password"
            assert not re.search(r"://[^:/@]+:[^$@][^@]*@", str(value)), (
                f"{name}: {key} has a literal URL password"
            )


def test_env_example_holds_only_placeholders() -> None:
    for line in Path(PROJECT_ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert "replace-me" in line.split("=", 1)[1]
