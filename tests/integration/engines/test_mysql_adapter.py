"""The MySQL/MariaDB adapter against a throwaway MariaDB 10.11 (tests/harness): live, no mocks."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mysql.connector
import pytest

from planmon.config import Settings
from planmon.engines import get_engine
from planmon.engines.base import Aspect, AspectState, StatementStats
from planmon.engines.mysql.adapter import (
    HINT_DIGEST_CONSUMER,
    HINT_GRANT,
    HINT_HISTORY_LONG_CONSUMER,
    HINT_PERFORMANCE_SCHEMA_OFF,
    Adapter,
    sample_consumers_hint,
)
from planmon.errors import EngineError, EngineErrorReason
from planmon.model import QualifiedName
from planmon.plans.parse import parse_plan
from tests.harness.servers import MariaDBServer, ServerUnavailable, free_port, mariadb_server

pytestmark = pytest.mark.mysql

SETTINGS = Settings(statement_timeout_ms=5_000, collect_row_limit=500)
# MariaDB writes the keyword-like column ID without backquotes in digest texts.
ORDERS_SHAPE = "SELECT ID , `total` FROM `orders` WHERE `customer_id` = ?"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _connector(server: MariaDBServer, **overrides: Any) -> Callable[[str | None], Any]:
    def connect(database: str | None) -> Any:
        return mysql.connector.connect(**{**server.connect_kwargs(database), **overrides})

    return connect


def _adapter(server: MariaDBServer, databases: tuple[str, ...] = (), **overrides: Any) -> Adapter:
    return Adapter(
        _connector(server, **overrides), target_name="shop-db", databases=databases, settings=SETTINGS
    )


def _execute(server: MariaDBServer, statements: list[str], database: str | None = None) -> None:
    connection = mysql.connector.connect(**server.connect_kwargs(database))
    try:
        cursor = connection.cursor()
        for statement in statements:
            cursor.execute(statement)
            if cursor.description is not None:
                cursor.fetchall()
        connection.commit()
    finally:
        connection.close()


def _rows(server: MariaDBServer, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = mysql.connector.connect(**server.connect_kwargs())
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def shop(mariadb: MariaDBServer) -> str:
    """A schema with two indexed tables, named per run so tests never see another module's data."""
    schema = f"shop_{secrets.token_hex(4)}"
    _execute(
        mariadb,
        [
            f"CREATE DATABASE {schema}",
            f"CREATE TABLE {schema}.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, "
            "total DECIMAL(10,2), note VARCHAR(200), "
            "KEY ix_customer (customer_id), UNIQUE KEY ux_customer_total (customer_id, total), "
            "KEY ix_note (note(20)))",
            f"CREATE TABLE {schema}.customers (id INT PRIMARY KEY, name VARCHAR(50))",
            f"INSERT INTO {schema}.orders (customer_id, total) VALUES (1, 10), (2, 20), (3, 30)",
            f"INSERT INTO {schema}.customers VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        ],
    )
    return schema


@pytest.fixture
def adapter(mariadb: MariaDBServer, shop: str) -> Iterator[Adapter]:
    adapter = _adapter(mariadb, (shop,))
    yield adapter
    adapter.close()


def _orders_digest(stats: list[StatementStats], shop: str) -> StatementStats | None:
    matches = [s for s in stats if s.database_name == shop and s.query_text == ORDERS_SHAPE]
    assert len(matches) <= 1
    return matches[0] if matches else None


def test_get_engine_resolves_the_adapter() -> None:
    assert get_engine("mysql").adapter_type is Adapter
    assert Adapter.engine == "mysql"


def test_capabilities_on_a_monitored_server(adapter: Adapter) -> None:
    capabilities = adapter.capabilities()
    assert capabilities.details["flavor"] == "mariadb"
    assert "MariaDB" in capabilities.server_version
    assert not capabilities.backfillable
    for aspect in (Aspect.RUNTIME_STATS, Aspect.QUERY_TEXT, Aspect.PLANS, Aspect.OBJECT_DEFINITIONS):
        assert capabilities.available(aspect), (aspect, capabilities.aspects[aspect])
    assert capabilities.aspects[Aspect.FORCING_STATE].state is AspectState.NOT_APPLICABLE
    assert capabilities.details["performance_schema_digests_size"] > 0
    assert capabilities.details["digest_table_rows"] > 0
    assert capabilities.details["performance_schema_digest_lost"] == 0
    assert capabilities.details["digest_table_full"] is False
    assert adapter.statements_sent() <= 12  # a handful of round trips, not one per feature


def test_workload_executions_rise_by_exactly_k(mariadb: MariaDBServer, shop: str, adapter: Adapter) -> None:
    _execute(mariadb, ["SELECT id, total FROM orders WHERE customer_id = 0"], shop)  # the digest exists
    before = _orders_digest(adapter.runtime_stats(_now(), _now()), shop)
    assert before is not None
    k = 7
    _execute(mariadb, [f"SELECT id, total FROM orders WHERE customer_id = {i + 1}" for i in range(k)], shop)
    after_stats = adapter.runtime_stats(_now(), _now())
    after = _orders_digest(after_stats, shop)
    assert after is not None
    assert after.query_key == before.query_key
    assert after.executions - before.executions == k
    assert after.cumulative and after.counters_reset_at is None
    assert after.duration_us_total is not None and before.duration_us_total is not None
    assert after.duration_us_total > before.duration_us_total
    assert after.rows_examined_total is not None and after.rows_total is not None
    assert after.cpu_us_total is None  # MariaDB has no per-statement CPU time
    assert {s.database_name for s in after_stats} == {shop}  # the target lists only this schema
    assert len(after.query_key) == 32 and int(after.query_key, 16) >= 0


def test_row_limit_is_top_n_by_total_time(mariadb: MariaDBServer, shop: str) -> None:
    _execute(mariadb, ["SELECT COUNT(*) FROM customers", "SELECT name FROM customers WHERE id = 1"], shop)
    adapter = Adapter(
        _connector(mariadb), target_name="shop-db", databases=(shop,), settings=Settings(collect_row_limit=2)
    )
    try:
        stats = adapter.runtime_stats(_now(), _now())
    finally:
        adapter.close()
    assert len(stats) == 2
    assert (stats[0].duration_us_total or 0) >= (stats[1].duration_us_total or 0)


def test_planmon_statements_never_appear(mariadb: MariaDBServer, shop: str) -> None:
    _execute(mariadb, ["SELECT id, total FROM orders WHERE customer_id = 9"], shop)
    first = _adapter(mariadb)
    try:
        first.capabilities()
        stats = first.runtime_stats(_now(), _now())
        first.plans([s for s in stats if s.database_name == shop])
        first.index_definitions(shop, [QualifiedName(shop, "orders")])
    finally:
        first.close()
    second = _adapter(mariadb)  # a later run, on another connection, over every schema
    try:
        stats = second.runtime_stats(_now(), _now())
    finally:
        second.close()
    own = {
        digest
        for (digest,) in _rows(
            mariadb,
            "SELECT DISTINCT DIGEST FROM performance_schema.events_statements_history_long "
            "WHERE SQL_TEXT LIKE %s AND DIGEST IS NOT NULL",
            ("/* planmon */%",),
        )
    }
    assert len(own) >= 8  # queries, session SETs and EXPLAINs of both runs were recorded
    reported = {s.query_key: s.query_text or "" for s in stats}
    assert not own & reported.keys(), [reported[d] for d in own & reported.keys()]
    assert not [text for text in reported.values() if "planmon" in text or text.startswith("EXPLAIN")]
    assert _orders_digest(stats, shop) is not None  # the application's statement is still there


def test_plan_captured_from_the_history_sample(mariadb: MariaDBServer, shop: str, adapter: Adapter) -> None:
    _execute(
        mariadb,
        [
            "SELECT id, total FROM orders WHERE customer_id = 2",
            "SELECT o.total, c.name FROM orders AS o JOIN customers AS c ON c.id = o.customer_id "
            "WHERE o.id = 3",
        ],
        shop,
    )
    stats = adapter.runtime_stats(_now(), _now())
    orders = _orders_digest(stats, shop)
    join = next(s for s in stats if s.query_text and "JOIN `customers`" in s.query_text)
    assert orders is not None
    missing = StatementStats(query_key="0" * 32, database_name=shop)
    sent_before = adapter.statements_sent()
    captured, failed = adapter.plans([orders, join, missing])
    # one sample query for all digests, the schema's session setup (2 SETs), one EXPLAIN per plan
    assert adapter.statements_sent() - sent_before == 5
    assert [plan.query_key for plan in captured] == [orders.query_key, join.query_key]
    plan = captured[0]
    assert plan.body_format == "mysql_json" and plan.plan_key is None and plan.database_name == shop
    parsed = parse_plan(plan.body, engine="mysql")
    tables = {node.object.table for s in parsed.statements for node in s.nodes() if node.object}
    assert tables == {"orders"}
    assert plan.objects == (QualifiedName(shop, "orders"),)
    assert captured[1].objects == (QualifiedName(shop, "customers"), QualifiedName(shop, "orders"))  # aliases
    assert json.loads(plan.body)["query_block"]
    assert [(f.query_key, "no sample" in f.reason) for f in failed] == [("0" * 32, True)]


def test_statements_without_a_plan_become_failures(
    mariadb: MariaDBServer, shop: str, adapter: Adapter
) -> None:
    table = f"scratch_{secrets.token_hex(3)}"
    _execute(mariadb, [f"CREATE TABLE {table} (a INT)"], shop)
    with pytest.raises(mysql.connector.ProgrammingError):  # recorded with an error, and a sample text
        _execute(mariadb, ["SELECT nosuchcolumn FROM customers"], shop)
    _execute(mariadb, [f"DROP TABLE {table}"], shop)
    stats = adapter.runtime_stats(_now(), _now())
    ddl = next(s for s in stats if s.query_text and s.query_text.startswith("CREATE TABLE"))
    broken = next(s for s in stats if s.query_text and "nosuchcolumn" in s.query_text)
    assert broken.errors >= 1
    captured, failed = adapter.plans([ddl, broken])
    assert captured == []
    reasons = {f.query_key: f.reason for f in failed}
    assert "has no plan" in reasons[ddl.query_key]
    assert "nosuchcolumn" in reasons[broken.query_key] and "EXPLAIN failed" in reasons[broken.query_key]


def test_index_definitions_recreate_the_indexes(mariadb: MariaDBServer, shop: str, adapter: Adapter) -> None:
    definitions = adapter.index_definitions(
        shop,
        [
            QualifiedName(shop, "orders"),
            QualifiedName(None, "customers"),
            QualifiedName("other_schema", "orders"),
        ],
    )
    by_name = {(d.table, d.index_name): d for d in definitions}
    orders = f"`{shop}`.`orders`"
    assert by_name[(f"{shop}.orders", "PRIMARY")].definition == f"ALTER TABLE {orders} ADD PRIMARY KEY (`id`)"
    assert by_name[(f"{shop}.orders", "PRIMARY")].is_primary
    assert by_name[(f"{shop}.orders", "ix_customer")].definition == (
        f"CREATE INDEX `ix_customer` ON {orders} (`customer_id`)"
    )
    unique = by_name[(f"{shop}.orders", "ux_customer_total")]
    assert unique.is_unique and not unique.is_primary
    assert (
        unique.definition == f"CREATE UNIQUE INDEX `ux_customer_total` ON {orders} (`customer_id`, `total`)"
    )
    assert by_name[(f"{shop}.orders", "ix_note")].definition.endswith("(`note`(20))")
    assert (f"{shop}.customers", "PRIMARY") in by_name
    assert len(definitions) == 5
    # The definition is DDL the server accepts: drop the index and create it again from it.
    _execute(mariadb, [f"DROP INDEX ux_customer_total ON {orders}", unique.definition])
    again = {d.index_name: d for d in adapter.index_definitions(shop, [QualifiedName(None, "orders")])}
    assert again["ux_customer_total"] == unique


def test_session_is_read_only_with_a_timeout(mariadb: MariaDBServer, shop: str) -> None:
    adapter = Adapter(
        _connector(mariadb),
        target_name="shop-db",
        databases=(shop,),
        settings=Settings(statement_timeout_ms=300),
    )
    try:
        connection = adapter._connection(shop)  # the adapter's own session, as it set it up
        with pytest.raises(EngineError) as timed_out:
            adapter._execute(connection, "SELECT SLEEP(3)", action="sleeping")
        assert timed_out.value.reason is EngineErrorReason.TIMEOUT
        with pytest.raises(EngineError) as refused:
            adapter._execute(connection, "INSERT INTO customers VALUES (99, 'x')", action="writing")
        assert "READ ONLY" in str(refused.value)
    finally:
        adapter.close()


@pytest.fixture
def user_without_performance_schema(mariadb: MariaDBServer, shop: str) -> Iterator[tuple[str, str]]:
    user, password = f"planmon_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    connection = mysql.connector.connect(**mariadb.connect_kwargs())
    try:
        cursor = connection.cursor()
        cursor.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
        cursor.execute(f"GRANT SELECT ON `{shop}`.* TO %s@'127.0.0.1'", (user,))
        yield user, password
        cursor.execute("DROP USER %s@'127.0.0.1'", (user,))
    finally:
        connection.close()


def test_without_select_on_performance_schema(
    mariadb: MariaDBServer, shop: str, user_without_performance_schema: tuple[str, str]
) -> None:
    user, password = user_without_performance_schema
    adapter = _adapter(mariadb, (shop,), user=user, password=password)
    try:
        capabilities = adapter.capabilities()
        assert adapter.index_definitions(
            shop, [QualifiedName(None, "orders")]
        )  # information_schema still answers
    finally:
        adapter.close()
    runtime = capabilities.aspects[Aspect.RUNTIME_STATS]
    assert runtime.state is AspectState.PERMISSION_DENIED
    assert runtime.hint == HINT_GRANT and "GRANT SELECT ON performance_schema.*" in runtime.hint
    assert runtime.detail is not None and password not in runtime.detail
    assert capabilities.aspects[Aspect.PLANS].state is AspectState.PERMISSION_DENIED
    assert capabilities.available(Aspect.OBJECT_DEFINITIONS)


def test_wrong_password_is_authentication_and_never_shown(
    mariadb: MariaDBServer, shop: str, user_without_performance_schema: tuple[str, str]
) -> None:
    user, _ = user_without_performance_schema
    wrong = secrets.token_urlsafe(16)
    adapter = _adapter(mariadb, (shop,), user=user, password=wrong)
    with pytest.raises(EngineError) as error:
        adapter.capabilities()
    assert error.value.reason is EngineErrorReason.AUTHENTICATION
    assert error.value.target == "shop-db"
    assert wrong not in str(error.value) and wrong not in repr(error.value.__dict__)
    assert adapter.statements_sent() == 0


def test_unreachable_port() -> None:
    server = MariaDBServer(port=free_port(), datadir=Path("/nonexistent"))  # nothing listens there
    adapter = _adapter(server, connection_timeout=5)
    with pytest.raises(EngineError) as error:
        adapter.runtime_stats(_now(), _now())
    assert error.value.reason is EngineErrorReason.UNREACHABLE
    assert error.value.hint is not None and "port" in error.value.hint
    adapter.close()


@pytest.mark.parametrize(
    ("options", "unavailable", "hint"),
    [
        (("--performance-schema=OFF",), (Aspect.RUNTIME_STATS, Aspect.PLANS), HINT_PERFORMANCE_SCHEMA_OFF),
        (
            ("--performance-schema-consumer-statements-digest=OFF",),
            (Aspect.RUNTIME_STATS, Aspect.PLANS),
            HINT_DIGEST_CONSUMER,
        ),
        (
            ("--performance-schema-consumer-events-statements-history-long=OFF",),
            (Aspect.PLANS,),
            HINT_HISTORY_LONG_CONSUMER,
        ),
        (  # history_long is fed from events_statements_current: with it off, history_long stays empty
            ("--performance-schema-consumer-events-statements-current=OFF",),
            (Aspect.PLANS,),
            sample_consumers_hint(("events_statements_current",)),
        ),
    ],
    ids=[
        "performance_schema_off",
        "digest_consumer_off",
        "history_long_consumer_off",
        "current_consumer_off",
    ],
)
def test_missing_features_are_unavailable_with_a_hint(
    options: tuple[str, ...], unavailable: tuple[Aspect, ...], hint: str
) -> None:
    # A second throwaway server: extra options come after the harness's ON options, and the last wins.
    try:
        context = mariadb_server(extra_options=options)
        server = context.__enter__()
    except ServerUnavailable as exc:
        pytest.skip(f"a second MariaDB would not start: {exc}")
    try:
        adapter = _adapter(server)
        try:
            capabilities = adapter.capabilities()
        finally:
            adapter.close()
    finally:
        context.__exit__(None, None, None)
    for aspect in unavailable:
        status = capabilities.aspects[aspect]
        assert status.state is AspectState.UNAVAILABLE, aspect
        assert status.hint == hint
    available = {Aspect.RUNTIME_STATS, Aspect.QUERY_TEXT, Aspect.PLANS} - set(unavailable)
    if Aspect.RUNTIME_STATS in unavailable:
        available.discard(Aspect.QUERY_TEXT)
    assert all(capabilities.available(aspect) for aspect in available)
    assert capabilities.available(Aspect.OBJECT_DEFINITIONS)
    assert capabilities.details["performance_schema"] is ("--performance-schema=OFF" not in options)
