"""`planmon probes run` against a live PostgreSQL through an Airflow connection id: the documented
probe role runs, the harness's superuser is refused (exit 3, the reason in --json)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from planmon.cli import main
from tests.harness.servers import PostgresServer
from tests.integration.probes.live import postgres_probe_role

pytestmark = pytest.mark.postgres


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres: PostgresServer) -> Path:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS probes_cli")
        conn.execute("CREATE DATABASE probes_cli")
    with psycopg.connect(postgres.dsn("probes_cli"), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int, state text)")
        conn.execute("INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 12) g")
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("PLANMON_PROBES_DIR", str(tmp_path / "probes"))
    monkeypatch.setenv("PLANMON_ALERT_LOG_PATH", str(tmp_path / "alerts.log"))
    postgres_probe_role(postgres, "probes_cli")
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLI_PG", f"postgres://planmon_probe@127.0.0.1:{postgres.port}/probes_cli"
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLI_PG_SUPERUSER", f"postgres://postgres@127.0.0.1:{postgres.port}/probes_cli"
    )
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "cli.yaml").write_text(
        "probes:\n  - name: backlog\n    sql: SELECT count(*) FROM orders WHERE state = 'new'\n"
        "    operator: '>'\n    warning: 5\n    critical: 10\n    capture_plan: true\n"
    )
    assert main(["init"]) == 0
    assert main(["targets", "add", "shop", "--engine", "postgres", "--conn-id", "cli_pg"]) == 0
    return tmp_path


def test_run_prints_the_outcome_and_records_only_when_asked(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["probes", "run", "backlog", "--json"]) == 3  # not ok: a non-zero exit for scripts
    (outcome,) = json.loads(capsys.readouterr().out)
    assert (outcome["target"], outcome["status"], outcome["value"]) == ("shop", "critical", 12.0)
    assert outcome["plan_shape_hash"]
    assert not (home / "alerts.log").exists()

    assert main(["probes", "run", "backlog", "--target", "shop", "--record"]) == 3
    table = capsys.readouterr().out
    assert "shop" in table and "critical" in table
    assert main(["probes", "list", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["backlog"]["last_result"]["status"] == "critical"
    (line,) = (home / "alerts.log").read_text().splitlines()
    assert json.loads(line)["title"] == "[CRITICAL] probe backlog on shop: value 12 > 10"

    assert main(["probes", "run", "builtin.connectivity"]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_superuser_connection_is_refused_with_the_reason_in_json(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["targets", "add", "careless", "--engine", "postgres", "--conn-id", "cli_pg_superuser"]) == 0
    capsys.readouterr()
    assert main(["probes", "run", "backlog", "--target", "careless", "--target", "shop", "--json"]) == 3
    careless, shop = json.loads(capsys.readouterr().out)
    assert (careless["target"], careless["status"], careless["value"]) == ("careless", "refused", None)
    assert "the probe login postgres is too powerful" in careless["error"]
    assert "superuser (rolsuper)" in careless["error"] and careless["plan_shape_hash"] is None
    assert (shop["status"], shop["value"]) == ("critical", 12.0)  # the probe role next to it runs
