"""Analyse the repository for one window: detect, attach plan diffs, store, auto-resolve.

Idempotent for a window: detections are stored as of the window's end, so analysing an interval
twice, or a backfill over last month in any order, leaves the same regressions (ADR 0002).
A regression resolves itself when its query is back at its baseline for
``PLANMON_RESOLVE_AFTER_INTERVALS`` consecutive intervals with data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from planmon.analysis.detect import ERROR_RATE_FLOOR, KEYS, detect
from planmon.analysis.onset import hours_of_day
from planmon.config import Settings
from planmon.engines.base import GENERIC_PLAN_NOTE
from planmon.errors import PlanParseError
from planmon.model import RegressionKind
from planmon.store.regressions import RegressionStore
from planmon.store.repository import Repository, as_utc_naive
from planmon.store.stats import StatsStore

log = logging.getLogger(__name__)

DIFF_KINDS = frozenset({RegressionKind.PLAN_CHANGE, RegressionKind.PARAMETER_SENSITIVE})
PERFORMANCE_KINDS = DIFF_KINDS | {RegressionKind.SAME_PLAN, RegressionKind.PLAN_UNKNOWN}


@dataclass(frozen=True, slots=True)
class AnalysisSummary:
    """What one analysis run did; small enough for XCom and one log line."""

    window_start: str
    window_end: str
    targets: int
    detected: int
    regression_ids: list[int] = field(default_factory=list)
    resolved: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_severity: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start,
            "window_end": self.window_end,
            "targets": self.targets,
            "detected": self.detected,
            "regression_ids": self.regression_ids,
            "resolved": self.resolved,
            "by_kind": self.by_kind,
            "by_severity": self.by_severity,
        }

    @classmethod
    def merged(cls, parts: Sequence[AnalysisSummary]) -> AnalysisSummary:
        """One summary of a window analysed in parts (batches of targets, one mapped task each)."""
        if not parts or len({(p.window_start, p.window_end) for p in parts}) != 1:
            raise ValueError("merged() needs at least one summary, all of the same window")
        return cls(
            window_start=parts[0].window_start,
            window_end=parts[0].window_end,
            targets=sum(p.targets for p in parts),
            detected=sum(p.detected for p in parts),
            regression_ids=[i for p in parts for i in p.regression_ids],
            resolved=sum(p.resolved for p in parts),
            by_kind=_summed(p.by_kind for p in parts),
            by_severity=_summed(p.by_severity for p in parts),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisSummary:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return total


def analyze_repository(
    repository: Repository,
    *,
    window_start: datetime,
    window_end: datetime,
    settings: Settings,
    baseline_start: datetime | None = None,
    target_names: Sequence[str] = (),
) -> AnalysisSummary:
    """Detect regressions of the named (else all enabled) targets in [window_start, window_end).

    Targets are analysed in batches of ``settings.analyze_batch_targets``, so memory follows the
    batch, not the fleet: per batch the repository sums the baseline window where the data is (one
    GROUP BY per plan, one per plan and hour of day over the hours the window covers, for the
    day-aware baseline) and only the analysed window's rows are read.
    """
    start, end = as_utc_naive(window_start), as_utc_naive(window_end)
    base = as_utc_naive(baseline_start) if baseline_start else start - timedelta(days=settings.baseline_days)
    targets = [repository.get_target(n) for n in target_names] or repository.list_targets(enabled_only=True)
    size = settings.analyze_batch_targets
    batches = [
        _analyze_batch(
            repository,
            [t.id for t in targets[i : i + size]],
            base=base,
            start=start,
            end=end,
            settings=settings,
        )
        for i in range(0, len(targets), size)
    ]
    summary = (
        AnalysisSummary.merged(batches)
        if batches
        else AnalysisSummary(
            window_start=start.isoformat(), window_end=end.isoformat(), targets=0, detected=0
        )
    )
    log.info(
        "analysed window=%s..%s targets=%d detected=%d resolved=%d by_kind=%s",
        summary.window_start,
        summary.window_end,
        summary.targets,
        summary.detected,
        summary.resolved,
        summary.by_kind,
    )
    return summary


def _analyze_batch(
    repository: Repository,
    target_ids: list[int],
    *,
    base: datetime,
    start: datetime,
    end: datetime,
    settings: Settings,
) -> AnalysisSummary:
    """One batch of targets: detect, store, auto-resolve."""
    stats_store = StatsStore(repository)
    baseline = stats_store.baseline_sums(base, start, target_ids=target_ids, hours=hours_of_day(start, end))
    current = stats_store.window_rows(start, end, target_ids=target_ids)
    plans = _with_plan_identity(
        _with_forcing_before(repository.plans_frame(target_ids), start, end), start, end
    )
    detections = detect(
        current,
        plans,
        window_start=start,
        window_end=end,
        baseline_start=base,
        settings=settings,
        baseline=baseline.moments,
        baseline_buckets=baseline.buckets,
    )
    records = _with_diffs(repository, [_without_nan(row) for row in detections.to_dict("records")])
    ids = RegressionStore(repository).record_regressions(records, detected_at=end)
    resolved = _auto_resolve(
        repository, target_ids=target_ids, detected=records, base=base, end=end, settings=settings
    )
    return AnalysisSummary(
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        targets=len(target_ids),
        detected=len(records),
        regression_ids=ids,
        resolved=resolved,
        by_kind=_counts(records, "kind"),
        by_severity=_counts(records, "severity"),
    )


def _with_forcing_before(plans: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """``force_failure_count_before`` for the detector: the count before a change seen in the window,
    else the current count (no rise). A change seen outside the window says nothing about it."""
    if plans.empty:
        return plans.assign(force_failure_count_before=pd.Series(dtype=float))
    changed_at = pd.to_datetime(plans["force_failure_changed_at"])
    in_window = (changed_at >= pd.Timestamp(start)) & (changed_at < pd.Timestamp(end))
    before = plans["force_failure_count_previous"].where(in_window, plans["force_failure_count"])
    return plans.assign(force_failure_count_before=before)


CAPTURE_GRACE = timedelta(minutes=30)  # the window's last interval is collected (its plans captured) after it


def _with_plan_identity(plans: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """``identity_known`` and ``captured_in_window`` per plan, for the detector's same_plan rule.

    A plan is known when its engine's statistics name it (Query Store) or its document was captured.
    Where statistics name no plan (PostgreSQL, MySQL), the collector charges them to the plan it last
    captured, so a plan counts as seen in [start, end) only when a capture was stored in it: first or
    last capture after ``start`` and at most CAPTURE_GRACE after ``end`` (collection writes an
    interval's plans just after the interval ends; only first and last capture times are kept).
    """
    if plans.empty:
        return plans.assign(identity_known=pd.Series(dtype=bool), captured_in_window=pd.Series(dtype=bool))
    from planmon.engines import get_engine

    engines = {engine: get_engine(engine).statistics_name_plans for engine in plans["engine"].unique()}
    named = plans["engine"].map(engines).astype(bool)
    captured = plans["captured"].astype(bool)
    low, high = pd.Timestamp(as_utc_naive(start)), pd.Timestamp(as_utc_naive(end) + CAPTURE_GRACE)
    first, last = pd.to_datetime(plans["first_seen"]), pd.to_datetime(plans["last_seen"])
    inside = ((first > low) & (first <= high)) | ((last > low) & (last <= high))
    return plans.assign(identity_known=named | captured, captured_in_window=named | (captured & inside))


def _counts(records: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[str(record[key])] = counts.get(str(record[key]), 0) + 1
    return counts


def _without_nan(detection: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): (None if isinstance(v, float) and np.isnan(v) else v) for k, v in detection.items()}


def _diff_pair(record: dict[str, Any]) -> tuple[int, int] | None:
    """(baseline plan id, current plan id) of a detection that gets a plan diff, else None."""
    return _plan_pair(record) if record["kind"] in DIFF_KINDS else None


def _with_diffs(repository: Repository, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attach the plan diff (structured and as text) where both plans' documents are stored.

    The batch's plan documents are read in one go and each is parsed once, however many
    detections share it."""
    pairs = {i: pair for i, record in enumerate(records) if (pair := _diff_pair(record))}
    same = {
        i: pair
        for i, record in enumerate(records)
        if record["kind"] == RegressionKind.SAME_PLAN and (pair := _plan_pair(record))
    }
    if not pairs and not same:
        return records
    sources = _plan_sources(
        repository, {plan_id for pair in (*pairs.values(), *same.values()) for plan_id in pair}
    )
    for i, (before_id, after_id) in same.items():  # "same plan" judged on estimates says so
        if "generic" in (sources.get(before_id), sources.get(after_id)):
            records[i]["diff"] = _with_sources(
                {"text": "", "changes": []}, sources.get(before_id), sources.get(after_id)
            )
    if not pairs:
        return records
    bodies = repository.plan_bodies({plan_id for pair in pairs.values() for plan_id in pair})
    parsed = PlanCache(bodies)
    for i, (before_id, after_id) in pairs.items():
        diff = parsed.diff(before_id, after_id)
        if diff is not None:
            diff = _with_sources(diff, sources.get(before_id), sources.get(after_id))
        records[i]["diff"] = diff
    return records


def _plan_pair(record: dict[str, Any]) -> tuple[int, int] | None:
    if not record["baseline_plan_id"] or not record["current_plan_id"]:
        return None
    return int(record["baseline_plan_id"]), int(record["current_plan_id"])


def _plan_sources(repository: Repository, plan_ids: set[int]) -> dict[int, str]:
    """Where each plan's document came from (plan.summary["source"]; older plans say nothing)."""
    plans = repository.plans(plan_ids)
    sources: dict[int, str] = {}
    for plan_id, summary in zip(plans["id"], plans["summary"], strict=True):
        if isinstance(summary, dict) and summary.get("source"):
            sources[int(plan_id)] = str(summary["source"])
    return sources


def _with_sources(diff: dict[str, Any], before: str | None, after: str | None) -> dict[str, Any]:
    """The diff with both plans' sources, and a note (first line of its text) when either side is
    PostgreSQL's generic plan: a diff of estimates may point away from what the executions ran."""
    diff = {**diff, "sources": {"baseline": before, "current": after}}
    generic = [side for side, source in (("baseline", before), ("current", after)) if source == "generic"]
    if generic:
        note = f"{' and '.join(generic)}: {GENERIC_PLAN_NOTE}"
        diff["notes"] = [note]
        diff["text"] = f"{note}\n{diff['text']}".rstrip("\n")
    return diff


class PlanCache:
    """Stored plan documents, parsed on first use; a document that cannot be read is parsed once."""

    def __init__(self, bodies: dict[int, bytes]) -> None:
        self.bodies = bodies
        self.parsed: dict[int, Any] = {}

    def statement(self, plan_id: int) -> Any:
        """The plan's first statement, or None (no document, unreadable, or no statements)."""
        if plan_id not in self.parsed:
            self.parsed[plan_id] = self._first_statement(plan_id)
        return self.parsed[plan_id]

    def _first_statement(self, plan_id: int) -> Any:
        from planmon.plans import parse_plan

        body = self.bodies.get(plan_id)
        if body is None:
            return None
        try:
            document = parse_plan(body)
        except PlanParseError as exc:
            log.warning("plan diffs with plan %d skipped: %s", plan_id, exc)
            return None
        return document.statements[0] if document.statements else None

    def diff(self, before_id: int, after_id: int) -> dict[str, Any] | None:
        """The diff of two stored plans, or None when a document is missing or cannot be read."""
        from planmon.plans import diff_statements

        before, after = self.statement(before_id), self.statement(after_id)
        if before is None or after is None:
            return None
        diff = diff_statements(before, after)
        return {"text": diff.as_text(), **diff.as_dict()}


def _auto_resolve(
    repository: Repository,
    *,
    target_ids: Sequence[int],
    detected: Sequence[dict[str, Any]],
    base: datetime,
    end: datetime,
    settings: Settings,
) -> int:
    """Resolve open regressions not detected now whose query has been back to baseline long enough
    since the regression was last detected.

    Only the open regressions' queries are read row by row (their intervals since the baseline start).
    """
    regressions = RegressionStore(repository)
    open_now = regressions.regressions(status="open", target_ids=target_ids)
    if open_now.empty:
        return 0
    still = {(d["target_id"], d["query_id"], d["kind"]) for d in detected}
    waiting = open_now[
        [
            (t, q, k) not in still
            for t, q, k in zip(open_now["target_id"], open_now["query_id"], open_now["kind"], strict=True)
        ]
    ]
    if waiting.empty:
        return 0
    stats = StatsStore(repository).window_rows(
        base, end, target_ids=target_ids, query_ids=sorted({int(q) for q in waiting["query_id"]})
    )
    if stats.empty:
        return 0
    recent = _recent_intervals(stats, end, settings.resolve_after_intervals)
    back: list[int] = []
    rows: list[Any] = list(waiting.itertuples(index=False))
    for row in rows:
        history = recent.get((row.target_id, row.query_id))
        if history is not None:
            # only intervals after the regression was last seen can show it is over: the window of a
            # backfill before the regression began is at baseline too, and must not resolve it
            history = history[pd.to_datetime(history["interval_start"]) >= pd.Timestamp(row.last_detected)]
        if history is not None and _back_to_baseline(row, history, settings):
            back.append(int(row.id))
    reason = f"back at baseline for {settings.resolve_after_intervals} intervals"
    return regressions.resolve_regressions(back, resolved_at=end, reason=reason) if back else 0


def _recent_intervals(stats: pd.DataFrame, end: datetime, count: int) -> dict[tuple[Any, Any], pd.DataFrame]:
    """Per query, its last ``count`` intervals before ``end``: weighted metric mean and failure share."""
    frame = stats[pd.to_datetime(stats["interval_start"]) < pd.Timestamp(end)].copy()
    if frame.empty:
        return {}
    has_cpu = frame.groupby(KEYS)["cpu_us_mean"].transform("count") > 0
    metric = np.where(has_cpu, frame["cpu_us_mean"], frame["duration_us_mean"]).astype(float)
    regular = frame["execution_type"].fillna(0).eq(0)
    frame["weighted"] = np.where(regular, metric * frame["executions"], 0.0)
    frame["ok"] = np.where(regular, frame["executions"], 0.0)
    frame["failed"] = np.where(regular, frame["errors"].fillna(0.0), frame["executions"])
    per_interval = frame.groupby([*KEYS, "interval_start"]).agg(
        weighted=("weighted", "sum"), ok=("ok", "sum"), failed=("failed", "sum"), total=("executions", "sum")
    )
    per_interval["mean"] = per_interval["weighted"] / per_interval["ok"].where(per_interval["ok"] > 0)
    per_interval["failure_share"] = per_interval["failed"] / per_interval["total"].where(
        per_interval["total"] > 0
    )
    latest = per_interval.reset_index().sort_values("interval_start").groupby(KEYS).tail(count)
    return {key: group for key, group in latest.groupby(KEYS)}  # type: ignore[misc]


def _back_to_baseline(row: Any, history: pd.DataFrame, settings: Settings) -> bool:
    if len(history) < settings.resolve_after_intervals:
        return False
    if row.kind in PERFORMANCE_KINDS:
        if row.baseline_mean is None or pd.isna(row.baseline_mean):
            return False
        # a plan change was detected at the lower plan change ratio: it is back only under that ratio,
        # else a 1.3x plan change would resolve at once while it still runs
        ratio = settings.ratio_of_kind(str(row.kind))
        return bool((history["mean"].dropna() < row.baseline_mean * ratio).all())
    if row.kind == RegressionKind.ERROR_PRONE:
        return bool((history["failure_share"].fillna(0.0) < ERROR_RATE_FLOOR).all())
    return False  # forced_plan_failure: closed by the DBA (or by re-forcing), not by time
