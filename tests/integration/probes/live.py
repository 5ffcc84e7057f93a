"""Helpers of the live probe tests: a repository, a dispatcher writing to a log file, a probe runner,
and the least-privileged probe logins of docs/probes.md ("The probe login") on the throwaway servers."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mysql.connector
import psycopg
from psycopg import sql as pgsql
from sqlalchemy import select
from sqlalchemy.engine import URL

from planmon.alerting.dispatch import Dispatcher
from planmon.alerting.routing import RoutingConfig, build_channels
from planmon.config import load_settings
from planmon.model import Target, TargetSpec
from planmon.model.probes import ProbeDefinition
from planmon.probes.service import run_and_record
from planmon.store import Repository
from planmon.store.alerts import AlertStore
from planmon.store.connection import create_repository_engine
from planmon.store.probes import ProbeStore
from planmon.store.schema import alert, probe_result
from tests.harness.servers import MariaDBServer, PostgresServer

PROBE_ROLE = "planmon_probe"


def _no_connections(conn_id: str) -> Any:
    raise AssertionError(f"the log channel needs no connection (asked for {conn_id!r})")


@dataclass
class ProbeBench:
    """One repository, one target, and a way to run probe definitions on it at given times."""

    repository: Repository
    target: Target
    connect: Callable[[str | None], Any]
    alert_log: Path

    @property
    def store(self) -> ProbeStore:
        return ProbeStore(self.repository)

    def dispatcher(self) -> Dispatcher:
        routing = RoutingConfig()
        channels = build_channels(
            routing,
            default_log_path=self.alert_log,
            http_timeout=5,
            smtp_timeout=5,
            connection_getter=_no_connections,
        )
        return Dispatcher(
            AlertStore(self.repository), routing, channels, cooldown=timedelta(0), max_attempts=3
        )

    def run(self, definition: ProbeDefinition, run_at: datetime) -> dict[str, Any]:
        self.store.sync([(definition, "test")])
        stored = self.store.get(definition.name)
        return run_and_record(
            stored,
            self.target,
            run_at,
            connect_for=lambda _target: self.connect,
            settings=load_settings(),
            store=self.store,
            dispatcher=self.dispatcher(),
        )

    def alerts(self) -> list[dict[str, Any]]:
        with self.repository.engine.connect() as connection:
            return [dict(row) for row in connection.execute(select(alert).order_by(alert.c.id)).mappings()]

    def results(self) -> list[dict[str, Any]]:
        with self.repository.engine.connect() as connection:
            statement = select(probe_result).order_by(probe_result.c.run_at)
            return [dict(row) for row in connection.execute(statement).mappings()]

    def logged_alerts(self) -> list[dict[str, Any]]:
        if not self.alert_log.exists():
            return []
        return [json.loads(line) for line in self.alert_log.read_text(encoding="utf-8").splitlines()]


def make_bench(tmp_path: Path, *, engine: str, connect: Callable[[str | None], Any]) -> ProbeBench:
    repository = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    repository.init_schema()
    target = repository.add_target(TargetSpec(name=f"{engine}-live", engine=engine, conn_id="unused"))
    return ProbeBench(repository, target, connect, tmp_path / "alerts.log")


def probe(**fields: Any) -> ProbeDefinition:
    return ProbeDefinition.model_validate({"name": "live_probe", "kind": "custom", **fields})


def documented_setup(heading: str) -> list[str]:
    """The statements of docs/probes.md's set-up block under ``heading`` ("PostgreSQL (13+):"), comments
    dropped, so the live tests create exactly the login the documentation tells a DBA to create."""
    docs = (Path(__file__).parents[3] / "docs" / "probes.md").read_text(encoding="utf-8")
    block = docs.split(f"\n{heading}\n", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    lines = [line.split("--", 1)[0].strip() for line in block.splitlines()]
    return [line.rstrip(";") for line in lines if line]


def postgres_probe_role(server: PostgresServer, database: str, *, role: str = PROBE_ROLE) -> str:
    """docs/probes.md's PostgreSQL probe role, set up for ``database`` (its ``shop``) as the docs say;
    its libpq connection string there. The password is generated (the cluster trusts loopback anyway)."""
    password = secrets.token_urlsafe(24)
    connection = psycopg.connect(server.dsn(), autocommit=True)
    try:
        for documented in documented_setup("PostgreSQL (13+):"):
            statement = re.sub(r"\bshop\b", database, documented).replace(PROBE_ROLE, role)
            if statement.startswith("\\c "):
                connection.close()
                connection = psycopg.connect(server.dsn(statement.split()[1]), autocommit=True)
                continue
            exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if statement.startswith("CREATE ROLE") and exists:  # the cluster lives for the whole session
                continue
            literal = pgsql.Literal(password).as_string(connection)
            connection.execute(statement.replace("'...'", literal))
    finally:
        connection.close()
    return postgres_dsn(server, database, role)


def postgres_dsn(server: PostgresServer, database: str, role: str) -> str:
    return f"host={server.host} port={server.port} user={role} dbname={database}"


@dataclass(frozen=True)
class MariaDBLogin:
    """A login on the throwaway MariaDB with a password generated for this test run (never printed)."""

    server: MariaDBServer
    user: str
    password: str = field(repr=False)

    def connect_kwargs(self, database: str | None = None) -> dict[str, object]:
        return {**self.server.connect_kwargs(database), "user": self.user, "password": self.password}

    def connect(self, database: str | None = None) -> Any:
        return mysql.connector.connect(**self.connect_kwargs(database))


def mariadb_login(server: MariaDBServer, user: str, *grants: str) -> MariaDBLogin:
    """A fresh login ``user``@``%`` with a generated password and ``grants`` (``{user}`` in a grant is
    the account), replacing any earlier one of that name."""
    login = MariaDBLogin(server, user, secrets.token_urlsafe(24))
    account = f"'{user}'@'%'"
    connection = mysql.connector.connect(**server.connect_kwargs(), autocommit=True)
    try:
        cursor = connection.cursor()
        cursor.execute(f"CREATE OR REPLACE USER {account} IDENTIFIED BY %s", (login.password,))
        for grant in grants:
            cursor.execute(grant.format(user=account))
    finally:
        connection.close()
    return login


def mariadb_probe_login(server: MariaDBServer, database: str) -> MariaDBLogin:
    """docs/probes.md's MariaDB / MySQL probe login, set up for ``database`` (its ``shop``) as the docs
    say, with a generated password."""
    statements = [
        re.sub(r"\bshop\b", database, s) for s in documented_setup("MariaDB (10.6+) / MySQL (8.0+):")
    ]
    create, grants = statements[0], statements[1:]
    assert create.startswith(f"CREATE USER '{PROBE_ROLE}'@'%' IDENTIFIED BY '...'"), create
    account = f"'{PROBE_ROLE}'@'%'"
    return mariadb_login(server, PROBE_ROLE, *(grant.replace(account, "{user}") for grant in grants))
