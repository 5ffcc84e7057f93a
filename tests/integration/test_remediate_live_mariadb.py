"""Live on MariaDB, through planmon_remediate with dag.test(): index dropped -> plan_change ->
proposal to add it back online (ALGORITHM=INPLACE, LOCK=NONE) -> approval on Airflow's REST route ->
applied through the remediation account -> verified faster -> kept -> regression resolved. A rejected
approval runs nothing: performance_schema has no statement of the remediation account."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import mysql.connector
import pytest

from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from planmon.store.regressions import RegressionStore
from planmon.store.remediations import RemediationStore
from tests.harness.approvals import approval_responder
from tests.harness.remediation import background, collect_history, small_workload_settings
from tests.harness.servers import MariaDBServer

pytestmark = [pytest.mark.mysql, pytest.mark.airflow, pytest.mark.slow]

DAG_ID = "planmon_remediate"


def _environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mariadb: MariaDBServer, db: str, user: str
) -> None:
    small_workload_settings(monkeypatch, tmp_path)
    for conn_id, login in ((f"{db}_monitor", "root"), (f"{db}_fix", user)):
        connection = {
            "conn_type": "mysql",
            "host": mariadb.host,
            "port": mariadb.port,
            "login": login,
            "password": "",
            "schema": db,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def _run_sql(mariadb: MariaDBServer, *statements: str, database: str | None = None) -> list[Any]:
    conn = mysql.connector.connect(**mariadb.connect_kwargs(database))
    cursor = conn.cursor()
    rows: list[Any] = []
    for statement in statements:
        cursor.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
    conn.commit()
    conn.close()
    return rows


def _shop(mariadb: MariaDBServer, db: str, user: str) -> None:
    _run_sql(
        mariadb,
        f"DROP DATABASE IF EXISTS {db}",
        f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.orders (id int primary key, customer int, total decimal(12,2), note varchar(60))",
        f"INSERT INTO {db}.orders SELECT seq, seq % 20000, seq, repeat('x', 40) FROM {db}.seq_1_to_200000",
        f"CREATE INDEX orders_customer ON {db}.orders (customer)",
        f"DROP USER IF EXISTS '{user}'@'%'",
        f"CREATE USER '{user}'@'%'",  # the remediation account: may alter and analyze the shop, nothing else
        f"GRANT SELECT, INSERT, ALTER, INDEX ON {db}.* TO '{user}'@'%'",
        f"ANALYZE TABLE {db}.orders",
    )


def _regression(mariadb: MariaDBServer, db: str) -> int:
    settings = load_settings()
    with Repository.from_settings(settings) as repository:
        repository.init_schema()
        target = repository.add_target(
            TargetSpec(
                name=db,
                engine="mysql",
                conn_id=f"{db}_monitor",
                databases=(db,),
                remediation_mode="approve",
                remediation_conn_id=f"{db}_fix",
            )
        )

        def connect(database: str | None) -> Any:
            return mysql.connector.connect(**mariadb.connect_kwargs(database or db))

        def workload() -> None:  # as an application would: connected to its schema, literals inline
            app = mysql.connector.connect(**mariadb.connect_kwargs(db))
            cursor = app.cursor()
            for i in range(40):
                cursor.execute(f"SELECT sum(total) FROM orders WHERE customer = {i}")
                cursor.fetchall()
            app.close()

        return collect_history(
            repository,
            target,
            settings,
            connect,
            workload=workload,
            drop_index=lambda: _run_sql(mariadb, f"DROP INDEX orders_customer ON {db}.orders"),
        )


def _run(regression_id: int, *, choice: str, user: str, mariadb: MariaDBServer, db: str) -> tuple[Any, Any]:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[DAG_ID]
    traffic = mysql.connector.connect(**mariadb.connect_kwargs(db))
    traffic.autocommit = True  # an open transaction would hold the metadata lock ALTER TABLE needs
    cursor = traffic.cursor()

    def one_query() -> None:
        cursor.execute(f"SELECT sum(total) FROM orders WHERE customer = {random.randrange(20000)}")
        cursor.fetchall()

    try:
        with (
            background(one_query) as counts,
            approval_responder(DAG_ID, choice=choice, user=user, timeout=240) as responder,
        ):
            run = dag.test(run_conf={"regression_id": regression_id})
    finally:
        traffic.close()
    assert counts["runs"] > 0
    return run, responder


def _statements_by(mariadb: MariaDBServer, user: str) -> dict[str, int]:
    rows = _run_sql(
        mariadb,
        "SELECT EVENT_NAME, COUNT_STAR"
        " FROM performance_schema.events_statements_summary_by_user_by_event_name"
        f" WHERE USER = '{user}' AND COUNT_STAR > 0",
    )
    return {str(name): int(count) for name, count in rows}


@pytest.mark.timeout(300, method="thread")
def test_approved_online_index_recreation_is_kept_and_resolves_the_regression(
    mariadb: MariaDBServer, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    db, user = "shop_fix_m_ok", "planmon_fix_m_ok"
    _environment(monkeypatch, tmp_path, mariadb, db, user)
    _shop(mariadb, db, user)
    regression_id = _regression(mariadb, db)

    run, responder = _run(regression_id, choice="Approve", user="dba_alice", mariadb=mariadb, db=db)

    assert run.state == DagRunState.SUCCESS
    [answer] = responder.answered
    assert answer["status"] == 200
    assert (
        f"ALTER TABLE `{db}`.`orders` ADD INDEX `orders_customer` (`customer`), ALGORITHM=INPLACE, LOCK=NONE"
        in answer["body"]
    )
    with Repository.from_settings(load_settings()) as repository:
        [remediation] = RemediationStore(repository).remediations()
        regression = RegressionStore(repository).regressions()
    assert remediation["state"] == "kept", remediation["outcome_reason"]
    assert remediation["approved_by"] == "dba_alice"
    assert (
        remediation["verification"]["post_apply"]["mean"]
        < remediation["verification"]["regressed"]["mean"] / 5
    )
    assert regression.loc[regression["id"] == regression_id, "status"].item() == "resolved"
    assert _run_sql(mariadb, f"SHOW INDEX FROM {db}.orders WHERE Key_name = 'orders_customer'")
    assert _statements_by(mariadb, user).get("statement/sql/alter_table") == 1


@pytest.mark.timeout(240, method="thread")
def test_rejected_approval_runs_nothing_on_mariadb(
    mariadb: MariaDBServer, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    db, user = "shop_fix_m_no", "planmon_fix_m_no"
    _environment(monkeypatch, tmp_path, mariadb, db, user)
    _shop(mariadb, db, user)
    regression_id = _regression(mariadb, db)

    run, responder = _run(regression_id, choice="Reject", user="dba_bob", mariadb=mariadb, db=db)

    assert run.state == DagRunState.SUCCESS
    assert [a["status"] for a in responder.answered] == [200]
    with Repository.from_settings(load_settings()) as repository:
        [remediation] = RemediationStore(repository).remediations()
    assert remediation["state"] == "rejected" and remediation["applied_at"] is None
    assert _statements_by(mariadb, user) == {}  # the remediation account never ran anything
    assert not _run_sql(mariadb, f"SHOW INDEX FROM {db}.orders WHERE Key_name = 'orders_customer'")
