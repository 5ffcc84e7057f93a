"""Live on PostgreSQL, through planmon_remediate with dag.test(): index dropped -> plan_change ->
proposal to recreate it -> approval answered on Airflow's REST route -> CREATE INDEX CONCURRENTLY
through the remediation connection -> verified faster -> kept -> regression resolved. A rejected
approval runs nothing: the remediation role has no statement in the target's pg_stat_statements."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import psycopg
import pytest

from planmon.config import load_settings
from planmon.model import TargetSpec
from planmon.store import Repository
from planmon.store.regressions import RegressionStore
from planmon.store.remediations import RemediationStore
from tests.harness.approvals import approval_responder
from tests.harness.remediation import background, collect_history, small_workload_settings
from tests.harness.servers import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.airflow, pytest.mark.slow]

DAG_ID = "planmon_remediate"
REGRESSED = "SELECT sum(total) FROM orders WHERE customer = %s"


def _environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres: PostgresServer, db: str, role: str
) -> None:
    small_workload_settings(monkeypatch, tmp_path)
    for conn_id, login in ((f"{db}_monitor", "postgres"), (f"{db}_fix", role)):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": "postgres",
                    "host": postgres.host,
                    "port": postgres.port,
                    "login": login,
                    "schema": db,
                }
            ),
        )


def _shop(postgres: PostgresServer, db: str, role: str) -> psycopg.Connection[Any]:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE {db}")
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN")  # the remediation connection's own role
    app = psycopg.connect(postgres.dsn(db), autocommit=True)
    app.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    app.execute("CREATE TABLE orders (id int primary key, customer int, total numeric, note text)")
    app.execute(
        "INSERT INTO orders SELECT g, g % 20000, g, repeat('x', 40) FROM generate_series(1, 200000) g"
    )
    app.execute("CREATE INDEX orders_customer ON orders (customer)")
    app.execute(f"ALTER TABLE orders OWNER TO {role}")  # owner: may build indexes and ANALYZE
    app.execute(f"GRANT CREATE ON SCHEMA public TO {role}")  # PostgreSQL 15+: not granted by default
    app.execute("ANALYZE")
    return app


def _regression(
    postgres: PostgresServer,
    app: psycopg.Connection[Any],
    db: str,
    mode: str,
    *,
    approvers: tuple[str, ...] = (),
    allowed: tuple[str, ...] | None = None,
) -> tuple[int, str]:
    settings = load_settings()
    with Repository.from_settings(settings) as repository:
        repository.init_schema()
        target = repository.add_target(
            TargetSpec(
                name=db,
                engine="postgres",
                conn_id=f"{db}_monitor",
                databases=(db,),
                remediation_mode=mode,
                remediation_conn_id=f"{db}_fix",
            )
        )

        def connect(database: str | None) -> Any:
            return psycopg.connect(postgres.dsn(database or db), autocommit=True)

        def workload() -> None:
            for i in range(40):
                app.execute(REGRESSED, (i,))

        if approvers or allowed is not None:
            policy: dict[str, Any] = {"assigned_users": list(approvers)}
            if allowed is not None:
                policy["allowed_actions"] = list(allowed)
            RemediationStore(repository).set_policy(db, policy, actor="test")
        regression_id = collect_history(
            repository,
            target,
            settings,
            connect,
            workload=workload,
            drop_index=lambda: app.execute("DROP INDEX orders_customer"),
        )
    return regression_id, target.name


def _run(
    regression_id: int, *, choice: str, user: str | tuple[str, ...], postgres: PostgresServer, db: str
) -> tuple[Any, Any]:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[DAG_ID]
    traffic = psycopg.connect(postgres.dsn(db), autocommit=True)
    try:
        with (
            background(lambda: traffic.execute(REGRESSED, (random.randrange(20000),))) as counts,
            approval_responder(DAG_ID, choice=choice, user=user, timeout=240) as responder,
        ):
            run = dag.test(run_conf={"regression_id": regression_id})
    finally:
        traffic.close()
    assert counts["runs"] > 0
    return run, responder


def _statements_by(postgres: PostgresServer, db: str, role: str) -> list[str]:
    with psycopg.connect(postgres.dsn(db), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_statements"
            " WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            (role,),
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.timeout(280, method="thread")
def test_approved_index_recreation_is_applied_verified_kept_and_resolves_the_regression(
    postgres: PostgresServer, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    db, role = "shop_fix_ok", "planmon_fix_ok"
    _environment(monkeypatch, tmp_path, postgres, db, role)
    app = _shop(postgres, db, role)
    regression_id, _ = _regression(postgres, app, db, "approve")

    run, responder = _run(regression_id, choice="Approve", user="dba_alice", postgres=postgres, db=db)

    assert run.state == DagRunState.SUCCESS
    [answer] = responder.answered  # exactly one approval, answered once
    assert answer["status"] == 200 and answer["task_id"] == "approval"
    assert "CREATE INDEX CONCURRENTLY orders_customer ON public.orders" in answer["body"]
    assert "DROP INDEX CONCURRENTLY IF EXISTS" in answer["body"] and "orders_customer" in answer["body"]
    with Repository.from_settings(load_settings()) as repository:
        [remediation] = RemediationStore(repository).remediations()
        trail = RemediationStore(repository).audit_trail(int(remediation["id"]))
        regression = RegressionStore(repository).regressions()
    assert remediation["action"] == "recreate_index"
    assert remediation["state"] == "kept", remediation["outcome_reason"]
    assert remediation["approved_by"] == "dba_alice"
    verification = remediation["verification"]
    assert verification["post_apply"]["executions"] >= 30
    assert verification["post_apply"]["mean"] < verification["regressed"]["mean"] / 5
    assert regression.loc[regression["id"] == regression_id, "status"].item() == "resolved"
    actions = [(entry["action"], entry["actor"]) for entry in trail]
    assert actions[:2] == [("remediation.propose", "planmon"), ("remediation.rails_passed", "planmon")]
    assert ("remediation.approved", "dba_alice") in actions
    assert [a for a, _ in actions][-2:] == ["remediation.applied", "remediation.kept"]
    valid = app.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_customer'::regclass"
    ).fetchone()
    assert valid == (True,)
    assert any("CREATE INDEX CONCURRENTLY" in q for q in _statements_by(postgres, db, role))
    app.close()


@pytest.mark.timeout(240, method="thread")
def test_rejected_approval_runs_nothing_on_the_target(
    postgres: PostgresServer, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    db, role = "shop_fix_no", "planmon_fix_no"
    _environment(monkeypatch, tmp_path, postgres, db, role)
    app = _shop(postgres, db, role)
    regression_id, _ = _regression(postgres, app, db, "approve", approvers=("dba_bob",))

    run, responder = _run(
        regression_id, choice="Reject", user=("dba_mallory", "dba_bob"), postgres=postgres, db=db
    )

    assert run.state == DagRunState.SUCCESS
    # only the target's assigned approver may answer: someone else gets 403 from Airflow itself
    assert [(a["user"], a["status"]) for a in responder.answered] == [("dba_mallory", 403), ("dba_bob", 200)]
    assert responder.answered[1]["assigned_users"] == [{"id": "dba_bob", "name": "dba_bob"}]
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["apply"] == "skipped" and states["wait_for_verification"] == "skipped"
    with Repository.from_settings(load_settings()) as repository:
        [remediation] = RemediationStore(repository).remediations()
        regression = RegressionStore(repository).regressions()
    assert remediation["state"] == "rejected"
    assert remediation["outcome_reason"] == "rejected by dba_bob" and remediation["applied_at"] is None
    assert regression.loc[regression["id"] == regression_id, "status"].item() == "open"
    # the target's own statistics: the remediation role never ran a statement, and the index is still gone
    assert _statements_by(postgres, db, role) == []
    assert app.execute("SELECT to_regclass('orders_customer')").fetchone() == (None,)
    app.close()


@pytest.mark.timeout(240, method="thread")
def test_mode_auto_runs_an_allow_listed_action_without_a_person(
    postgres: PostgresServer, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    db, role = "shop_fix_auto", "planmon_fix_auto"
    _environment(monkeypatch, tmp_path, postgres, db, role)
    app = _shop(postgres, db, role)
    regression_id, _ = _regression(postgres, app, db, "auto", allowed=("recreate_index",))

    run, responder = _run(regression_id, choice="Reject", user="dba_bob", postgres=postgres, db=db)

    assert run.state == DagRunState.SUCCESS
    assert responder.answered == []  # no approval was asked
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["approval"] == "skipped" and states["apply"] == "success"
    with Repository.from_settings(load_settings()) as repository:
        [remediation] = RemediationStore(repository).remediations()
        trail = RemediationStore(repository).audit_trail(int(remediation["id"]))
    assert remediation["state"] == "kept", remediation["outcome_reason"]
    assert remediation["approved_by"] == "planmon:auto"
    assert ("remediation.approved", "planmon:auto") in [(e["action"], e["actor"]) for e in trail]
    assert trail[[e["action"] for e in trail].index("remediation.approved")]["details"]["via"] == "mode auto"
    app.close()
