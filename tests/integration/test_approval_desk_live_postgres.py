"""Live on PostgreSQL 15 and 18, through planmon_remediate with dag.test(): the approver's desk.

A regression reaches the approval step; a webhook receiver on 127.0.0.1 (the target policy's
approval channel) gets the "waiting" message with the exact SQL and the Required Actions link,
which, turned into its REST route and fetched with an approver's token on Airflow's API app
in-process, returns that very task, still waiting. The approval body shows the prediction: with
hypopg created in the target database (where the server has the extension: Debian's
postgresql-15-hypopg) the plan with the hypothetical index, else "no prediction: hypopg is not
installed on the target". Approving on the REST route sends "approved by". A second run lets the
approval time out (Airflow's own scheduler sweep resolves it): a reminder (planmon_alert's
dispatch), then "nothing ran", and the remediation role has no statement in pg_stat_statements.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from planmon.config import load_settings
from planmon.engines.postgres.predict import NO_HYPOPG
from planmon.store import Repository
from planmon.store.alerts import AlertStore
from planmon.store.remediations import RemediationStore
from tests.harness.packages import apt_install
from tests.harness.remediation import background
from tests.harness.servers import PostgresServer
from tests.integration.test_remediate_live_postgres import (
    DAG_ID,
    REGRESSED,
    _environment,
    _regression,
    _shop,
    _statements_by,
)

pytestmark = [pytest.mark.postgres, pytest.mark.airflow, pytest.mark.slow]

BASE_URL = "http://127.0.0.1:28080"  # only parsed here: the link's path names the task


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A JSON webhook on 127.0.0.1 that keeps every payload it is posted."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _desk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"channels:\n  desk:\n    type: webhook\n    url: {url}\n", encoding="utf-8")
    monkeypatch.setenv("PLANMON_ALERT_ROUTES", str(routes))  # regression alerts: log; approvals: desk
    monkeypatch.setenv("PLANMON_BASE_URL", BASE_URL)


def _events(received: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(m["details"]["event"]): m for m in received if m.get("kind") == "approval"}


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _rest_route(link: str) -> str:
    """The REST route of the task a Required Actions link points at."""
    parts = urlsplit(link)
    segments = parts.path.strip("/").split("/")
    assert segments[0] == "dags" and segments[2] == "runs" and segments[4] == "tasks", link
    assert segments[6] == "required_actions", link
    map_index = parse_qs(parts.query).get("map_index", ["-1"])[0]
    dag_id, run_id, task_id = segments[1], segments[3], segments[5]
    return f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"


def _hypopg_created(postgres: PostgresServer, db: str) -> bool:
    """CREATE EXTENSION hypopg in the target database, as its DBA would, where the server has it.

    The system's PostgreSQL 15 gets Debian's postgresql-15-hypopg installed when it is missing (as
    the browser test installs chromium), so the prediction runs live there; under CI that must work.
    The wheel's PostgreSQL 18 has no hypopg: there the test checks the "not installed" statement."""
    if postgres.major == "15" and not Path("/usr/share/postgresql/15/extension/hypopg.control").is_file():
        problem = apt_install("postgresql-15-hypopg")
        if problem and os.environ.get("CI"):
            pytest.fail(f"hypopg for PostgreSQL 15 is needed under CI: {problem}")
    with psycopg.connect(postgres.dsn(db), autocommit=True) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'").fetchone()
        if available:
            conn.execute("CREATE EXTENSION hypopg")
    return bool(available)


def _dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[DAG_ID]


def _answer_from_the_link(received: list[dict[str, Any]], user: str, seen: dict[str, Any]) -> None:
    """The approver's side: wait for the message, open its link's task with their token, approve."""
    from planmon.demo.approvals import _client

    try:
        client, headers = _client((user,))
        _wait_for(lambda: "waiting" in _events(received), 120, "the waiting message")
        link = _events(received)["waiting"]["details"]["approval_url"]
        route = _rest_route(link)
        detail = client.get(route, headers=headers[user])
        seen["link"], seen["detail_status"], seen["detail"] = link, detail.status_code, detail.json()
        answer = client.patch(route, json={"chosen_options": ["Approve"]}, headers=headers[user])
        seen["answer_status"] = answer.status_code
    except Exception as exc:  # reported to the test; the approval is rejected so dag.test() ends
        seen["error"] = repr(exc)
        from planmon.demo.approvals import approval_responder

        with approval_responder(DAG_ID, choice="Reject", user=user, timeout=60) as responder:
            responder.wait_answered(1, timeout=60)


@pytest.mark.timeout(280, method="thread")
def test_waiting_message_links_to_the_task_and_approval_is_announced(
    postgres: PostgresServer, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    db, role = "shop_desk_ok", "planmon_desk_ok"
    _environment(monkeypatch, tmp_path, postgres, db, role)
    app = _shop(postgres, db, role)
    with_hypopg = _hypopg_created(postgres, db)
    if postgres.major == "15" and os.environ.get("CI"):
        assert with_hypopg, "the prediction must run live on PostgreSQL 15 under CI"
    regression_id, _ = _regression(postgres, app, db, "approve", approvers=("dba_alice",))
    with Repository.from_settings(load_settings()) as repository:
        RemediationStore(repository).set_policy(
            db, {"assigned_users": ["dba_alice"], "approval_channels": ["desk"]}, actor="test"
        )
    seen: dict[str, Any] = {}
    traffic = psycopg.connect(postgres.dsn(db), autocommit=True)
    try:
        with webhook_receiver() as (url, received):
            _desk(monkeypatch, tmp_path, url)
            approver = threading.Thread(target=_answer_from_the_link, args=(received, "dba_alice", seen))
            approver.start()
            with background(lambda: traffic.execute(REGRESSED, (random.randrange(20000),))):
                run = _dag().test(run_conf={"regression_id": regression_id})
            approver.join(timeout=30)
    finally:
        traffic.close()

    assert "error" not in seen, seen.get("error")
    assert run.state == DagRunState.SUCCESS
    events = _events(received)
    waiting = events["waiting"]
    with Repository.from_settings(load_settings()) as repository:
        [remediation] = RemediationStore(repository).remediations()
        deliveries = {
            (a.dedup_key.rsplit(":", 1)[-1], a.channel, a.status) for a in AlertStore(repository).all_alerts()
        }
    # the waiting message: regression in one line, action, the exact SQL, both links
    assert waiting["lines"][0].startswith("Regression: plan_change on shop_desk_ok")
    assert waiting["lines"][1] == "Action: recreate_index"
    assert (
        remediation["sql_text"] in waiting["lines"] and "CREATE INDEX CONCURRENTLY" in remediation["sql_text"]
    )
    links = dict(waiting["links"])
    assert links["planmon regression"] == f"{BASE_URL}/planmon/regressions/{regression_id}"
    assert links["Required Actions"] == seen["link"]
    assert seen["link"].startswith(f"{BASE_URL}/dags/{DAG_ID}/runs/")
    assert seen["link"].split("?")[0].endswith("/tasks/approval/required_actions")
    # the link's task, fetched with the approver's token: that approval, waiting for an answer
    assert seen["detail_status"] == 200, seen["detail"]
    detail = seen["detail"]
    assert detail["task_instance"]["task_id"] == "approval"
    assert detail["task_instance"]["dag_run_id"] == run.run_id
    assert detail["response_received"] is False
    assert seen["answer_status"] == 200
    # the body: rails passed and the prediction, the same in Airflow and in the message
    body = detail["body"]
    assert body == waiting["details"]["body_markdown"] and body in waiting["lines"]
    assert "### Rails passed" in body and "mode approve: runs only after a person approves" in body
    assert "### Predicted effect" in body
    if with_hypopg:
        assert "hypopg: with orders\\_customer as a hypothetical index the planner would choose" in body
        assert "btree\\_orders\\_customer" in body and "regressed plan: " in body
        assert "Warning" not in body.split("### Predicted effect")[1].split("###")[0]
    else:
        assert f"- {NO_HYPOPG}" in body
    assert f"({seen['link']})" in body  # the body links to its own Required Actions page
    # approving on the REST route: "approved by", and the remediation ran
    assert events["approved"]["title"].startswith("planmon: Approved by dba_alice: recreate_index")
    assert remediation["approved_by"] == "dba_alice" and remediation["state"] == "kept"
    assert ("waiting", "desk", "sent") in deliveries and ("approved", "desk", "sent") in deliveries
    assert len([m for m in received if m.get("kind") == "approval"]) == 2  # once each (dedup)
    app.close()


def _time_out(received: list[dict[str, Any]], seen: dict[str, Any]) -> None:
    """Let the approval's response_timeout pass; remind through planmon_alert's dispatch when the
    reminder is due; then run Airflow's scheduler sweep that applies the default (Reject)."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    from planmon.airflow.alert_tasks import dispatch_alerts

    try:
        _wait_for(lambda: "waiting" in _events(received), 120, "the waiting message")
        details = _events(received)["waiting"]["details"]
        reminder_at = details["reminder_at"]
        timeout_at = details["timeout_at"]
        seen["early"] = dispatch_alerts("planmon_alert", "early")["reminders"]
        _wait_for(
            lambda: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) > reminder_at[:19], 60, "reminder time"
        )
        seen["due"] = dispatch_alerts("planmon_alert", "due")["reminders"]
        _wait_for(lambda: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) > timeout_at[:19], 60, "timeout")
        runner = SchedulerJobRunner(job=Job())
        _wait_for(
            lambda: (runner.check_awaiting_input_timeouts(), "timeout" in _events(received))[1], 60, "sweep"
        )
    except Exception as exc:
        seen["error"] = repr(exc)


@pytest.mark.timeout(240, method="thread")
def test_timed_out_approval_is_reminded_then_says_nothing_ran(
    postgres: PostgresServer, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    db, role = "shop_desk_late", "planmon_desk_late"
    _environment(monkeypatch, tmp_path, postgres, db, role)
    monkeypatch.setenv("PLANMON_REMEDIATION_APPROVAL_TIMEOUT_HOURS", "0.003")  # 10.8 s
    monkeypatch.setenv("PLANMON_REMEDIATION_REMINDER_SHARE", "0.3")  # reminder after 3.2 s
    app = _shop(postgres, db, role)
    regression_id, _ = _regression(postgres, app, db, "approve", approvers=("dba_carol",))
    with Repository.from_settings(load_settings()) as repository:
        RemediationStore(repository).set_policy(
            db, {"assigned_users": ["dba_carol"], "approval_channels": ["desk"]}, actor="test"
        )
    seen: dict[str, Any] = {}
    with webhook_receiver() as (url, received):
        _desk(monkeypatch, tmp_path, url)
        sweeper = threading.Thread(target=_time_out, args=(received, seen))
        sweeper.start()
        run = _dag().test(run_conf={"regression_id": regression_id})
        sweeper.join(timeout=30)

    assert "error" not in seen, seen.get("error")
    assert run.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["apply"] == "skipped"
    events = _events(received)
    assert seen["early"]["sent"] == 0 and seen["due"]["sent"] == 1
    assert events["reminder"]["title"].startswith("planmon: Reminder, approval still waiting: recreate_index")
    assert events["reminder"]["links"] == events["waiting"]["links"]
    timeout = events["timeout"]
    assert timeout["title"].startswith(
        "planmon: Approval timed out, nothing ran: recreate_index on shop_desk_late"
    )
    assert any(
        "the default Reject applied and nothing ran on the target" in line for line in timeout["lines"]
    )
    assert "approved" not in events and "rejected" not in events
    # the prediction was asked without hypopg on this database: its absence detected live
    assert f"- {NO_HYPOPG}" in events["waiting"]["details"]["body_markdown"]
    with Repository.from_settings(load_settings()) as repository:
        [remediation] = RemediationStore(repository).remediations()
    assert remediation["state"] == "rejected" and remediation["applied_at"] is None
    assert remediation["outcome_reason"] == "no answer before the approval timeout (default Reject)"
    # the target's own statistics: the remediation role never ran a statement, the index is still gone
    assert _statements_by(postgres, db, role) == []
    assert app.execute("SELECT to_regclass('orders_customer')").fetchone() == (None,)
    app.close()
