"""Live on PostgreSQL: an index dropped mid-way is found as plan_change; a steady query is not flagged."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from planmon.analysis.report import regressions_json
from planmon.analysis.service import analyze_repository
from planmon.collect import collect_target
from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from planmon.store.connection import create_repository_engine
from planmon.store.regressions import RegressionStore
from tests.harness.servers import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

T0 = datetime(2026, 11, 20, 9, 0)
STEP = timedelta(minutes=15)
SETTINGS = load_settings({"PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR": "0.2"})  # a small test workload


def test_dropped_index_is_a_plan_change_and_the_steady_query_is_not(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_detect")
        conn.execute("CREATE DATABASE shop_detect")
    app = psycopg.connect(postgres.dsn("shop_detect"), autocommit=True)
    app.execute("CREATE EXTENSION pg_stat_statements")
    app.execute("CREATE TABLE orders (id int primary key, customer int, total numeric, note text)")
    app.execute(
        "INSERT INTO orders SELECT g, g % 20000, g, repeat('x', 40) FROM generate_series(1, 200000) g"
    )
    app.execute("CREATE INDEX orders_customer ON orders (customer)")
    app.execute("CREATE TABLE regions (id int primary key, name text)")
    app.execute("INSERT INTO regions SELECT g, 'r' || g FROM generate_series(1, 50) g")
    app.execute("ANALYZE")

    def workload() -> None:
        for i in range(40):
            app.execute("SELECT sum(total) FROM orders WHERE customer = %s", (i,))
            app.execute("SELECT name FROM regions WHERE id = %s", (i % 50 + 1,))

    repository = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    repository.init_schema()
    target = repository.add_target(
        TargetSpec(name="shop", engine="postgres", conn_id="unused", databases=("shop_detect",))
    )

    def connect(database: str | None) -> Any:
        return psycopg.connect(postgres.dsn(database or "shop_detect"), autocommit=True)

    def collect(interval: int) -> None:
        start = T0 + interval * STEP
        summary = collect_target(repository, target, start, start + STEP, settings=SETTINGS, connect=connect,
                                 now=start + STEP + timedelta(seconds=20))  # fmt: skip
        assert summary.status == "ok", summary.aspects

    collect(0)  # the counters' baseline reading
    for interval in range(1, 10):
        if interval == 6:
            app.execute("DROP INDEX orders_customer")
        workload()
        collect(interval)
    app.close()

    summary = analyze_repository(
        repository,
        window_start=T0 + 6 * STEP,
        window_end=T0 + 10 * STEP,
        baseline_start=T0,
        settings=SETTINGS,
    )
    found = regressions_json(RegressionStore(repository).regressions(status="open"))
    assert summary.by_kind == {"plan_change": 1}, found
    regression = found[0]
    assert "orders" in (regression["query_text"] or "") and regression["ratio"] > 2
    assert "orders_customer" in (regression["diff"] or ""), regression["diff"]
    assert not any("regions" in (r["query_text"] or "") for r in found)


def test_a_statistics_driven_flip_to_a_seq_scan_is_captured_under_the_default_budget(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """The data under a query changes (2 customers instead of 20,000) and, after ANALYZE, the planner
    moves it from the index to a (parallel) Seq Scan. Collection runs on the default capture budget,
    each run starting 5 s earlier than the last as a busy scheduler does: the flip's plan is captured
    in the interval it happened and the regression is a plan_change whose diff shows the new scan."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_flip")
        conn.execute("CREATE DATABASE shop_flip")
    app = psycopg.connect(postgres.dsn("shop_flip"), autocommit=True)
    app.execute("CREATE EXTENSION pg_stat_statements")
    app.execute("CREATE TABLE orders (id int primary key, customer int, total numeric, note text)")
    app.execute(
        "INSERT INTO orders SELECT g, g % 20000, g, repeat('x', 40) FROM generate_series(1, 200000) g"
    )
    app.execute("CREATE INDEX orders_customer ON orders (customer)")
    app.execute("ANALYZE")

    repository = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    repository.init_schema()
    target = repository.add_target(
        TargetSpec(name="shop", engine="postgres", conn_id="unused", databases=("shop_flip",))
    )

    def connect(database: str | None) -> Any:
        return psycopg.connect(postgres.dsn(database or "shop_flip"), autocommit=True)

    plans_captured = []
    for interval in range(10):
        if interval == 6:
            app.execute("UPDATE orders SET customer = id % 2")
            app.execute("VACUUM ANALYZE orders")
        if interval:
            for i in range(40):
                app.execute("SELECT sum(total) FROM orders WHERE customer = %s", (i % 2,))
        start = T0 + interval * STEP
        early = timedelta(seconds=5 * interval)
        summary = collect_target(repository, target, start, start + STEP, settings=SETTINGS, connect=connect,
                                 now=start + STEP + timedelta(seconds=20) - early)  # fmt: skip
        assert summary.status == "ok", summary.aspects
        plans_captured.append(summary.plans_captured)
    app.close()
    assert all(plans_captured[1:]), plans_captured  # the default budget allows a capture every run

    summary = analyze_repository(
        repository,
        window_start=T0 + 6 * STEP,
        window_end=T0 + 10 * STEP,
        baseline_start=T0,
        settings=SETTINGS,
    )
    found = regressions_json(RegressionStore(repository).regressions(status="open"))
    assert summary.by_kind == {"plan_change": 1}, found
    diff = found[0]["diff"] or ""
    assert "Seq Scan" in diff and "orders_customer" in diff, diff
