"""Task callables of ``planmon_alert``: dispatch, daily digest, open-regression metrics.

Settings, the routing file and channels are read when a task starts, never when the DAG is parsed.
A channel that fails is recorded in the ``alert`` table and does not fail the task; a bad routing
file or an unreachable repository does (that is configuration, and Airflow should show it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from planmon.airflow.connections import get_connection, open_repository
from planmon.alerting.dispatch import Dispatcher, DispatchResult
from planmon.alerting.messages import RunLinks
from planmon.alerting.routing import build_channels, describe_routes, load_routing
from planmon.alerting.settings import load_alert_settings, load_planmon_settings
from planmon.model import KINDS, SEVERITIES
from planmon.store.alerts import AlertStore

log = logging.getLogger(__name__)

METRIC_PREFIX = "planmon.alert"
OPEN_METRIC = "planmon.regressions.open"


@contextmanager
def open_dispatcher(dag_id: str | None, run_id: str | None) -> Iterator[Dispatcher]:
    """A Dispatcher over the configured routing, channels and repository (also used by probes)."""
    settings = load_planmon_settings()
    alert_settings = load_alert_settings()
    routing = load_routing(alert_settings.routes)
    for line in describe_routes(routing):
        log.debug("alert route %s", line)
    channels = build_channels(
        routing,
        default_log_path=alert_settings.log_path or settings.resolved_home / "alerts.log",
        http_timeout=alert_settings.http_timeout_seconds,
        smtp_timeout=alert_settings.smtp_timeout_seconds,
        connection_getter=get_connection,
    )
    with open_repository(settings) as repository:
        repository.require_schema()
        yield Dispatcher(
            AlertStore(repository),
            routing,
            channels,
            cooldown=timedelta(minutes=settings.alert_cooldown_minutes),
            max_attempts=alert_settings.max_attempts,
            links=RunLinks(base_url=settings.base_url, dag_id=dag_id, run_id=run_id),
        )


def dispatch_alerts(dag_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Retry undelivered alerts and send new, escalated and due repeated ones, then remind waiting
    approvals whose reminder is due; return the counts (the reminders' under ``reminders``)."""
    with open_dispatcher(dag_id, run_id) as dispatcher:
        result = dispatcher.dispatch()
        reminders = dispatcher.remind_approvals()
    emit_delivery_metrics(result, with_given_up=True)
    emit_delivery_metrics(reminders)
    return {**result.as_dict(), "reminders": reminders.as_dict()}


def send_digest(dag_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Send today's digest where it is configured, due and not yet recorded; return the counts."""
    with open_dispatcher(dag_id, run_id) as dispatcher:
        result = dispatcher.digest()
    emit_delivery_metrics(result)
    return result.as_dict()


def emit_open_regressions() -> dict[str, int]:
    """Gauges of open regressions by severity and kind (StatsD / OpenTelemetry when configured).

    Every known (severity, kind) pair is emitted, zeros included, so a gauge falls back to 0 when
    its regressions resolve. Each value goes out tagged (``planmon.regressions.open`` with tags
    severity, kind: OpenTelemetry, tagged StatsD) and under a flat name
    (``planmon.regressions.open.<severity>.<kind>``: plain StatsD drops tags).
    """
    from airflow.sdk.observability.stats import Stats

    settings = load_planmon_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        counts = AlertStore(repository).open_regression_counts()
    pairs = {(s, k) for s in SEVERITIES for k in KINDS} | set(counts)
    for severity, kind in sorted(pairs):
        value = counts.get((severity, kind), 0)
        Stats.gauge(OPEN_METRIC, value, tags={"severity": severity, "kind": kind})
        Stats.gauge(f"{OPEN_METRIC}.{_metric_part(severity)}.{_metric_part(kind)}", value)
    total = sum(counts.values())
    Stats.gauge(f"{OPEN_METRIC}.total", total)
    log.info("open regressions: %d (%s)", total, {f"{s}/{k}": n for (s, k), n in sorted(counts.items())})
    return {f"{severity}.{kind}": count for (severity, kind), count in sorted(counts.items())}


def emit_delivery_metrics(result: DispatchResult, *, with_given_up: bool = False) -> None:
    """Counters of deliveries by channel and outcome; after a dispatch, a gauge of alerts out of
    attempts (the digest does not count those)."""
    from airflow.sdk.observability.stats import Stats

    for (channel, status), count in result.outcomes.items():
        Stats.incr(f"{METRIC_PREFIX}.{status}", count, tags={"channel": channel})
    if with_given_up:
        Stats.gauge(f"{METRIC_PREFIX}.given_up", result.given_up)


def _metric_part(value: str) -> str:
    """A metric-name-safe word (letters, digits, '_', '-')."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in value) or "unknown"
