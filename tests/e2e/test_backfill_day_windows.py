"""A backfill of planmon_analyze with day-long data intervals, under a live Airflow (issue 19).

With ``PLANMON_ANALYZE_SCHEDULE`` daily, a backfill analyses whole days: the window where a late
onset used to be diluted into the day's mean. The repository holds a week of a good plan and a day
whose last three hours ran a plan 5x slower; ``airflow backfill create`` over that day, run by the
scheduler (LocalExecutor, every component a process of its own, PostgreSQL metadata DB), must store
the plan change, compared after its onset, once, and a second backfill must change nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from planmon.store import Repository
from planmon.store.connection import create_repository_engine
from planmon.store.regressions import RegressionStore
from tests.harness.scheduler import LOCAL_EXECUTOR, airflow_cluster
from tests.harness.seeds import seed_late_plan_change
from tests.harness.servers import PostgresServer

pytestmark = [pytest.mark.scheduler, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

ANALYZE = "planmon_analyze"
BACKFILL_TIMEOUT_S = 300


def test_a_daily_backfill_finds_a_plan_change_in_the_last_hours_of_its_day(
    repository_postgres: PostgresServer, tmp_path: Path
) -> None:
    server = repository_postgres
    suffix = datetime.now(UTC).strftime("%H%M%S%f")
    metadata, planmon = f"airflow_days_{suffix}", f"planmon_days_{suffix}"
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        for name in (metadata, planmon):
            admin.execute(f'CREATE DATABASE "{name}"')
    # two days ago: the scheduler's own latest daily interval (yesterday) is another window
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    day = today - timedelta(days=2)
    repository = Repository(create_repository_engine(make_url(_url(server, planmon))))
    try:
        repository.init_schema()
        onset = seed_late_plan_change(repository, day_start=day)
        connection = {
            "conn_type": "postgres", "host": server.host, "port": server.port, "login": server.user,
            "schema": planmon,
        }  # fmt: skip
        environment = {
            "PLANMON_REPOSITORY_CONN_ID": "planmon_repository",
            "AIRFLOW_CONN_PLANMON_REPOSITORY": json.dumps(connection),
            "PLANMON_HOME": str(tmp_path / "planmon"),
            "PLANMON_ANALYZE_SCHEDULE": "0 0 * * *",
        }
        with airflow_cluster(
            tmp_path / "airflow",
            executor=LOCAL_EXECUTOR,
            metadata_url=_url(server, metadata),
            result_backend_url=_url(server, metadata, driver="psycopg2"),
            environment=environment,
        ) as cluster:
            cluster.set_paused(ANALYZE, False)
            cluster.backfill(ANALYZE, day, day, timeout=BACKFILL_TIMEOUT_S)
            first = _regressions(repository)
            cluster.backfill(ANALYZE, day, day, timeout=BACKFILL_TIMEOUT_S)
            second = _regressions(repository)
            runs = [r for r in cluster.dag_runs(ANALYZE) if r["run_type"] == "backfill"]
        # one run of that day, run again by the second backfill (reprocess completed), successful
        assert len(runs) == 1 and runs[0]["state"] == "success", runs
        assert {(r["data_interval_start"], r["data_interval_end"]) for r in runs} == {
            (f"{day.isoformat()}Z", f"{(day + timedelta(days=1)).isoformat()}Z")
        }, runs
        assert second == first, "the second backfill changed the stored regression"
        [found] = first
        assert (found["kind"], found["baseline_plan_key"], found["current_plan_key"]) == (
            "plan_change", "p1", "p2",
        )  # fmt: skip
        assert found["onset"] == onset.isoformat() and found["onset_moved"] is True
        assert found["ratio"] == pytest.approx(5.0, rel=0.1)  # after the onset, not the diluted day
        assert found["severity"] != "info"
    finally:
        repository.close()


def _regressions(repository: Repository) -> list[dict[str, Any]]:
    rows = RegressionStore(repository).regressions()
    return [
        {
            "kind": row.kind, "baseline_plan_key": row.baseline_plan_key,
            "current_plan_key": row.current_plan_key, "ratio": row.ratio, "severity": row.severity,
            "onset": row.evidence["onset"], "onset_moved": row.evidence["onset_moved"],
            "first_detected": row.first_detected, "last_detected": row.last_detected,
        }
        for row in rows.itertuples()
    ]  # fmt: skip


def _url(server: PostgresServer, database: str, driver: str = "psycopg") -> str:
    return f"postgresql+{driver}://{server.user}@{server.host}:{server.port}/{database}"
