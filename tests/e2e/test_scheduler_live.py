"""planmon under a live Airflow, as production runs it (issue 21): scheduler, dag-processor,
triggerer and API server as separate processes on a PostgreSQL metadata DB, LocalExecutor or
CeleryExecutor with two workers, ten PostgreSQL targets with pg_stat_statements on one instance.

planmon_collect runs on its own schedule (every minute here), its asset triggers planmon_analyze,
whose asset triggers planmon_alert; every run must succeed and the repository must hold no
duplicates. Then two identical backfills of planmon_analyze over past hours: both succeed and the
second changes nothing. One target lost an index in the seeded history, so analysis finds a
plan_change and alerting sends it (the default log channel).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import make_url, text

from planmon.config import load_settings
from planmon.store import Repository
from planmon.store.connection import create_repository_engine
from planmon.store.retention import RetentionStore
from tests.conftest import _unavailable
from tests.harness import fleet
from tests.harness.scheduler import EXECUTORS, AirflowCluster, Listener, airflow_cluster
from tests.harness.servers import PostgresServer, ServerUnavailable, postgres_server

pytestmark = [pytest.mark.scheduler, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1200)]

TARGETS = 10
COLLECT, ANALYZE, ALERT = "planmon_collect", "planmon_analyze", "planmon_alert"
REMEDIATE = "planmon_remediate"
LIVE_DAGS = (COLLECT, ANALYZE, ALERT, REMEDIATE)  # remediate: analysis triggers it for new regressions
ALL_DAGS = {*LIVE_DAGS, "planmon_maintenance", "planmon_probes"}
TERMINAL = {"success", "failed"}
ACTIVE = {"scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "restarting", "deferred"}
POOL, POOL_SLOTS = "planmon_targets", 8  # as docker/airflow-init.sh creates it
IMPACT_FLOOR = "0.05"  # CPU (here: duration) seconds per hour: the test's traffic is light
STEP = timedelta(minutes=15)
LIVE_TIMEOUT_S = 600  # generous: other engineers share the 2 cores
QUIET_TIMEOUT_S = 300
POLL_S = 2.0

# natural keys (the unique constraints in planmon.store.schema) of the tables the DAGs write
NATURAL_KEYS = {
    "query": ("target_id", "database_name", "query_key"),
    "plan": ("target_id", "plan_key"),
    "runtime_stats": ("plan_id", "interval_start", "execution_type"),
    "collection_run": ("target_id", "interval_start", "interval_end"),
    "counter_snapshot": ("target_id", "database_name", "query_key"),
    "regression": ("target_id", "query_id", "kind", "open_key"),
    "alert": ("dedup_key", "channel"),
    "remediation": ("regression_id", "action", "open_key"),
}

T = TypeVar("T")


@pytest.fixture
def live_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of its own: Airflow's metadata DB, planmon's repository and the ten target
    databases; more connections than the session server allows, room for every statement."""
    settings = {"max_connections": "300", "pg_stat_statements.max": "10000"}
    try:
        context = postgres_server(settings)
        server = context.__enter__()
    except ServerUnavailable as exc:
        _unavailable("PostgreSQL", str(exc))
        raise
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


def _connection(server: PostgresServer, database: str) -> str:
    return json.dumps(
        {"conn_type": "postgres", "host": server.host, "port": server.port, "login": server.user,
         "schema": database}
    )  # fmt: skip


def _sqlalchemy_url(server: PostgresServer, database: str, driver: str = "psycopg") -> str:
    return f"postgresql+{driver}://{server.user}@{server.host}:{server.port}/{database}"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_planmon_runs_on_a_live_scheduler(
    executor: str, live_postgres: PostgresServer, tmp_path: Path
) -> None:
    began = time.monotonic()
    server = live_postgres
    now = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
    # planmon_analyze's hourly boundary half an hour before now: its next scheduled run (half an
    # hour after now) never fires during the test, so only what the test starts runs
    boundary = now - timedelta(minutes=30)
    backfill_from, backfill_to = boundary - timedelta(hours=2), boundary - timedelta(hours=1)

    targets = fleet.fleet_targets(TARGETS)
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        admin.execute('CREATE DATABASE "airflow"')
        admin.execute('CREATE DATABASE "planmon"')
    fleet.create_databases(server, targets)
    environment = {
        "PLANMON_REPOSITORY_CONN_ID": "planmon_repository",
        "AIRFLOW_CONN_PLANMON_REPOSITORY": _connection(server, "planmon"),
        "PLANMON_HOME": str(tmp_path / "planmon"),
        "PLANMON_COLLECT_SCHEDULE": "* * * * *",
        "PLANMON_ANALYZE_SCHEDULE": f"{boundary.minute} * * * *",
        "PLANMON_ALERT_SCHEDULE": f"{boundary.minute} * * * *",
        "PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR": IMPACT_FLOOR,
        **fleet.connection_environment(server, targets),
    }
    repository = Repository(create_repository_engine(make_url(_sqlalchemy_url(server, "planmon"))))
    repository.init_schema()
    registered = fleet.register(repository, targets)
    # the regressed target's history: a baseline hour with its index, two hours without
    fleet.seed_regression_history(
        repository, server, registered[0], database=targets[0].database,
        drop_at=backfill_to, start=backfill_from, end=boundary, step=STEP,
        settings=load_settings({"PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR": IMPACT_FLOOR}),
    )  # fmt: skip
    timings: dict[str, float] = {}
    _stage(timings, "set-up", began)

    with airflow_cluster(
        tmp_path / "airflow",
        executor=executor,
        metadata_url=_sqlalchemy_url(server, "airflow"),
        result_backend_url=_sqlalchemy_url(server, "airflow", driver="psycopg2"),
        environment=environment,
    ) as cluster:
        _stage(timings, "airflow up", began)
        listeners: set[Listener] = set(cluster.listeners())
        _prepare_airflow(cluster)
        with fleet.background_workload(server, targets) as traffic:
            _wait_for_live_runs(cluster, listeners)
            _stage(timings, "live runs", began)
            waiting = _freeze_collection(cluster)  # the repository stands still for the backfills
        _assert_runs_succeeded(cluster, lambda run_id: run_id in waiting)
        assert traffic["bursts"] > 0, traffic
        _assert_live_collection(repository, registered, since=boundary)  # after the seeded history
        _assert_no_duplicates(repository)
        assert _open_regressions(repository) == [("pg-00", "plan_change")]

        first = _backfill(cluster, backfill_from, backfill_to, repository)
        _stage(timings, "first backfill", began)
        second = _backfill(cluster, backfill_from, backfill_to, repository)
        _stage(timings, "second backfill", began)
        assert second == first, "the second backfill changed the repository"
        must_succeed = _thaw_collection(cluster)
        _stage(timings, "collection resumed", began)
        _assert_runs_succeeded(cluster, lambda run_id: run_id not in must_succeed)
        _assert_no_duplicates(repository)
        _assert_alerted(repository)
        if executor == "CeleryExecutor":
            hostnames = _task_hostnames(cluster)
            assert set(cluster.worker_hostnames) <= hostnames, hostnames
        listeners |= set(cluster.listeners())
        exposed = [listener for listener in listeners if not listener.loopback_only]
        assert not exposed, f"listening beyond loopback: {exposed}"
        bound = sorted((listener.process, listener.address, listener.port) for listener in listeners)
        print(f"\n{executor}: listeners {bound}")
    repository.close()
    print(f"{executor}: " + ", ".join(f"{stage} at {seconds:.0f} s" for stage, seconds in timings.items()))


# -- steps ----------------------------------------------------------------------------------------


def _prepare_airflow(cluster: AirflowCluster) -> None:
    """The pool the collection tasks run in (as docker/airflow-init.sh makes it), the DAGs parsed,
    the four that run unpaused."""
    cluster.api("POST", "/pools", {"name": POOL, "slots": POOL_SLOTS, "description": "planmon"})

    def parsed() -> bool:
        found = {dag["dag_id"] for dag in cluster.api("GET", "/dags", limit=100)["dags"]}
        return found >= ALL_DAGS

    _wait_until("planmon's DAGs parsed", parsed, timeout=180)
    errors = cluster.api("GET", "/importErrors")
    assert errors["total_entries"] == 0, errors
    for dag_id in LIVE_DAGS:
        cluster.set_paused(dag_id, False)


def _wait_for_live_runs(cluster: AirflowCluster, listeners: set[Listener]) -> None:
    """Until collect ran on schedule twice, analyze ran on its asset and alert ran; a failed run of
    any of them stops the wait at once with its task logs."""
    samples = [0.0]

    def done() -> bool:
        if time.monotonic() - samples[-1] > 10:  # what listens while tasks run, now and then
            listeners.update(cluster.listeners())
            samples.append(time.monotonic())
        runs = {dag_id: cluster.dag_runs(dag_id) for dag_id in LIVE_DAGS}
        failed = [(d, r) for d, rs in runs.items() for r in rs if r["state"] == "failed"]
        if failed:
            pytest.fail(_failure_report(cluster, failed), pytrace=False)
        collected = [r for r in runs[COLLECT] if r["run_type"] == "scheduled" and r["state"] == "success"]
        analysed = [r for r in runs[ANALYZE] if r["run_type"] == "asset_triggered" and r["state"] in TERMINAL]
        alerted = [r for r in runs[ALERT] if r["state"] in TERMINAL]
        return len(collected) >= 2 and bool(analysed) and bool(alerted)

    _wait_until("two scheduled collections, an asset-triggered analysis and an alert run", done,
                timeout=LIVE_TIMEOUT_S)  # fmt: skip


def _freeze_collection(cluster: AirflowCluster) -> set[str]:
    """Stop collection writing to the repository, then wait until nothing else writes to it.

    Not by pausing planmon_collect: the scheduler leaves a paused DAG's running run unfinished, and
    under load a per-minute collection of ten targets has no gap between runs to pause in. The
    targets pool gets no slots instead: no collect task starts, the running ones finish, and so does
    the analysis (and alerting) their asset event triggers. Returns the collect runs left waiting.
    """
    _set_pool_slots(cluster, 0)

    def busy() -> list[str]:
        found = []
        for run in cluster.dag_runs(COLLECT):
            if run["state"] in TERMINAL:
                continue
            for ti in cluster.task_instances(COLLECT, run["dag_run_id"]):
                waits_for_pool = ti["task_id"] == "collect" and ti["state"] == "scheduled"
                if ti["state"] in ACTIVE and not waits_for_pool:
                    found.append(f"{run['dag_run_id']} {ti['task_id']}[{ti['map_index']}] {ti['state']}")
        return found

    _wait_until("collect tasks that had started", lambda: not busy() and _still(lambda: not busy()),
                timeout=QUIET_TIMEOUT_S, status=lambda: f"busy: {busy()}")  # fmt: skip
    _wait_quiet(cluster, (ANALYZE, ALERT, REMEDIATE))
    return {r["dag_run_id"] for r in cluster.dag_runs(COLLECT) if r["state"] not in TERMINAL}


def _thaw_collection(cluster: AirflowCluster) -> set[str]:
    """Give the pool its slots back and wait for the collect run that waited; the ids of the runs
    that must succeed: every run there was but the collect runs still queued behind it."""
    runs = {dag_id: cluster.dag_runs(dag_id) for dag_id in LIVE_DAGS}
    must_succeed = {r["dag_run_id"] for d, rs in runs.items() for r in rs
                    if not (d == COLLECT and r["state"] == "queued")}  # fmt: skip
    waiting = {r["dag_run_id"] for r in runs[COLLECT] if r["state"] == "running"}
    _set_pool_slots(cluster, POOL_SLOTS)

    def unfinished() -> list[str]:
        return [r["dag_run_id"] for r in cluster.dag_runs(COLLECT) if r["dag_run_id"] in waiting
                and r["state"] not in TERMINAL]  # fmt: skip

    _wait_until("the collect run that waited for the pool", lambda: not unfinished(),
                timeout=QUIET_TIMEOUT_S, status=lambda: f"unfinished: {unfinished()}")  # fmt: skip
    return must_succeed


def _set_pool_slots(cluster: AirflowCluster, slots: int) -> None:
    body = {"pool": POOL, "slots": slots, "include_deferred": False}  # Airflow 3.3 wants all three
    cluster.api("PATCH", f"/pools/{POOL}", body, update_mask="slots")


def _wait_quiet(cluster: AirflowCluster, dags: tuple[str, ...]) -> None:
    """Until no run of ``dags`` is queued or running and no asset event waits for one."""

    def pending() -> list[str]:
        found = []
        for dag_id in dags:
            found += [f"{dag_id} {r['dag_run_id']} {r['state']}" for r in cluster.dag_runs(dag_id)
                      if r["state"] not in TERMINAL]  # fmt: skip
            if cluster.api("GET", f"/dags/{dag_id}/assets/queuedEvents")["total_entries"]:
                found.append(f"{dag_id}: queued asset events")
        return found

    _wait_until("every planmon run finished", lambda: not pending() and _still(lambda: not pending()),
                timeout=QUIET_TIMEOUT_S, status=lambda: f"pending: {pending()}")  # fmt: skip


def _still(check: Callable[[], bool], seconds: float = 4.0) -> bool:
    """True when ``check`` holds again after a few scheduler loops (a run may be about to start)."""
    time.sleep(seconds)
    return check()


def _backfill(
    cluster: AirflowCluster, start: datetime, end: datetime, repository: Repository
) -> dict[str, Any]:
    """Backfill planmon_analyze over [start, end] reprocessing completed runs; wait until it and what
    it triggers are done; the repository's state afterwards."""
    cluster.backfill(ANALYZE, start, end, timeout=QUIET_TIMEOUT_S)
    _wait_quiet(cluster, (ANALYZE, ALERT, REMEDIATE))
    runs = [r for r in cluster.dag_runs(ANALYZE) if r["run_type"] == "backfill"]
    assert len(runs) >= 2 and all(r["state"] == "success" for r in runs), runs
    return _repository_state(repository)


# -- checks ---------------------------------------------------------------------------------------


def _assert_runs_succeeded(cluster: AirflowCluster, may_be_unfinished: Callable[[str], bool]) -> None:
    """Every run of planmon's DAGs succeeded, but those ``may_be_unfinished`` accepts still running."""
    bad = [
        (dag_id, run)
        for dag_id in LIVE_DAGS
        for run in cluster.dag_runs(dag_id)
        if run["state"] != "success"
        and not (run["state"] not in TERMINAL and may_be_unfinished(run["dag_run_id"]))
    ]
    assert not bad, _failure_report(cluster, bad)


def _failure_report(cluster: AirflowCluster, runs: list[tuple[str, dict[str, Any]]]) -> str:
    lines = []
    for dag_id, run in runs:
        lines.append(f"{dag_id} {run['dag_run_id']} ({run['run_type']}): {run['state']}")
        for ti in cluster.task_instances(dag_id, run["dag_run_id"]):
            if ti["state"] in ("success", "skipped"):
                continue
            lines.append(f"  {ti['task_id']}[{ti['map_index']}]: {ti['state']}")
            if ti["state"] in ("failed", "up_for_retry", "upstream_failed"):
                lines.append(cluster.task_log(dag_id, run["dag_run_id"], ti["task_id"], ti["map_index"]))
    return "\n".join(lines)


def _assert_live_collection(repository: Repository, targets: list[Any], *, since: datetime) -> None:
    """Every target was collected by the scheduler's runs and has runtime stats from them."""
    with repository.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT t.name, count(DISTINCT c.id) AS runs, "
                "count(DISTINCT s.plan_id || ' ' || s.interval_start || ' ' || s.execution_type) AS stats "
                "FROM target t LEFT JOIN collection_run c ON c.target_id = t.id "
                "AND c.interval_start >= :since AND c.status = 'ok' "
                "LEFT JOIN runtime_stats s ON s.target_id = t.id "
                "AND s.interval_start >= :since GROUP BY t.name ORDER BY t.name"
            ),
            {"since": since},
        ).all()
    by_target = {row.name: (row.runs, row.stats) for row in rows}
    assert set(by_target) == {t.name for t in targets}
    missing = {name: counts for name, counts in by_target.items() if counts[0] < 2 or counts[1] < 1}
    assert not missing, f"targets without two live collections and their stats: {missing}"


def _assert_no_duplicates(repository: Repository) -> None:
    duplicates = {}
    with repository.engine.connect() as connection:
        for table, key in NATURAL_KEYS.items():
            columns = ", ".join(key)
            total = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            distinct = connection.execute(
                text(f"SELECT count(*) FROM (SELECT DISTINCT {columns} FROM {table}) AS d")
            ).scalar_one()
            if total != distinct:
                duplicates[table] = (total, distinct)
    assert not duplicates, f"rows duplicated on their natural key (rows, distinct keys): {duplicates}"


def _open_regressions(repository: Repository) -> list[tuple[str, str]]:
    with repository.engine.connect() as connection:
        return [
            (row.name, row.kind)
            for row in connection.execute(
                text(
                    "SELECT t.name, r.kind FROM regression r JOIN target t ON t.id = r.target_id "
                    "WHERE r.status = 'open' ORDER BY t.name, r.kind"
                )
            )
        ]


def _assert_alerted(repository: Repository) -> None:
    with repository.engine.connect() as connection:
        alerts = connection.execute(text("SELECT dedup_key, channel, status FROM alert")).all()
    assert any(a.dedup_key.startswith("regression:") and a.status == "sent" for a in alerts), alerts


def _repository_state(repository: Repository) -> dict[str, Any]:
    """Row counts of every table and the regressions, alerts and remediations themselves."""
    queries = {
        "regressions": "SELECT id, target_id, query_id, kind, status, severity, baseline_plan_id, "
        "current_plan_id, baseline_mean, current_mean, ratio, impact, p_value, first_detected, "
        "last_detected, resolved_at FROM regression ORDER BY id",
        "alerts": "SELECT id, dedup_key, channel, status, attempts FROM alert ORDER BY id",
        "remediations": "SELECT id, regression_id, action, state FROM remediation ORDER BY id",
    }
    with repository.engine.connect() as connection:
        rows = {name: [tuple(r) for r in connection.execute(text(sql))] for name, sql in queries.items()}
    return {"row_counts": RetentionStore(repository).row_counts(), **rows}


def _task_hostnames(cluster: AirflowCluster) -> set[str]:
    return {
        ti["hostname"]
        for dag_id in LIVE_DAGS
        for run in cluster.dag_runs(dag_id)
        for ti in cluster.task_instances(dag_id, run["dag_run_id"])
        if ti["hostname"]
    }


# -- helpers --------------------------------------------------------------------------------------


def _wait_until(
    description: str, check: Callable[[], T], *, timeout: float, status: Callable[[], str] | None = None
) -> T:
    """Poll ``check`` until it returns something true; fail after ``timeout`` saying what was pending."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f" ({status()})" if status is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {description}{detail}", pytrace=False)
        time.sleep(POLL_S)


def _stage(timings: dict[str, float], stage: str, began: float) -> None:
    """Record and show (at once, even when the test fails later) when a stage ended."""
    timings[stage] = time.monotonic() - began
    sys.stderr.write(f"[scheduler test] {stage} at {timings[stage]:.0f} s\n")
