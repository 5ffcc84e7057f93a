"""Live on MariaDB with the events_statements_current consumer off (issue 17): history_long stays
empty, so no plan can be captured. Collection must say so (plans aspect not ok, naming the consumer
and the SQL to enable it; the run's status not ok) and detection must not claim ``same_plan`` for
the index-drop regression it finds without knowing either plan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mysql.connector
import pytest
from sqlalchemy.engine import URL

from planmon.analysis.report import regressions_json
from planmon.analysis.service import analyze_repository
from planmon.collect import collect_target
from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.regressions import RegressionStore
from tests.harness.servers import MariaDBServer

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

T0 = datetime(2026, 11, 20, 9, 0)
STEP = timedelta(minutes=15)
SETTINGS = load_settings({"PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR": "0.2"})  # a small test workload
CONSUMERS = "UPDATE performance_schema.setup_consumers SET ENABLED = "
ENABLE_SQL = CONSUMERS + "'YES' WHERE NAME IN ('events_statements_current')"


def _admin(server: MariaDBServer, statement: str) -> None:
    connection = mysql.connector.connect(**server.connect_kwargs())
    try:
        connection.cursor().execute(statement)
        connection.commit()
    finally:
        connection.close()


@pytest.fixture
def current_consumer_off(mariadb: MariaDBServer) -> Iterator[None]:
    _admin(
        mariadb,
        CONSUMERS + "'NO' WHERE NAME = 'events_statements_current'",
    )
    try:
        yield
    finally:  # the server is shared by the session's other MariaDB tests
        _admin(mariadb, ENABLE_SQL)


def test_consumer_off_is_reported_and_no_same_plan_is_claimed(
    mariadb: MariaDBServer, current_consumer_off: None, tmp_path: Path
) -> None:
    admin = mysql.connector.connect(**mariadb.connect_kwargs())
    cursor = admin.cursor()
    cursor.execute("DROP DATABASE IF EXISTS shop_status")
    cursor.execute("CREATE DATABASE shop_status")
    cursor.execute("CREATE TABLE shop_status.orders (id int primary key, customer int, total decimal(10,2))")
    cursor.executemany(
        "INSERT INTO shop_status.orders VALUES (%s, %s, %s)", [(i, i % 20000, i) for i in range(1, 100001)]
    )
    cursor.execute("CREATE INDEX orders_customer ON shop_status.orders (customer)")
    cursor.execute("ANALYZE TABLE shop_status.orders")
    cursor.fetchall()
    admin.commit()
    admin.close()

    repository = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    repository.init_schema()
    target = repository.add_target(
        TargetSpec(name="maria", engine="mysql", conn_id="unused", databases=("shop_status",))
    )

    def connect(database: str | None) -> Any:
        return mysql.connector.connect(**mariadb.connect_kwargs(database))

    app = mysql.connector.connect(**mariadb.connect_kwargs("shop_status"))

    def workload() -> None:  # literals inline, as an application would send them
        app_cursor = app.cursor()
        for i in range(40):
            app_cursor.execute(f"SELECT sum(total) FROM orders WHERE customer = {i}")
            app_cursor.fetchall()

    summaries = []
    for interval in range(10):
        if interval == 6:
            app.cursor().execute("DROP INDEX orders_customer ON orders")
        if interval:
            workload()
        start = T0 + interval * STEP
        summaries.append(
            collect_target(
                repository,
                target,
                start,
                start + STEP,
                settings=SETTINGS,
                connect=connect,
                now=start + STEP + timedelta(seconds=20),
            )
        )
    app.close()

    for summary in summaries:
        plans = summary.aspects["plans"]
        assert plans["status"] == "unavailable", plans
        assert "events_statements_current" in plans["hint"] and ENABLE_SQL in plans["hint"], plans["hint"]
        assert "performance-schema-consumer-events-statements-current=ON" in plans["hint"]
        assert summary.status == "degraded" and summary.plans_captured == 0
    stored = CollectionStore(repository).collection_runs(target_id=target.id)
    assert set(stored["status"]) == {"degraded"}
    assert summaries[-1].rows >= 1  # the statistics were still collected

    summary = analyze_repository(
        repository,
        window_start=T0 + 6 * STEP,
        window_end=T0 + 10 * STEP,
        baseline_start=T0,
        settings=SETTINGS,
    )
    found = regressions_json(RegressionStore(repository).regressions(status="open"))
    orders = [r for r in found if "orders" in (r["query_text"] or "")]
    assert summary.by_kind.get("same_plan") is None, found
    assert [r["kind"] for r in orders] == ["plan_unknown"], found
    evidence = orders[0]["evidence"]  # as `planmon regressions --json` prints it
    assert evidence["plan_unknown"] is True and "plans aspect" in evidence["hint"], evidence
