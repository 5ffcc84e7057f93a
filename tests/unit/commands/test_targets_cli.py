"""`planmon init` and `planmon targets` end to end on an embedded SQLite repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planmon.cli import main


@pytest.fixture
def planmon_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ORDERS_PG",
        '{"conn_type": "postgres", "host": "127.0.0.1", "login": "monitor", "password": "hunter2secret"}',
    )
    return tmp_path


def test_init_creates_then_reports_current(planmon_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    assert "upgraded from empty to revision" in capsys.readouterr().out
    assert main(["init"]) == 0
    assert "already current" in capsys.readouterr().out
    assert (planmon_home / "planmon.db").is_file()


def test_commands_before_init_say_to_run_it(planmon_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "list"]) == 1
    assert "run `planmon init`" in capsys.readouterr().err


def test_add_list_disable_remove(planmon_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    argv = [
        "targets",
        "add",
        "orders",
        "--engine",
        "postgres",
        "--conn-id",
        "orders_pg",
        "--env",
        "prod",
        "--tag",
        "team=payments",
        "--database",
        "orders",
    ]
    assert main(argv) == 0
    assert main(["targets", "disable", "orders"]) == 0
    capsys.readouterr()
    assert main(["targets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["name"], t["enabled"], t["tags"], t["databases"]) for t in listed] == [
        ("orders", False, {"team": "payments"}, ["orders"])
    ]
    assert main(["targets", "remove", "orders"]) == 0
    assert main(["targets", "list"]) == 0
    assert "no targets yet" in capsys.readouterr().out


def test_duplicate_and_unresolvable_connection_are_refused(
    planmon_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["init"])
    assert main(["targets", "add", "orders", "--engine", "postgres", "--conn-id", "orders_pg"]) == 0
    assert main(["targets", "add", "orders", "--engine", "postgres", "--conn-id", "orders_pg"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["targets", "add", "billing", "--engine", "mysql", "--conn-id", "billing_missing"]) == 1
    err = capsys.readouterr().err
    assert "cannot resolve connection id 'billing_missing'" in err and "AIRFLOW_CONN_BILLING_MISSING" in err


def test_unknown_engine_is_a_usage_error(planmon_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["targets", "add", "x", "--engine", "oracle", "--conn-id", "orders_pg"])
    assert caught.value.code == 2
    assert "invalid choice: 'oracle'" in capsys.readouterr().err


def test_bad_tag_says_the_expected_form(planmon_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    assert main(["targets", "add", "x", "--engine", "mysql", "--conn-id", "orders_pg", "--tag", "oops"]) == 1
    assert "KEY=VALUE" in capsys.readouterr().err


def test_no_secret_reaches_the_output(planmon_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    main(["targets", "add", "orders", "--engine", "postgres", "--conn-id", "orders_pg"])
    main(["targets", "list", "--json"])
    captured = capsys.readouterr()
    assert "hunter2secret" not in captured.out + captured.err
