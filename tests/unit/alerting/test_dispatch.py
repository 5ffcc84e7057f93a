"""Dispatch over a real (SQLite) repository: dedup over repeated runs, escalation, cooldown, a failing
channel recorded and retried, idempotent rows, and the daily digest."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from planmon.alerting.channels import DeliveryError, LogFileChannel
from planmon.alerting.dispatch import Dispatcher
from planmon.alerting.messages import AlertMessage, RunLinks
from planmon.alerting.routing import RoutingConfig, load_routing
from planmon.store import Repository
from planmon.store.alerts import AlertStore
from planmon.store.schema import alert
from tests.unit.alerting.seed import T0, insert_regression, seed_target, update_regression


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FailingChannel:
    def __init__(self, name: str = "hook") -> None:
        self.name = name
        self.calls = 0

    def send(self, message: AlertMessage) -> None:
        self.calls += 1
        raise DeliveryError("webhook 'hook': http://user:hunter2@127.0.0.1:9/... unreachable: refused")


class Recorder:
    def __init__(self, name: str = "log") -> None:
        self.name = name
        self.sent: list[AlertMessage] = []

    def send(self, message: AlertMessage) -> None:
        self.sent.append(message)


def _routing(tmp_path: Path, channels: str = "[log]") -> RoutingConfig:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "channels:\n  hook: {type: webhook, url: 'http://127.0.0.1:9/hook'}\n"
        f"routes:\n  - channels: {channels}\n"
        "digest: {channels: [log], hour_utc: 7}\n"
    )
    return load_routing(path)


def _dispatcher(
    repository: Repository,
    routing: RoutingConfig,
    channels: dict[str, object],
    clock: Clock,
    *,
    cooldown_minutes: int = 240,
    max_attempts: int = 3,
) -> Dispatcher:
    return Dispatcher(
        AlertStore(repository),
        routing,
        channels,  # type: ignore[arg-type]
        cooldown=timedelta(minutes=cooldown_minutes),
        max_attempts=max_attempts,
        links=RunLinks(base_url="https://airflow.example.org", dag_id="planmon_alert", run_id="r1"),
        clock=clock,
    )


def _rows(repository: Repository) -> list[tuple[str, str, str, int]]:
    records = AlertStore(repository).all_alerts()
    return sorted((r.dedup_key, r.channel, r.status, r.attempts) for r in records)


@pytest.fixture
def seeded(repository: Repository) -> tuple[int, int]:
    target_id, queries, plans = seed_target(repository)
    first = insert_regression(repository, target_id, queries["q-4711"], plans=plans, severity="high")
    second = insert_regression(repository, target_id, queries["q-815"], kind="same_plan", severity="medium")
    return first, second


def test_dedup_over_repeated_runs(repository: Repository, seeded: tuple[int, int], tmp_path: Path) -> None:
    first, second = seeded
    log_path = tmp_path / "alerts.log"
    channels = {"log": LogFileChannel(path=log_path)}
    clock = Clock(T0 + timedelta(minutes=5))
    dispatcher = _dispatcher(repository, _routing(tmp_path), channels, clock)

    result = dispatcher.dispatch()
    clock.now += timedelta(minutes=10)
    again = dispatcher.dispatch()

    assert result.sent == 2
    assert again.sent == 0 and again.skipped["dedup"] == 2
    assert _rows(repository) == [
        (f"regression:{first}:high", "log", "sent", 1),
        (f"regression:{second}:medium", "log", "sent", 1),
    ]
    assert len(log_path.read_text().splitlines()) == 2


def test_escalation_sends_once_and_deescalation_does_not(
    repository: Repository, seeded: tuple[int, int], tmp_path: Path
) -> None:
    first, _ = seeded
    recorder = Recorder()
    clock = Clock(T0 + timedelta(minutes=5))
    dispatcher = _dispatcher(repository, _routing(tmp_path), {"log": recorder}, clock)
    dispatcher.dispatch()

    update_regression(repository, first, severity="critical", last_detected=T0 + timedelta(minutes=20))
    clock.now = T0 + timedelta(minutes=25)
    assert dispatcher.dispatch().sent == 1
    assert recorder.sent[-1].dedup_key == f"regression:{first}:critical"
    assert "(escalated)" in recorder.sent[-1].title
    assert "baseline executions 120, current executions 340" in recorder.sent[-1].text
    assert "Rule: cpu_us mean x3.25" in recorder.sent[-1].text
    assert "customer_id] = ? AND [email] = ?" in recorder.sent[-1].text

    update_regression(repository, first, severity="low", last_detected=T0 + timedelta(minutes=40))
    clock.now = T0 + timedelta(minutes=45)
    result = dispatcher.dispatch()
    assert result.sent == 0 and result.skipped["not_escalated"] == 1


def test_cooldown_then_repeat_only_when_detected_again(
    repository: Repository, seeded: tuple[int, int], tmp_path: Path
) -> None:
    first, second = seeded
    recorder = Recorder()
    clock = Clock(T0 + timedelta(minutes=5))
    dispatcher = _dispatcher(repository, _routing(tmp_path), {"log": recorder}, clock, cooldown_minutes=60)
    dispatcher.dispatch()

    update_regression(repository, first, last_detected=T0 + timedelta(minutes=30))  # detected again
    clock.now = T0 + timedelta(minutes=35)
    result = dispatcher.dispatch()
    assert result.sent == 0 and result.skipped["cooldown"] == 1 and result.skipped["dedup"] == 1

    clock.now = T0 + timedelta(minutes=70)  # cooldown over: first repeats, second was not re-detected
    result = dispatcher.dispatch()
    assert result.sent == 1
    assert recorder.sent[-1].details["reason"] == "repeat"
    assert _rows(repository) == [
        (f"regression:{first}:high", "log", "sent", 1),
        (f"regression:{second}:medium", "log", "sent", 1),
    ]
    assert AlertStore(repository).alerts_with_key(f"regression:{first}:high")[0].sent_at == clock.now


def test_failing_channel_is_recorded_retried_and_given_up(
    repository: Repository, seeded: tuple[int, int], tmp_path: Path
) -> None:
    first, second = seeded
    recorder, failing = Recorder(), FailingChannel()
    clock = Clock(T0 + timedelta(minutes=5))
    dispatcher = _dispatcher(
        repository,
        _routing(tmp_path, "[hook, log]"),
        {"log": recorder, "hook": failing},
        clock,
        max_attempts=2,
    )

    result = dispatcher.dispatch()
    assert (result.sent, result.failed) == (2, 2)
    failed = [r for r in AlertStore(repository).all_alerts() if r.channel == "hook"]
    assert [(r.status, r.attempts) for r in failed] == [("failed", 1), ("failed", 1)]
    assert failed[0].last_error is not None and "unreachable: refused" in failed[0].last_error
    assert "hunter2" not in failed[0].last_error
    assert failed[0].payload["dedup_key"] == failed[0].dedup_key

    clock.now += timedelta(minutes=30)
    result = dispatcher.dispatch()
    assert (result.retried, result.sent, result.failed, result.given_up) == (2, 0, 2, 2)
    clock.now += timedelta(minutes=30)
    result = dispatcher.dispatch()
    assert (result.retried, result.failed, result.given_up) == (0, 0, 2)
    assert failing.calls == 4
    assert len(recorder.sent) == 2  # the working channel delivered once per regression
    assert _rows(repository) == [
        (f"regression:{first}:high", "hook", "failed", 2),
        (f"regression:{first}:high", "log", "sent", 1),
        (f"regression:{second}:medium", "hook", "failed", 2),
        (f"regression:{second}:medium", "log", "sent", 1),
    ]


def test_a_failed_delivery_recovers_on_retry(
    repository: Repository, seeded: tuple[int, int], tmp_path: Path
) -> None:
    clock = Clock(T0 + timedelta(minutes=5))
    routing = _routing(tmp_path)
    _dispatcher(repository, routing, {"log": FailingChannel("log")}, clock).dispatch()
    recorder = Recorder()
    clock.now += timedelta(minutes=30)
    result = _dispatcher(repository, routing, {"log": recorder}, clock).dispatch()
    assert (result.retried, result.sent) == (2, 2)
    assert [r.status for r in AlertStore(repository).all_alerts()] == ["sent", "sent"]
    assert [r.attempts for r in AlertStore(repository).all_alerts()] == [2, 2]
    assert all(r.last_error is None for r in AlertStore(repository).all_alerts())


def test_resolved_regressions_are_not_alerted(repository: Repository, tmp_path: Path) -> None:
    target_id, queries, _ = seed_target(repository)
    resolved = insert_regression(repository, target_id, queries["q-4711"])
    update_regression(repository, resolved, status="resolved", open_key=str(resolved))
    recorder = Recorder()
    result = _dispatcher(repository, _routing(tmp_path), {"log": recorder}, Clock(T0)).dispatch()
    assert result.sent == 0 and recorder.sent == []


def test_digest_once_per_day_after_its_hour(
    repository: Repository, seeded: tuple[int, int], tmp_path: Path
) -> None:
    recorder = Recorder()
    clock = Clock(datetime(2026, 11, 21, 6, 30))
    dispatcher = _dispatcher(repository, _routing(tmp_path), {"log": recorder}, clock)
    assert dispatcher.digest().skipped["before_digest_hour"] == 1
    clock.now = datetime(2026, 11, 21, 7, 5)
    assert dispatcher.digest().sent == 1
    assert dispatcher.digest().sent == 0
    assert recorder.sent[0].dedup_key == "digest:2026-11-21"
    assert "2 open regression(s): 1 medium, 1 high" in recorder.sent[0].text
    clock.now = datetime(2026, 11, 22, 7, 5)
    assert dispatcher.digest().sent == 1
    with repository.engine.connect() as connection:
        digests = connection.execute(
            select(func.count()).select_from(alert).where(alert.c.dedup_key.like("digest:%"))
        ).scalar_one()
    assert digests == 2


def test_no_digest_without_configuration(repository: Repository) -> None:
    dispatcher = _dispatcher(repository, RoutingConfig(), {"log": Recorder()}, Clock(T0))
    assert dispatcher.digest().skipped["digest_not_configured"] == 1


def test_open_regression_counts(repository: Repository, seeded: tuple[int, int]) -> None:
    assert AlertStore(repository).open_regression_counts() == {
        ("high", "plan_change"): 1,
        ("medium", "same_plan"): 1,
    }
