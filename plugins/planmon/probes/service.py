"""Probes end to end, without Airflow: which probes are due, run one, store its result, raise alerts.

- Due: ``planmon_probes`` runs on its own cron (default every 5 minutes); a probe is due in a run
  whose data interval ``(start, end]`` holds one of its own cron's fire times, and its result is
  keyed on the latest such time (``run_at``). Re-running a DAG run re-writes the same
  ``probe_result`` rows (natural key probe, target, run_at) and sends no alert twice.
- Alerts: a result that is not ``ok`` raises one alert per (probe, target, status, streak); a
  critical probe (``severity: critical`` with ``capture_plan``) whose plan shape differs from its
  previous captured shape raises a plan-change alert of its own, whatever its value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter  # type: ignore[import-untyped]

from planmon.alerting.dispatch import Dispatcher, ProbeAlert
from planmon.alerting.messages import (
    ProbeFacts,
    TargetInfo,
    build_probe_message,
    build_probe_plan_change_message,
)
from planmon.config import Settings
from planmon.engines.base import ConnectionFactory
from planmon.errors import PlanmonError
from planmon.model import Target
from planmon.model.probes import ProbeDefinition
from planmon.probes import evaluate
from planmon.probes.builtin import builtin_probes
from planmon.probes.definitions import load_probe_directory
from planmon.probes.runner import ProbeOutcome, run_probe
from planmon.store.probes import ProbeResultRow, ProbeStore, StoredProbe
from planmon.store.repository import as_utc_naive

log = logging.getLogger(__name__)

BUILTIN_SOURCE = "builtin"


def load_definitions(settings: Settings) -> list[tuple[ProbeDefinition, str]]:
    """Every probe planmon should know: the probe directory's files, then the built-ins."""
    loaded = load_probe_directory(settings.resolved_probes_dir)
    if settings.probes_builtin:
        names = {probe.name for probe, _ in loaded}
        loaded += [(probe, BUILTIN_SOURCE) for probe in builtin_probes() if probe.name not in names]
    return loaded


def sync_definitions(store: ProbeStore, settings: Settings) -> dict[str, int]:
    return store.sync(load_definitions(settings))


def due_run_at(schedule: str, start: datetime, end: datetime) -> datetime | None:
    """The latest fire time of ``schedule`` in ``(start, end]`` (UTC, naive), or None."""
    start, end = as_utc_naive(start), as_utc_naive(end)
    if end <= start:  # a trigger-style run (start == end) asks for "now": the fire time at end
        start = end - timedelta(microseconds=1)
    fire = croniter(schedule, end + timedelta(seconds=1)).get_prev(datetime)
    return fire if start < fire <= end else None


@dataclass(frozen=True, slots=True)
class PlannedRun:
    probe: str
    target: str
    run_at: datetime

    def as_dict(self) -> dict[str, str]:
        return {"probe": self.probe, "target": self.target, "run_at": self.run_at.isoformat()}


def plan_runs(
    probes: Sequence[StoredProbe], targets: Sequence[Target], start: datetime, end: datetime
) -> list[PlannedRun]:
    """(probe, target, run_at) for every enabled probe due in ``(start, end]`` on each target it selects."""
    runs = []
    for stored in probes:
        if not stored.enabled:
            continue
        run_at = due_run_at(stored.definition.schedule, start, end)
        if run_at is None:
            continue
        runs += [
            PlannedRun(stored.name, target.name, run_at)
            for target in targets
            if target.enabled and stored.definition.applies_to(target)
        ]
    return runs


def record_run(
    stored: StoredProbe,
    target: Target,
    run_at: datetime,
    *,
    connect_for: Callable[[Target], ConnectionFactory],
    settings: Settings,
    store: ProbeStore,
) -> tuple[dict[str, Any], list[ProbeAlert]]:
    """Run one probe on one target and store the result; (summary, the alerts it raises)."""
    probe = stored.definition
    try:
        connect = connect_for(target)
    except PlanmonError as exc:  # the connection id does not resolve: this probe's error
        outcome = ProbeOutcome(evaluate.ERROR, error=f"no connection: {exc}")
    else:
        outcome = run_probe(
            probe,
            target,
            connect,
            default_timeout_seconds=settings.probe_timeout_seconds,
            max_rows=settings.probe_max_rows,
            allow_privileged=target.name in settings.probes_allow_privileged,
            allowed_functions=settings.probe_extra_functions,
        )
    run_at = as_utc_naive(run_at)
    previous = store.previous_results(stored.id, target.id, before=run_at)
    row = store.record_result(
        probe_id=stored.id,
        target_id=target.id,
        run_at=run_at,
        status=outcome.status,
        value=outcome.value,
        duration_ms=outcome.duration_ms,
        error=_with_plan_error(outcome),
        plan_shape_hash=outcome.plan_shape_hash,
    )
    alerts = probe_alerts(stored, target, row, previous, breaching_rows=outcome.breaching_rows)
    summary = {
        "probe": probe.name,
        "target": target.name,
        "run_at": run_at.isoformat(),
        **outcome.as_dict(),
        "alerts_raised": [alert.message.dedup_key for alert in alerts],
        "delivery": None,
    }
    return summary, alerts


def run_and_record(
    stored: StoredProbe,
    target: Target,
    run_at: datetime,
    *,
    connect_for: Callable[[Target], ConnectionFactory],
    settings: Settings,
    store: ProbeStore,
    dispatcher: Dispatcher | None,
) -> dict[str, Any]:
    """:func:`record_run`, then send its alerts (when a dispatcher is given); a summary for XCom/logs.

    Alerts not sent (no dispatcher, or it failed) go out with the next result of the same streak:
    their key is the same and no delivery of it is recorded yet.
    """
    summary, alerts = record_run(
        stored, target, run_at, connect_for=connect_for, settings=settings, store=store
    )
    if dispatcher is not None and alerts:
        summary["delivery"] = dispatcher.send_probe_alerts(alerts).as_dict()
    return summary


def _with_plan_error(outcome: ProbeOutcome) -> str | None:
    """The error column: the probe's error, and why no plan was captured (when asked for)."""
    parts = [part for part in (outcome.error, outcome.plan_error) if part]
    return "; ".join(parts) or None


def probe_alerts(
    stored: StoredProbe,
    target: Target,
    row: ProbeResultRow,
    previous: Sequence[ProbeResultRow],
    *,
    breaching_rows: tuple[str, ...] = (),
) -> list[ProbeAlert]:
    """The alerts ``row`` raises, given the earlier results of the same probe and target (newest first)."""
    probe = stored.definition
    info = TargetInfo(
        name=target.name, engine=target.engine, environment=target.environment, tags=target.tags
    )
    facts = ProbeFacts(
        probe_id=stored.id,
        target_id=target.id,
        probe_name=probe.name,
        probe_kind=probe.kind,
        description=probe.description,
        sql=probe.sql_for(target.engine),
        operator=probe.operator,
        warning=probe.warning,
        critical=probe.critical,
        result_id=row.id,
        run_at=row.run_at,
        status=row.status,
        value=row.value,
        duration_ms=row.duration_ms,
        error=row.error,
        since=streak_start(row, previous),
        breaching_rows=breaching_rows,
    )
    alerts = []
    if row.status != evaluate.OK:
        alerts.append(ProbeAlert(build_probe_message(facts, info), info, row.id))
    changed_from = _previous_plan(previous) if probe.plan_change_alerts and row.plan_shape_hash else None
    if changed_from is not None and changed_from.plan_shape_hash != row.plan_shape_hash:
        message = build_probe_plan_change_message(
            facts,
            info,
            previous_hash=str(changed_from.plan_shape_hash),
            current_hash=str(row.plan_shape_hash),
            previous_run_at=changed_from.run_at,
        )
        log.warning(
            "probe %s on %s: plan shape changed %s -> %s",
            probe.name,
            target.name,
            str(changed_from.plan_shape_hash)[:12],
            str(row.plan_shape_hash)[:12],
        )
        alerts.append(ProbeAlert(message, info, row.id))
    return alerts


def streak_start(row: ProbeResultRow, previous: Sequence[ProbeResultRow]) -> datetime:
    """When the uninterrupted run of ``row.status`` that ``row`` belongs to began."""
    since = row.run_at
    for earlier in previous:
        if earlier.status != row.status:
            break
        since = earlier.run_at
    return since


def _previous_plan(previous: Sequence[ProbeResultRow]) -> ProbeResultRow | None:
    return next((result for result in previous if result.plan_shape_hash), None)


def utc_now_second() -> datetime:
    """Now, to the second, UTC naive (the run_at of ``planmon probes run --record``)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
