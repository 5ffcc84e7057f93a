"""Probes on a live MariaDB, through docs/probes.md's least-privileged probe login: a breach alerts
once, writes are refused, a timeout is recorded as such, a critical probe's plan change is reported,
and the built-ins read performance_schema. root (ALL PRIVILEGES), a SUPER login and a login whose
role grants CONNECTION ADMIN are refused before any probe statement is sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mysql.connector
import pytest

from planmon.probes.builtin import builtin_probes
from tests.harness.servers import MariaDBServer
from tests.integration.probes.live import (
    MariaDBLogin,
    ProbeBench,
    make_bench,
    mariadb_login,
    mariadb_probe_login,
    probe,
)

pytestmark = pytest.mark.mysql

DB = "probes_live"
T0 = datetime(2026, 11, 27, 12, 0)
STEP = timedelta(minutes=5)


def execute(server: MariaDBServer, *statements: str, database: str | None = DB) -> list[Any]:
    connection = mysql.connector.connect(**server.connect_kwargs(database), autocommit=True)
    try:
        cursor = connection.cursor()
        rows: list[Any] = []
        for statement in statements:
            cursor.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows
    finally:
        connection.close()


@pytest.fixture
def database(mariadb: MariaDBServer) -> Iterator[str]:
    execute(mariadb, f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}", database=None)
    execute(
        mariadb,
        "CREATE TABLE orders (id INT PRIMARY KEY, customer INT, state VARCHAR(8)) ENGINE=InnoDB",
        "INSERT INTO orders SELECT seq, seq % 1000, IF(seq <= 8, 'new', 'done') FROM seq_1_to_20000",
        "ANALYZE TABLE orders",
    )
    yield DB


@pytest.fixture
def probe_login(mariadb: MariaDBServer, database: str) -> MariaDBLogin:
    return mariadb_probe_login(mariadb, database)


@pytest.fixture
def bench(tmp_path: Path, probe_login: MariaDBLogin, database: str) -> ProbeBench:
    return make_bench(tmp_path, engine="mysql", connect=lambda _db: probe_login.connect(database))


def root_bench(tmp_path: Path, mariadb: MariaDBServer) -> ProbeBench:
    """The harness's own connection: root, as a careless set-up would use."""
    return make_bench(
        tmp_path, engine="mysql", connect=lambda _db: mysql.connector.connect(**mariadb.connect_kwargs(DB))
    )


def test_scalar_breach_alerts_once(bench: ProbeBench, mariadb: MariaDBServer) -> None:
    definition = probe(sql="SELECT COUNT(*) FROM orders WHERE state = 'new'", operator=">=", critical=5)
    first = bench.run(definition, T0)
    assert (first["status"], first["value"], first["delivery"]["sent"]) == ("critical", 8.0, 1)
    second = bench.run(definition, T0 + STEP)
    assert second["status"] == "critical" and second["delivery"]["skipped"] == {"dedup": 1}
    (row,) = bench.alerts()
    assert row["dedup_key"] == f"probe:1:{bench.target.id}:critical:20261127T120000"
    assert row["probe_result_id"] == bench.results()[0]["id"]
    execute(mariadb, "UPDATE orders SET state = 'done'")
    assert bench.run(definition, T0 + 2 * STEP)["status"] == "ok"
    assert len(bench.alerts()) == 1


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("DELETE FROM orders", "is a DELETE statement"),
        ("UPDATE orders SET state = 'x'", "is a UPDATE statement"),
        ("SELECT GET_LOCK('planmon', 1)", "calls GET_LOCK()"),
        ("SELECT * FROM orders FOR UPDATE", "takes row locks"),
    ],
)
def test_write_statement_is_refused(
    bench: ProbeBench, mariadb: MariaDBServer, statement: str, reason: str
) -> None:
    outcome = bench.run(probe(sql=statement, critical=1), T0)
    assert outcome["status"] == "refused" and reason in outcome["error"]
    assert execute(mariadb, "SELECT COUNT(*), SUM(state = 'x') FROM orders") == [(20000, 0)]


def test_a_write_the_guard_cannot_see_is_stopped_by_the_read_only_transaction(
    bench: ProbeBench, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard refuses a stored function; one a DBA allow-listed that writes anyway (the guard cannot
    read its body) is refused by START TRANSACTION READ ONLY."""
    execute(
        mariadb,
        "CREATE TABLE audit (n INT) ENGINE=InnoDB",
        "CREATE FUNCTION bump() RETURNS INT MODIFIES SQL DATA "
        "BEGIN INSERT INTO audit VALUES (1); RETURN 1; END",
        # the probe login may call it (it runs as its definer, root): only READ ONLY stands in the way
        f"GRANT EXECUTE ON FUNCTION {DB}.bump TO 'planmon_probe'@'%'",
    )
    refused = bench.run(probe(sql="SELECT bump()", critical=1), T0)
    assert refused["status"] == "refused" and "calls BUMP()" in refused["error"]
    monkeypatch.setenv("PLANMON_PROBE_ALLOWED_FUNCTIONS", "bump")
    outcome = bench.run(probe(sql="SELECT bump()", critical=1), T0 + STEP)
    assert outcome["status"] == "error"
    assert "READ ONLY transaction" in outcome["error"]
    assert execute(mariadb, "SELECT COUNT(*) FROM audit") == [(0,)]


def test_timeout_is_recorded_as_such(bench: ProbeBench) -> None:
    outcome = bench.run(
        probe(sql="SELECT COUNT(*) FROM orders AS a, orders AS b WHERE a.customer + b.customer = -1",
              critical=1, timeout_seconds=0.5),
        T0,
    )  # fmt: skip
    assert outcome["status"] == "timeout", outcome
    assert "exceeded its timeout of 500 ms" in outcome["error"]
    assert 300 <= outcome["duration_ms"] < 10_000
    assert bench.results()[0]["status"] == "timeout"


def test_plan_change_of_a_critical_probe_is_reported(bench: ProbeBench, mariadb: MariaDBServer) -> None:
    definition = probe(
        name="customer_orders",
        sql="SELECT COUNT(*) FROM orders WHERE customer = 42",
        critical=1000,
        capture_plan=True,
        severity="critical",
    )
    before = bench.run(definition, T0)
    assert before["status"] == "ok" and before["value"] == 20.0 and before["plan_shape_hash"]
    execute(mariadb, "CREATE INDEX orders_customer ON orders (customer)", "ANALYZE TABLE orders")
    after = bench.run(definition, T0 + STEP)
    assert after["plan_shape_hash"] != before["plan_shape_hash"]
    assert after["alerts_raised"] == [f"probe-plan:1:{bench.target.id}:20261127T120500"]
    assert bench.logged_alerts()[0]["kind"] == "probe_plan_change"


def test_builtins_on_mariadb(bench: ProbeBench) -> None:
    by_name = {definition.name: definition for definition in builtin_probes()}
    connectivity = bench.run(by_name["builtin.connectivity"], T0)
    assert (connectivity["status"], connectivity["value"]) == ("ok", 1.0)
    state = bench.run(by_name["builtin.performance_schema_state"], T0)
    assert state["status"] in ("ok", "warning"), state  # the harness turns the digest consumer on
    assert state["value"] in (0.0, 1.0)


def test_too_many_rows_is_an_error_and_the_rest_is_not_read(
    bench: ProbeBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANMON_PROBE_MAX_ROWS", "5")
    outcome = bench.run(probe(sql="SELECT id FROM orders", result="rowcount", critical=1), T0)
    assert outcome["status"] == "error"
    assert "more than 5 rows" in outcome["error"]
    dataset = bench.run(
        probe(name="few", sql="SELECT state, COUNT(*) AS n FROM orders GROUP BY state", result="dataset",
              operator=">", warning=5, critical=100),
        T0,
    )  # fmt: skip
    assert (dataset["status"], dataset["value"]) == ("critical", 19992.0)
    assert dataset["breaching_rows"] == ["[critical] state=done: 19992", "[warning] state=new: 8"]


# A probe whose digest performance_schema would keep: the alias survives digesting.
TRACED = "SELECT COUNT(*) AS traced_probe_7f3a FROM orders WHERE state = 'new'"


def statements_seen(mariadb: MariaDBServer) -> int:
    rows = execute(
        mariadb,
        "SELECT COALESCE(SUM(COUNT_STAR), 0) FROM performance_schema.events_statements_summary_by_digest "
        "WHERE DIGEST_TEXT LIKE '%traced_probe_7f3a%' AND DIGEST_TEXT NOT LIKE '%events_statements%'",
    )
    return int(rows[0][0])


def test_the_probe_login_runs_and_its_statement_reaches_the_server(
    bench: ProbeBench, mariadb: MariaDBServer
) -> None:
    """The other half of the refusal tests below: the same probe through the probe login does run."""
    execute(mariadb, "TRUNCATE TABLE performance_schema.events_statements_summary_by_digest")
    outcome = bench.run(probe(sql=TRACED, operator=">", critical=5, capture_plan=True), T0)
    assert (outcome["status"], outcome["value"]) == ("critical", 8.0)
    assert statements_seen(mariadb) >= 1


@pytest.mark.parametrize(
    ("who", "reasons"),
    [
        ("root", ["ALL PRIVILEGES: every privilege on every database"]),
        ("super", ["SUPER: kills other sessions", "FILE: reads and writes files"]),
        ("role", ["CONNECTION ADMIN: kills other users' sessions (KILL)"]),
        ("hidden", ["granted role probe_ops (ProgrammingError) whose grants cannot be read"]),  # not enabled
    ],
)
def test_a_powerful_login_is_refused_and_no_probe_statement_is_sent(
    tmp_path: Path, mariadb: MariaDBServer, database: str, who: str, reasons: list[str]
) -> None:
    if who == "root":
        bench, login = root_bench(tmp_path, mariadb), "root@127.0.0.1"
    else:
        if who == "super":
            grants = ("GRANT PROCESS, SUPER, FILE ON *.* TO {user}",)
        else:  # CONNECTION ADMIN two roles away, through the login's default role (or a role not enabled)
            execute(
                mariadb, "DROP ROLE IF EXISTS probe_ops", "DROP ROLE IF EXISTS probe_killers", database=None
            )
            execute(
                mariadb,
                "CREATE ROLE probe_killers",
                "GRANT CONNECTION ADMIN ON *.* TO probe_killers",
                "CREATE ROLE probe_ops",
                "GRANT probe_killers TO probe_ops",
                database=None,
            )
            grants = ("GRANT probe_ops TO {user}",)
            if who == "role":
                grants += ("SET DEFAULT ROLE probe_ops FOR {user}",)
        user = f"probe_{who}"
        account = mariadb_login(mariadb, user, *grants, f"GRANT SELECT ON `{database}`.* TO {{user}}")
        bench = make_bench(tmp_path, engine="mysql", connect=lambda _db: account.connect(database))
        login = f"{user}@%"
    execute(mariadb, "TRUNCATE TABLE performance_schema.events_statements_summary_by_digest")
    outcome = bench.run(probe(sql=TRACED, operator=">", critical=5, capture_plan=True), T0)
    assert outcome["status"] == "refused" and outcome["value"] is None, outcome
    assert outcome["error"].startswith(f"refused: the probe login {login} is too powerful")
    assert all(reason in outcome["error"] for reason in reasons), outcome["error"]
    assert 'docs/probes.md, "The probe login"' in outcome["error"]
    assert "PASSWORD" not in outcome["error"]
    (row,) = bench.results()
    assert row["status"] == "refused" and reasons[0] in row["error"]
    assert statements_seen(mariadb) == 0
