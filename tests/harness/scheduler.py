"""A live Airflow for end-to-end tests, run the way production runs it: scheduler, dag-processor,
triggerer and API server as separate processes (plus two Celery workers under CeleryExecutor), on a
PostgreSQL metadata DB, with the project's dags/ and planmon's plugin.

- Its own AIRFLOW_HOME (the caller's directory: component logs, task logs and pid files stay there
  for the test to read; the tail of every component log is printed when the block fails).
- Every component in its own process group, stopped with SIGTERM (SIGKILL after a grace period), the
  workers and scheduler before the API server their tasks talk to.
- Everything listens on 127.0.0.1 only: the API server is told so; the scheduler, triggerer and
  workers would start log servers on all addresses (``airflow.utils.serve_logs`` binds ``""``, with
  no host setting), so they run with ``--skip-serve-logs``: the API server reads task logs from the
  shared log folder. :meth:`AirflowCluster.listeners` reports what the cluster listens on.
- CeleryExecutor: Redis at 127.0.0.1:6379 in a database of its own (the first empty one, claimed
  with a marker key; flushed when done, and no other), the result backend on the metadata DB, two
  workers with their own ``-H`` names, pid files and log-server ports, each recording its name as
  the hostname of the task instances it runs (tests/harness/worker_hostname.py).
- Credentials come only from the environment the caller passes (``AIRFLOW_CONN_*``); the simple
  auth manager's password is generated per cluster and the JWT secret is random.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import PROJECT_ROOT
from tests.harness.airflow_server import AIRFLOW, SIMPLE_AUTH_MANAGER, free_port
from tests.harness.worker_hostname import VARIABLE as WORKER_HOSTNAME_VARIABLE

LOCAL_EXECUTOR, CELERY_EXECUTOR = "LocalExecutor", "CeleryExecutor"
EXECUTORS = (LOCAL_EXECUTOR, CELERY_EXECUTOR)
USER = "admin"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_CLAIM_KEY = "planmon-harness:claim"
WORKER_NAMES = ("planmon-worker-1", "planmon-worker-2")
WORKER_CONCURRENCY = 2
PARALLELISM = 4
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 45
TAIL_CHARS = 6000


class ClusterError(RuntimeError):
    """The cluster would not start, or a command against it failed; the message has the output."""


@dataclass
class Component:
    """One Airflow process (and whatever it starts, in its own process group)."""

    name: str
    command: list[str]
    log: Path
    environment: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.environment, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def tail(self, chars: int = TAIL_CHARS) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the leader until ``deadline``, then SIGKILL what is left of the group."""
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):  # the leader lingering, or a child it orphaned
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket of one of the cluster's processes (from ``ss -ltnp``)."""

    address: str
    port: int
    process: str
    pid: int

    @property
    def loopback_only(self) -> bool:
        return self.address in ("127.0.0.1", "[::1]", "::1")


@dataclass
class AirflowCluster:
    base_url: str
    home: Path
    executor: str
    environment: dict[str, str]
    password: str
    components: list[Component] = field(default_factory=list)
    worker_hostnames: tuple[str, ...] = ()
    _token: str | None = None

    # -- REST API ---------------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT from the simple auth manager's ``POST /auth/token`` (cached)."""
        if self._token is None:
            body = {"username": USER, "password": self.password}
            self._token = str(self._call("POST", "/auth/token", body, token=None)["access_token"])
        return self._token

    def api(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """``/api/v2`` + path with the bearer token; the parsed JSON answer (ClusterError otherwise)."""
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        return self._call(method, f"/api/v2{path}{query}", body, token=self.token())

    def _call(self, method: str, path: str, body: Any, *, token: str | None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise ClusterError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from exc
        return json.loads(text) if text else None

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": paused})

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        return list(self.api("GET", path, limit=100)["task_instances"])

    def backfill(self, dag_id: str, start: datetime, end: datetime, *, timeout: float) -> int:
        """Backfill ``dag_id`` over the data intervals starting in [start, end] (UTC-naive),
        reprocessing completed runs; wait until the scheduler completed it; its id."""
        before = {b["id"] for b in self.api("GET", "/backfills", dag_id=dag_id)["backfills"]}
        self.airflow(
            "backfill", "create", "--dag-id", dag_id, "--from-date", start.isoformat() + "+00:00",
            "--to-date", end.isoformat() + "+00:00", "--reprocess-behavior", "completed",
        )  # fmt: skip
        backfills = self.api("GET", "/backfills", dag_id=dag_id)["backfills"]
        created = [b["id"] for b in backfills if b["id"] not in before]
        if len(created) != 1:
            raise ClusterError(f"backfill create made {len(created)} backfills of {dag_id}: {backfills}")
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/backfills/{created[0]}")["completed_at"] is None:
            if time.monotonic() > deadline:
                raise ClusterError(f"backfill {created[0]} of {dag_id} not completed after {timeout:.0f} s")
            time.sleep(2.0)
        return int(created[0])

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/v2/monitor/health", None, token=None))

    # -- command line, logs -----------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` command against this cluster; its output (ClusterError on failure)."""
        result = subprocess.run(
            [str(AIRFLOW), *args], env=self.environment, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}"
            )
        return result.stdout

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        """Every attempt's log of one task instance, from the shared log folder."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        files = sorted(folder.glob("attempt=*.log"))
        if not files:
            return f"(no log under {folder})"
        return "\n".join(f"--- {path.name}\n{_readable(path.read_text(errors='replace'))}" for path in files)

    def diagnostics(self) -> str:
        """The tail of every component's log, for a failing test's output."""
        parts = []
        for component in self.components:
            state = component.returncode()
            status = "running" if state is None else f"exited {state}"
            parts.append(f"===== {component.name} ({status}): {component.log}\n{component.tail()}")
        return "\n".join(parts)

    def pids(self) -> set[int]:
        """Every live process in the components' process groups."""
        groups = {c.process.pid for c in self.components if c.process is not None}
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) in groups:  # fields after the command: state, ppid, pgrp, ...
                found.add(int(stat.parent.name))
        return found

    def listeners(self) -> list[Listener]:
        """The TCP sockets the cluster's processes listen on (``ss -ltnpH``)."""
        output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
        ours = self.pids()
        found = []
        for line in output.splitlines():
            columns = line.split()
            if len(columns) < 6:
                continue
            address, _, port = columns[3].rpartition(":")
            for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
                if int(pid) in ours:
                    found.append(Listener(address, int(port), name, int(pid)))
        return found


def _readable(log: str) -> str:
    """A task log's JSON lines as ``time level event``, exceptions with their last frames."""
    lines = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        lines.append(f"{record.get('timestamp', '')} {record.get('level', '')} {record.get('event', '')}")
        for error in record.get("error_detail") or []:
            frames = [f"{f['filename']}:{f['lineno']} {f['name']}" for f in error.get("frames", [])[-4:]]
            lines.append(f"    {error.get('exc_type')}: {error.get('exc_value')}")
            lines.extend(f"      at {frame}" for frame in frames)
    return "\n".join(lines)[-TAIL_CHARS:]


# -- start and stop -------------------------------------------------------------------------------


@contextmanager
def airflow_cluster(
    home: Path,
    *,
    executor: str,
    metadata_url: str,
    result_backend_url: str,
    environment: Mapping[str, str] | None = None,
) -> Iterator[AirflowCluster]:
    """Migrate the metadata DB at ``metadata_url`` (``postgresql+psycopg://...``), start every
    component, wait until all are healthy; stop them all afterwards. ``environment``: what the
    components get on top of Airflow's own settings (planmon's settings, ``AIRFLOW_CONN_*``)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
    home.mkdir(parents=True, exist_ok=True)
    with _redis_database(executor) as broker_url:
        cluster = _prepare(
            home, executor, metadata_url, broker_url=broker_url, result_backend_url=result_backend_url,
            extra=environment or {},
        )  # fmt: skip
        try:
            for component in cluster.components:
                component.start()
            _wait_ready(cluster)
            yield cluster
        except BaseException:
            sys.stderr.write(f"\nAirflow cluster in {home} failed; logs:\n{cluster.diagnostics()}\n")
            raise
        finally:
            _stop(cluster.components)


def _prepare(
    home: Path,
    executor: str,
    metadata_url: str,
    *,
    broker_url: str | None,
    result_backend_url: str,
    extra: Mapping[str, str],
) -> AirflowCluster:
    password = secrets.token_urlsafe(16)
    passwords = home / "passwords.json"
    passwords.touch(mode=0o600)
    passwords.write_text(json.dumps({USER: password}))
    port = free_port()
    environment = _environment(home, port, executor, metadata_url, extra)
    if broker_url is not None:
        environment["AIRFLOW__CELERY__BROKER_URL"] = broker_url
        environment["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{result_backend_url}"
    cluster = AirflowCluster(f"http://127.0.0.1:{port}", home, executor, environment, password)
    _migrate(cluster)

    def component(name: str, *args: str, env: Mapping[str, str] | None = None) -> Component:
        return Component(name, [str(AIRFLOW), *args], home / f"{name}.log", {**environment, **(env or {})})

    cluster.components = [
        component("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        component("scheduler", "scheduler", "--skip-serve-logs"),
        component("dag-processor", "dag-processor"),
        component("triggerer", "triggerer", "--skip-serve-logs"),
    ]
    if executor == CELERY_EXECUTOR:
        python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        for name in WORKER_NAMES:
            worker_environment = {
                # not served (see the module doc), but two workers never share a port
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.harness.worker_hostname.worker_hostname",
                WORKER_HOSTNAME_VARIABLE: name,
                "PYTHONPATH": python_path,
            }
            command = ["celery", "worker", "-H", name, "--concurrency", str(WORKER_CONCURRENCY),
                       "--skip-serve-logs", "--pid", str(home / f"{name}.pid")]  # fmt: skip
            cluster.components.append(component(name, *command, env=worker_environment))
        cluster.worker_hostnames = WORKER_NAMES
    return cluster


def _environment(
    home: Path, port: int, executor: str, metadata_url: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The test process's environment without its Airflow and planmon settings, plus the cluster's."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PLANMON_"))}
    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # small and quick on a shared 2-core machine: few task slots, a fast scheduler loop, the
        # dags/ folder listed soon after start (files are parsed at once and then re-parsed only
        # every 30 s: the schedules are fixed when they are first parsed)
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        **extra,
    }


def _migrate(cluster: AirflowCluster) -> None:
    log = cluster.home / "db-migrate.log"
    with log.open("wb") as out:
        result = subprocess.run(
            [str(AIRFLOW), "db", "migrate"], env=cluster.environment, stdout=out, stderr=subprocess.STDOUT,
            timeout=600, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise ClusterError(f"airflow db migrate exited {result.returncode}: {log.read_text()[-TAIL_CHARS:]}")


def _wait_ready(cluster: AirflowCluster) -> None:
    """Until the API answers, the scheduler, triggerer and dag-processor heartbeat, workers are up."""
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting: list[str] = []
    while time.monotonic() < deadline:
        for component in cluster.components:
            if component.returncode() is not None:
                raise ClusterError(f"{component.name} exited {component.returncode()}:\n{component.tail()}")
        waiting = _not_ready(cluster)
        if not waiting:
            return
        time.sleep(1)
    raise ClusterError(f"not ready within {START_TIMEOUT_S} s: {', '.join(waiting)}")


def _not_ready(cluster: AirflowCluster) -> list[str]:
    try:
        health = cluster.health()
    except (OSError, ClusterError):
        return ["api-server"]
    waiting = [
        name
        for name in ("scheduler", "triggerer", "dag_processor")
        if (health.get(name) or {}).get("status") != "healthy"
    ]
    workers = [c for c in cluster.components if c.name in cluster.worker_hostnames]
    return waiting + [c.name for c in workers if f"@{c.name} ready." not in c.tail(200_000)]


def _stop(components: list[Component]) -> None:
    """Workers, scheduler and the rest first (they talk to the API server), then the API server."""
    first = [c for c in components if c.name != "api-server"]
    last = [c for c in components if c.name == "api-server"]
    for wave in (first, last):
        for component in wave:
            component.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for component in wave:
            component.wait_stopped(deadline)


# -- Redis ----------------------------------------------------------------------------------------


@contextmanager
def _redis_database(executor: str) -> Iterator[str | None]:
    """CeleryExecutor: a broker URL on the first empty Redis database, claimed with a marker key
    (another test run claims another); flushed afterwards, that database only. Else None."""
    if executor != CELERY_EXECUTOR:
        yield None
        return
    import redis

    claim = secrets.token_hex(8)
    for number in range(15, 0, -1):  # database 0 is everybody's default: never ours
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=10)
        try:
            if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, claim, nx=True, ex=6 * 3600):
                if client.dbsize() == 1:
                    break
                client.delete(REDIS_CLAIM_KEY)
        except redis.ResponseError:  # fewer databases configured than we tried
            continue
        except redis.ConnectionError as exc:
            raise ClusterError(f"no Redis at {REDIS_HOST}:{REDIS_PORT} for CeleryExecutor: {exc}") from exc
        client.close()
    else:
        raise ClusterError(f"no empty Redis database at {REDIS_HOST}:{REDIS_PORT} to claim for the broker")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        if client.get(REDIS_CLAIM_KEY) == claim.encode():
            client.flushdb()
        client.close()
