"""docker-compose.yml is complete and safe even where no `docker compose` CLI can validate it.

`make test` also runs `docker compose config -q` on machines that have the CLI.
"""

from __future__ import annotations

import re
import tomllib
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


def test_links_in_approval_messages_point_at_the_stacks_airflow(compose: dict[str, Any]) -> None:
    """The Required Actions link (Airflow's helper) and planmon's regression links need a base URL:
    the published API server's, the same for Airflow and planmon."""
    published = compose["services"]["airflow-apiserver"]["ports"]
    for name in AIRFLOW_COMPONENTS:
        environment = compose["services"][name]["environment"]
        assert environment["PLANMON_BASE_URL"] == environment["AIRFLOW__API__BASE_URL"]
        port = environment["PLANMON_BASE_URL"].rsplit(":", 1)[1]
        assert any(str(p).startswith(f"127.0.0.1:{port}:") for p in published), published


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


def test_demo_targets_have_their_monitoring_settings_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres_command = " ".join(services["pg-target"]["command"])
    assert "shared_preload_libraries=pg_stat_statements" in postgres_command
    assert "compute_query_id=on" in postgres_command
    mariadb_command = " ".join(services["mariadb-target"]["command"])
    assert "--performance-schema=ON" in mariadb_command
    assert "--performance-schema-consumer-statements-digest=ON" in mariadb_command
    for name in ("pg-target", "mariadb-target", "mssql", "postgres"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_the_init_migrates_and_registers_every_demo_target_with_a_resolvable_connection(
    compose: dict[str, Any],
) -> None:
    init = compose["services"]["airflow-init"]
    script = (PROJECT_ROOT / "docker" / "airflow-init.sh").read_text()
    assert init["entrypoint"][-1].endswith("docker/airflow-init.sh")
    assert "airflow db migrate" in script and "planmon init" in script
    environment = compose["services"]["airflow-scheduler"]["environment"]
    for target, engine, conn_id in re.findall(r"^add_target (\S+) (\S+) (\S+)", script, flags=re.MULTILINE):
        assert engine in ("sqlserver", "postgres", "mysql"), target
        for needed in (conn_id, f"{conn_id}_remediation"):
            assert f"AIRFLOW_CONN_{needed.upper()}" in environment, f"{target}: no connection {needed}"
    for dependency in ("postgres", "pg-target", "mariadb-target", "mssql-init"):
        assert dependency in init["depends_on"]


def test_sql_server_gets_a_workload_that_makes_a_plan_regression(compose: dict[str, Any]) -> None:
    workload = compose["services"]["mssql-workload"]
    assert workload["depends_on"]["mssql-init"]["condition"] == "service_completed_successfully"
    script = (PROJECT_ROOT / "docker" / "mssql" / "workload.sh").read_text()
    assert "sp_recompile" in script and "customer_orders" in script
    assert (
        "CREATE OR ALTER PROCEDURE dbo.customer_orders"
        in (PROJECT_ROOT / "docker" / "mssql" / "init.sql").read_text()
    )


def test_celery_is_a_profile_with_redis_and_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["redis"]["profiles"] == ["celery"]
    worker = services["airflow-worker"]
    assert worker["profiles"] == ["celery"] and worker["command"] == "celery worker"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    executor = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"]
    assert executor == "${AIRFLOW_EXECUTOR:-LocalExecutor}"  # LocalExecutor unless Celery is asked for


def test_every_variable_the_stack_needs_is_in_env_example() -> None:
    text = COMPOSE_FILE.read_text()
    needed = set(re.findall(r"\$\{([A-Z_]+)(?::\?[^}]*)?\}", text))
    defined = {
        line.split("=", 1)[0]
        for line in (PROJECT_ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert needed - defined == set(), "add these to .env.example"


def test_the_airflow_image_copies_what_the_planmon_build_needs() -> None:
    """The image installs planmon from source: the build hook pyproject names must be copied in."""
    dockerfile = (PROJECT_ROOT / "docker" / "airflow.Dockerfile").read_text(encoding="utf-8")
    copied = {
        part
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
        if not part.startswith("--")
    }
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    hook = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]["path"]
    assert {"pyproject.toml", "uv.lock", "README.md", hook, "plugins", "include"} <= copied
    assert "gcc" in dockerfile  # the compiled showplan reader builds in the image (ADR 0004)


def test_the_airflow_image_runs_the_locked_environment_with_celery() -> None:
    """Workers run the lock's versions (celery extra included), not the base image's packages."""
    dockerfile = (PROJECT_ROOT / "docker" / "airflow.Dockerfile").read_text(encoding="utf-8")
    assert "uv sync --frozen --no-dev --extra celery" in dockerfile
    assert "pip install --no-cache-dir -r" not in dockerfile


def test_the_celery_extra_is_locked_at_versions_that_work_together() -> None:
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text(encoding="utf-8"))
    versions = {package["name"]: package["version"] for package in lock["package"]}
    assert {"apache-airflow-providers-celery", "celery", "redis"} <= versions.keys()
    # celery 5.7 breaks provider 3.26's worker (pyproject.toml says how)
    assert versions["celery"].startswith("5.6.")
