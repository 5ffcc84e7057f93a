"""Probe alerts through the dispatcher: routed like regressions, recorded with their probe_result_id,
sent once per key and channel, and a failed delivery retried by the regular dispatch with its link
to the result intact."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from planmon.alerting.dispatch import Dispatcher
from planmon.alerting.routing import load_routing
from planmon.model import TargetSpec
from planmon.model.probes import ProbeDefinition
from planmon.probes.service import probe_alerts
from planmon.store import Repository
from planmon.store.alerts import AlertStore
from planmon.store.probes import ProbeStore
from tests.unit.alerting.test_dispatch import Clock, FailingChannel, Recorder

T0 = datetime(2026, 11, 27, 12, 0)


def test_probe_alert_routing_dedup_and_retry(repository: Repository, tmp_path: Path) -> None:
    target = repository.add_target(
        TargetSpec(name="orders-prod", engine="postgres", conn_id="c", environment="prod")
    )
    store = ProbeStore(repository)
    definition = ProbeDefinition(name="backlog", sql="SELECT 1", operator=">", critical=5, kind="health")
    store.sync([(definition, "x.yaml")])
    stored = store.get("backlog")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "channels:\n  hook: {type: webhook, url: 'http://127.0.0.1:9/hook'}\n"
        "routes:\n"
        "  - match: {environment: prod, kinds: [probe], min_severity: high}\n    channels: [hook, log]\n"
        "  - match: {kinds: [plan_change]}\n    channels: [log]\n"
    )
    routing = load_routing(routes)
    log, hook = Recorder("log"), FailingChannel("hook")

    def dispatcher(channels: dict[str, object]) -> Dispatcher:
        return Dispatcher(
            AlertStore(repository), routing, channels,  # type: ignore[arg-type]
            cooldown=timedelta(0), max_attempts=3, clock=Clock(T0),
        )  # fmt: skip

    def result(minute: int, value: float) -> list[object]:
        at = T0 + timedelta(minutes=minute)
        row = store.record_result(
            probe_id=stored.id, target_id=target.id, run_at=at, status="critical" if value > 5 else "ok",
            value=value, duration_ms=1.0, error=None, plan_shape_hash=None,
        )  # fmt: skip
        return probe_alerts(stored, target, row, store.previous_results(stored.id, target.id, before=at))  # type: ignore[return-value]

    first = result(0, 9)
    sent = dispatcher({"log": log, "hook": hook}).send_probe_alerts(first)  # type: ignore[arg-type]
    assert (sent.sent, sent.failed) == (1, 1)
    records = {r.channel: r for r in AlertStore(repository).all_alerts()}
    assert records["log"].status == "sent" and records["hook"].status == "failed"
    assert records["hook"].probe_result_id == records["log"].probe_result_id == first[0].probe_result_id  # type: ignore[attr-defined]
    assert "hunter2" not in (records["hook"].last_error or "")
    assert log.sent[0].title == "[CRITICAL] probe backlog on orders-prod: value 9 > 5"

    again = dispatcher({"log": log, "hook": hook}).send_probe_alerts(result(5, 12))  # type: ignore[arg-type]
    assert again.skipped == {"dedup": 2} and len(log.sent) == 1  # still breached: nothing new

    retried = dispatcher({"log": log, "hook": Recorder("hook")}).dispatch()  # planmon_alert's retry path
    assert (retried.retried, retried.sent) == (1, 1)
    records = {r.channel: r for r in AlertStore(repository).all_alerts()}
    assert records["hook"].status == "sent" and records["hook"].attempts == 2
    assert records["hook"].probe_result_id == first[0].probe_result_id  # type: ignore[attr-defined]

    quiet = dispatcher({"log": log, "hook": hook}).send_probe_alerts(result(10, 1))  # type: ignore[arg-type]
    assert quiet.as_dict()["sent"] == 0 and len(AlertStore(repository).all_alerts()) == 2


def test_an_alert_not_sent_goes_out_with_the_next_result_of_the_streak(repository: Repository) -> None:
    """planmon_probes stores a result before alerting: if alerting could not run, the next run sends."""
    target = repository.add_target(TargetSpec(name="t", engine="postgres", conn_id="c"))
    store = ProbeStore(repository)
    store.sync([(ProbeDefinition(name="p", sql="SELECT 1", operator=">", critical=5), "x.yaml")])
    stored = store.get("p")
    raised = []
    for minute in (0, 5):
        at = T0 + timedelta(minutes=minute)
        row = store.record_result(
            probe_id=stored.id, target_id=target.id, run_at=at, status="critical", value=9.0,
            duration_ms=1.0, error=None, plan_shape_hash=None,
        )  # fmt: skip
        raised.append(
            probe_alerts(stored, target, row, store.previous_results(stored.id, target.id, before=at))
        )
    assert raised[0][0].message.dedup_key == raised[1][0].message.dedup_key  # one streak, one key
    log = Recorder("log")
    dispatcher = Dispatcher(
        AlertStore(repository), load_routing(None), {"log": log},  # type: ignore[dict-item]
        cooldown=timedelta(0), max_attempts=3, clock=Clock(T0),
    )  # fmt: skip
    assert dispatcher.send_probe_alerts(raised[1]).sent == 1  # the first run's alert never went out
    assert dispatcher.send_probe_alerts(raised[1]).sent == 0
