"""Record the EXPLAIN output tests/unit/engines/test_postgres_predict.py judges: a throwaway
PostgreSQL 15 (with Debian's postgresql-15-hypopg installed), a 200,000-row orders table, and the
regressed statement explained as a generic plan, then with a hypothetical index the planner uses
(customer) and one it ignores (note), through planmon's own ``hypothetical_explain``.

    .venv/bin/python scripts/record_hypopg_explain.py tests/unit/engines/hypopg_recorded
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg

from planmon.embedded import postgres_server
from planmon.engines.postgres.predict import hypothetical_explain

STATEMENT = "SELECT sum(total) FROM orders WHERE customer = $1"


def main(out: Path) -> None:
    with postgres_server(major="15") as server, psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("CREATE TABLE orders (id int primary key, customer int, total numeric, note text)")
        conn.execute(
            "INSERT INTO orders SELECT g, g % 20000, g, repeat('x', 40) FROM generate_series(1, 200000) g"
        )
        conn.execute("ANALYZE")
        conn.execute(f"PREPARE regressed AS {STATEMENT}")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        row = conn.execute("EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE regressed(NULL)").fetchone()
        assert row is not None
        conn.execute("DEALLOCATE regressed")
        conn.execute("RESET plan_cache_mode")
        recorded = {"regressed": row[0]}
        for name, column in (("uses_index", "customer"), ("ignores_index", "note")):
            definition = f"CREATE INDEX orders_{column} ON public.orders USING btree ({column})"
            oid, plan = hypothetical_explain(conn, definition, STATEMENT)
            recorded[name] = {"oid": oid, "plan": plan}
    for name, value in recorded.items():
        (out / f"{name}.json").write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
