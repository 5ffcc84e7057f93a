"""Repository write throughput: planmon's idempotent upsert vs a raw bulk load of the same rows.

200k runtime-stats rows (200 plans x 1,000 intervals) go into SQLite and into a throwaway PostgreSQL
(started from the installed binaries, like the tests). Baselines, measured in the same run on an
identical empty table with the same constraints enforced: SQLite ``executemany`` of a plain INSERT
(WAL, foreign keys on, as planmon connects); PostgreSQL ``COPY``. planmon is
timed twice: the first load (inserts) and a re-run of the same batch (all conflicts, i.e. a retried
task). Goal: planmon at least half the raw throughput (ratio >= 0.5).

    .venv/bin/python bench/store_upsert.py [--rows 200000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from planmon.model import PlanRecord, QueryRecord, TargetSpec  # noqa: E402
from planmon.store import Repository  # noqa: E402
from planmon.store.collection import RUNTIME_STATS_COLUMNS, CollectionStore  # noqa: E402
from planmon.store.connection import create_repository_engine  # noqa: E402
from planmon.store.retention import RetentionStore  # noqa: E402
from tests.harness.servers import postgres_server  # noqa: E402

PLANS = 200
GOAL = 0.5


def seeded_repository(url: URL) -> tuple[Repository, list[int], int, int]:
    repository = Repository(create_repository_engine(url))
    repository.init_schema()
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="bench", engine="postgres", conn_id="bench")).id
    query_id = collection.upsert_queries(target_id, [QueryRecord("q")])[("", "q")]
    plan_ids = collection.upsert_plans(target_id, [PlanRecord(f"p{i}", "q") for i in range(PLANS)])
    return repository, sorted(plan_ids.values()), target_id, query_id


def make_rows(count: int, plan_ids: list[int], target_id: int, query_id: int) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 1)
    intervals = count // len(plan_ids)
    return [
        {
            "target_id": target_id,
            "plan_id": plan_id,
            "query_id": query_id,
            "interval_start": start + timedelta(minutes=15 * i),
            "interval_end": start + timedelta(minutes=15 * (i + 1)),
            "execution_type": 0,
            "executions": 10 + i % 7,
            "errors": 0,
            "cpu_us_mean": 1000.0 + i,
            "cpu_us_stdev": 50.0,
            "duration_us_mean": 1500.0 + i,
            "duration_us_stdev": 80.0,
            "logical_reads_mean": 120.0,
            "rows_mean": 3.0,
        }
        for plan_id in plan_ids
        for i in range(intervals)
    ]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def full_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(row.get(name) for name in RUNTIME_STATS_COLUMNS) for row in rows]


def bench_sqlite(count: int, workdir: Path) -> dict[str, float]:
    repository, plan_ids, target_id, query_id = seeded_repository(
        URL.create("sqlite", database=str(workdir / "planmon.db"))
    )
    collection = CollectionStore(repository)
    rows = make_rows(count, plan_ids, target_id, query_id)
    baseline, base_plans, base_target, base_query = seeded_repository(
        URL.create("sqlite", database=str(workdir / "raw.db"))
    )
    baseline.close()
    raw_rows = full_rows(make_rows(count, base_plans, base_target, base_query))
    placeholders = ", ".join("?" for _ in RUNTIME_STATS_COLUMNS)
    insert = f"INSERT INTO runtime_stats ({', '.join(RUNTIME_STATS_COLUMNS)}) VALUES ({placeholders})"

    def raw_load() -> None:
        # The same connection settings planmon's repository uses (WAL, foreign keys enforced), so
        # the ratio measures planmon's overhead, not a difference in what SQLite is asked to check.
        connection = sqlite3.connect(workdir / "raw.db")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        with connection:
            connection.executemany(insert, [(*r[:3], str(r[3]), str(r[4]), *r[5:]) for r in raw_rows])
        connection.close()

    result = {
        "raw": timed(raw_load),
        "first": timed(lambda: collection.upsert_runtime_stats(rows)),
        "rerun": timed(lambda: collection.upsert_runtime_stats(rows)),
    }
    assert RetentionStore(repository).row_counts()["runtime_stats"] == len(rows)
    repository.close()
    return result


def bench_postgres(count: int) -> dict[str, float]:
    with postgres_server() as server:
        for name in ("planmon_bench", "raw_bench"):
            with psycopg.connect(server.dsn(), autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE {name}")

        def url(database: str) -> URL:
            return URL.create(
                "postgresql+psycopg",
                username=server.user,
                host=server.host,
                port=server.port,
                database=database,
            )

        repository, plan_ids, target_id, query_id = seeded_repository(url("planmon_bench"))
        collection = CollectionStore(repository)
        rows = make_rows(count, plan_ids, target_id, query_id)
        baseline, base_plans, base_target, base_query = seeded_repository(url("raw_bench"))
        base_rows = make_rows(count, base_plans, base_target, base_query)
        # runtime_stats is partitioned by day (ADR 0005): the raw COPY needs its days' partitions,
        # which planmon's own writes create as they go (and pay for in "first")
        CollectionStore(baseline).ensure_runtime_stats_partitions(
            min(row["interval_start"] for row in base_rows), max(row["interval_end"] for row in base_rows)
        )
        baseline.close()
        raw_rows = full_rows(base_rows)

        def raw_copy() -> None:
            with psycopg.connect(server.dsn("raw_bench")) as connection, connection.cursor() as cursor:
                copy_sql = f"COPY runtime_stats ({', '.join(RUNTIME_STATS_COLUMNS)}) FROM STDIN"
                with cursor.copy(copy_sql) as copy:
                    for row in raw_rows:
                        copy.write_row(row)

        result = {
            "raw": timed(raw_copy),
            "first": timed(lambda: collection.upsert_runtime_stats(rows)),
            "rerun": timed(lambda: collection.upsert_runtime_stats(rows)),
        }
        assert RetentionStore(repository).row_counts()["runtime_stats"] == len(rows)
        repository.close()
        return result


def report(backend: str, baseline_name: str, count: int, seconds: dict[str, float]) -> bool:
    raw_rate = count / seconds["raw"]
    print(f"{backend}: {count:,} rows")
    print(f"  {baseline_name:<24} {seconds['raw']:7.2f} s  {raw_rate:>10,.0f} rows/s")
    met = True
    for phase in ("first", "rerun"):
        rate = count / seconds[phase]
        ratio = rate / raw_rate
        met &= ratio >= GOAL
        label = "planmon upsert (insert)" if phase == "first" else "planmon upsert (re-run)"
        print(f"  {label:<24} {seconds[phase]:7.2f} s  {rate:>10,.0f} rows/s  ratio planmon/raw: {ratio:.2f}")
    print(f"  goal ratio >= {GOAL}: {'met' if met else 'NOT met'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="planmon-bench-") as workdir:
        report("SQLite", "raw executemany INSERT", args.rows, bench_sqlite(args.rows, Path(workdir)))
    if not args.skip_postgres:
        report("PostgreSQL", "raw COPY", args.rows, bench_postgres(args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
