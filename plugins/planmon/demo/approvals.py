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
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Responder:
    dag_id: str
    choice: str
    users: tuple[str, ...]  # tried in order on each pending approval until one is accepted
    timeout: float
    answered: list[dict[str, Any]] = field(default_factory=list)  # one per PATCH: status, task, body
    errors: list[str] = field(default_factory=list)  # also printed to stderr: a hung run shows why
    stop: threading.Event = field(default_factory=threading.Event)

    def error(self, message: str) -> None:
        self.errors.append(message)
        print(f"approval responder: {message}", file=sys.stderr, flush=True)

    def wait_answered(self, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answered) < count and time.monotonic() < deadline:
            time.sleep(0.2)


def _client(users: tuple[str, ...]) -> tuple[Any, dict[str, dict[str, str]]]:
    """A TestClient of the core API and an Authorization header per user (JWTs of the auth manager)."""
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"  # assigned users are enforced
    os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:admin" for u in users))
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app("core"))
    manager = get_auth_manager()
    tokens = {
        user: manager.generate_jwt(user=SimpleAuthManagerUser(username=user, role="ADMIN")) for user in users
    }
    return client, {user: {"Authorization": f"Bearer {token}"} for user, token in tokens.items()}


def _poll(responder: Responder) -> None:
    try:
        client, headers = _client(responder.users)
    except Exception as exc:  # report set-up failures to the test instead of hanging it
        responder.error(f"cannot start the API in-process: {exc!r}")
        return
    deadline = time.monotonic() + responder.timeout
    base = f"/api/v2/dags/{responder.dag_id}/dagRuns"
    while not responder.stop.is_set() and time.monotonic() < deadline:
        try:
            _answer_pending(client, headers, base, responder)
        except Exception as exc:  # e.g. a locked SQLite metadata DB: note it and poll again
            responder.error(f"polling failed: {exc!r}")
        time.sleep(0.3)


def _answer_pending(client: Any, headers: dict[str, dict[str, str]], base: str, responder: Responder) -> None:
    first = headers[responder.users[0]]
    listing = client.get(f"{base}/~/hitlDetails", params={"response_received": "false"}, headers=first)
    if listing.status_code != 200:
        responder.error(f"GET hitlDetails -> {listing.status_code}: {listing.text[:300]}")
        return
    for detail in listing.json()["hitl_details"]:
        ti = detail["task_instance"]
        url = f"{base}/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails"
        for user in responder.users:  # in order, until one is accepted (a non-assigned user gets 403)
            answer = client.patch(url, json={"chosen_options": [responder.choice]}, headers=headers[user])
            responder.answered.append(
                {
                    "status": answer.status_code,
                    "user": user,
                    "task_id": ti["task_id"],
                    "run_id": ti["dag_run_id"],
                    "subject": detail.get("subject"),
                    "body": detail.get("body"),
                    "assigned_users": detail.get("assigned_users"),
                    "response": answer.json(),
                }
            )
            if answer.status_code == 200:
                break


@contextlib.contextmanager
def approval_responder(
    dag_id: str, *, choice: str = "Approve", user: str | tuple[str, ...] = "dba_alice", timeout: float = 300.0
) -> Iterator[Responder]:
    """Answer every pending approval of ``dag_id`` with ``choice`` while the block runs, as ``user``
    (or as each of several users in turn until one is accepted: a non-assigned user gets 403)."""
    users = (user,) if isinstance(user, str) else tuple(user)
    responder = Responder(dag_id=dag_id, choice=choice, users=users, timeout=timeout)
    thread = threading.Thread(target=_poll, args=(responder,), name=f"approve-{dag_id}", daemon=True)
    thread.start()
    try:
        yield responder
    finally:
        responder.stop.set()
        thread.join(timeout=10)
