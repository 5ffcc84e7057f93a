"""The demo's story, told by the real DAGs: baseline traffic is collected, an index is dropped, the
regression is collected, found, alerted, and fixed after a person approves.

Time is compressed, not faked: each collection run reads PostgreSQL's cumulative counters *now*
and attributes the difference since the previous run to its data interval, exactly as in
production; the demo runs those collections back to back, with one burst of application traffic
between them, over 5-minute intervals that end at the moment the demo started (within
the collector's 30-minute window for cumulative counters). The schedules are derived from that
moment so that the analysis window (15 minutes) is the last three collection intervals and the two
before it are its baseline.
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
from planmon.demo import workload
from planmon.demo.workload import Traffic
from planmon.model import RegressionKind
from planmon.store.regressions import RegressionStore

COLLECT_MINUTES = 5
ANALYZE_MINUTES = 15
TARGET = "shop"
CONN_ID = "planmon_demo_shop"
REMEDIATION_CONN_ID = "planmon_demo_shop_remediation"
DEMO_USER = "demo-dba"
DEMO_IMPACT_FLOOR = 1.0  # PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR for the demo (see configure_environment)
BASELINE_BURSTS = 2  # collection intervals of healthy traffic before the analysis window
REGRESSED_BURSTS = ANALYZE_MINUTES // COLLECT_MINUTES


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps everything (all under one directory, emptied at the start)."""

    home: Path  # PLANMON_HOME of the demo: repository, alerts log
    dags_folder: Path

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def alerts_log(self) -> Path:
        return self.home / "alerts.log"


@dataclass
class DemoTimeline:
    """The demo's data intervals, derived from the minute it started."""

    end: datetime  # end of the analysis window: the start minute, UTC

    @property
    def minute(self) -> int:
        return self.end.minute

    def collect_cron(self) -> str:
        return f"{self.minute % COLLECT_MINUTES}-59/{COLLECT_MINUTES} * * * *"

    def analyze_cron(self) -> str:
        minutes = sorted((self.minute + q) % 60 for q in range(0, 60, ANALYZE_MINUTES))
        return f"{','.join(str(m) for m in minutes)} * * * *"

    def collection_ends(self) -> list[datetime]:
        """The first run only reads the counters; the traffic between runs lands in the next interval."""
        bursts = BASELINE_BURSTS + REGRESSED_BURSTS
        step = timedelta(minutes=COLLECT_MINUTES)
        return [self.end - (bursts - i) * step for i in range(bursts + 1)]

    @property
    def window(self) -> tuple[datetime, datetime]:
        return self.end - timedelta(minutes=ANALYZE_MINUTES), self.end


@dataclass
class DemoResult:
    """What happened, for the report and for tests."""

    timeline: DemoTimeline
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
            "steps": self.steps,
            "collections": self.collections,
            "analysis": self.analysis,
            "regressions": self.regressions,
            "alerts": self.alerts,
            "remediation": self.remediation,
            "audit": self.audit,
        }


def configure_environment(paths: DemoPaths, environ: Any) -> None:
    """Airflow and planmon settings of the demo; must run before Airflow is first imported."""
    environ.update(
        {
            "AIRFLOW_HOME": str(paths.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(paths.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{paths.airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{DEMO_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            # a fresh signing key per demo run, never stored in the repository
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",  # the demo prints its own story
            "PLANMON_HOME": str(paths.home),
            # The demo's traffic is light (80 order-history queries per 5 minutes): with the index gone
            # they cost about 8 extra seconds per hour, under the production impact floor of 10 meant
            # for real fleets (on a faster machine even less), so the demo's analysis counts from 1.
            "PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR": str(DEMO_IMPACT_FLOOR),
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


def connection_uri(port: int) -> str:
    """The demo target's Airflow connection: the throwaway cluster trusts loopback, no password."""
    return f"postgres://postgres@127.0.0.1:{port}/{workload.DATABASE}"


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


Say = Callable[[str], None]


def run_demo(paths: DemoPaths, say: Say, *, traffic: Traffic | None = None) -> DemoResult:
    """The whole story on a throwaway PostgreSQL under ``paths.postgres_dir``, stopped at the end.

    The caller has already called :func:`configure_environment` (before any Airflow import).
    """
    import psycopg

    from planmon.embedded import postgres_server

    traffic = traffic or Traffic()
    with postgres_server(workdir=paths.postgres_dir) as server:
        say(f"PostgreSQL started on 127.0.0.1:{server.port} (data in {server.datadir})")
        with psycopg.connect(server.dsn(), autocommit=True) as admin:
            workload.create_database(admin)
        with psycopg.connect(server.dsn(workload.DATABASE), autocommit=True) as shop:
            workload.load(shop)
            say("shop database loaded: 20,000 customers, 300,000 orders, 600,000 order lines")
            os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_uri(server.port)
            os.environ[f"AIRFLOW_CONN_{REMEDIATION_CONN_ID.upper()}"] = connection_uri(server.port)
            _prepare_airflow_and_repository(say)
            timeline = DemoTimeline(end=utc_minute())
            schedule_environment(timeline, os.environ)
            result = DemoResult(timeline=timeline)
            dags = load_dags(paths.dags_folder)
            _collect_and_regress(dags, shop, traffic, result, say)
            _analyze_and_alert(dags, timeline, result, say)
            _remediate(dags, server.dsn(workload.DATABASE), traffic, result, say)
    say("PostgreSQL stopped")
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
    step = timedelta(minutes=COLLECT_MINUTES)
    for number, end in enumerate(result.timeline.collection_ends()):
        interval = f"[{end - step:%H:%M}, {end:%H:%M})"
        if number == BASELINE_BURSTS + 1:
            statement = workload.induce_regression(shop)
            result.steps.append(f"regression induced: {statement}")
            say(f"regression induced before the interval {interval}: {statement}")
        if number > 0:
            workload.run_traffic(shop, traffic, seed=number)
        run = run_dag(collect, end)
        summary = xcom(run, "summarize") or {}
        result.collections.append({"interval_end": end.isoformat(), **summary})
        what = "counters read" if number == 0 else "collected"
        say(f"planmon_collect {interval}: {what} {summary.get('by_status', summary)}")


def _analyze_and_alert(dags: dict[str, Any], timeline: DemoTimeline, result: DemoResult, say: Say) -> None:
    from planmon.analysis.report import regressions_json
    from planmon.config import load_settings

    start, end = timeline.window
    say(f"impact floor for this demo: {DEMO_IMPACT_FLOOR:g} extra s/hour (default 10; the traffic is light)")
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
