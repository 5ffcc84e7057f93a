"""The collector end to end on live servers: deltas, plans, index snapshots, own statements, retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mysql.connector
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from planmon.collect import collect_target
from planmon.config import load_settings
from planmon.model import Target, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.connection import create_repository_engine
from planmon.store.schema import plan, query
from tests.harness.servers import MariaDBServer, PostgresServer

WORKLOAD = 11
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
STEP = timedelta(minutes=15)


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    repo = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    repo.init_schema()
    return repo


def _collect(repo: Repository, target: Target, connect: Callable[[str | None], Any], step: int) -> Any:
    end = NOW - STEP * (2 - step)
    return collect_target(
        repo,
        target,
        end - STEP,
        end,
        settings=load_settings({}),
        connect=connect,
        now=end + timedelta(seconds=20),
    )


def _check(repo: Repository, target: Target, run_workload: Callable[[], None], connect: Any) -> None:
    collection = CollectionStore(repo)
    _collect(repo, target, connect, 0)  # baseline
    run_workload()
    second = _collect(repo, target, connect, 1)
    assert second.status == "ok", second.aspects
    window = (NOW - timedelta(hours=2), NOW + timedelta(hours=1))
    stats = collection.runtime_stats(*window, target_ids=[target.id])
    assert (stats["executions"] == WORKLOAD).sum() == 1, stats[["executions", "query_id"]]
    with repo.engine.connect() as connection:
        texts = connection.execute(select(query.c.query_text)).scalars().all()
        plans = connection.execute(select(plan.c.plan_key, plan.c.shape_hash, plan.c.body)).all()
    own = [text for text in texts if "/* planmon */" in (text or "")]
    assert not own, f"planmon's own statements collected: {own}"
    assert any(p.shape_hash and p.body for p in plans), "no plan captured for the workload"
    indexes = collection.index_snapshots(target.id)
    assert {"orders_customer"} <= set(indexes["index_name"]), indexes
    before = stats.sort_values("plan_id").reset_index(drop=True)
    _collect(repo, target, connect, 1)  # the same window again (a retry): nothing changes
    again = collection.runtime_stats(*window, target_ids=[target.id])
    after = again.sort_values("plan_id").reset_index(drop=True)
    assert after[["plan_id", "interval_start", "executions"]].equals(
        before[["plan_id", "interval_start", "executions"]]
    )


@pytest.mark.postgres
def test_postgres_collection(repository: Repository, postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_live")
        conn.execute("CREATE DATABASE shop_live")
    with psycopg.connect(postgres.dsn("shop_live"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE orders (id int primary key, customer int, total numeric)")
        conn.execute("INSERT INTO orders SELECT g, g % 50, g FROM generate_series(1, 5000) g")
        conn.execute("CREATE INDEX orders_customer ON orders (customer)")
        conn.execute("ANALYZE orders")
    target = repository.add_target(
        TargetSpec(name="pg", engine="postgres", conn_id="unused", databases=("shop_live",))
    )

    def connect(database: str | None) -> Any:
        return psycopg.connect(postgres.dsn(database or "shop_live"), autocommit=True)

    def workload() -> None:
        with psycopg.connect(postgres.dsn("shop_live"), autocommit=True) as conn:
            for i in range(WORKLOAD):
                conn.execute("SELECT sum(total) FROM orders WHERE customer = %s", (i,))

    _check(repository, target, workload, connect)


@pytest.mark.mysql
def test_mariadb_collection(repository: Repository, mariadb: MariaDBServer) -> None:
    conn = mysql.connector.connect(**mariadb.connect_kwargs())
    cursor = conn.cursor()
    cursor.execute("DROP DATABASE IF EXISTS shop_live")
    cursor.execute("CREATE DATABASE shop_live")
    cursor.execute("CREATE TABLE shop_live.orders (id int primary key, customer int, total decimal(10,2))")
    cursor.execute("CREATE INDEX orders_customer ON shop_live.orders (customer)")
    cursor.executemany(
        "INSERT INTO shop_live.orders VALUES (%s, %s, %s)", [(i, i % 50, i) for i in range(1, 2001)]
    )
    conn.commit()
    target = repository.add_target(
        TargetSpec(name="maria", engine="mysql", conn_id="unused", databases=("shop_live",))
    )

    def connect(database: str | None) -> Any:
        return mysql.connector.connect(**mariadb.connect_kwargs(database))

    def workload() -> None:  # as an application would: connected to its schema, literals inline
        app = mysql.connector.connect(**mariadb.connect_kwargs("shop_live"))
        app_cursor = app.cursor()
        for i in range(WORKLOAD):
            app_cursor.execute(f"SELECT sum(total) FROM orders WHERE customer = {i}")
            app_cursor.fetchall()
        app.close()

    conn.close()
    _check(repository, target, workload, connect)
