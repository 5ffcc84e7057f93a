"""The harness's throwaway servers really have the monitoring settings planmon needs."""

from __future__ import annotations

import mysql.connector
import psycopg
import pytest

from tests.harness.servers import MariaDBServer, PostgresServer

pytestmark = pytest.mark.slow

REPEATS = 7


@pytest.mark.postgres
def test_postgres_pg_stat_statements_is_loaded_and_counts(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone() == ("pg_stat_statements",)
        assert conn.execute("SHOW compute_query_id").fetchone() == ("on",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE harness_probe (id int primary key, label text)")
        try:
            conn.execute("SELECT pg_stat_statements_reset()")
            for value in range(REPEATS):
                conn.execute("SELECT label FROM harness_probe WHERE id = %s", (value,))
            calls = conn.execute(
                "SELECT calls, queryid FROM pg_stat_statements WHERE query LIKE %s",
                ("SELECT label FROM harness_probe WHERE id = $1",),
            ).fetchone()
        finally:
            conn.execute("DROP TABLE harness_probe")
    assert calls is not None, "pg_stat_statements did not record the statement"
    assert calls[0] == REPEATS
    assert calls[1] is not None and calls[1] != 0


@pytest.mark.mysql
def test_mariadb_performance_schema_digests_count(mariadb: MariaDBServer) -> None:
    conn = mysql.connector.connect(**mariadb.connect_kwargs())
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT @@performance_schema, @@bind_address")
        assert cursor.fetchone() == (1, "127.0.0.1")
        cursor.execute(
            "SELECT NAME, ENABLED FROM performance_schema.setup_consumers "
            "WHERE NAME IN ('statements_digest', 'events_statements_history_long')"
        )
        assert dict(cursor.fetchall()) == {
            "statements_digest": "YES",
            "events_statements_history_long": "YES",
        }
        cursor.execute("CREATE DATABASE IF NOT EXISTS harness")
        cursor.execute("CREATE TABLE harness.probe (id int primary key, label varchar(20))")
        cursor.execute("TRUNCATE performance_schema.events_statements_summary_by_digest")
        for value in range(REPEATS):
            cursor.execute("SELECT label FROM harness.probe WHERE id = %s", (value,))
            cursor.fetchall()
        cursor.execute(
            "SELECT COUNT_STAR, DIGEST FROM performance_schema.events_statements_summary_by_digest "
            "WHERE SCHEMA_NAME IS NULL AND DIGEST_TEXT LIKE %s",
            ("SELECT `label` FROM `harness` . `probe` WHERE %",),
        )
        rows = cursor.fetchall()
        cursor.execute("DROP DATABASE harness")
    finally:
        conn.close()
    assert len(rows) == 1, f"expected one digest row, got {rows}"
    assert rows[0][0] == REPEATS
