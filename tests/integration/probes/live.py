"""Helpers of the live probe tests: a repository, a dispatcher writing to a log file, a probe runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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
