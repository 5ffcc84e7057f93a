"""A real ``airflow api-server`` on 127.0.0.1 for end-to-end tests: its own AIRFLOW_HOME and SQLite
metadata DB (migrated), the simple auth manager with a known password, planmon's repository given
by URL. Stopped (its whole process group, which this harness created) when the context exits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import PROJECT_ROOT

AIRFLOW = PROJECT_ROOT / ".venv" / "bin" / "airflow"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
USER, PASSWORD = "admin", "planmon-e2e-password"
START_TIMEOUT_S = 180


@dataclass(frozen=True)
class AirflowServer:
    base_url: str
    home: Path

    def token(self) -> str:
        """A JWT from the simple auth manager's ``POST /auth/token``."""
        body = json.dumps({"username": USER, "password": PASSWORD}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.loads(response.read())["access_token"])

    def status(self, path: str, token: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"{self.base_url}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(home: Path, port: int, planmon_url: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
    environment.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "PLANMON_REPOSITORY_URL": planmon_url,
            "PLANMON_HOME": str(home / "planmon"),
        }
    )
    return environment


@contextmanager
def airflow_api_server(home: Path, planmon_url: str) -> Iterator[AirflowServer]:
    """Migrate a fresh metadata DB, start the API server, wait until healthy; stop it afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = free_port()
    environment = _environment(home, port, planmon_url)
    migrate = subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-3000:]}")
    log = (home / "api-server.log").open("wb")
    process = subprocess.Popen(
        [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = AirflowServer(f"http://127.0.0.1:{port}", home)
    try:
        _wait_healthy(server, process, home / "api-server.log")
        yield server
    finally:
        _stop(process)
        log.close()


def _wait_healthy(server: AirflowServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"airflow api-server exited with {process.returncode}: {log.read_text()[-3000:]}"
            )
        try:
            if server.status("/api/v2/monitor/health") == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(
        f"airflow api-server not healthy within {START_TIMEOUT_S} s: {log.read_text()[-3000:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (uvicorn and its worker), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # a worker of the group that outlived its parent
        os.killpg(process.pid, signal.SIGKILL)
