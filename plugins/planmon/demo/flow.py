"""The demo's story, told by the real DAGs: baseline traffic is collected, an index is dropped, the
regression is collected, found, alerted, and fixed after a person approves.

Time is compressed, not faked: each collection run reads PostgreSQL's cumulative counters *now*
and attributes the difference since the previous run to its data interval, exactly as in
production. The demo's history is whole hours, so that an hourly backfill of planmon_analyze over
them (under ``make airflow``) finds the regression again: the regressed traffic is collected into
the last whole hour before the demo started, which planmon_analyze (hourly, its default schedule)
analyses against the healthy traffic collected into the hour before that (a first run reads the
counters, a second collects that hour again with the traffic since). Hourly intervals ending within the
last two hours are still current for cumulative counters (the collector's limit).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from planmon.airflow.connections import open_repository
from planmon.demo import target as kept_target
from planmon.demo import workload
from planmon.demo.target import CONN_ID, REMEDIATION_CONN_ID
from planmon.demo.workload import Traffic
from planmon.model import RegressionKind
from planmon.store.regressions import RegressionStore

HOURLY = "0 * * * *"  # the demo's collect and analyze schedules: whole hours
TARGET = "shop"
DEMO_USER = "demo-dba"
BASELINE_BURSTS = 2  # bursts of healthy traffic, collected into the hour before the analysed one
REGRESSED_BURSTS = 6  # bursts after the index is dropped, collected into the analysed hour (3,000 order
# histories: on PostgreSQL 18 the regressed plan walks orders_ordered_at_idx, about 8 ms a call, 25 s/hour
# extra, where 3 bursts were 12.7 s/hour and p=0.003, too close to the floor and the test to be sure)


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps everything: the PLANMON_HOME and AIRFLOW_HOME ``make airflow`` uses
    (.planmon, .airflow), both emptied at the start."""

    home: Path  # PLANMON_HOME of the demo: repository, alerts log, the shop's PostgreSQL
    dags_folder: Path
    airflow_home: Path  # Airflow's configuration; its metadata DB's PostgreSQL in airflow_home/postgres

    @property
    def postgres_dir(self) -> Path:
        return kept_target.postgres_dir(self.home)

    @property
    def alerts_log(self) -> Path:
        return self.home / "alerts.log"


HOUR = timedelta(hours=1)


@dataclass
class DemoTimeline:
    """The demo's data intervals: the two whole hours before the hour it started in."""

    end: datetime  # end of the analysed hour: the start of the hour the demo started in, UTC

    def collect_cron(self) -> str:
        return HOURLY

    def analyze_cron(self) -> str:
        return HOURLY

    def collection_ends(self) -> list[datetime]:
        """A reading of the counters for the healthy hour, that hour collected, the analysed hour."""
        return [self.end - HOUR, self.end - HOUR, self.end]

    @property
    def window(self) -> tuple[datetime, datetime]:
        return self.end - HOUR, self.end

    @property
    def hours(self) -> tuple[datetime, datetime]:
        """The demo's history: the healthy hour's start to the analysed hour's end."""
        return self.end - 2 * HOUR, self.end


@dataclass
class DemoResult:
    """What happened, for the report and for tests."""

    timeline: DemoTimeline
    postgres_port: int = 0  # the shop's PostgreSQL, left running
    postgres_data: str = ""  # its data directory
    postgres_version: str = ""  # what it is ("18.6"): SHOW server_version
    steps: list[str] = field(default_factory=list)
    collections: list[dict[str, Any]] = field(default_factory=list)
    analysis: dict[str, Any] = field(default_factory=dict)
    regressions: list[dict[str, Any]] = field(default_factory=list)
    alerts: dict[str, Any] = field(default_factory=dict)
    remediation: dict[str, Any] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        start, end = self.timeline.window
        return {
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "postgres_port": self.postgres_port,
            "postgres_data": self.postgres_data,
            "postgres_version": self.postgres_version,
            "steps": self.steps,
            "collections": self.collections,
            "analysis": self.analysis,
            "regressions": self.regressions,
            "alerts": self.alerts,
            "remediation": self.remediation,
            "audit": self.audit,
        }


def configure_environment(paths: DemoPaths, environ: Any, *, metadata_url: str | None = None) -> None:
    """Airflow and planmon settings of the demo; must run before Airflow is first imported.
    ``metadata_url``: Airflow's metadata DB (default: SQLite in the Airflow home)."""
    environ.update(
        {
            "AIRFLOW_HOME": str(paths.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(paths.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url
            or f"sqlite:///{paths.airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{DEMO_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            # a fresh signing key per demo run, never stored in the repository
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",  # the demo prints its own story
            "PLANMON_HOME": str(paths.home),
            # verification: 30 executions of the fixed query, polled every 2 seconds, at most 2 minutes
            "PLANMON_REMEDIATION_VERIFY_EXECUTIONS": "30",
            "PLANMON_REMEDIATION_VERIFY_MINUTES": "2",
            "PLANMON_REMEDIATION_POKE_SECONDS": "2",
        }
    )


def write_demo_password(paths: DemoPaths) -> Path:
    """A random password for the demo user in the file Airflow's simple auth manager reads (owner-only),
    so Airflow neither prints one nor keeps one anywhere but there."""
    import json

    path = paths.airflow_home / "simple_auth_manager_passwords.json.generated"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps({DEMO_USER: secrets.token_urlsafe(12)}))
    return path


def schedule_environment(timeline: DemoTimeline, environ: Any) -> None:
    """The DAGs' schedules for this timeline; read when the DAG files are parsed (load_dags)."""
    environ["PLANMON_COLLECT_SCHEDULE"] = timeline.collect_cron()
    environ["PLANMON_ANALYZE_SCHEDULE"] = timeline.analyze_cron()


@contextlib.contextmanager
def background_traffic(dsn: str, traffic: Traffic, pause: float = 0.5) -> Iterator[None]:
    """Application traffic from another thread while a DAG run waits (verification watches it)."""
    import psycopg

    seeds = itertools.count(1000)
    with (
        psycopg.connect(dsn, autocommit=True) as shop,
        workload.in_background(lambda: workload.run_traffic(shop, traffic, next(seeds)), pause=pause),
    ):
        yield


def load_dags(dags_folder: Path) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    if bag.import_errors:
        raise RuntimeError(f"planmon's DAGs failed to import: {bag.import_errors}")
    return dict(bag.dags)


def run_dag(dag: Any, logical_date: datetime) -> Any:
    """One real run of ``dag`` with dag.test(); a failed run stops the demo with its task states."""
    from airflow.utils.state import DagRunState

    run = dag.test(logical_date=logical_date)
    if run.state != DagRunState.SUCCESS:
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        raise RuntimeError(f"{dag.dag_id} run for {logical_date:%H:%M} ended {run.state}: {states}")
    return run


def xcom(run: Any, task_id: str) -> Any:
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def utc_minute(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)).replace(second=0, microsecond=0)


def utc_hour(now: datetime | None = None) -> datetime:
    return utc_minute(now).replace(minute=0)


Say = Callable[[str], None]


def run_demo(paths: DemoPaths, say: Say, *, traffic: Traffic | None = None) -> DemoResult:
    """The whole story on a PostgreSQL kept under ``paths.postgres_dir``, left running at the end
    (stopped if the story fails) so that ``make airflow`` keeps collecting the shop.

    The caller has already called :func:`configure_environment` (before any Airflow import) and
    emptied ``paths.home``.
    """
    import psycopg

    from planmon.embedded import kept_postgres, stop_kept_postgres

    traffic = traffic or Traffic()
    server = kept_postgres(paths.postgres_dir)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as admin:
            version = str(admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            say(f"PostgreSQL {version} started on 127.0.0.1:{server.port} (data in {server.datadir})")
            workload.create_database(admin)
        with psycopg.connect(server.dsn(workload.DATABASE), autocommit=True) as shop:
            workload.load(shop)
            say("shop database loaded: 20,000 customers, 300,000 orders, 600,000 order lines")
            kept_target.ensure_monitor_login(server)
            _prepare_airflow_and_repository(say)
            kept_target.write_connections(server.port)
            say(
                f"Airflow connections {CONN_ID} (login {kept_target.MONITOR_LOGIN}: pg_monitor, SELECT on "
                f"the shop) and {REMEDIATION_CONN_ID} (superuser) written to its metadata DB"
            )
            timeline = DemoTimeline(end=utc_hour())
            schedule_environment(timeline, os.environ)
            result = DemoResult(
                timeline=timeline,
                postgres_port=server.port,
                postgres_data=str(server.datadir),
                postgres_version=version,
            )
            dags = load_dags(paths.dags_folder)
            _collect_and_regress(dags, shop, traffic, result, say)
            _analyze_and_alert(dags, timeline, result, say)
            _remediate(dags, server.dsn(workload.DATABASE), traffic, result, say)
    except BaseException:
        stop_kept_postgres(paths.postgres_dir)
        raise
    say(f"PostgreSQL left running on 127.0.0.1:{server.port} for `make airflow` (`make clean` stops it)")
    return result


def _prepare_airflow_and_repository(say: Say) -> None:
    from airflow.utils import db

    from planmon.config import load_settings
    from planmon.model import TargetSpec
    from planmon.store.remediations import RemediationStore

    db.resetdb()
    with open_repository(load_settings()) as repository:
        revision = repository.init_schema()
        target = repository.add_target(
            TargetSpec(
                name=TARGET,
                engine="postgres",
                conn_id=CONN_ID,
                environment="demo",
                tags={"team": "shop"},
                databases=(workload.DATABASE,),
                remediation_mode="approve",
                remediation_conn_id=REMEDIATION_CONN_ID,
            )
        )
        RemediationStore(repository).set_policy(
            target.name, {"assigned_users": [DEMO_USER]}, actor="planmon-demo"
        )
    say(f"Airflow metadata DB and planmon repository created (schema {revision}); target '{TARGET}' added")


def _collect_and_regress(
    dags: dict[str, Any], shop: Any, traffic: Traffic, result: DemoResult, say: Say
) -> None:
    collect = dags["planmon_collect"]
    seeds = itertools.count(1)
    for number, end in enumerate(result.timeline.collection_ends()):
        interval = f"[{end - HOUR:%H:%M}, {end:%H:%M})"
        if number == 1:
            for _ in range(BASELINE_BURSTS):
                workload.run_traffic(shop, traffic, seed=next(seeds))
        if number == 2:
            statement = workload.induce_regression(shop)
            result.steps.append(f"regression induced: {statement}")
            say(f"regression induced before the interval {interval}: {statement}")
            for _ in range(REGRESSED_BURSTS):
                workload.run_traffic(shop, traffic, seed=next(seeds))
        run = run_dag(collect, end)
        summary = xcom(run, "summarize") or {}
        result.collections.append({"interval_end": end.isoformat(), **summary})
        what = "counters read" if number == 0 else "collected"
        say(f"planmon_collect {interval}: {what} {summary.get('by_status', summary)}")


def _analyze_and_alert(dags: dict[str, Any], timeline: DemoTimeline, result: DemoResult, say: Say) -> None:
    from planmon.analysis.report import regressions_json
    from planmon.config import load_settings

    start, end = timeline.window
    run = run_dag(dags["planmon_analyze"], end)
    result.analysis = xcom(run, "merge") or {}  # the batches' summaries, merged
    say(f"planmon_analyze [{start:%H:%M}, {end:%H:%M}): {result.analysis}")
    with open_repository(load_settings()) as repository:
        result.regressions = regressions_json(RegressionStore(repository).regressions(status="open"))
    if not any(r["kind"] == RegressionKind.PLAN_CHANGE for r in result.regressions):
        raise RuntimeError(f"the analysis found no plan_change regression: {result.regressions}")
    alert = run_dag(dags["planmon_alert"], utc_minute())
    result.alerts = xcom(alert, "dispatch") or {}
    say(f"planmon_alert: {result.alerts}")


def _remediate(dags: dict[str, Any], dsn: str, traffic: Traffic, result: DemoResult, say: Say) -> None:
    """planmon_remediate for the plan_change regression, approved by the demo user through Airflow's
    approval REST route while the application keeps sending traffic for the verification."""
    from planmon.config import load_settings
    from planmon.demo.approvals import approval_responder
    from planmon.store.remediations import RemediationStore

    regression = next(r for r in result.regressions if r["kind"] == RegressionKind.PLAN_CHANGE)
    dag = dags["planmon_remediate"]
    triggered = _triggered_remediation(dag.dag_id, regression["id"])
    say(f"planmon_analyze triggered planmon_remediate for regression #{regression['id']}; running it")
    with (
        background_traffic(dsn, traffic),
        approval_responder(dag.dag_id, choice="Approve", user=DEMO_USER, timeout=240) as responder,
    ):
        # dag.test() replaces the queued run of that logical date with one it executes, same conf
        run = dag.test(logical_date=triggered.logical_date, run_conf=dict(triggered.conf))
    answered = [a for a in responder.answered if a["status"] == 200]
    say(f"approval answered by '{DEMO_USER}' through Airflow's REST route: {len(answered)} answer(s)")
    with open_repository(load_settings()) as repository:
        store = RemediationStore(repository)
        found = [r for r in store.remediations() if r["regression_id"] == regression["id"]]
        if not found:
            raise RuntimeError(f"planmon_remediate ({run.state}) proposed nothing: {responder.errors}")
        remediation = found[0]
        status = RegressionStore(repository).regressions().set_index("id").loc[regression["id"], "status"]
        result.audit = [
            {key: str(value) for key, value in entry.items()}
            for entry in store.audit_trail(int(remediation["id"]))
        ]
    result.remediation = {
        **{key: _plain(value) for key, value in remediation.items()},
        "regression_status": str(status),
        "dag_run": run.run_id,
    }
    say(f"planmon_remediate: {remediation['action']} -> {remediation['state']}; regression {status}")
    if remediation["state"] != "kept":
        raise RuntimeError(f"the fix was not kept: {remediation['state']} ({remediation['outcome_reason']})")


def _triggered_remediation(dag_id: str, regression_id: int) -> Any:
    """The planmon_remediate run planmon_analyze's trigger_remediation task queued for the regression
    (no scheduler runs it here: the demo runs it with dag.test())."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState

    for run in DagRun.find(dag_id=dag_id, state=DagRunState.QUEUED):
        if (run.conf or {}).get("regression_id") == regression_id:
            return run
    raise RuntimeError(
        f"planmon_analyze queued no planmon_remediate run for regression #{regression_id} "
        "(is the target's remediation mode 'approve'?)"
    )


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
