"""Probes on a live PostgreSQL, through docs/probes.md's least-privileged probe role: a breach alerts
once, writes are refused, timeouts are recorded as such, and a critical probe's plan change is
reported. A superuser (or a role that can signal other sessions) is refused before any probe
statement is sent, unless PLANMON_PROBES_ALLOW_PRIVILEGED names the target."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.harness.servers import PostgresServer, free_port
from tests.integration.probes.live import ProbeBench, make_bench, postgres_dsn, postgres_probe_role, probe

pytestmark = pytest.mark.postgres

DB = "probes_live"
T0 = datetime(2026, 11, 27, 12, 0)
STEP = timedelta(minutes=5)


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[str]:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(postgres.dsn(DB), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int primary key, customer int, state text)")
        conn.execute(
            "INSERT INTO orders SELECT g, g % 1000, CASE WHEN g <= 8 THEN 'new' ELSE 'done' END "
            "FROM generate_series(1, 20000) g"
        )
        conn.execute("CREATE TABLE audit (n int)")
        conn.execute(
            "CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'INSERT INTO audit VALUES (1) RETURNING 1'"
        )
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")  # evidence of what ran
        conn.execute("ANALYZE orders")
    yield DB


@pytest.fixture
def bench(tmp_path: Path, postgres: PostgresServer, database: str) -> ProbeBench:
    dsn = postgres_probe_role(postgres, database)
    postgres_probe_role(postgres, "postgres")  # test_probe_runs_in_its_own_database reads there
    return make_bench(
        tmp_path,
        engine="postgres",
        connect=lambda db: psycopg.connect(
            dsn if db is None else postgres_dsn(postgres, db, "planmon_probe")
        ),
    )


@pytest.fixture
def superuser_bench(tmp_path: Path, postgres: PostgresServer, database: str) -> ProbeBench:
    """The harness's own connection: the ``postgres`` superuser, as a careless set-up would use."""
    return make_bench(
        tmp_path, engine="postgres", connect=lambda db: psycopg.connect(postgres.dsn(db or database))
    )


def sql(postgres: PostgresServer, statement: str) -> Any:
    with psycopg.connect(postgres.dsn(DB), autocommit=True) as conn:
        return (
            conn.execute(statement).fetchall()
            if statement.lstrip().upper().startswith("SELECT")
            else conn.execute(statement)
        )


BACKLOG = {
    "name": "orders_backlog",
    "sql": "SELECT count(*) FROM orders WHERE state = 'new'",
    "operator": ">",
    "warning": 3,
    "critical": 5,
}


def test_scalar_breach_alerts_once_per_streak(bench: ProbeBench, postgres: PostgresServer) -> None:
    definition = probe(**BACKLOG)
    first = bench.run(definition, T0)
    assert (first["status"], first["value"]) == ("critical", 8.0)
    assert len(first["alerts_raised"]) == 1
    assert first["delivery"]["sent"] == 1

    second = bench.run(definition, T0 + STEP)  # still breached: recorded, not alerted again
    again = bench.run(definition, T0 + STEP)  # the same run re-done (task retry): same row, no alert
    assert second["status"] == again["status"] == "critical"
    assert second["delivery"]["skipped"] == {"dedup": 1} and second["delivery"]["sent"] == 0
    assert len(bench.results()) == 2
    alerts = bench.alerts()
    assert len(alerts) == 1 and alerts[0]["status"] == "sent"
    assert alerts[0]["dedup_key"] == f"probe:1:{bench.target.id}:critical:20261127T120000"
    assert alerts[0]["probe_result_id"] == bench.results()[0]["id"]
    assert alerts[0]["regression_id"] is None
    logged = bench.logged_alerts()
    assert len(logged) == 1
    assert logged[0]["title"] == "[CRITICAL] probe orders_backlog on postgres-live: value 8 > 5"
    assert logged[0]["kind"] == "probe" and logged[0]["severity"] == "critical"

    sql(postgres, "UPDATE orders SET state = 'done' WHERE id > 4")  # 4 new: warning
    warning = bench.run(definition, T0 + 2 * STEP)
    assert (warning["status"], warning["value"]) == ("warning", 4.0)
    sql(postgres, "UPDATE orders SET state = 'done'")
    assert bench.run(definition, T0 + 3 * STEP)["status"] == "ok"
    sql(postgres, "UPDATE orders SET state = 'new' WHERE id <= 6")  # breached again after a recovery
    assert bench.run(definition, T0 + 4 * STEP)["status"] == "critical"

    keys = [row["dedup_key"].split(":", 3)[3] for row in bench.alerts()]
    assert keys == ["critical:20261127T120000", "warning:20261127T121000", "critical:20261127T122000"]
    assert [r["status"] for r in bench.results()] == ["critical", "critical", "warning", "ok", "critical"]


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("DELETE FROM orders", "is a DELETE statement"),
        ("WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone", "'gone' (DELETE)"),
        ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity", "calls pg_terminate_backend()"),
        ("SELECT count(*) FROM orders; DROP TABLE orders", "holds 2 statements"),
    ],
)
def test_write_statement_is_refused_with_the_reason(
    bench: ProbeBench, postgres: PostgresServer, statement: str, reason: str
) -> None:
    outcome = bench.run(probe(sql=statement, critical=1), T0)
    assert outcome["status"] == "refused"
    assert reason in outcome["error"]
    assert bench.results()[0]["status"] == "refused" and reason in bench.results()[0]["error"]
    assert sql(postgres, "SELECT count(*) FROM orders") == [(20000,)]
    assert len(bench.alerts()) == 1  # a refused probe is a problem someone must hear about


def test_a_write_the_guard_cannot_see_is_stopped_by_the_read_only_transaction(
    bench: ProbeBench, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard refuses a user function; one a DBA allow-listed that writes anyway (the guard cannot
    read its body) is refused by the server's read-only transaction."""
    refused = bench.run(probe(sql="SELECT bump()", critical=1), T0)
    assert refused["status"] == "refused" and "calls bump()" in refused["error"]
    monkeypatch.setenv("PLANMON_PROBE_ALLOWED_FUNCTIONS", "bump")
    outcome = bench.run(probe(sql="SELECT bump()", critical=1), T0 + STEP)
    assert outcome["status"] == "error"
    assert "read-only transaction" in outcome["error"]
    assert sql(postgres, "SELECT count(*) FROM audit") == [(0,)]


def test_timeout_is_recorded_as_such(bench: ProbeBench) -> None:
    outcome = bench.run(probe(sql="SELECT 1 FROM pg_sleep(5)", critical=1, timeout_seconds=0.5), T0)
    assert outcome["status"] == "timeout"
    assert "exceeded its timeout of 500 ms" in outcome["error"]
    assert 400 <= outcome["duration_ms"] < 4000
    (row,) = bench.results()
    assert row["status"] == "timeout" and row["value"] is None
    assert bench.alerts()[0]["dedup_key"].endswith(":timeout:20261127T120000")


def test_plan_change_of_a_critical_probe_is_reported_before_runtime_regresses(
    bench: ProbeBench, postgres: PostgresServer
) -> None:
    definition = probe(
        name="customer_orders",
        sql="SELECT count(*) FROM orders WHERE customer = 42",
        operator=">",
        critical=1000,  # never reached: the value stays 20
        capture_plan=True,
        severity="critical",
    )
    before = bench.run(definition, T0)
    assert before["status"] == "ok" and before["plan_shape_hash"]
    assert bench.run(definition, T0 + STEP)["alerts_raised"] == []  # same plan: nothing to say

    sql(postgres, "CREATE INDEX orders_customer ON orders (customer)")
    sql(postgres, "ANALYZE orders")
    after = bench.run(definition, T0 + 2 * STEP)
    assert after["status"] == "ok" and after["value"] == 20.0
    assert after["plan_shape_hash"] != before["plan_shape_hash"]
    (key,) = after["alerts_raised"]
    assert key == f"probe-plan:1:{bench.target.id}:20261127T121000"
    (logged,) = bench.logged_alerts()
    assert logged["kind"] == "probe_plan_change"
    assert logged["details"]["previous_plan_shape_hash"] == before["plan_shape_hash"]
    assert bench.run(definition, T0 + 3 * STEP)["alerts_raised"] == []  # the new plan is now the normal one
    assert [r["plan_shape_hash"] for r in bench.results()].count(after["plan_shape_hash"]) == 2


def test_non_critical_probe_records_plan_changes_without_alerting(
    bench: ProbeBench, postgres: PostgresServer
) -> None:
    definition = probe(sql="SELECT count(*) FROM orders WHERE customer = 7", critical=1000, capture_plan=True)
    first = bench.run(definition, T0)
    sql(postgres, "CREATE INDEX orders_customer ON orders (customer)")
    sql(postgres, "ANALYZE orders")
    second = bench.run(definition, T0 + STEP)
    assert first["plan_shape_hash"] != second["plan_shape_hash"]
    assert bench.alerts() == []


def test_unreachable_target_is_an_error_without_secrets(tmp_path: Path) -> None:
    port = free_port()
    bench = make_bench(
        tmp_path,
        engine="postgres",
        connect=lambda _db: psycopg.connect(f"postgresql://monitor:hunter2secret@127.0.0.1:{port}/x"),
    )
    outcome = bench.run(probe(sql="SELECT 1", operator="!=", critical=1), T0)
    assert outcome["status"] == "error"
    assert "unreachable" in outcome["error"]
    assert "hunter2secret" not in str(bench.results()) + str(bench.alerts()) + str(outcome)


def test_dataset_and_row_limit(bench: ProbeBench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANMON_PROBE_MAX_ROWS", "5")
    dataset = bench.run(
        probe(sql="SELECT state, count(*) AS n FROM orders GROUP BY state ORDER BY state", result="dataset",
              operator=">", warning=5, critical=100),
        T0,
    )  # fmt: skip
    assert (dataset["status"], dataset["value"]) == ("critical", 19992.0)
    assert dataset["breaching_rows"] == ["[critical] state=done: 19992", "[warning] state=new: 8"]
    many = bench.run(probe(name="many", sql="SELECT id FROM orders", result="rowcount", critical=1), T0)
    assert many["status"] == "error" and "more than 5 rows" in many["error"]


def test_probe_runs_in_its_own_database(bench: ProbeBench) -> None:
    check = "SELECT count(*) FROM pg_database WHERE datname = current_database() AND datname = 'postgres'"
    elsewhere = bench.run(probe(sql=check, operator="!=", critical=1, database="postgres"), T0)
    assert (elsewhere["status"], elsewhere["value"]) == ("ok", 1.0)
    default = bench.run(probe(name="default_db", sql=check, operator="!=", critical=1), T0)
    assert (default["status"], default["value"]) == ("critical", 0.0)


# A probe whose text pg_stat_statements would keep: the alias survives normalisation.
TRACED = "SELECT count(*) AS traced_probe_7f3a FROM orders WHERE state = 'new'"


def statements_seen(postgres: PostgresServer) -> int:
    rows = sql(postgres, "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%traced_probe_7f3a%' "
                         "AND query NOT LIKE '%pg_stat_statements%'")  # fmt: skip
    return int(rows[0][0])


def test_the_probe_role_runs_and_its_statement_reaches_the_server(
    bench: ProbeBench, postgres: PostgresServer
) -> None:
    """The other half of the refusal test below: the same probe through the probe role does run."""
    sql(postgres, "SELECT pg_stat_statements_reset()")
    outcome = bench.run(probe(sql=TRACED, operator=">", critical=5, capture_plan=True), T0)
    assert (outcome["status"], outcome["value"]) == ("critical", 8.0)
    assert statements_seen(postgres) >= 1  # the probe, and its EXPLAIN


def test_a_superuser_connection_is_refused_and_no_probe_statement_is_sent(
    superuser_bench: ProbeBench, postgres: PostgresServer
) -> None:
    sql(postgres, "SELECT pg_stat_statements_reset()")
    outcome = superuser_bench.run(probe(sql=TRACED, operator=">", critical=5, capture_plan=True), T0)
    assert outcome["status"] == "refused" and outcome["value"] is None
    assert outcome["error"].startswith("refused: the probe login postgres is too powerful")
    assert (
        "superuser (rolsuper)" in outcome["error"] and 'docs/probes.md, "The probe login"' in outcome["error"]
    )
    assert outcome["plan_shape_hash"] is None  # not even EXPLAIN was sent
    (row,) = superuser_bench.results()
    assert row["status"] == "refused" and "superuser (rolsuper)" in row["error"] and row["value"] is None
    assert statements_seen(postgres) == 0
    assert len(superuser_bench.alerts()) == 1  # someone must hear that probes do not run
    again = superuser_bench.run(probe(sql=TRACED, operator=">", critical=5), T0)  # a retry: same row
    assert again["status"] == "refused" and len(superuser_bench.results()) == 1


def test_an_inherited_pg_signal_backend_is_refused(
    tmp_path: Path, postgres: PostgresServer, database: str
) -> None:
    """pg_signal_backend through an intermediate role (and without INHERIT: SET ROLE reaches it)."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        for role in ("probe_ops", "probe_signaller"):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute("CREATE ROLE probe_ops NOLOGIN IN ROLE pg_signal_backend")
        conn.execute("CREATE ROLE probe_signaller LOGIN NOINHERIT IN ROLE probe_ops")
    postgres_probe_role(postgres, database, role="probe_signaller")
    bench = make_bench(
        tmp_path,
        engine="postgres",
        connect=lambda db: psycopg.connect(postgres_dsn(postgres, database, "probe_signaller")),
    )
    sql(postgres, "SELECT pg_stat_statements_reset()")
    outcome = bench.run(probe(sql=TRACED, operator=">", critical=5), T0)
    assert outcome["status"] == "refused"
    assert "member of pg_signal_backend: cancels and terminates other sessions" in outcome["error"]
    assert "rolsuper" not in outcome["error"]
    assert statements_seen(postgres) == 0


def test_allow_privileged_runs_the_superuser_probe_for_the_named_target_only(
    superuser_bench: ProbeBench, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANMON_PROBES_ALLOW_PRIVILEGED", "some-other-target")
    assert superuser_bench.run(probe(sql=TRACED, operator=">", critical=5), T0)["status"] == "refused"
    monkeypatch.setenv("PLANMON_PROBES_ALLOW_PRIVILEGED", f"some-other-target, {superuser_bench.target.name}")
    sql(postgres, "SELECT pg_stat_statements_reset()")
    outcome = superuser_bench.run(probe(sql=TRACED, operator=">", critical=5), T0 + STEP)
    assert (outcome["status"], outcome["value"]) == ("critical", 8.0)
    assert statements_seen(postgres) == 1
