"""Answer Airflow approval (human-in-the-loop) tasks through Airflow's real REST route, in-process.

``dag.test()`` waits forever on a task in ``awaiting_input``: every test (and the demo) that reaches
an approval runs it inside :func:`approval_responder`, which serves the core API in-process
(``TestClient(create_app("core"))``), polls ``GET .../hitlDetails?response_received=false`` for the
DAG's pending approvals and answers each with ``PATCH .../hitlDetails`` exactly as the Required
Actions page does, authenticated as a named user (a JWT issued by the configured auth manager) so the
answer carries that identity and the assigned-users check applies. The responder gives up after
``timeout`` seconds. Bound the whole test with ``@pytest.mark.timeout(N, method="thread")``: Airflow's
task runner uses SIGALRM for execution timeouts, which replaces pytest-timeout's default signal alarm.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Responder:
    dag_id: str
    choice: str
    user: str
    timeout: float
    answered: list[dict[str, Any]] = field(default_factory=list)  # one per PATCH: status, task, body
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def wait_answered(self, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answered) < count and time.monotonic() < deadline:
            time.sleep(0.2)


def _client(user: str) -> Any:
    """A TestClient of the core API and the Authorization header of ``user``."""
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"
    os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{user}:admin")
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app("core"))
    token = get_auth_manager().generate_jwt(user=SimpleAuthManagerUser(username=user, role="ADMIN"))
    return client, {"Authorization": f"Bearer {token}"}


def _poll(responder: Responder) -> None:
    try:
        client, headers = _client(responder.user)
    except Exception as exc:  # report set-up failures to the test instead of hanging it
        responder.errors.append(f"cannot start the API in-process: {exc!r}")
        return
    deadline = time.monotonic() + responder.timeout
    base = f"/api/v2/dags/{responder.dag_id}/dagRuns"
    while not responder.stop.is_set() and time.monotonic() < deadline:
        try:
            _answer_pending(client, headers, base, responder)
        except Exception as exc:  # e.g. a locked SQLite metadata DB: note it and poll again
            responder.errors.append(f"polling failed: {exc!r}")
        time.sleep(0.3)


def _answer_pending(client: Any, headers: dict[str, str], base: str, responder: Responder) -> None:
    listing = client.get(f"{base}/~/hitlDetails", params={"response_received": "false"}, headers=headers)
    if listing.status_code != 200:
        responder.errors.append(f"GET hitlDetails -> {listing.status_code}: {listing.text[:300]}")
        return
    for detail in listing.json()["hitl_details"]:
        ti = detail["task_instance"]
        url = f"{base}/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails"
        answer = client.patch(url, json={"chosen_options": [responder.choice]}, headers=headers)
        responder.answered.append(
            {
                "status": answer.status_code,
                "task_id": ti["task_id"],
                "run_id": ti["dag_run_id"],
                "subject": detail.get("subject"),
                "body": detail.get("body"),
                "assigned_users": detail.get("assigned_users"),
                "response": answer.json(),
            }
        )


@contextlib.contextmanager
def approval_responder(
    dag_id: str, *, choice: str = "Approve", user: str = "dba_alice", timeout: float = 300.0
) -> Iterator[Responder]:
    """Answer every pending approval of ``dag_id`` with ``choice`` as ``user`` while the block runs."""
    responder = Responder(dag_id=dag_id, choice=choice, user=user, timeout=timeout)
    thread = threading.Thread(target=_poll, args=(responder,), name=f"approve-{dag_id}", daemon=True)
    thread.start()
    try:
        yield responder
    finally:
        responder.stop.set()
        thread.join(timeout=10)
