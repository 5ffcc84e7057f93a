"""A fleet of PostgreSQL targets on one throwaway instance, for the live scheduler test.

pg_stat_statements is one view per instance (a row per statement *and database*), and planmon's
PostgreSQL adapter keeps only the rows of the databases a target names, so N databases on one
instance are N distinct targets. Each database gets the extension (the view exists only where it
was created), a small orders table with the index its look-up query needs, and an Airflow connection
of its own, given as ``AIRFLOW_CONN_*`` JSON (the throwaway cluster trusts loopback: no password).

Cumulative counters cannot be collected for past intervals, so the history a regression needs (a
baseline with the index, then hours without it) is collected here, before Airflow starts, through
planmon's own collector with the collection time set to each interval's end, as the detection tests
do; everything after that is collected by the live scheduler.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from planmon.collect import collect_target
from planmon.config import Settings
from planmon.model import Target, TargetSpec
from planmon.store import Repository
from tests.harness.servers import PostgresServer

SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, total numeric NOT NULL, note text)",
    "INSERT INTO orders SELECT g, g % 2000, g, repeat('x', 40) FROM generate_series(1, 40000) g",
    "CREATE INDEX orders_customer ON orders (customer)",
    "CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL)",
    "INSERT INTO regions SELECT g, 'region ' || g FROM generate_series(1, 50) g",
    "ANALYZE",
)
ORDER_TOTAL = "SELECT sum(total) FROM orders WHERE customer = %s"  # regresses without orders_customer
REGION = "SELECT name FROM regions WHERE id = %s"  # steady
REGRESSION_INDEX = "orders_customer"


@dataclass(frozen=True)
class FleetTarget:
    name: str
    database: str
    conn_id: str


def fleet_targets(count: int) -> list[FleetTarget]:
    return [
        FleetTarget(name=f"pg-{i:02d}", database=f"target_{i:02d}", conn_id=f"planmon_target_{i:02d}")
        for i in range(count)
    ]


def create_databases(server: PostgresServer, targets: Sequence[FleetTarget]) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        for target in targets:
            admin.execute(f'CREATE DATABASE "{target.database}"')
    for target in targets:
        with psycopg.connect(server.dsn(target.database), autocommit=True) as connection:
            for statement in SCHEMA:
                connection.execute(statement)


def connection_environment(server: PostgresServer, targets: Sequence[FleetTarget]) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` JSON per target: how planmon's tasks reach them."""
    return {
        f"AIRFLOW_CONN_{target.conn_id.upper()}": json.dumps(
            {
                "conn_type": "postgres",
                "host": server.host,
                "port": server.port,
                "login": server.user,
                "schema": target.database,
            }
        )
        for target in targets
    }


def register(repository: Repository, targets: Sequence[FleetTarget]) -> list[Target]:
    """The targets in planmon's registry, as `planmon targets add NAME --engine postgres ...` does."""
    return [
        repository.add_target(
            TargetSpec(
                name=target.name,
                engine="postgres",
                conn_id=target.conn_id,
                environment="test",
                databases=(target.database,),
            )
        )
        for target in targets
    ]


def run_workload(connection: Any, executions: int, seed: int) -> None:
    """One burst of application traffic: the look-up that can regress and a steady one."""
    rng = random.Random(seed)  # workload parameters, not security
    for _ in range(executions):
        connection.execute(ORDER_TOTAL, (rng.randrange(2000),)).fetchall()
        connection.execute(REGION, (rng.randrange(1, 51),)).fetchall()


@contextlib.contextmanager
def background_workload(
    server: PostgresServer, targets: Sequence[FleetTarget], *, pause: float = 0.5
) -> Iterator[dict[str, int]]:
    """A little traffic on every target from one thread while the block runs, so each live
    collection has something to collect; errors are counted (a target may be briefly busy)."""
    stop = threading.Event()
    counts = {"bursts": 0, "errors": 0}
    connections = [psycopg.connect(server.dsn(t.database), autocommit=True) for t in targets]

    def loop() -> None:
        seed = 0
        while not stop.is_set():
            for connection in connections:
                seed += 1
                try:
                    run_workload(connection, 3, seed)
                except psycopg.Error:
                    counts["errors"] += 1
            counts["bursts"] += 1
            stop.wait(pause)

    thread = threading.Thread(target=loop, name="fleet-workload", daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=60)
        for connection in connections:
            connection.close()


def seed_regression_history(
    repository: Repository,
    server: PostgresServer,
    target: Target,
    *,
    database: str,
    drop_at: datetime,
    start: datetime,
    end: datetime,
    step: timedelta,
    settings: Settings,
    executions: int = 40,
) -> None:
    """Collect ``target`` over [start, end) in ``step`` intervals with traffic in each, the
    regression index dropped from ``drop_at`` on; each collection runs "at" its interval's end."""

    def connect(name: str | None) -> Any:
        return psycopg.connect(server.dsn(name or database), autocommit=True)

    def collect(interval_end: datetime) -> None:
        summary = collect_target(
            repository, target, interval_end - step, interval_end, settings=settings, connect=connect,
            now=interval_end,
        )  # fmt: skip
        if summary.status != "ok":
            raise RuntimeError(f"seeding {target.name} at {interval_end}: {summary.as_dict()}")

    with psycopg.connect(server.dsn(database), autocommit=True) as app:
        collect(start)  # the counters' first reading: the baseline of the first delta
        moment, seed = start, 0
        while moment < end:
            if moment == drop_at:
                app.execute(f"DROP INDEX {REGRESSION_INDEX}")
            seed += 1
            run_workload(app, executions, seed)
            moment += step
            collect(moment)
