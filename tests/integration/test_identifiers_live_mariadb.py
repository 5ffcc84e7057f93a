"""Live on MariaDB: names that break dotted strings travel as (database, name) from capture to SQL.

MariaDB allows a database named ``we"ird.sch`` (it stores it as ``we@0022ird@002esch`` on disk), so
the MySQL flavour of the PostgreSQL test runs with a database of that name: an index ``idx.with.dot``
on a table ``t x`` is dropped, collected, found as a plan_change, recreated online, rolled back and
ANALYZEd through the remediation workflow, each step checked in information_schema /
mysql.innodb_table_stats; the tables named ``t`` stay.

An index named ``x"; DROP TABLE t; --``: MariaDB (10.11) writes index names into EXPLAIN FORMAT=JSON
without escaping the double quote, so the baseline plan that used it is not JSON, planmon cannot
read which index it used, and proposes ANALYZE (which runs, harmlessly). The same name's rebuild and
rollback, built by the engine from the definition planmon reads from information_schema, are run
through the remediation runner and checked in the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import mysql.connector
import pytest

from planmon.analysis.statistics import Moments
from planmon.config import load_settings
from planmon.engines import get_engine
from planmon.engines.mysql import remediation
from planmon.engines.mysql.dialect import quote_identifier
from planmon.model import Action, IndexSnapshot, QualifiedName, RemediationState, TargetSpec
from planmon.remediation.verify import Outcome, Verdict
from planmon.remediation.workflow import FixedConnections, RemediationWorkflow
from planmon.store import Repository
from tests.harness.remediation import INTERVALS, STEP, T0, collect_history, small_workload_settings
from tests.harness.servers import MariaDBServer

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

DATABASE, TABLE, GUARD = 'we"ird.sch', "t x", "ident_guard"
QUOTED_TABLE = QualifiedName(DATABASE, TABLE).quoted(quote_identifier)  # `we"ird.sch`.`t x`
DOTTED, INJECTION = "idx.with.dot", 'x"; DROP TABLE t; --'
INDEX_NAMES = [DOTTED, INJECTION]


def _query(mariadb: MariaDBServer, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    connection = mysql.connector.connect(**mariadb.connect_kwargs(None))
    try:
        cursor = connection.cursor()
        cursor.execute(statement, params)
        rows = cursor.fetchall() if cursor.description else []
        connection.commit()
        return rows
    finally:
        connection.close()


def _index_columns(mariadb: MariaDBServer, index: str) -> list[str]:
    """The index's columns as information_schema has them (empty: it does not exist)."""
    rows = _query(
        mariadb,
        "SELECT column_name FROM information_schema.statistics"
        " WHERE table_schema = %s AND table_name = %s AND index_name = %s ORDER BY seq_in_index",
        (DATABASE, TABLE, index),
    )
    return [str(row[0]) for row in rows]


def _stats_updated(mariadb: MariaDBServer) -> Any:
    rows = _query(
        mariadb,
        "SELECT last_update FROM mysql.innodb_table_stats WHERE database_name = %s AND table_name = %s",
        (DATABASE, TABLE),
    )
    return rows[0][0] if rows else None


@pytest.fixture
def shop(mariadb: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[tuple[str, IndexSnapshot]]:
    """Database ``we"ird.sch`` with ``t x`` (200,000 rows) and the index named by the test."""
    index = request.param
    quoted_db = quote_identifier(DATABASE)
    for statement in (
        f"DROP DATABASE IF EXISTS {quoted_db}",
        f"CREATE DATABASE {quoted_db}",
        f"CREATE TABLE {QUOTED_TABLE} (id int primary key, customer int, total decimal(12,2))",
        f"INSERT INTO {QUOTED_TABLE} SELECT seq, seq % 20000, seq FROM {quoted_db}.seq_1_to_200000",
        f"CREATE INDEX {quote_identifier(index)} ON {QUOTED_TABLE} (customer)",
        f"CREATE TABLE {quoted_db}.t (id int)",  # what the injection-shaped name would drop
        f"DROP DATABASE IF EXISTS {GUARD}",
        f"CREATE DATABASE {GUARD}",
        f"CREATE TABLE {GUARD}.t (id int)",
        f"ANALYZE TABLE {QUOTED_TABLE}",
    ):
        _query(mariadb, statement)
    yield index, _snapshot(mariadb, index)


def _snapshot(mariadb: MariaDBServer, index: str) -> IndexSnapshot:
    """The index as collection captures it: its definition read from information_schema."""
    engine = get_engine("mysql")
    adapter = engine.adapter(
        lambda database: mysql.connector.connect(**mariadb.connect_kwargs(database or DATABASE)),
        target_name="weird",
        databases=(DATABASE,),
        settings=load_settings({}),
    )
    try:
        [definition] = [
            d
            for d in adapter.index_definitions(DATABASE, [QualifiedName(DATABASE, TABLE)])
            if d.index_name == index
        ]
    finally:
        adapter.close()
    return IndexSnapshot(
        definition.qualified_table, index, definition.definition, False, False, T0, T0 + STEP * INTERVALS
    )


@pytest.mark.timeout(240, method="thread")
@pytest.mark.parametrize("shop", INDEX_NAMES, indirect=True, ids=["dotted", "injection"])
def test_recreate_rollback_and_analyze_in_a_weird_database(
    mariadb: MariaDBServer, shop: tuple[str, IndexSnapshot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, captured = shop
    small_workload_settings(monkeypatch, tmp_path)
    settings = load_settings()

    def connect(database: str | None) -> Any:
        return mysql.connector.connect(**mariadb.connect_kwargs(database or DATABASE))

    def workload() -> None:  # as an application would: connected to its database, literals inline
        app = connect(DATABASE)
        cursor = app.cursor()
        for customer in range(40):
            cursor.execute(f"SELECT sum(total) FROM {quote_identifier(TABLE)} WHERE customer = {customer}")
            cursor.fetchall()
        app.close()

    with Repository.from_settings(settings) as repository:
        repository.init_schema()
        target = repository.add_target(
            TargetSpec(
                name="weird",
                engine="mysql",
                conn_id="weird_monitor",
                databases=(DATABASE,),
                remediation_mode="approve",
                remediation_conn_id="weird_fix",
            )
        )
        regression_id = collect_history(
            repository,
            target,
            settings,
            connect,
            workload=workload,
            drop_index=lambda: _query(mariadb, f"DROP INDEX {quote_identifier(index)} ON {QUOTED_TABLE}"),
        )
        steps = RemediationWorkflow(
            repository,
            settings,
            FixedConnections(collect=connect, remediate=connect),
            clock=lambda: T0 + INTERVALS * STEP + timedelta(minutes=1),
        )

        if index == INJECTION:
            # MariaDB's EXPLAIN JSON of the baseline plan is not JSON (the name's quote is not escaped):
            # no recreate is proposed, and the engine's own rebuild of the name is run instead
            _rebuild_and_roll_back(mariadb, steps.context(steps.propose(regression_id).remediation), captured)
        else:
            # propose: the index back online, names quoted from their (database, name) pairs
            recreate = steps.propose(regression_id)
            assert recreate.remediation.action is Action.RECREATE_INDEX
            online = "ALGORITHM=INPLACE, LOCK=NONE"
            assert recreate.remediation.sql_text == (
                f"ALTER TABLE {QUOTED_TABLE} ADD INDEX {quote_identifier(index)} (`customer`), {online};"
            )
            assert recreate.remediation.rollback_sql == (
                f"ALTER TABLE {QUOTED_TABLE} DROP INDEX {quote_identifier(index)}, {online};"
            )
            assert _index_columns(mariadb, index) == []

            # apply: information_schema shows the index on `t x` again
            steps.record_decision(recreate.id, approved=True, responded_by="dba_alice")
            assert steps.apply(recreate.id).state is RemediationState.APPLIED
            assert _index_columns(mariadb, index) == ["customer"]

            # not better: rolled back, and the index is really gone
            rolled = steps.conclude(recreate.id, _not_better())
            assert rolled.state is RemediationState.ROLLED_BACK, rolled.outcome_reason
            assert _index_columns(mariadb, index) == []

        # ANALYZE TABLE of `we"ird.sch`.`t x` (after the rolled-back rebuild, the ledger skips it;
        # for the injection name it is the open proposal made above), and it ran
        analyze = steps.propose(regression_id)
        assert analyze.created is (index != INJECTION)
        assert analyze.remediation.action is Action.ANALYZE
        assert analyze.remediation.sql_text == f"ANALYZE TABLE {QUOTED_TABLE};"
        before = _stats_updated(mariadb)
        time.sleep(1.1)  # innodb_table_stats.last_update has one-second resolution
        steps.record_decision(analyze.id, approved=True, responded_by="dba_alice")
        assert steps.apply(analyze.id).state is RemediationState.APPLIED
        assert _stats_updated(mariadb) > before

    tables = _query(mariadb, "SELECT table_schema FROM information_schema.tables WHERE table_name = 't'")
    assert sorted(str(row[0]) for row in tables) == sorted([DATABASE, GUARD])


def _rebuild_and_roll_back(mariadb: MariaDBServer, context: Any, captured: IndexSnapshot) -> None:
    """The online rebuild the engine proposes for the captured definition, and its rollback, run
    through the engine's remediation runner; the catalog shows the index back, then gone."""
    proposal = remediation.recreate_index(context, captured)
    quoted = quote_identifier(captured.index_name)
    assert (
        proposal.sql_text
        == f"ALTER TABLE {QUOTED_TABLE} ADD INDEX {quoted} (`customer`), ALGORITHM=INPLACE, LOCK=NONE;"
    )

    def run(statements: Any) -> None:
        get_engine("mysql").run_statements(
            lambda database: mysql.connector.connect(**mariadb.connect_kwargs(database or DATABASE)),
            DATABASE,
            statements,
            lock_timeout_ms=5000,
            statement_timeout_ms=60_000,
            target="weird",
        )

    run(proposal.statements)
    assert _index_columns(mariadb, captured.index_name) == ["customer"]
    run(proposal.rollback)
    assert _index_columns(mariadb, captured.index_name) == []


def _not_better() -> Verdict:
    regressed, baseline = Moments(1000.0, 100.0, 500.0), Moments(100.0, 10.0, 500.0)
    return Verdict(Outcome.NOT_BETTER, "not better: kept slow in this test", regressed, regressed, baseline)
