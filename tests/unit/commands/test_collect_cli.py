"""`planmon collect`'s window checks, on an embedded SQLite repository."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from planmon.cli import main
from planmon.config import Settings
from planmon.store import Repository
from planmon.store.schema import collection_run


@pytest.fixture
def planmon_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    # a port nothing listens on: a window that passes the checks fails at the connection, quickly
    monkeypatch.setenv(
        "AIRFLOW_CONN_ORDERS_PG",
        '{"conn_type": "postgres", "host": "127.0.0.1", "port": 9, "login": "monitor", "password": "x"}',
    )
    assert main(["init"]) == 0
    assert main(["targets", "add", "orders", "--engine", "postgres", "--conn-id", "orders_pg"]) == 0
    return tmp_path


def _runs(home: Path) -> int:
    repository = Repository.from_settings(Settings(home=home))
    try:
        with repository.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(collection_run)).scalar_one())
    finally:
        repository.close()


def test_a_window_ending_in_the_future_is_refused_before_any_target_is_read(
    planmon_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    end = datetime.now(UTC) + timedelta(hours=1)
    start = end - timedelta(hours=2)
    capsys.readouterr()
    assert main(["collect", "--start", start.isoformat(), "--end", end.isoformat()]) == 1
    err = capsys.readouterr().err
    assert f"--end {end.isoformat()} is in the future" in err
    assert "give an --end at or before now, or omit --start and --end" in err
    assert _runs(planmon_home) == 0


def test_a_window_that_has_ended_goes_to_the_target(
    planmon_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    end = datetime.now(UTC) - timedelta(minutes=1)
    capsys.readouterr()
    code = main(["collect", "--start", (end - timedelta(hours=1)).isoformat(), "--end", end.isoformat()])
    captured = capsys.readouterr()
    assert "in the future" not in captured.err
    assert code == 1 and "orders: error" in captured.out  # refused by the target, not by the window
    assert _runs(planmon_home) == 1
