"""The PostgreSQL adapter against a live throwaway server (harness ``postgres`` fixture, PostgreSQL 13+).

A module fixture sets the server up as a DBA would: a monitored database with pg_stat_statements
created and a small schema, a second database without the extension, and login roles with and without
pg_read_all_stats (trust authentication: no passwords). The adapter itself never creates anything.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from planmon.config import Settings
from planmon.engines import get_engine
from planmon.engines.base import Aspect, AspectState, CapturedPlan, StatementStats
from planmon.engines.postgres.adapter import UTILITY_PATTERN, Adapter
from planmon.engines.postgres.dialect import engine_error
from planmon.errors import EngineError, EngineErrorReason
from planmon.model import QualifiedName
from planmon.plans.fingerprint import shape_hash
from planmon.plans.parse import parse_plan
from planmon.sql import MARKER
from tests.harness.servers import PostgresServer, free_port

pytestmark = pytest.mark.postgres

MONITORED = "planmon_pg_monitored"
NO_EXTENSION = "planmon_pg_noext"
LOW_PRIVILEGE = "planmon_lowpriv"
READER = "planmon_reader"
SECRET = "hunter2secret"
# Counters are cumulative: the window is passed as the collector would, and does not select anything.
WINDOW = (datetime(2026, 1, 1, 9, 0), datetime(2026, 1, 1, 9, 15))


def _admin(server: PostgresServer, database: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(server.dsn(database), autocommit=True)


@pytest.fixture(scope="module")
def server(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The harness server with the monitored and the extension-less database and the test roles."""
    with _admin(postgres) as admin:
        for database in (MONITORED, NO_EXTENSION):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        for role in (LOW_PRIVILEGE, READER):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(READER)))
    with _admin(postgres, MONITORED) as monitored:
        monitored.execute("CREATE EXTENSION pg_stat_statements")
        monitored.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, amount numeric)"
        )
        monitored.execute("CREATE INDEX orders_customer ON orders (customer_id)")
        monitored.execute("CREATE TABLE ledger (id int PRIMARY KEY, note text)")
        monitored.execute("INSERT INTO orders SELECT g, g % 100, g FROM generate_series(1, 2000) AS g")
        monitored.execute("ANALYZE orders")
        monitored.execute(sql.SQL("GRANT SELECT ON orders TO {}").format(sql.Identifier(READER)))
    yield postgres
    with _admin(postgres) as admin:
        for database in (MONITORED, NO_EXTENSION):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        for role in (LOW_PRIVILEGE, READER):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def adapter_for(
    server: PostgresServer,
    *,
    default_database: str = MONITORED,
    user: str | None = None,
    settings: Settings | None = None,
    databases: tuple[str, ...] = (MONITORED,),
) -> Iterator[Adapter]:
    """An adapter whose ``connect(None)`` opens ``default_database`` as ``user``; closed afterwards."""

    def connect(database: str | None) -> psycopg.Connection[Any]:
        dsn = (
            f"host={server.host} port={server.port} user={user or server.user} "
            f"dbname={database or default_database}"
        )
        return psycopg.connect(dsn)

    adapter = Adapter(connect, target_name="pg-test", databases=databases, settings=settings or Settings())
    try:
        yield adapter
    finally:
        adapter.close()


def run_workload(server: PostgresServer, query: str, values: list[Any], *, user: str | None = None) -> None:
    """Execute ``query`` once per value, with the value bound server-side ($1), as an application would."""
    dsn = f"host={server.host} port={server.port} user={user or server.user} dbname={MONITORED}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        for value in values:
            connection.execute(query, (value,)).fetchall()


def find(stats: list[StatementStats], text: str) -> StatementStats | None:
    matches = [s for s in stats if s.query_text == text and s.database_name == MONITORED]
    assert len(matches) <= 1, f"one statement expected per text, got {matches}"
    return matches[0] if matches else None


def stats_for(adapter: Adapter, text: str) -> StatementStats:
    found = find(adapter.runtime_stats(*WINDOW), text)
    assert found is not None, f"{text!r} not reported"
    return found


# ---------------------------------------------------------------------------------------------
# Capabilities


def test_get_engine_resolves_the_adapter() -> None:
    assert get_engine("postgres").adapter_type is Adapter


def test_capabilities_of_a_fully_set_up_server(server: PostgresServer) -> None:
    with adapter_for(server) as adapter:
        capabilities = adapter.capabilities()
        sent = adapter.statements_sent()
        assert adapter.capabilities() is capabilities  # probed once
        assert adapter.statements_sent() == sent
    assert capabilities.available(Aspect.RUNTIME_STATS)
    assert capabilities.available(Aspect.PLANS)
    assert capabilities.available(Aspect.QUERY_TEXT)
    assert capabilities.available(Aspect.OBJECT_DEFINITIONS)
    forcing = capabilities.aspects[Aspect.FORCING_STATE]
    assert forcing.state is AspectState.NOT_APPLICABLE
    assert forcing.hint is not None and "pg_hint_plan" not in forcing.hint  # not installed here
    assert capabilities.backfillable is False
    details = capabilities.details
    assert details["server_version_num"] >= 130000
    assert details["pg_stat_statements_max"] == 5000
    if details["server_version_num"] >= 140000:
        assert isinstance(details["pg_stat_statements_dealloc"], int)
        assert details["pg_stat_statements_reset"].tzinfo is None


def test_missing_extension_is_unavailable_with_a_hint_and_is_not_created(server: PostgresServer) -> None:
    with adapter_for(server, default_database=NO_EXTENSION, databases=()) as adapter:
        capabilities = adapter.capabilities()
        status = capabilities.aspects[Aspect.RUNTIME_STATS]
        assert status.state is AspectState.UNAVAILABLE
        assert status.hint == f"CREATE EXTENSION pg_stat_statements in database {NO_EXTENSION}"
        assert capabilities.aspects[Aspect.PLANS].state is AspectState.UNAVAILABLE
        with pytest.raises(EngineError) as raised:
            adapter.runtime_stats(*WINDOW)
        assert raised.value.reason is EngineErrorReason.FEATURE_UNAVAILABLE
    with _admin(server, NO_EXTENSION) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone()
        assert row == (0,)


def test_role_without_pg_read_all_stats_is_permission_denied(server: PostgresServer) -> None:
    with adapter_for(server, user=LOW_PRIVILEGE) as adapter:
        status = adapter.capabilities().aspects[Aspect.RUNTIME_STATS]
        assert status.state is AspectState.PERMISSION_DENIED
        assert status.hint is not None and f"GRANT pg_read_all_stats TO {LOW_PRIVILEGE}" in status.hint
        with pytest.raises(EngineError) as raised:
            adapter.runtime_stats(*WINDOW)
        assert raised.value.reason is EngineErrorReason.PERMISSION_DENIED


def test_role_with_pg_read_all_stats_reads_everything(server: PostgresServer) -> None:
    """Not a superuser: shared_preload_libraries is hidden from it, pg_stat_statements.max is not."""
    run_workload(server, "SELECT id FROM orders WHERE id = %s", [1])
    with adapter_for(server, user=READER) as adapter:
        assert adapter.capabilities().available(Aspect.RUNTIME_STATS)
        assert stats_for(adapter, "SELECT id FROM orders WHERE id = $1").executions >= 1


# ---------------------------------------------------------------------------------------------
# Runtime statistics


def test_runtime_stats_count_exactly_the_workload(server: PostgresServer) -> None:
    query, text = (
        "SELECT amount FROM orders WHERE customer_id = %s",
        "SELECT amount FROM orders WHERE customer_id = $1",
    )
    run_workload(server, query, [0])
    k = 7
    with adapter_for(server) as adapter:
        before = stats_for(adapter, text)
        run_workload(server, query, list(range(k)))
        after = stats_for(adapter, text)
    assert after.executions - before.executions == k
    assert after.query_key == before.query_key and after.cumulative
    assert after.rows_total is not None and before.rows_total is not None
    assert after.rows_total - before.rows_total == 20 * k  # 2000 orders over 100 customers
    assert after.duration_us_total is not None and before.duration_us_total is not None
    assert after.duration_us_total > before.duration_us_total
    assert after.duration_us_sum_squares is not None
    # sum of squares >= (sum)^2 / n (Cauchy-Schwarz), with float slack
    assert after.duration_us_sum_squares * after.executions >= after.duration_us_total**2 * 0.999
    assert after.logical_reads_total is not None and after.logical_reads_total > 0
    assert after.cpu_us_total is None
    if adapter.capabilities().details["server_version_num"] >= 140000:
        assert after.counters_reset_at is not None and after.counters_reset_at.tzinfo is None


def test_one_statement_run_by_several_roles_is_one_record(server: PostgresServer) -> None:
    query, text = (
        "SELECT customer_id FROM orders WHERE id = %s",
        "SELECT customer_id FROM orders WHERE id = $1",
    )
    run_workload(server, query, [1])
    with adapter_for(server) as adapter:
        before = stats_for(adapter, text)
        run_workload(server, query, [1, 2, 3])
        run_workload(server, query, [4, 5], user=READER)
        after = stats_for(adapter, text)  # find() asserts there is exactly one record
    assert after.executions - before.executions == 5


def test_planmon_statements_and_utility_noise_are_not_reported(server: PostgresServer) -> None:
    run_workload(server, "SELECT note FROM ledger WHERE id = %s", [1, 2])
    with adapter_for(server) as adapter:
        stats = adapter.runtime_stats(*WINDOW)
        adapter.plans([s for s in stats if s.query_text == "SELECT note FROM ledger WHERE id = $1"])
        stats = adapter.runtime_stats(*WINDOW)
    texts = [s.query_text or "" for s in stats]
    assert texts and not [t for t in texts if MARKER in t]
    assert not [t for t in texts if t.split()[0].upper() in {"BEGIN", "ROLLBACK", "SET", "COMMIT", "SHOW"}]
    # they are there, under the marker: the generic plan is one EXPLAIN (GENERIC_PLAN) from 16 on,
    # a PREPARE / EXPLAIN EXECUTE / DEALLOCATE before
    generic = (
        f"EXPLAIN {MARKER} (GENERIC_PLAN%"
        if server.major and int(server.major) >= 16
        else f"PREPARE {MARKER}%"
    )
    with _admin(server, MONITORED) as connection:
        marked = connection.execute(
            "SELECT count(*) FROM pg_stat_statements WHERE query LIKE %s", (generic,)
        ).fetchone()
    assert marked is not None and marked[0] >= 1


@pytest.mark.parametrize(
    ("text", "noise"),
    [
        ("BEGIN", True),
        ("start transaction isolation level serializable", True),
        ("-- pool check\nCOMMIT", True),
        ("/* app */ SET work_mem = $1", True),
        ("/* app **/ show all", True),
        ("DISCARD ALL", True),
        ("/* app */ UPDATE t /* why */ SET a = $1", False),
        ("SELECT set_config($1, $2, $3)", False),
        ("WITH s AS (SELECT 1) SELECT * FROM s", False),
        ("settings", False),
    ],
)
def test_utility_noise_pattern_on_the_server(server: PostgresServer, text: str, noise: bool) -> None:
    """The pattern is a PostgreSQL ARE, so it is checked by the server that applies it."""
    with _admin(server) as connection:
        row = connection.execute("SELECT %s ~* %s", (text, UTILITY_PATTERN)).fetchone()
    assert row == (noise,)


def test_databases_filter(server: PostgresServer) -> None:
    with adapter_for(server, databases=(NO_EXTENSION,)) as adapter:
        assert all(s.database_name == NO_EXTENSION for s in adapter.runtime_stats(*WINDOW))


# ---------------------------------------------------------------------------------------------
# Plans


def test_generic_plan_of_a_parameterised_statement(server: PostgresServer) -> None:
    text = "SELECT id, amount FROM orders WHERE customer_id = $1 AND amount > $2"
    run_workload(server, "SELECT id, amount FROM orders WHERE customer_id = %s AND amount > 5", [3])
    run_workload(server, "SELECT id, amount FROM orders WHERE customer_id = %s AND amount > %s", [])
    with adapter_for(server) as adapter:
        statement = find(adapter.runtime_stats(*WINDOW), text)
        assert statement is not None, "pg_stat_statements normalises the literal 5 to $2"
        sent = adapter.statements_sent()
        first, failed = adapter.plans([statement])
        per_plan = adapter.statements_sent() - sent
        second, _ = adapter.plans([statement])  # a second PREPARE works: the first was deallocated
        prepared = (
            adapter._connections[None].execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        )
        version = adapter.capabilities().details["server_version_num"]
    assert failed == [] and len(first) == 1 and len(second) == 1
    plan = first[0]
    assert isinstance(plan, CapturedPlan)
    assert (plan.query_key, plan.database_name, plan.body_format, plan.plan_key) == (
        statement.query_key,
        MONITORED,
        "pg_json",
        None,
    )
    assert QualifiedName("public", "orders") in plan.objects
    hashes = [shape_hash(parse_plan(p.body, engine="postgres").statements[0]) for p in (plan, second[0])]
    assert hashes[0] == hashes[1]
    assert prepared == (0,)
    # BEGIN, plan_cache_mode, PREPARE, EXPLAIN EXECUTE, ROLLBACK, DEALLOCATE (13-15); 3 on 16+
    assert per_plan == (6 if version < 160000 else 3)


def test_statements_without_a_plan_become_failures(server: PostgresServer) -> None:
    with _admin(server, MONITORED) as connection:
        connection.execute("CREATE TABLE doomed (id int)")
        connection.execute("SELECT id FROM doomed WHERE id = %s", (1,))
        connection.execute("DROP TABLE doomed")
    with adapter_for(server) as adapter:
        stats = adapter.runtime_stats(*WINDOW)
        doomed = find(stats, "SELECT id FROM doomed WHERE id = $1")
        ddl = find(stats, "CREATE TABLE doomed (id int)")
        assert doomed is not None and ddl is not None
        sent = adapter.statements_sent()
        captured, failed = adapter.plans([ddl])
        assert captured == [] and adapter.statements_sent() == sent  # refused without asking the server
        assert "CREATE statements have no plan" in failed[0].reason
        captured, failed = adapter.plans([doomed])
        assert captured == [] and failed[0].query_key == doomed.query_key
        assert 'relation "doomed" does not exist' in failed[0].reason
        # the session is usable afterwards (rolled back, nothing left prepared)
        assert adapter.index_definitions(MONITORED, [QualifiedName("public", "ledger")])


def test_plans_for_statements_read_by_another_adapter(server: PostgresServer) -> None:
    """The text stored in StatementStats has literals stripped; the adapter fetches the real one."""
    run_workload(server, "SELECT note FROM ledger WHERE id = %s", [3])
    with adapter_for(server) as reader:
        statement = stats_for(reader, "SELECT note FROM ledger WHERE id = $1")
    with adapter_for(server) as capturer:
        captured, failed = capturer.plans([statement])
    assert failed == [] and captured[0].objects == (QualifiedName("public", "ledger"),)


def test_plan_capture_gives_up_behind_a_lock(server: PostgresServer) -> None:
    run_workload(server, "SELECT note FROM ledger WHERE id = %s", [4])
    with adapter_for(server, settings=Settings(statement_timeout_ms=100)) as adapter:
        statement = stats_for(adapter, "SELECT note FROM ledger WHERE id = $1")
        with _admin(server, MONITORED) as locker:
            locker.execute("BEGIN")
            locker.execute("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
            began = time.monotonic()
            captured, failed = adapter.plans([statement])
            elapsed = time.monotonic() - began
            locker.execute("ROLLBACK")
    assert captured == [] and failed[0].reason.startswith("timeout: ")
    assert elapsed < 2


# ---------------------------------------------------------------------------------------------
# Index definitions


def test_index_definitions(server: PostgresServer) -> None:
    with adapter_for(server) as adapter:
        definitions = adapter.index_definitions(
            MONITORED,
            [
                QualifiedName("public", "orders"),
                QualifiedName(None, "orders"),
                QualifiedName("public", "missing"),
            ],
        )
    by_name = {d.index_name: d for d in definitions}
    assert set(by_name) == {"orders_pkey", "orders_customer"}
    assert by_name["orders_pkey"].is_primary and by_name["orders_pkey"].is_unique
    customer = by_name["orders_customer"]
    assert (customer.table, customer.database_name) == ("public.orders", MONITORED)
    assert customer.definition == "CREATE INDEX orders_customer ON public.orders USING btree (customer_id)"
    assert not customer.is_unique and not customer.is_primary


# ---------------------------------------------------------------------------------------------
# Errors


def test_statement_timeout_maps_to_timeout(server: PostgresServer) -> None:
    with _admin(server) as connection:
        connection.execute("SET statement_timeout = 50")
        with pytest.raises(psycopg.Error) as raised:
            connection.execute("SELECT pg_sleep(1)")
    error = engine_error(raised.value, target="pg-test", action="reading pg_stat_statements")
    assert error.reason is EngineErrorReason.TIMEOUT
    assert "statement timeout" in str(error) and "pg-test" in str(error)


def test_unreachable_server(server: PostgresServer) -> None:
    port = free_port()

    def connect(database: str | None) -> psycopg.Connection[Any]:
        return psycopg.connect(f"host=127.0.0.1 port={port} user=monitor password={SECRET} connect_timeout=2")

    adapter = Adapter(connect, target_name="pg-test", settings=Settings())
    with pytest.raises(EngineError) as raised:
        adapter.capabilities()
    assert raised.value.reason is EngineErrorReason.UNREACHABLE
    assert SECRET not in str(raised.value) and raised.value.target == "pg-test"
    assert adapter.statements_sent() == 0


@pytest.mark.parametrize(
    ("database", "user"),
    [("planmon_no_such_database", None), (MONITORED, "planmon_no_such_role")],
    ids=["wrong database", "wrong user"],
)
def test_wrong_database_or_user_is_authentication(
    server: PostgresServer, database: str, user: str | None
) -> None:
    def connect(_: str | None) -> psycopg.Connection[Any]:
        dsn = f"host={server.host} port={server.port} user={user or server.user} dbname={database}"
        return psycopg.connect(f"{dsn} password={SECRET}")

    adapter = Adapter(connect, target_name="pg-test", settings=Settings())
    with pytest.raises(EngineError) as raised:
        adapter.capabilities()
    assert raised.value.reason is EngineErrorReason.AUTHENTICATION
    assert SECRET not in str(raised.value)
    assert (database if user is None else user) in str(raised.value)
