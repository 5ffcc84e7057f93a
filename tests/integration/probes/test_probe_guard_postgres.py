"""Issue 16 on a live PostgreSQL: the probes that once terminated a session, and other refused ones,
go through ``planmon probes add`` and ``planmon probes run`` while a victim session idles. Each is
refused, and the target shows it never ran: the victim backend lives, pg_stat_statements (tracking
nested statements too) recorded no call of the function, and the settings are unchanged. A control
at the end shows the same checks do see a terminated backend and a recorded call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from planmon.cli import EXIT_ERROR, main
from planmon.engines import get_engine
from tests.harness.servers import PostgresServer

pytestmark = pytest.mark.postgres

DB = "probes_guard"

# (probe SQL, text its refusal must hold, a fragment of the function call it would have made)
ATTACKS = [
    (
        "SELECT length(query_to_xml('SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = ''victim''', true, false, '')::text)",
        "calls query_to_xml(), which executes SQL text",
        "terminate_backend",
    ),
    (
        'SELECT count(*) FILTER (WHERE U&"\\0070g_terminate_backend"(pid)) FROM pg_stat_activity '
        "WHERE application_name = 'victim'",
        "calls pg_terminate_backend(), which signals",
        "terminate_backend",
    ),
    (
        "SELECT query_to_xml('SELECT set_config(''work_mem'', ''1GB'', false)', true, false, '')",
        "calls query_to_xml()",
        "set_config",
    ),
    (
        "SELECT pg_logical_emit_message(true, 'planmon', 'x') IS NOT NULL",
        "calls pg_logical_emit_message(), which writes WAL",
        "emit_message",
    ),
    (
        "SELECT pg_catalog.pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'",
        "calls pg_catalog.pg_cancel_backend()",
        "cancel_backend",
    ),
    (
        "WITH v AS (SELECT pid FROM pg_stat_activity WHERE application_name = 'victim') "
        "SELECT count(*) FROM v WHERE public.kill_it(v.pid)",
        "calls public.kill_it(), a function outside pg_catalog",
        "kill_it",
    ),
]


def admin(postgres: PostgresServer) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(postgres.dsn(DB), autocommit=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres: PostgresServer) -> Path:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    with admin(postgres) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        # a user function the guard cannot see into: it would terminate whatever pid it is given
        conn.execute(
            "CREATE FUNCTION public.kill_it(p int) RETURNS boolean LANGUAGE sql "
            "AS 'SELECT pg_terminate_backend(p)'"
        )
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("PLANMON_PROBES_DIR", str(tmp_path / "probes"))
    monkeypatch.setenv("PLANMON_ALERT_LOG_PATH", str(tmp_path / "alerts.log"))
    # the guard alone must stop these, even through a superuser login: the login check (which would
    # refuse that login before anything ran) is relaxed for this target
    monkeypatch.setenv("PLANMON_PROBES_ALLOW_PRIVILEGED", "shop")
    monkeypatch.setenv("AIRFLOW_CONN_GUARD_PG", f"postgres://postgres@127.0.0.1:{postgres.port}/{DB}")
    (tmp_path / "probes").mkdir()
    assert main(["init"]) == 0
    assert main(["targets", "add", "shop", "--engine", "postgres", "--conn-id", "guard_pg"]) == 0
    return tmp_path


@pytest.fixture
def victim(
    postgres: PostgresServer, home: Path
) -> Iterator[tuple[psycopg.Connection[tuple[object, ...]], int]]:
    """A second session idling on the target, as a real application's connection would."""
    conn = psycopg.connect(postgres.dsn(DB), autocommit=True, application_name="victim")
    pid = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    try:
        yield conn, pid
    finally:
        conn.close()


def alive(postgres: PostgresServer, pid: int) -> bool:
    with admin(postgres) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row == (1,)


def calls_recorded(postgres: PostgresServer, fragment: str) -> int:
    """Statements of this database pg_stat_statements saw (nested ones too) that mention ``fragment``."""
    with admin(postgres) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_statements AS s JOIN pg_database AS d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND s.query LIKE '%%' || %s || '%%'",
            [fragment],
        ).fetchone()
    return int(row[0]) if row else -1


def settings_snapshot(postgres: PostgresServer) -> list[tuple[object, ...]]:
    with psycopg.connect(postgres.dsn(DB)) as conn:
        return conn.execute("SELECT name, setting FROM pg_settings ORDER BY name").fetchall()


def write_probe(home: Path, name: str, sql: str) -> Path:
    path = home / f"{name}.yaml"
    probe = {"name": name, "sql": {"postgres": sql}, "critical": 1}
    path.write_text(yaml.safe_dump({"probes": [probe]}), encoding="utf-8")
    return path


@pytest.mark.parametrize("attack", ATTACKS, ids=[a[2] for a in ATTACKS])
def test_refused_probe_leaves_the_target_untouched(
    postgres: PostgresServer,
    home: Path,
    victim: tuple[psycopg.Connection[tuple[object, ...]], int],
    capsys: pytest.CaptureFixture[str],
    attack: tuple[str, str, str],
) -> None:
    sql, reason, fragment = attack
    victim_conn, victim_pid = victim
    with admin(postgres) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    before = settings_snapshot(postgres)

    # planmon probes add refuses the file up front
    capsys.readouterr()
    assert main(["probes", "add", str(write_probe(home, "attack", sql))]) == EXIT_ERROR
    assert reason in capsys.readouterr().err
    assert not (home / "probes" / "attack.yaml").exists()

    # a file put into the probe directory by hand is refused by planmon probes run (and recorded)
    write_probe(home / "probes", "attack", sql)
    assert main(["probes", "run", "attack", "--record", "--json"]) == 3
    (outcome,) = json.loads(capsys.readouterr().out)
    assert outcome["status"] == "refused"
    assert outcome["error"].startswith("refused: the SQL ") and reason in outcome["error"]

    assert alive(postgres, victim_pid)
    assert victim_conn.execute("SELECT 1").fetchone() == (1,)
    assert calls_recorded(postgres, fragment) == 0
    assert settings_snapshot(postgres) == before


def test_the_checks_see_an_attack_that_reaches_the_server(
    postgres: PostgresServer, victim: tuple[psycopg.Connection[tuple[object, ...]], int]
) -> None:
    """Control: what the guard refused, run directly, kills the victim, and the checks notice."""
    _victim_conn, victim_pid = victim
    with admin(postgres) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute(
            'SELECT count(*) FILTER (WHERE U&"\\0070g_terminate_backend"(pid)) FROM pg_stat_activity '
            "WHERE application_name = 'victim'"
        )
    with admin(postgres) as conn:  # the backend may need a moment to exit
        conn.execute("SELECT pg_sleep(0.2)")
    assert not alive(postgres, victim_pid)
    assert calls_recorded(postgres, "terminate_backend") == 1
    assert calls_recorded(postgres, "terminate_backend") == 1


# pglast reads strings as the server does with standard_conforming_strings on (the default). With it
# off, 'x\' does not end at its quote, and what the guard reads as the second string is code.
HIDDEN_IN_STRINGS = (
    "SELECT 'x\\' , ' , pg_terminate_backend((SELECT max(pid) FROM pg_stat_activity "
    "WHERE application_name = $$victim$$)) , ' FROM pg_stat_activity -- '"
)


def test_strings_are_read_as_the_guard_read_them_when_the_database_turns_standard_strings_off(
    postgres: PostgresServer,
    home: Path,
    victim: tuple[psycopg.Connection[tuple[object, ...]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _victim_conn, victim_pid = victim
    assert get_engine("postgres").classify_probe(HIDDEN_IN_STRINGS)[0]  # two string literals to pglast
    with admin(postgres) as conn:
        conn.execute(f"ALTER DATABASE {DB} SET standard_conforming_strings = off")
        conn.execute("SELECT pg_stat_statements_reset()")
    write_probe(home / "probes", "strings", HIDDEN_IN_STRINGS)
    capsys.readouterr()
    main(["probes", "run", "strings", "--json"])
    (outcome,) = json.loads(capsys.readouterr().out)
    assert outcome["status"] == "error" and "not a number" in outcome["error"], outcome  # it read 'x\'
    assert alive(postgres, victim_pid)
    assert calls_recorded(postgres, "terminate_backend") == 0  # its strings are constants ($n) there

    # control: a session of that database (standard strings off) runs the same text as a kill
    with admin(postgres) as conn:
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("off",)
        conn.execute(HIDDEN_IN_STRINGS)
        conn.execute("SELECT pg_sleep(0.2)")
    assert not alive(postgres, victim_pid)
    assert calls_recorded(postgres, "terminate_backend") == 1
