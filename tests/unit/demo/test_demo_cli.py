"""The demo's entry point: what it says and does before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

import planmon.embedded
from planmon.demo import cli
from planmon.demo.flow import DemoTimeline
from planmon.embedded import ServerUnavailable


def test_without_postgres_binaries_it_prints_the_install_command_and_stops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def missing() -> Path:
        raise ServerUnavailable("no PostgreSQL server binaries found (initdb, postgres)")

    monkeypatch.setattr(planmon.embedded, "postgres_bindir", missing)
    home = tmp_path / "demo"
    assert cli.main(["--home", str(home)]) == cli.EXIT_MISSING_SERVER
    err = capsys.readouterr().err
    assert "no PostgreSQL server binaries found" in err
    assert "apt-get install -y postgresql" in err
    assert not home.exists()  # stopped before touching anything


def test_outside_the_project_it_says_where_to_run_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["--home", str(tmp_path / "demo"), "--dags", str(tmp_path)]) == cli.EXIT_FAILED
    assert "make demo" in capsys.readouterr().err


def test_the_timeline_puts_two_baseline_and_three_regressed_intervals_before_the_start() -> None:
    from datetime import UTC, datetime

    timeline = DemoTimeline(end=datetime(2026, 11, 28, 0, 7, tzinfo=UTC))
    ends = timeline.collection_ends()
    assert [f"{e:%H:%M}" for e in ends] == ["23:42", "23:47", "23:52", "23:57", "00:02", "00:07"]
    assert timeline.window == (datetime(2026, 11, 27, 23, 52, tzinfo=UTC), timeline.end)
    assert timeline.collect_cron() == "2-59/5 * * * *"  # intervals end on the start minute
    assert timeline.analyze_cron() == "7,22,37,52 * * * *"
