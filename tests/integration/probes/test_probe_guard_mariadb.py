"""Issue 16 on a live MariaDB: refused probes (a named lock, a file write, KILL behind an executable
comment or a second statement, a user-variable assignment) go through the service path the
``planmon_probes`` DAG and ``planmon probes run`` use, while a victim connection idles. Each is
refused, and the target shows it never ran: the victim lives, performance_schema's statement
history holds no such statement, the lock is free and no file was written. A control shows the
same checks see a KILL that reaches the server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import mysql.connector
import pytest

from tests.harness.servers import MariaDBServer
from tests.integration.probes.live import ProbeBench, make_bench, probe

pytestmark = pytest.mark.mysql

DB = "probes_guard"
T0 = datetime(2026, 12, 3, 12, 0)


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
def bench(tmp_path: Path, mariadb: MariaDBServer) -> ProbeBench:
    execute(mariadb, f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}", database=None)
    execute(
        mariadb,
        "CREATE TABLE orders (id INT PRIMARY KEY, state VARCHAR(8))",
        "INSERT INTO orders VALUES (1, 'new')",
    )
    return make_bench(
        tmp_path, engine="mysql", connect=lambda _db: mysql.connector.connect(**mariadb.connect_kwargs(DB))
    )


@pytest.fixture
def victim(mariadb: MariaDBServer, bench: ProbeBench) -> Iterator[tuple[Any, int]]:
    """A second connection idling on the target, as a real application's would (after the bench
    created the database)."""
    connection = mysql.connector.connect(**mariadb.connect_kwargs(DB), autocommit=True)
    cursor = connection.cursor()
    cursor.execute("SELECT CONNECTION_ID()")
    connection_id = int(cursor.fetchone()[0])
    cursor.close()
    try:
        yield connection, connection_id
    finally:
        connection.close()


def alive(server: MariaDBServer, connection_id: int) -> bool:
    return execute(
        server, f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {connection_id}"
    ) == [(1,)]


def statements_seen(server: MariaDBServer, fragment: str) -> int:
    """Statements in performance_schema's history (every connection) whose text holds ``fragment``."""
    rows = execute(
        server,
        "SELECT COUNT(*) FROM performance_schema.events_statements_history_long "
        f"WHERE SQL_TEXT LIKE CONCAT('%', UNHEX('{fragment.encode().hex()}'), '%')",
    )
    return int(rows[0][0])


def attacks(victim_id: int, outfile: Path) -> list[tuple[str, str, str]]:
    """(probe SQL, text its refusal must hold, a fragment only the attack's own text contains)."""
    return [
        ("SELECT GET_LOCK('planmon_guard', 1)", "calls GET_LOCK(), which takes", "planmon_guard"),
        (
            f"SELECT id FROM orders INTO OUTFILE '{outfile}'",
            "writes a server file (SELECT ... INTO OUTFILE)",
            outfile.name,
        ),
        (f"SELECT 1 /*!; KILL {victim_id} */", "executable comment", f"KILL {victim_id}"),
        (f"SELECT 1; KILL {victim_id}", "holds 2 statements", f"KILL {victim_id}"),
        ("SELECT @planmon_guard_owned := 1", "assigns a user variable", "planmon_guard_owned"),
        ("SELECT `release_all_locks`()", "calls RELEASE_ALL_LOCKS()", "release_all_locks"),
    ]


def test_refused_probes_leave_the_target_untouched(
    bench: ProbeBench, mariadb: MariaDBServer, victim: tuple[Any, int], tmp_path: Path
) -> None:
    victim_connection, victim_id = victim
    outfile = Path("/tmp") / f"planmon-guard-{uuid.uuid4().hex}.csv"
    execute(mariadb, "TRUNCATE TABLE performance_schema.events_statements_history_long", database=None)
    cases = attacks(victim_id, outfile)
    for index, (sql, reason, _fragment) in enumerate(cases):
        outcome = bench.run(probe(name=f"attack_{index}", sql=sql, critical=1), T0)
        assert outcome["status"] == "refused", (sql, outcome)
        assert reason in outcome["error"], (sql, outcome["error"])
    for _sql, _reason, fragment in cases:
        assert statements_seen(mariadb, fragment) == 0, fragment
    assert alive(mariadb, victim_id)
    cursor = victim_connection.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchall() == [(1,)]
    assert execute(mariadb, "SELECT IS_FREE_LOCK('planmon_guard')") == [(1,)]
    assert not outfile.exists()
    assert [row["status"] for row in bench.results()] == ["refused"] * len(cases)


def test_the_checks_see_a_kill_that_reaches_the_server(
    mariadb: MariaDBServer, victim: tuple[Any, int]
) -> None:
    """Control: the KILL the guard refused, sent directly, ends the victim, and the checks notice."""
    _connection, victim_id = victim
    execute(mariadb, "TRUNCATE TABLE performance_schema.events_statements_history_long", database=None)
    execute(mariadb, f"KILL {victim_id}")
    assert not alive(mariadb, victim_id)
    assert statements_seen(mariadb, f"KILL {victim_id}") == 1


# sqlglot reads '\'' as an escaped quote; a server whose sql_mode holds NO_BACKSLASH_ESCAPES ends the
# string at 'a\' and runs GET_LOCK. The guard refuses every backslash for this reason.
HIDDEN_IN_STRINGS = "SELECT 'a\\', GET_LOCK('planmon_guard', 0), ' AS c -- '"


def test_a_string_the_server_ends_earlier_than_the_guard_is_refused(
    bench: ProbeBench, mariadb: MariaDBServer
) -> None:
    (mode,) = execute(mariadb, "SELECT @@GLOBAL.sql_mode")[0]
    with_mode = ",".join(part for part in (mode, "NO_BACKSLASH_ESCAPES") if part)
    execute(mariadb, f"SET GLOBAL sql_mode = '{with_mode}'")
    try:
        outcome = bench.run(probe(name="strings", sql=HIDDEN_IN_STRINGS, critical=1), T0)
        assert outcome["status"] == "refused" and "holds a backslash" in outcome["error"]
        assert execute(mariadb, "SELECT IS_FREE_LOCK('planmon_guard')") == [(1,)]

        # control: a connection under that sql_mode runs the text as a GET_LOCK call
        holder = mysql.connector.connect(**mariadb.connect_kwargs(DB), autocommit=True)
        try:
            cursor = holder.cursor()
            cursor.execute(HIDDEN_IN_STRINGS)
            cursor.fetchall()
            assert execute(mariadb, "SELECT IS_FREE_LOCK('planmon_guard')") == [(0,)]
        finally:
            holder.close()
    finally:
        execute(mariadb, f"SET GLOBAL sql_mode = '{mode}'")
