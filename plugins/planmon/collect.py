"""Collect one target for one interval: runtime stats, plans, index definitions, with per-aspect status.

The collector asks the engine adapter for what the server has, turns cumulative counters into
interval deltas, decides which plans to capture (hourly budget per statement that tolerates schedule
jitter, immediate re-capture on a marked shift of its statistics, back-off after failures), and hands
the whole result to the store (``CollectionStore.record_collection``), which writes it in one
transaction: a failure leaves nothing of the interval behind and a retry writes the same rows again
(ADR 0001, ADR 0002).

Approximations, documented because a DBA will ask:
- Engines with cumulative counters only (PostgreSQL, MySQL/MariaDB, SQL Server without Query Store)
  are read "now"; the difference to the previous reading is attributed to the run's interval. Such
  an interval cannot be collected later: an interval that ended more than two intervals (at least
  30 minutes) ago records ``not_backfillable``.
- A statement that appears between two readings counts from zero when the previous reading was
  complete (under the row limit); otherwise its first reading only sets its baseline.
- Counters that went down (reset, eviction) count from zero since the reset.
- PostgreSQL and MySQL name no plan in their statistics: an interval's statistics are attributed
  to the plan captured for that statement in the same run, else to the last plan captured for it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from planmon.config import Settings
from planmon.engines import get_engine
from planmon.engines.base import (
    Aspect,
    AspectState,
    AspectStatus,
    Capabilities,
    CapturedPlan,
    EngineAdapter,
    IndexDefinition,
    PlanCaptureFailure,
    StatementStats,
)
from planmon.errors import EngineError, PlanmonError, PlanParseError, scrub_secrets
from planmon.model import PlanRecord, QualifiedName, QueryRecord, Target
from planmon.store.collection import CollectionStore, CollectionWrite, CounterReading, PlanCaptureState
from planmon.store.repository import Repository, as_utc_naive, utcnow

log = logging.getLogger(__name__)

# A marked shift in a statement's statistics since its last capture forces a capture whatever the
# budget (docs/collection.md, "Plan capture"): per-execution time doubled or halved, or moved by a
# quarter and by more than three of its standard deviations at capture (a steady query's plan flip
# that is "only" 1.5x slower); rows or work (logical reads, rows examined) per execution doubled or
# halved by more than a floor, so a 0.4 -> 0.9 rows lookup is not a shift.
COST_SHIFT_FACTOR = 2.0
NOISE_SIGMAS = 3.0
NOISE_SHIFT_FACTOR = 1.25
ROWS_SHIFT_MIN = 10.0  # rows per execution
WORK_SHIFT_MIN = 100.0  # logical reads (pages) or rows examined per execution
# A run that starts up to this share of the capture spacing early (scheduler jitter, a queue) still
# gets the capture its budget allows: 4 an hour on a 15-minute schedule is a capture every run.
BUDGET_JITTER_SHARE = 0.2
RETRY_BACKOFF_FIRST = timedelta(minutes=15)  # a failed capture is retried after this, doubling each time
RETRY_BACKOFF_MAX = timedelta(hours=24)  # ... up to a day (other collectors' logs flood without this)
BUDGET_WINDOW = timedelta(hours=1)
UNKNOWN_PLAN = "unknown"


@dataclass(frozen=True, slots=True)
class CollectionSummary:
    """What one target's collection did: small enough for XCom and one log line."""

    target: str
    interval_start: str
    interval_end: str
    status: str  # ok / degraded / error / not_backfillable (run_status)
    aspects: dict[str, dict[str, Any]]
    rows: int = 0
    plans_captured: int = 0
    statements_sent: int = 0
    duration_ms: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "interval_start": self.interval_start,
            "interval_end": self.interval_end,
            "status": self.status,
            "aspects": self.aspects,
            "rows": self.rows,
            "plans_captured": self.plans_captured,
            "statements_sent": self.statements_sent,
            "duration_ms": round(self.duration_ms, 1),
            "error": self.error,
        }


ConnectFactoryFor = Callable[[Target], Callable[[str | None], Any]]

# A run's status is the worst of its aspects': an aspect switched off or refused degrades the run, an
# aspect that failed makes it an error. NOT_APPLICABLE (a feature the engine does not have) is no loss.
RUN_OK, RUN_DEGRADED, RUN_ERROR, RUN_NOT_BACKFILLABLE = "ok", "degraded", "error", "not_backfillable"
_RUN_STATUS_OF = {
    AspectState.OK: RUN_OK,
    AspectState.NOT_APPLICABLE: RUN_OK,
    AspectState.UNAVAILABLE: RUN_DEGRADED,
    AspectState.PERMISSION_DENIED: RUN_DEGRADED,
    AspectState.ERROR: RUN_ERROR,
}
_RUN_RANK = {RUN_OK: 0, RUN_DEGRADED: 1, RUN_ERROR: 2}


def run_status(aspects: Mapping[str, AspectStatus]) -> str:
    """ok / degraded / error: the worst of the aspects, whatever their hints say.

    A run without runtime statistics is an error whatever the reason (an extension missing, a grant
    refused): it collected nothing, which is the one thing it is for.
    """
    runtime = aspects.get(Aspect.RUNTIME_STATS.value)
    if runtime is None or runtime.state is not AspectState.OK:
        return RUN_ERROR
    return max((_RUN_STATUS_OF[s.state] for s in aspects.values()), key=_RUN_RANK.__getitem__, default=RUN_OK)


@dataclass
class _Run:
    """Mutable state of one collection while it is assembled."""

    target: Target
    start: datetime
    end: datetime
    now: datetime
    settings: Settings
    started: float = field(default_factory=time.monotonic)
    aspects: dict[str, AspectStatus] = field(default_factory=dict)

    def past_deadline(self) -> bool:
        """True once the per-run deadline has passed: stop optional work (plans), keep what was read."""
        return time.monotonic() - self.started > self.settings.collect_deadline_seconds


def collect_target(
    repository: Repository,
    target: Target,
    start: datetime,
    end: datetime,
    *,
    settings: Settings,
    connect: Callable[[str | None], Any],
    now: datetime | None = None,
) -> CollectionSummary:
    """Collect ``target`` for the half-open window [start, end) and store the result atomically.

    Raises EngineError when the target cannot be reached at all (after recording that), so the
    Airflow task shows it and retries; a missing feature or permission is a status, not an error.
    """
    run = _Run(target, as_utc_naive(start), as_utc_naive(end), as_utc_naive(now or utcnow()), settings)
    store = CollectionStore(repository)
    adapter = get_engine(target.engine).adapter(
        connect, target_name=target.name, databases=target.databases, settings=settings
    )
    try:
        write = _collect(store, adapter, run)
    except EngineError as exc:
        summary = _failed(run, adapter, exc)
        store.record_collection(_failure_write(run, summary, exc))
        raise
    finally:
        adapter.close()
    summary = CollectionSummary(
        target=target.name,
        interval_start=run.start.isoformat(),
        interval_end=run.end.isoformat(),
        status=write.status,
        aspects={name: status.as_dict() for name, status in run.aspects.items()},
        rows=len(write.runtime_stats),
        plans_captured=sum(1 for p in write.plans if p.body is not None),
        statements_sent=adapter.statements_sent(),
        duration_ms=(time.monotonic() - run.started) * 1000,
    )
    store.record_collection(replace(write, duration_ms=summary.duration_ms, aspects=summary.aspects))
    log.info(
        "collected target=%s interval=%s..%s status=%s rows=%d plans=%d statements=%d duration_ms=%.0f",
        target.name, run.start, run.end, summary.status, summary.rows, summary.plans_captured,
        summary.statements_sent, summary.duration_ms,
    )  # fmt: skip
    return summary


def _collect(store: CollectionStore, adapter: EngineAdapter, run: _Run) -> CollectionWrite:
    capabilities = adapter.capabilities()
    run.aspects.update({aspect.value: status for aspect, status in capabilities.aspects.items()})
    base = CollectionWrite(
        target_id=run.target.id,
        interval_start=run.start,
        interval_end=run.end,
        status=RUN_OK,
        captured_at=run.now,
    )
    if not capabilities.backfillable and not _is_current(run):
        run.aspects[Aspect.RUNTIME_STATS.value] = AspectStatus(
            AspectState.UNAVAILABLE,
            hint=f"not backfillable for this engine: {run.target.engine} keeps cumulative counters only, "
            "so past intervals cannot be read; only the current interval is collected",
        )
        return replace(base, status=RUN_NOT_BACKFILLABLE)
    if not capabilities.available(Aspect.RUNTIME_STATS):
        return replace(base, status=run_status(run.aspects))
    statements = adapter.runtime_stats(run.start, run.end)
    # rows say which kind they are; with no rows, an engine that cannot backfill reads counters
    cumulative = any(s.cumulative for s in statements) if statements else not capabilities.backfillable
    if cumulative:
        interval_stats, readings, complete = _deltas(store, run, statements)
    else:
        interval_stats, readings, complete = statements, [], len(statements) < run.settings.collect_row_limit
    details = [*([] if complete else [f"row limit {run.settings.collect_row_limit} reached"])]
    details += adapter.runtime_stats_notes()  # rows left out on purpose, counted (e.g. temporary ids)
    run.aspects[Aspect.RUNTIME_STATS.value] = AspectStatus(AspectState.OK, detail="; ".join(details) or None)
    captures = store.plan_captures(run.target.id)
    if run.past_deadline():
        run.aspects[Aspect.PLANS.value] = AspectStatus(
            AspectState.OK,
            detail=f"per-run deadline ({run.settings.collect_deadline_seconds}s) reached after statistics: "
            "plans not captured this run",
        )
        captured: list[CapturedPlan] = []
        failures: list[PlanCaptureFailure] = []
    else:
        captured, failures = _capture_plans(adapter, capabilities, run, interval_stats, captures)
    plans = [_plan_record(plan) for plan in captured]
    indexes = _index_definitions(adapter, capabilities, run, captured)
    return replace(
        base,
        status=run_status(run.aspects),
        queries=_queries(statements),
        plans=plans,
        runtime_stats=_stats_rows(interval_stats, plans, captures, run),
        counter_readings=readings,
        counters_read=cumulative,
        readings_complete=complete,
        plan_captures=_capture_states(run, captures, interval_stats, plans, failures),
        index_definitions=indexes,
    )


CURRENT_GRACE = timedelta(minutes=30)


def _is_current(run: _Run) -> bool:
    """True when the window ends near now: cumulative counters can only describe the present.

    "Near" allows a run that waited in the queue (or a manual run, whose interval ends at the last
    schedule boundary): two intervals or 30 minutes, whichever is longer.
    """
    interval = run.end - run.start
    return run.end >= run.now - max(2 * interval, CURRENT_GRACE)


# -- cumulative counters -> interval deltas ---------------------------------------------------------


def _deltas(
    store: CollectionStore, run: _Run, statements: Sequence[StatementStats]
) -> tuple[list[StatementStats], list[CounterReading], bool]:
    previous, previous_complete = store.counter_readings(run.target.id)
    complete = len(statements) < run.settings.collect_row_limit
    interval_stats: list[StatementStats] = []
    readings: list[CounterReading] = []
    for current in statements:
        key = (current.database_name, current.query_key)
        readings.append(_reading(run, current))
        before = previous.get(key)
        if before is None and not previous_complete:
            continue  # first sight after an incomplete (or no) reading: this reading is the baseline
        delta = _delta(current, before)
        if delta is not None and delta.executions > 0:
            interval_stats.append(
                replace(delta, interval_start=run.start, interval_end=run.end, cumulative=False)
            )
    return interval_stats, readings, complete


def _delta(current: StatementStats, before: CounterReading | None) -> StatementStats | None:
    """Counters since ``before``; from zero when there is none or the counters were reset since."""
    reset = before is not None and (
        current.executions < before.executions
        or (
            current.counters_reset_at is not None
            and before.counters_reset_at is not None
            and current.counters_reset_at > before.counters_reset_at
        )
    )
    base = None if before is None or reset else before

    def minus(now_value: float | None, then_value: float | None) -> float | None:
        if now_value is None:
            return None
        return now_value - (then_value or 0.0) if base is not None else now_value

    executions = current.executions - (base.executions if base else 0.0)
    if executions <= 0:
        return None
    duration = minus(current.duration_us_total, base.duration_us_total if base else None)
    squares = minus(current.duration_us_sum_squares, base.duration_us_sum_squares if base else None)
    cpu = minus(current.cpu_us_total, base.cpu_us_total if base else None)
    return replace(
        current,
        executions=executions,
        errors=max(0.0, (current.errors or 0.0) - ((base.errors or 0.0) if base else 0.0)),
        duration_us_total=duration,
        duration_us_mean=None if duration is None else duration / executions,
        duration_us_stdev=_stdev(duration, squares, executions),
        duration_us_min=None,  # min/max of a delta are unknown; the engines only keep lifetime extremes
        duration_us_max=None,
        cpu_us_total=cpu,
        cpu_us_mean=None if cpu is None else cpu / executions,
        logical_reads_total=minus(current.logical_reads_total, base.logical_reads_total if base else None),
        physical_reads_total=minus(current.physical_reads_total, base.physical_reads_total if base else None),
        rows_total=minus(current.rows_total, base.rows_total if base else None),
        rows_examined_total=minus(current.rows_examined_total, base.rows_examined_total if base else None),
    )


def _stdev(total: float | None, squares: float | None, count: float) -> float | None:
    """Standard deviation of the executions in the delta, from sums and sums of squares."""
    if total is None or squares is None or count <= 0:
        return None
    mean = total / count
    return math.sqrt(max(0.0, squares / count - mean * mean))


def _reading(run: _Run, stats: StatementStats) -> CounterReading:
    return CounterReading(
        database_name=stats.database_name,
        query_key=stats.query_key,
        taken_at=run.now,
        executions=stats.executions,
        errors=stats.errors,
        cpu_us_total=stats.cpu_us_total,
        duration_us_total=stats.duration_us_total,
        duration_us_sum_squares=stats.duration_us_sum_squares,
        logical_reads_total=stats.logical_reads_total,
        physical_reads_total=stats.physical_reads_total,
        rows_total=stats.rows_total,
        rows_examined_total=stats.rows_examined_total,
        counters_reset_at=as_utc_naive(stats.counters_reset_at) if stats.counters_reset_at else None,
    )


# -- plans -----------------------------------------------------------------------------------------


def _capture_plans(
    adapter: EngineAdapter,
    capabilities: Capabilities,
    run: _Run,
    statements: Sequence[StatementStats],
    captures: dict[tuple[str, str], PlanCaptureState],
) -> tuple[list[CapturedPlan], list[PlanCaptureFailure]]:
    if not capabilities.available(Aspect.PLANS) or not statements:
        return [], []
    chosen = _plans_to_capture(run, statements, captures)
    if not chosen:
        return [], []
    try:
        captured, failures = adapter.plans(chosen)
    except EngineError as exc:
        run.aspects[Aspect.PLANS.value] = AspectStatus(
            AspectState.ERROR, hint="plan capture failed; statistics were still collected", detail=str(exc)
        )
        return [], []
    if failures:
        run.aspects[Aspect.PLANS.value] = AspectStatus(
            AspectState.OK,
            detail=f"{len(failures)} statement(s) could not be explained; retried with back-off",
        )
    return captured, failures


def _plans_to_capture(
    run: _Run, statements: Sequence[StatementStats], captures: dict[tuple[str, str], PlanCaptureState]
) -> list[StatementStats]:
    """Statements whose plan to capture now: within the hourly budget, or at once on a statistics shift."""
    budget = run.settings.plans_per_query_per_hour
    chosen: dict[tuple[str, str, str | None], StatementStats] = {}
    for stats in sorted(statements, key=lambda s: -(s.duration_us_total or s.cpu_us_total or 0.0)):
        key = (stats.database_name, stats.query_key, stats.plan_key)
        state = captures.get((stats.database_name, stats.query_key))
        if key in chosen or (state and state.retry_after and run.now < state.retry_after):
            continue
        shift = statistics_shift(_measures(stats), state)
        if shift is not None:
            log.info("plan capture forced for %s:%s: %s", stats.database_name, stats.query_key, shift)
            chosen[key] = stats
        elif _budget_allows(run.now, state, budget, stats.plan_key):
            chosen[key] = stats
        if len(chosen) >= run.settings.plans_per_run:
            break
    return list(chosen.values())


@dataclass(frozen=True, slots=True)
class Measures:
    """Per-execution figures of one interval that a plan change moves: time (CPU where the engine
    reports it, else elapsed) with its standard deviation, rows returned, and work done."""

    time_us: float | None = None
    time_stdev_us: float | None = None
    rows: float | None = None
    work: float | None = None  # logical reads, else rows examined


def _measures(stats: StatementStats) -> Measures:
    def per_execution(total: float | None) -> float | None:
        return None if total is None or not stats.executions else total / stats.executions

    if stats.cpu_us_mean is not None or stats.cpu_us_total is not None:
        time_us, stdev = stats.cpu_us_mean or per_execution(stats.cpu_us_total), stats.cpu_us_stdev
    else:
        time_us = stats.duration_us_mean or per_execution(stats.duration_us_total)
        stdev = stats.duration_us_stdev
    work = stats.logical_reads_total if stats.logical_reads_total is not None else stats.rows_examined_total
    return Measures(time_us, stdev, per_execution(stats.rows_total), per_execution(work))


def statistics_shift(now: Measures, state: PlanCaptureState | None) -> str | None:
    """Why this interval's statistics moved markedly since the last capture, or None (see the
    constants above). Only a statement captured before can shift."""
    if state is None or state.last_captured_at is None:
        return None
    then_us = state.mean_us_at_capture
    if now.time_us and then_us:
        ratio = now.time_us / then_us
        if ratio >= COST_SHIFT_FACTOR or ratio <= 1 / COST_SHIFT_FACTOR:
            return f"time per execution {ratio:.2g}x the last capture's"
        stdev = state.stdev_us_at_capture
        moved = ratio >= NOISE_SHIFT_FACTOR or ratio <= 1 / NOISE_SHIFT_FACTOR
        if moved and stdev is not None and abs(now.time_us - then_us) > NOISE_SIGMAS * stdev:
            return f"time per execution {ratio:.2g}x the last capture's, beyond {NOISE_SIGMAS:g} deviations"
    for what, current, before, floor in (
        ("rows", now.rows, state.rows_mean_at_capture, ROWS_SHIFT_MIN),
        ("work", now.work, state.work_mean_at_capture, WORK_SHIFT_MIN),
    ):
        if current is None or before is None or abs(current - before) < floor:
            continue
        if current >= COST_SHIFT_FACTOR * before or before >= COST_SHIFT_FACTOR * current:
            return f"{what} per execution {before:.4g} -> {current:.4g}"
    return None


def _budget_allows(now: datetime, state: PlanCaptureState | None, budget: int, plan_key: str | None) -> bool:
    if budget <= 0:
        return False
    if state is None or state.last_captured_at is None:
        return True
    if plan_key is not None and plan_key != state.last_plan_key:
        return True  # the engine names a plan not captured yet (Query Store): capture it
    in_window = 0 if _budget_window_over(now, state.window_start, budget) else state.captures_in_window
    spacing = BUDGET_WINDOW / budget
    return in_window < budget and now - state.last_captured_at >= spacing - _jitter(budget)


def _jitter(budget: int) -> timedelta:
    """How early a run may come and still count as on time for its capture (BUDGET_JITTER_SHARE)."""
    return BUDGET_WINDOW / budget * BUDGET_JITTER_SHARE if budget > 0 else timedelta(0)


def _budget_window_over(now: datetime, window_start: datetime | None, budget: int) -> bool:
    return window_start is None or now - window_start >= BUDGET_WINDOW - _jitter(budget)


def _plan_record(captured: CapturedPlan) -> PlanRecord:
    """A captured plan as stored: parsed once for its shape hash and a summary of its findings."""
    from planmon.plans import find_all, parse_plan, shape_hash

    summary: dict[str, Any] = {"source": captured.source}
    shape: str | None = None
    try:
        plan = parse_plan(captured.body, source=f"{captured.database_name}:{captured.query_key}")
        statement = next((s for s in plan.statements if s.root is not None), None)
        if statement is not None:
            shape = shape_hash(statement)
            summary = {
                "source": captured.source,
                "estimated_cost": statement.estimated_cost,
                "dop": statement.dop,
                "operator_count": statement.operator_count,
                "findings": [f.id for f in find_all(statement, plan.engine)],
            }
    except PlanParseError as exc:
        summary = {"source": captured.source, "parse_error": str(exc)}
    plan_key = captured.plan_key or _derived_plan_key(captured.database_name, captured.query_key, shape)
    return PlanRecord(
        plan_key=plan_key,
        query_key=captured.query_key,
        database_name=captured.database_name,
        shape_hash=shape,
        engine_plan_hash=captured.engine_plan_hash,
        body_format=captured.body_format,
        body=captured.body,
        summary=summary,
        is_forced=captured.is_forced,
        forcing_type=captured.forcing_type,
        force_failure_count=captured.force_failure_count,
        last_force_failure_reason=captured.last_force_failure_reason,
    )


def _derived_plan_key(database_name: str, query_key: str, shape: str | None) -> str:
    """Plan identity for engines that have none: the statement plus its plan's shape hash."""
    return f"{database_name}:{query_key}:{shape or UNKNOWN_PLAN}"


def _index_definitions(
    adapter: EngineAdapter, capabilities: Capabilities, run: _Run, captured: Sequence[CapturedPlan]
) -> list[IndexDefinition]:
    if not capabilities.available(Aspect.OBJECT_DEFINITIONS):
        return []
    tables: dict[str, set[QualifiedName]] = {}
    for plan in captured:
        tables.setdefault(plan.database_name, set()).update(plan.objects)
    definitions: list[IndexDefinition] = []
    try:
        for database_name, names in sorted(tables.items()):
            if names:
                definitions.extend(
                    adapter.index_definitions(database_name, sorted(names, key=QualifiedName.key))
                )
    except EngineError as exc:
        run.aspects[Aspect.OBJECT_DEFINITIONS.value] = AspectStatus(
            AspectState.ERROR, hint="index definitions could not be read", detail=str(exc)
        )
    return definitions


# -- rows for the repository -----------------------------------------------------------------------


def _queries(statements: Iterable[StatementStats]) -> list[QueryRecord]:
    """Every statement read (interval deltas are copies of these, so they add none)."""
    seen: dict[tuple[str, str], QueryRecord] = {}
    for stats in statements:
        seen[(stats.database_name, stats.query_key)] = QueryRecord(
            query_key=stats.query_key,
            database_name=stats.database_name,
            query_hash=stats.query_hash,
            query_text=stats.query_text,
            parent_query_key=stats.parent_query_key,
            dispatcher_plan_key=stats.dispatcher_plan_key,
            replica_group_id=stats.replica_group_id,
        )
    return list(seen.values())


def _stats_rows(
    interval_stats: Sequence[StatementStats],
    plans: Sequence[PlanRecord],
    captures: dict[tuple[str, str], PlanCaptureState],
    run: _Run,
) -> list[dict[str, Any]]:
    """Rows of ``runtime_stats`` keyed by plan_key (the repository turns keys into ids)."""
    captured_now = {(p.database_name, p.query_key): p.plan_key for p in plans}
    rows = []
    for stats in interval_stats:
        key = (stats.database_name, stats.query_key)
        state = captures.get(key)
        plan_key = stats.plan_key or captured_now.get(key) or (state.last_plan_key if state else None)
        plan_key = plan_key or _derived_plan_key(stats.database_name, stats.query_key, None)
        rows.append(_stats_row(stats, plan_key, run))
    return rows


def _stats_row(stats: StatementStats, plan_key: str, run: _Run) -> dict[str, Any]:
    executions = stats.executions

    def mean(total: float | None, given: float | None = None) -> float | None:
        if given is not None:
            return given
        return None if total is None or not executions else total / executions

    return {
        "plan_key": plan_key,
        "database_name": stats.database_name,
        "query_key": stats.query_key,
        "interval_start": as_utc_naive(stats.interval_start) if stats.interval_start else run.start,
        "interval_end": as_utc_naive(stats.interval_end) if stats.interval_end else run.end,
        "execution_type": stats.execution_type,
        "executions": round(executions),
        "errors": round(stats.errors or 0),
        "cpu_us_mean": mean(stats.cpu_us_total, stats.cpu_us_mean),
        "cpu_us_stdev": stats.cpu_us_stdev,
        "cpu_us_min": stats.cpu_us_min,
        "cpu_us_max": stats.cpu_us_max,
        "duration_us_mean": mean(stats.duration_us_total, stats.duration_us_mean),
        "duration_us_stdev": stats.duration_us_stdev,
        "duration_us_min": stats.duration_us_min,
        "duration_us_max": stats.duration_us_max,
        "logical_reads_mean": mean(stats.logical_reads_total, stats.logical_reads_mean),
        "physical_reads_mean": mean(stats.physical_reads_total),
        "rows_mean": mean(stats.rows_total),
        "rows_examined_mean": mean(stats.rows_examined_total),
        "memory_kb_mean": stats.memory_kb_mean,
    }


def _capture_states(
    run: _Run,
    before: dict[tuple[str, str], PlanCaptureState],
    interval_stats: Sequence[StatementStats],
    plans: Sequence[PlanRecord],
    failures: Sequence[PlanCaptureFailure],
) -> list[PlanCaptureState]:
    """Budget, last plan and cost at capture per statement; failures pushed back exponentially."""
    measures = {(s.database_name, s.query_key): _measures(s) for s in interval_stats}
    budget = run.settings.plans_per_query_per_hour
    states: dict[tuple[str, str], PlanCaptureState] = {}
    for plan in plans:
        key = (plan.database_name, plan.query_key)
        old = states.get(key) or before.get(key)
        fresh_window = old is None or _budget_window_over(run.now, old.window_start, budget)
        at_capture = measures.get(key, Measures())
        states[key] = PlanCaptureState(
            database_name=plan.database_name,
            query_key=plan.query_key,
            window_start=run.now if fresh_window else old.window_start if old else run.now,
            captures_in_window=1 if fresh_window or old is None else old.captures_in_window + 1,
            last_captured_at=run.now,
            last_plan_key=plan.plan_key,
            mean_us_at_capture=at_capture.time_us,
            stdev_us_at_capture=at_capture.time_stdev_us,
            rows_mean_at_capture=at_capture.rows,
            work_mean_at_capture=at_capture.work,
            failures=0,
        )
    for failure in failures:
        key = (failure.database_name, failure.query_key)
        old = before.get(key)
        count = (old.failures if old else 0) + 1
        backoff = min(RETRY_BACKOFF_MAX, RETRY_BACKOFF_FIRST * 2 ** (count - 1))
        states[key] = replace(
            old or PlanCaptureState(database_name=failure.database_name, query_key=failure.query_key),
            failures=count,
            last_error=scrub_secrets(failure.reason)[:1000],
            retry_after=run.now + backoff,
        )
    return list(states.values())


# -- failures --------------------------------------------------------------------------------------


FAILED_RUN_HINT = "the run failed; nothing of this interval was stored"


def _failed(run: _Run, adapter: EngineAdapter, exc: EngineError) -> CollectionSummary:
    """The summary of a run that stores nothing of its interval: no aspect of it may still say ok
    (the capability check may have passed before the server went away)."""
    for name, status in list(run.aspects.items()):
        if status.state is AspectState.OK:
            run.aspects[name] = AspectStatus(
                AspectState.ERROR, hint=FAILED_RUN_HINT, detail=scrub_secrets(str(exc))
            )
    return CollectionSummary(
        target=run.target.name,
        interval_start=run.start.isoformat(),
        interval_end=run.end.isoformat(),
        status=RUN_ERROR,
        aspects={name: status.as_dict() for name, status in run.aspects.items()},
        statements_sent=adapter.statements_sent(),
        duration_ms=(time.monotonic() - run.started) * 1000,
        error=scrub_secrets(str(exc)),
    )


def _failure_write(run: _Run, summary: CollectionSummary, exc: PlanmonError) -> CollectionWrite:
    return CollectionWrite(
        target_id=run.target.id,
        interval_start=run.start,
        interval_end=run.end,
        status=RUN_ERROR,
        aspects=summary.aspects
        or {"connection": {"status": "error", "hint": exc.hint, "detail": summary.error}},
        error=summary.error,
        duration_ms=summary.duration_ms,
    )
