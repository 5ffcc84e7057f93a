"""Bytes per runtime_stats row on PostgreSQL, indexes included (docs/repository.md quotes it).

A throwaway PostgreSQL (the test harness's) gets a repository at the newest schema and 100,000
SQL Server-like rows (2 targets x 500 plans x 100 fifteen-minute intervals, every value column a
collector fills), written the way collection writes them: one ``CollectionStore.upsert_runtime_stats``
per target and interval, so every write lands inside each plan's key range, as in production.
After VACUUM ANALYZE it prints the heap and the index bytes per row, summed over every partition.

    .venv/bin/python scripts/runtime_stats_size.py [--rows 100000] [--revision head]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import URL

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from planmon.model import PlanRecord, QueryRecord, TargetSpec  # noqa: E402
from planmon.store import Repository, migrate  # noqa: E402
from planmon.store.collection import CollectionStore  # noqa: E402
from planmon.store.connection import create_repository_engine  # noqa: E402
from tests.harness.servers import postgres_server  # noqa: E402

TARGETS = 2
INTERVALS = 100
START = datetime(2026, 12, 1, 12)
QUARTER = timedelta(minutes=15)

SIZES = """
SELECT count(*) AS relations,
       coalesce(sum(pg_relation_size(relid)), 0) AS heap,
       coalesce(sum(pg_indexes_size(relid)), 0) AS indexes,
       coalesce(sum(pg_total_relation_size(relid)), 0) AS total
FROM (
    SELECT relid FROM pg_partition_tree('runtime_stats') WHERE isleaf
    UNION ALL  -- a table that is not partitioned has no partition tree
    SELECT 'runtime_stats'::regclass WHERE NOT EXISTS (SELECT FROM pg_partition_tree('runtime_stats'))
) AS leaves
"""


def rows_for(
    interval: int, target_id: int, plans: dict[str, int], query_ids: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    start = START + interval * QUARTER
    rows = []
    for number, (plan_key, plan_id) in enumerate(sorted(plans.items())):
        mean = 1000.0 + number * 3.7 + interval
        rows.append({
            "target_id": target_id, "plan_id": plan_id, "query_id": query_ids[("", plan_key)],
            "interval_start": start, "interval_end": start + QUARTER, "execution_type": 0,
            "executions": 10 + (number + interval) % 400, "errors": 0,
            "cpu_us_mean": mean, "cpu_us_stdev": mean / 9, "cpu_us_min": mean / 3, "cpu_us_max": mean * 4,
            "duration_us_mean": mean * 1.4, "duration_us_stdev": mean / 5, "duration_us_min": mean / 2,
            "duration_us_max": mean * 6, "logical_reads_mean": mean / 10, "logical_reads_stdev": mean / 90,
            "physical_reads_mean": 0.5, "rows_mean": 12.0, "memory_kb_mean": 1024.0,
        })  # fmt: skip
    return rows


def measure(url: URL, revision: str, count: int) -> dict[str, float]:
    repository = Repository(create_repository_engine(url))
    collection = CollectionStore(repository)
    try:
        migrate.upgrade(repository.engine, revision)
        per_target = count // TARGETS // INTERVALS
        targets = []
        for number in range(TARGETS):
            target_id = repository.add_target(
                TargetSpec(name=f"t{number}", engine="sqlserver", conn_id="c")
            ).id
            keys = [f"{number}-{q}" for q in range(per_target)]
            query_ids = collection.upsert_queries(target_id, [QueryRecord(key) for key in keys])
            plans = collection.upsert_plans(target_id, [PlanRecord(key, key) for key in keys])
            targets.append((target_id, plans, query_ids))
        written = 0
        for interval in range(INTERVALS):
            for target_id, plans, query_ids in targets:
                written += collection.upsert_runtime_stats(rows_for(interval, target_id, plans, query_ids))
        with repository.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
            sizes = connection.execute(text(SIZES)).one()
    finally:
        repository.close()
    return {
        "rows": written,
        "relations": sizes.relations,
        "heap": sizes.heap / written,
        "indexes": sizes.indexes / written,
        "total": sizes.total / written,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--revision", default="head", help="schema revision to measure (e.g. 0006)")
    args = parser.parse_args()
    with postgres_server() as server:
        with psycopg.connect(server.dsn(), autocommit=True) as connection:
            connection.execute("CREATE DATABASE planmon_size")
        url = URL.create(
            "postgresql+psycopg",
            username=server.user,
            host=server.host,
            port=server.port,
            database="planmon_size",
        )
        result = measure(url, args.revision, args.rows)
    print(
        f"PostgreSQL, schema {args.revision}: {result['rows']:,} runtime_stats rows in "
        f"{result['relations']} relation(s): heap {result['heap']:.1f} B/row, indexes "
        f"{result['indexes']:.1f} B/row, total {result['total']:.1f} B/row"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
