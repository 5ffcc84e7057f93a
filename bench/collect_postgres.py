"""PostgreSQL collection cost: 50 vs 5,000 distinct statements in pg_stat_statements.

A throwaway PostgreSQL (started from the installed binaries, like the tests; pg_stat_statements.max
raised to 10,000 so nothing is evicted) runs N distinct statements (``SELECT <a different column list>
FROM wide WHERE id = $1``) once each, for N = 50 (the baseline) and N = 5,000, with the counters reset
in between. For each N a fresh adapter does what one collection run does: ``capabilities()`` +
``runtime_stats()``, then ``plans()`` for a capture budget of the top statements. Printed per N: seconds
and statements planmon sent for stats and for plans. Claims: the statements sent for stats are the
same for both N (set-based, never one per statement), plan statements stay within the budget, and the
time ratio 5,000/50 shows what the extra rows cost.

    .venv/bin/python bench/collect_postgres.py [--small 50] [--large 5000] [--plan-budget 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from planmon.config import Settings  # noqa: E402
from planmon.engines.postgres import Adapter  # noqa: E402
from tests.harness.servers import PostgresServer, postgres_server  # noqa: E402

DATABASE = "bench"
COLUMNS = 13  # 2**13 - 1 distinct non-empty column lists: enough for 5,000 distinct statements
WIDTHS = (10, 9, 8, 4, 5, 8, 4)
STATEMENTS_PER_PLAN_BUDGET = 6  # BEGIN, plan_cache_mode, PREPARE, EXPLAIN EXECUTE, ROLLBACK, DEALLOCATE


@dataclass
class Run:
    statements: int
    stats_seconds: float
    stats_sent: int
    rows_read: int
    plan_seconds: float
    plans_sent: int
    plans_captured: int
    plans_failed: int


def prepare_database(server: PostgresServer) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION pg_stat_statements")
        columns = ", ".join(f"c{i} int" for i in range(COLUMNS))
        connection.execute(f"CREATE TABLE wide (id int PRIMARY KEY, {columns})")
        values = ", ".join(f"g % {i + 2}" for i in range(COLUMNS))
        connection.execute(f"INSERT INTO wide SELECT g, {values} FROM generate_series(1, 1000) AS g")
        connection.execute("ANALYZE wide")


def run_distinct_statements(server: PostgresServer, count: int) -> None:
    """Reset the counters, then run ``count`` distinct statements once each (values bound: $1)."""
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as connection:
        connection.execute("SELECT pg_stat_statements_reset()")
        for number in range(1, count + 1):
            columns = ", ".join(f"c{bit}" for bit in range(COLUMNS) if number >> bit & 1)
            connection.execute(
                f"SELECT {columns} FROM wide WHERE id = %s", (number % 1000 + 1,), prepare=False
            )


def collect(server: PostgresServer, count: int, plan_budget: int) -> Run:
    def connect(database: str | None) -> psycopg.Connection[Any]:
        return psycopg.connect(server.dsn(database or DATABASE))

    adapter = Adapter(connect, target_name="bench", databases=(DATABASE,), settings=Settings())
    try:
        started = time.perf_counter()
        adapter.capabilities()
        stats = adapter.runtime_stats(datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 15))
        stats_seconds, stats_sent = time.perf_counter() - started, adapter.statements_sent()
        chosen = [s for s in stats if (s.query_text or "").startswith("SELECT c")][:plan_budget]
        started = time.perf_counter()
        captured, failed = adapter.plans(chosen)
        plan_seconds = time.perf_counter() - started
        plans_sent = adapter.statements_sent() - stats_sent
    finally:
        adapter.close()
    return Run(
        count, stats_seconds, stats_sent, len(stats), plan_seconds, plans_sent, len(captured), len(failed)
    )


def report(runs: list[Run], plan_budget: int) -> bool:
    header = ("statements", "rows read", "stats s", "sent", "plans", "plans s", "sent")
    print("  ".join(f"{title:>{width}}" for title, width in zip(header, WIDTHS, strict=True)))
    for run in runs:
        print(
            f"{run.statements:>10,}  {run.rows_read:>9,}  {run.stats_seconds:>8.3f}  {run.stats_sent:>4}  "
            f"{run.plans_captured:>5}  {run.plan_seconds:>8.3f}  {run.plans_sent:>4}"
        )
    small, large = runs
    same = small.stats_sent == large.stats_sent
    limit = plan_budget * STATEMENTS_PER_PLAN_BUDGET
    within = all(run.plans_sent <= limit for run in runs)
    sizes = f"{large.statements:,}/{small.statements:,}"
    print(f"statements sent for stats equal for both sizes ({sizes}): {'yes' if same else 'no'}")
    print(
        f"statements sent for plans within {plan_budget} plans x {STATEMENTS_PER_PLAN_BUDGET} = {limit}: "
        f"{'yes' if within else 'no'}"
    )
    print(f"stats time ratio {sizes}: {large.stats_seconds / small.stats_seconds:.2f}")
    total_small = small.stats_seconds + small.plan_seconds
    total_large = large.stats_seconds + large.plan_seconds
    print(f"collection time ratio {sizes}: {total_large / total_small:.2f}")
    return same and within


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=50, help="distinct statements of the baseline run")
    parser.add_argument("--large", type=int, default=5000, help="distinct statements of the large run")
    parser.add_argument("--plan-budget", type=int, default=20, help="plans captured per run")
    args = parser.parse_args()
    if not 0 < args.small <= args.large < 2**COLUMNS:
        parser.error(f"need 0 < --small <= --large < {2**COLUMNS}")
    with postgres_server({"pg_stat_statements.max": "10000"}) as server:
        prepare_database(server)
        runs = []
        for count in (args.small, args.large):
            run_distinct_statements(server, count)
            runs.append(collect(server, count, args.plan_budget))
    return 0 if report(runs, args.plan_budget) else 1


if __name__ == "__main__":
    sys.exit(main())
