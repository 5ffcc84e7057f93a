"""Every command with ``--json`` prints exactly one JSON document on stdout, and every log line
(planmon's and Airflow's) goes to stderr (issue 17): each command runs as a process of its own, as
``planmon ... --json | jq`` would, against a live PostgreSQL target with a real regression (an index
dropped, collected and analysed) to propose a fix for.

The commands are found in the parser itself, so a new command with ``--json`` that this test does not
run fails it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from planmon.cli import build_parser
from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from tests.conftest import PROJECT_ROOT
from tests.harness.remediation import collect_history, small_workload_settings
from tests.harness.servers import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DB = "shop_json"
REGRESSED = "SELECT sum(total) FROM orders WHERE customer = %s"
PLAN_A = PROJECT_ROOT / "tests" / "fixtures" / "plans" / "sqlserver" / "KeyLookup.sqlplan"
PLAN_B = PROJECT_ROOT / "tests" / "fixtures" / "plans" / "sqlserver" / "StmtCond.sqlplan"


def json_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The command paths (e.g. ("remediate", "propose")) whose parser accepts --json."""
    found: set[tuple[str, ...]] = set()
    for action in parser._actions:
        if "--json" in action.option_strings:
            found.add(path)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= json_commands(sub, (*path, name))
    return found


@pytest.fixture
def live(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A repository with one PostgreSQL target whose regression is open, and the environment for it."""
    small_workload_settings(monkeypatch, tmp_path)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{DB.upper()}",
        json.dumps(
            {"conn_type": "postgres", "host": postgres.host, "port": postgres.port,
             "login": "postgres", "schema": DB}
        ),
    )  # fmt: skip
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    app = psycopg.connect(postgres.dsn(DB), autocommit=True)
    try:
        app.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        app.execute("CREATE TABLE orders (id int primary key, customer int, total numeric)")
        app.execute("INSERT INTO orders SELECT g, g % 20000, g FROM generate_series(1, 200000) g")
        app.execute("CREATE INDEX orders_customer ON orders (customer)")
        app.execute("ANALYZE")
        settings = load_settings()
        with Repository.from_settings(settings) as repository:
            repository.init_schema()
            target = repository.add_target(
                TargetSpec(name=DB, engine="postgres", conn_id=DB, databases=(DB,), remediation_conn_id=DB)
            )

            def connect(database: str | None) -> Any:
                return psycopg.connect(postgres.dsn(database or DB), autocommit=True)

            regression_id = collect_history(
                repository,
                target,
                settings,
                connect,
                workload=lambda: [app.execute(REGRESSED, (i,)) for i in range(40)] and None,
                drop_index=lambda: app.execute("DROP INDEX orders_customer"),
            )
    finally:
        app.close()
    # Airflow's default level (the tests' WARNING would hide the INFO lines that leaked onto stdout)
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    # One superuser connection serves collection, remediation and `probes run` here: this test is about
    # the commands' JSON, so the probe login check is relaxed for this one target, knowingly.
    env["PLANMON_PROBES_ALLOW_PRIVILEGED"] = DB
    return {"regression_id": regression_id, "env": env}


def test_every_json_command_prints_one_json_document(live: dict[str, Any]) -> None:
    regression = str(live["regression_id"])
    runs: dict[tuple[str, ...], list[str]] = {
        ("config", "show"): ["config", "show", "--json"],
        ("targets", "list"): ["targets", "list", "--json"],
        ("collect",): ["collect", "--target", DB, "--json"],
        ("analyze",): ["analyze", "--target", DB, "--json"],
        ("regressions",): ["regressions", "--json"],
        ("probes", "list"): ["probes", "list", "--json"],
        ("probes", "run"): ["probes", "run", "builtin.connectivity", "--target", DB, "--json"],
        ("remediate", "propose"): ["remediate", "propose", regression, "--json"],
        ("remediate", "list"): ["remediate", "list", "--json"],
        ("remediate", "policy"): ["remediate", "policy", DB, "--json"],
        ("plan", "inspect"): ["plan", "inspect", str(PLAN_A), "--json"],
        ("plan", "diff"): ["plan", "diff", str(PLAN_A), str(PLAN_B), "--json"],
    }
    assert json_commands(build_parser()) == set(runs), "a command with --json is not run by this test"
    script = Path(sys.executable).with_name("planmon")
    documents: dict[tuple[str, ...], Any] = {}
    logs: dict[tuple[str, ...], str] = {}
    for path, argv in runs.items():
        completed = subprocess.run(
            [sys.executable, str(script), "-v", *argv],  # -v: debug logging on, all of it on stderr
            capture_output=True,
            text=True,
            timeout=120,
            env=live["env"],
            cwd=PROJECT_ROOT,
            check=False,
        )
        assert completed.returncode == 0, (argv, completed.stderr[-3000:])
        try:
            documents[path] = json.loads(completed.stdout)  # the whole of stdout: one document, nothing else
        except json.JSONDecodeError as exc:
            pytest.fail(f"planmon {' '.join(argv)}: stdout is not one JSON document ({exc}):\n"
                        f"{completed.stdout[:3000]}")  # fmt: skip
        logs[path] = completed.stderr
    # the log lines were written, to stderr: planmon's (through Airflow's handler) and Airflow's own
    assert f"collected target={DB}" in logs[("collect",)]
    assert "[airflow." in logs[("collect",)]
    # the documents are the commands' own, not an empty shell
    assert documents[("collect",)][0]["target"] == DB
    assert documents[("probes", "run")][0]["target"] == DB
    assert documents[("remediate", "propose")]["regression_id"] == live["regression_id"]
    assert [r["id"] for r in documents[("regressions",)]["regressions"]] == [live["regression_id"]]
    assert documents[("targets", "list")][0]["name"] == DB
