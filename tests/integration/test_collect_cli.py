"""`planmon collect` against a live PostgreSQL target and a target that is down."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from planmon.cli import main
from tests.harness.servers import PostgresServer, free_port

pytestmark = pytest.mark.postgres


@pytest.fixture
def cli_env(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PostgresServer:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_cli")
        conn.execute("CREATE DATABASE shop_cli")
    with psycopg.connect(postgres.dsn("shop_cli"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE items (id int primary key, name text)")
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_CLI", f"postgres://postgres@127.0.0.1:{postgres.port}/shop_cli")
    monkeypatch.setenv("AIRFLOW_CONN_GONE", f"postgres://postgres:hunter2secret@127.0.0.1:{free_port()}/x")
    return postgres


def test_collect_counts_a_workload_and_reports_a_down_target(
    cli_env: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    assert main(["targets", "add", "shop", "--engine", "postgres", "--conn-id", "shop_cli"]) == 0
    assert main(["targets", "add", "gone", "--engine", "postgres", "--conn-id", "gone"]) == 0
    capsys.readouterr()
    assert main(["collect", "--target", "shop"]) == 0  # baseline
    with psycopg.connect(cli_env.dsn("shop_cli"), autocommit=True) as conn:
        for i in range(9):
            conn.execute("SELECT name FROM items WHERE id = %s", (i,))
    capsys.readouterr()
    assert main(["collect", "--json"]) == 1  # one target down: non-zero exit, the other collected
    captured = capsys.readouterr()
    summaries = {s["target"]: s for s in json.loads(captured.out)}
    assert summaries["shop"]["status"] == "ok" and summaries["shop"]["rows"] >= 1
    assert summaries["gone"]["status"] == "error" and "refused" in summaries["gone"]["error"]
    assert "hunter2secret" not in captured.out + captured.err


def test_window_needs_both_ends(cli_env: PostgresServer, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    assert main(["collect", "--start", "2026-11-20T10:00"]) == 1
    assert "both --start and --end" in capsys.readouterr().err
