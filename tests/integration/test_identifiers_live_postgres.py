"""Live on PostgreSQL: names that break dotted strings travel as (schema, name) from capture to SQL.

An index ``idx.with.dot`` (and one named ``x"; DROP TABLE t; --``) in a schema ``we"ird.sch`` on a
table ``t x`` is dropped; collection captures it, analysis finds the plan_change, and the remediation
workflow proposes recreating it, applies it, rolls it back, then proposes and applies ANALYZE. After
each step the server's catalog says it happened (pg_index, pg_stat_user_tables), and the tables named
``t`` are still there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from planmon.analysis.statistics import Moments
from planmon.config import load_settings
from planmon.model import Action, RemediationState, TargetSpec
from planmon.remediation.verify import Outcome, Verdict
from planmon.remediation.workflow import FixedConnections, RemediationWorkflow
from planmon.store import Repository
from tests.harness.remediation import INTERVALS, STEP, T0, collect_history, small_workload_settings
from tests.harness.servers import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCHEMA, TABLE = 'we"ird.sch', "t x"
REGRESSED = sql.SQL("SELECT sum(total) FROM {} WHERE customer = %s").format(sql.Identifier(SCHEMA, TABLE))
INDEX_NAMES = ["idx.with.dot", 'x"; DROP TABLE t; --']


def _index_row(app: psycopg.Connection[Any], index: str) -> tuple[Any, ...] | None:
    """The index as the catalog has it: (schema, table, valid), or None when it does not exist."""
    return app.execute(
        "SELECT n.nspname, t.relname, x.indisvalid FROM pg_index AS x"
        " JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_class AS t ON t.oid = x.indrelid"
        " JOIN pg_namespace AS n ON n.oid = i.relnamespace WHERE i.relname = %s",
        (index,),
    ).fetchone()


def _analyze_count(app: psycopg.Connection[Any]) -> int:
    row = app.execute(
        "SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s",
        (SCHEMA, TABLE),
    ).fetchone()
    return int(row[0]) if row else 0


def _tables_named_t(app: psycopg.Connection[Any]) -> list[str]:
    rows = app.execute("SELECT schemaname FROM pg_tables WHERE tablename = 't' ORDER BY 1").fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def shop(
    postgres: PostgresServer, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str, psycopg.Connection[Any]]]:
    """A database with ``"we""ird.sch"."t x"`` (200,000 rows) and the index named by the test."""
    index = request.param
    db = f"ident_{INDEX_NAMES.index(index)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    app = psycopg.connect(postgres.dsn(db), autocommit=True)
    table = sql.Identifier(SCHEMA, TABLE)
    app.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    app.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    app.execute(sql.SQL("CREATE TABLE {} (id int primary key, customer int, total numeric)").format(table))
    app.execute(
        sql.SQL("INSERT INTO {} SELECT g, g % 20000, g FROM generate_series(1, 200000) g").format(table)
    )
    app.execute(sql.SQL("CREATE INDEX {} ON {} (customer)").format(sql.Identifier(index), table))
    app.execute("CREATE TABLE public.t (id int)")  # what the injection-shaped name would drop
    app.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(SCHEMA, "t")))
    app.execute("ANALYZE")
    try:
        yield db, index, app
    finally:
        app.close()


@pytest.mark.timeout(240, method="thread")
@pytest.mark.parametrize("shop", INDEX_NAMES, indirect=True, ids=["dotted", "injection"])
def test_recreate_rollback_and_analyze_in_a_weird_schema(
    postgres: PostgresServer,
    shop: tuple[str, str, psycopg.Connection[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, index, app = shop
    small_workload_settings(monkeypatch, tmp_path)
    settings = load_settings()

    def connect(database: str | None) -> Any:
        return psycopg.connect(postgres.dsn(database or db), autocommit=True)

    def workload() -> None:
        for customer in range(40):
            app.execute(REGRESSED, (customer,))

    drop = sql.SQL("DROP INDEX {}").format(sql.Identifier(SCHEMA, index))
    with Repository.from_settings(settings) as repository:
        repository.init_schema()
        target = repository.add_target(
            TargetSpec(
                name=db,
                engine="postgres",
                conn_id=f"{db}_monitor",
                databases=(db,),
                remediation_mode="approve",
                remediation_conn_id=f"{db}_fix",
            )
        )
        regression_id = collect_history(
            repository, target, settings, connect, workload=workload, drop_index=lambda: app.execute(drop)
        )
        steps = RemediationWorkflow(
            repository,
            settings,
            FixedConnections(collect=connect, remediate=connect),
            clock=lambda: T0 + INTERVALS * STEP + timedelta(minutes=1),
        )

        # propose: the index the baseline plan used, named and quoted from its (schema, name)
        recreate = steps.propose(regression_id)
        assert recreate.remediation.action is Action.RECREATE_INDEX
        assert recreate.remediation.rollback_sql == (
            f"DROP INDEX CONCURRENTLY IF EXISTS {sql.Identifier(SCHEMA, index).as_string(app)};"
        )
        assert _index_row(app, index) is None

        # apply: the index is back, valid, in that schema on that table
        steps.record_decision(recreate.id, approved=True, responded_by="dba_alice")
        assert steps.apply(recreate.id).state is RemediationState.APPLIED
        assert _index_row(app, index) == (SCHEMA, TABLE, True)

        # not better: rolled back, and the catalog shows the index gone (no silent no-op)
        rolled = steps.conclude(recreate.id, _not_better())
        assert rolled.state is RemediationState.ROLLED_BACK, rolled.outcome_reason
        assert _index_row(app, index) is None

        # the ledger skips the rolled-back rebuild: ANALYZE of "we""ird.sch"."t x", and it ran
        analyze = steps.propose(regression_id)
        assert analyze.remediation.action is Action.ANALYZE
        assert analyze.remediation.sql_text == f"ANALYZE {sql.Identifier(SCHEMA, TABLE).as_string(app)};"
        before = _analyze_count(app)
        steps.record_decision(analyze.id, approved=True, responded_by="dba_alice")
        assert steps.apply(analyze.id).state is RemediationState.APPLIED
        deadline = time.monotonic() + 15  # table statistics reach pg_stat_user_tables within a second or so
        while _analyze_count(app) <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _analyze_count(app) > before

    assert _tables_named_t(app) == sorted(["public", SCHEMA])


def _not_better() -> Verdict:
    regressed, baseline = Moments(1000.0, 100.0, 500.0), Moments(100.0, 10.0, 500.0)
    return Verdict(Outcome.NOT_BETTER, "not better: kept slow in this test", regressed, regressed, baseline)
