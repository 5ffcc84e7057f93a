"""Regression detection: the analysed window against its baseline window, per target and query.

Vectorised with pandas: the large runtime-stats frame is grouped once per plan and side; everything
after that works on the small per-plan frame, and only the few candidates that pass the cheap
filters are looked at one by one (for the t-test and the evidence).

Per query and side (baseline = [baseline_start, window_start), current = [window_start, window_end)),
per plan *shape* (plans with the same shape hash are one plan; a recompile is not a plan change):
- executions, execution-weighted mean and pooled variance of the metric from per-interval means and
  standard deviations (variance across rows: sum(n * (sd^2 + mean^2)) / sum(n) - mean^2); averages
  of averages are never taken; and the variance *between* intervals, which is where real noise is;
- the metric is CPU where the engine reports it, else duration (PostgreSQL, MySQL), corroborated by
  logical reads or rows examined;
- the baseline plan is the best plan (lowest mean) with enough executions in the baseline window.

A regression needs all of: enough executions on both sides; current/baseline mean at or over the
ratio threshold (``plan_change_ratio`` for a known plan change: the shape changed and both plans are
known, and then cleared by PLAN_CHANGE_MARGIN_SE standard errors; else ``regression_ratio``); a
significant t-test whose standard error includes the
between-interval variance (executions within an interval are not independent samples of a plan's
cost); an impact (extra metric-seconds per hour at the current execution rate) over the floor; and
persistence (at least half of the current window's intervals elevated, and two of them when there
are two or more), so a one-interval spike is not one. A faster plan is never a regression. Kinds:

- ``plan_change``: the current dominant plan's shape differs from the baseline plan's;
- ``same_plan``: same shape, slower (data growth, statistics, blocking); only when both plans are
  known and, where the plans frame says when plans were captured (``captured_in_window``), a plan of
  the baseline's shape was captured inside the window;
- ``plan_unknown``: what would be ``same_plan`` or ``plan_change`` when a side's plan was never
  captured (``identity_known`` False), or ``same_plan`` without a capture inside the window: slower,
  and planmon does not know whether the plan changed (evidence ``plan_unknown``, reason, hint);
- ``parameter_sensitive``: two or more plans *alternate* in the current window (their spans of
  intervals overlap: one replacing the other is a plan change), each with a substantial share,
  the slowest the ratio slower than the fastest and than the query's last good plan;
- ``error_prone``: the share of aborted/failed executions rose (two-proportion test + floors);
- ``forced_plan_failure``: ``force_failure_count`` rose during the window (plans frame column
  ``force_failure_count_before`` holds the value at the window start; its level never counts).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from planmon.analysis.frames import DETECTION_COLUMNS, empty_baseline_moments, empty_detections
from planmon.analysis.onset import (
    BASELINE_KINDS,
    BUCKETS,
    MIN_ONSET_SLOTS,
    OTHER_HOURS,
    Onsets,
    change_points,
    day_factors,
    hour_buckets,
    slot_index,
    window_cells,
)
from planmon.analysis.statistics import student_t_sf_many, two_proportion_p
from planmon.config import Settings
from planmon.model import BASELINE_BUCKET_COLUMNS, BASELINE_MOMENT_COLUMNS, RegressionKind, Severity

KEYS = ["target_id", "query_id"]
PLAN_KEYS = [*KEYS, "plan_id"]
SHAPE_KEYS = [*KEYS, "shape"]
PARAMETER_SENSITIVE_SHARE = 0.2  # each of two plans runs at least this share of the current executions
CORROBORATION_RATIO = 1.2  # duration-only engines: reads/rows examined up by 20% corroborate a slowdown
ERROR_RATE_FLOOR = 0.01  # an error rate under 1% in the current window is noise, not a regression
ERROR_COUNT_FLOOR = 10  # ... and so are fewer than 10 failed executions
ERROR_RATE_RISE = 2.0  # the error rate at least doubled
PLAN_CHANGE_MARGIN_SE = 1.0  # a plan change's mean is the plan change ratio over its baseline by 1 SE
PLAN_UNKNOWN_HINT = (
    "capture plans for this query: see the target's plans aspect (overview, `planmon collect`), whose "
    "hint names the setting, consumer or grant missing (docs/collection.md), and "
    "PLANMON_PLANS_PER_QUERY_PER_HOUR"
)
SEVERITY_SECONDS_PER_HOUR = (
    (3600.0, Severity.CRITICAL),
    (600.0, Severity.HIGH),
    (60.0, Severity.MEDIUM),
)  # else Severity.LOW
_SUMS = ("n", "s1", "s2", "sm2", "r1", "x1", "cpu_rows", "intervals")
_CONFIRM_COLUMNS = (  # what a confirmed candidate's detection row is built from (itertuples is per column)
    *KEYS, "metric", "ratio", "ratio_limit", "impact", "t", "p", "elevated", "current_intervals",
    "extra_per_execution",
    "onset", "onset_moved", "baseline_kind", "factor", "mean_base_overall",
    *(f"{name}{side}" for side in ("", "_base") for name in
      ("plan_id", "shape", "n", "mean", "var", "intervals", "reads_mean", "examined_mean")),
)  # fmt: skip


def detect(
    stats: pd.DataFrame,
    plans: pd.DataFrame,
    *,
    window_start: datetime,
    window_end: datetime,
    baseline_start: datetime,
    settings: Settings,
    baseline: pd.DataFrame | None = None,
    baseline_buckets: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Regressions in [window_start, window_end) against [baseline_start, window_start); see module doc.

    ``baseline``: the baseline window's sums per plan (BASELINE_MOMENT_COLUMNS), aggregated where the
    data is (``planmon.store.stats.StatsStore.baseline_moments``); ``stats`` then needs only the
    analysed window's rows. ``baseline_buckets``: with ``baseline``, its sums per query and hour of
    day (BASELINE_BUCKET_COLUMNS, ``StatsStore.baseline_sums``) for the day-aware baseline;
    without them a pre-aggregated baseline is compared as a whole (baseline kind ``overall``).
    Without ``baseline`` both are summed from ``stats`` itself: the same numbers.
    """
    rows = _prepare(stats, window_start, window_end, window_start if baseline is not None else baseline_start)
    found: list[dict[str, Any]] = []
    if not rows.empty:
        shapes = _shape_keys(plans)
        products: dict[str, np.ndarray] = {}
        own = _plan_moments(rows, products)
        plan_moments = _with_baseline(own, baseline)
        onsets = _find_onsets(
            rows, plan_moments, products, buckets=baseline_buckets if baseline is not None else None,
            window_start=window_start, window_end=window_end, settings=settings,
        )  # fmt: skip
        if onsets.keep is not None:  # the window rows before a moved onset are neither side
            plan_moments = _with_baseline(_without_rows(own, rows, onsets.keep), baseline)
        moments = _shape_moments(plan_moments, shapes)
        rows = rows.narrowed(onsets.keep, onsets.row_factor)
        found += _performance_regressions(
            rows, plan_moments, moments, plans=plans, shapes=shapes, onsets=onsets, settings=settings
        )
        found += _error_regressions(plan_moments, onsets, settings)
    found += _forcing_failures(plans)
    if not found:
        return empty_detections()
    return pd.DataFrame(found, columns=list(DETECTION_COLUMNS))


def query_moments(stats: pd.DataFrame, *, start: datetime, end: datetime) -> pd.DataFrame:
    """Per (target, query): executions, execution-weighted mean and pooled variance of the metric in
    [start, end), over all its plans, computed exactly as detection computes them (remediation's
    verification compares these with a regression's baseline and regressed plans)."""
    columns = [*KEYS, "n", "mean", "var", "metric"]
    if stats.empty:
        return pd.DataFrame(columns=columns)
    rows = _prepare(stats, start, end, start)
    if rows.empty:
        return pd.DataFrame(columns=columns)
    sums = _plan_moments(rows).groupby(KEYS, sort=False)[["n", "s1", "s2", "cpu_rows"]].sum().reset_index()
    sums = sums[sums["n"] > 0]
    sums["mean"] = sums["s1"] / sums["n"]
    sums["var"] = (sums["s2"] / sums["n"] - sums["mean"] ** 2).clip(lower=0.0)
    sums["metric"] = np.where(sums["cpu_rows"] > 0, "cpu_us", "duration_us")
    return sums[columns].reset_index(drop=True)


def baseline_moments(
    stats: pd.DataFrame, *, baseline_start: datetime, window_start: datetime
) -> pd.DataFrame:
    """The baseline window's sums per (target, query, plan) from a runtime-stats frame, exactly as
    ``detect`` sums them: what ``StatsStore.baseline_moments`` computes in SQL where the data is."""
    if stats.empty:
        return empty_baseline_moments()
    rows = _prepare(stats, window_start, window_start, baseline_start)
    if rows.empty:
        return empty_baseline_moments()
    return _plan_moments(rows)[list(BASELINE_MOMENT_COLUMNS)].reset_index(drop=True)


def baseline_buckets(
    stats: pd.DataFrame,
    *,
    baseline_start: datetime,
    window_start: datetime,
    hours: Collection[int] | None = None,
) -> pd.DataFrame:
    """The baseline window's sums per (target, query, plan, hour-of-day bucket) from a runtime-stats
    frame, as ``detect`` sums them for the day-aware baseline: what ``StatsStore.baseline_buckets``
    computes in SQL where the data is. ``hours``: the hours of day (UTC) the analysed window
    covers; the rows of every other hour go to bucket ``OTHER_HOURS`` (None: none do)."""
    columns = list(BASELINE_BUCKET_COLUMNS)
    rows = _prepare(stats, window_start, window_start, baseline_start) if not stats.empty else None
    if rows is None or rows.empty:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
    counted = rows.ok_executions > 0
    n = rows.ok_executions[counted]
    metric = rows.metric_mean[counted]
    group = rows.group[counted]
    bucket = hour_buckets(rows.interval[counted])
    if hours is not None:
        bucket = np.where(np.isin(bucket % 24, list(hours)), bucket, OTHER_HOURS)
    frame = pd.DataFrame(
        {
            "target_id": rows.group_keys["target_id"][group],
            "query_id": rows.group_keys["query_id"][group],
            "plan_id": rows.group_keys["plan_id"][group],
            "bucket": bucket,
            "n": n,
            "s1": n * metric,
            "sm2": n * metric * metric,
            "rows": 1.0,
        }
    )
    return frame.groupby(columns[:4], as_index=False)[columns[4:]].sum()[columns]


def _with_baseline(current: pd.DataFrame, baseline: pd.DataFrame | None) -> pd.DataFrame:
    """Current-window plan moments followed by the pre-aggregated baseline's (current False, no span).

    The current groups keep their numbers (the frame's first rows): the persistence check finds the
    rows of a group through them.
    """
    if baseline is None or baseline.empty:
        return current
    base = baseline[list(BASELINE_MOMENT_COLUMNS)].astype(
        {name: float for name in BASELINE_MOMENT_COLUMNS if name not in PLAN_KEYS}
    )
    unit = current["first"].to_numpy().dtype if len(current) else np.dtype("M8[us]")
    never = np.full(len(base), np.datetime64("NaT"), dtype=unit)
    base = base.assign(current=False, first=never, last=never)
    for name in PLAN_KEYS:
        base[name] = base[name].astype(current[name].dtype if len(current) else np.int64)
    return pd.concat([current, base[current.columns]], ignore_index=True)


# -- preparation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnalysedRows:
    """The runtime-stats rows of both windows as numpy columns, each row numbered with its group.

    Plain arrays, not a DataFrame: the analysis reads the large input once here and then works on
    one row per group (a plan on one side of the window), so nothing else copies the big frame.
    The metric is CPU where the row has it, else duration (engines without per-statement CPU).
    """

    group: np.ndarray  # dense group number per row: (target_id, query_id, plan_id, current)
    group_keys: dict[str, np.ndarray]  # per group: target_id, query_id, plan_id, current
    interval: np.ndarray  # interval start, datetime64
    current: np.ndarray  # bool: the row is in the analysed window (else the baseline)
    ok_executions: np.ndarray  # regular executions with a metric value (0 for failed rows)
    metric_mean: np.ndarray
    metric_sd: np.ndarray
    has_cpu: np.ndarray  # bool: the row's metric is CPU
    logical_reads_mean: np.ndarray
    rows_examined_mean: np.ndarray
    failed: np.ndarray  # aborted/exception executions, or errors of regular ones
    executions: np.ndarray
    factor: np.ndarray | None = None  # day-aware baseline factor of the row's slot (None: all 1)
    keep: np.ndarray | None = None  # False for window rows before their query's onset (None: all kept)

    def narrowed(self, keep: np.ndarray | None, factor: np.ndarray | None) -> AnalysedRows:
        """These rows with the onset's mask and the day factors (no copy of the large arrays)."""
        return replace(self, factor=factor, keep=keep)

    def subset(self, selected: np.ndarray) -> AnalysedRows:
        """The selected rows only (a copy; groups keep their numbers)."""
        names = ("group", "interval", "current", "ok_executions", "metric_mean", "metric_sd", "has_cpu",
                 "logical_reads_mean", "rows_examined_mean", "failed", "executions")  # fmt: skip
        return replace(self, **{name: getattr(self, name)[selected] for name in names})

    @property
    def empty(self) -> bool:
        return len(self.group) == 0

    @property
    def groups(self) -> int:
        return len(self.group_keys["current"])


def _utc_naive(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _float_column(values: pd.Series) -> np.ndarray:
    if values.dtype == np.float64:
        return values.to_numpy()  # no copy
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _interval_starts(stats: pd.DataFrame) -> np.ndarray:
    starts = stats["interval_start"]
    if not pd.api.types.is_datetime64_any_dtype(starts):
        starts = pd.to_datetime(starts)
    if isinstance(starts.dtype, pd.DatetimeTZDtype):
        starts = starts.dt.tz_convert("UTC").dt.tz_localize(None)
    return starts.to_numpy()


def _prepare(
    stats: pd.DataFrame, window_start: datetime, window_end: datetime, baseline_start: datetime
) -> AnalysedRows:
    """The rows of [baseline_start, window_end) with the numbers detection needs.

    Each step skips its copy when the data allows (every row in the windows, no missing values,
    CPU everywhere or nowhere): this reads ~2M rows, so each avoided pass counts.
    """
    start, end, base = (
        _utc_naive(moment).to_datetime64() for moment in (window_start, window_end, baseline_start)
    )
    interval = _interval_starts(stats)
    keep = (interval >= base) & (interval < end)
    everything = bool(keep.all())

    def column(name: str) -> np.ndarray:
        values = _float_column(stats[name])
        return values if everything else values[keep]

    if not everything:
        interval = interval[keep]
    keys = [stats[name].to_numpy() if everything else stats[name].to_numpy()[keep] for name in PLAN_KEYS]
    current = interval >= start
    cpu_mean = column("cpu_us_mean")
    has_cpu = ~np.isnan(cpu_mean)
    if has_cpu.all():
        metric_mean, metric_sd = cpu_mean, column("cpu_us_stdev")
    elif not has_cpu.any():
        metric_mean, metric_sd = column("duration_us_mean"), column("duration_us_stdev")
    else:
        metric_mean = np.where(has_cpu, cpu_mean, column("duration_us_mean"))
        metric_sd = np.where(has_cpu, column("cpu_us_stdev"), column("duration_us_stdev"))
    executions = column("executions")
    execution_type = column("execution_type")
    regular = execution_type == 0
    if np.isnan(execution_type.sum()):
        regular |= np.isnan(execution_type)
    ok = regular if np.isfinite(metric_mean.sum()) else regular & ~np.isnan(metric_mean)
    group, group_keys = _group_codes([*keys, current])
    return AnalysedRows(
        group=group,
        group_keys=dict(zip([*PLAN_KEYS, "current"], group_keys, strict=True)),
        interval=interval,
        current=current,
        ok_executions=np.where(ok, _finite(executions), 0.0),
        metric_mean=metric_mean,
        metric_sd=_finite(metric_sd),
        has_cpu=has_cpu,
        logical_reads_mean=column("logical_reads_mean"),
        rows_examined_mean=column("rows_examined_mean"),
        failed=np.where(regular, _finite(column("errors")), executions),
        executions=_finite(executions),
    )


def _finite(values: np.ndarray) -> np.ndarray:
    """NaN as 0 (and infinities clipped); the array itself when there is nothing to replace."""
    return values if np.isfinite(values.sum()) else np.nan_to_num(values)


def _plan_moments(rows: AnalysedRows, products: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Sums per (target, query, plan, side) that add up across plans of one shape, one row per group
    in group-number order: the only pass over the large input (performance moments of regular
    executions, and failures of all).

    Sums are np.bincount over the dense group number: several times cheaper than a pandas
    groupby-sum of the same columns, and this is the hot path of the analysis.
    """
    n = rows.ok_executions
    regular = n > 0
    metric = (
        rows.metric_mean if np.isfinite(rows.metric_mean.sum()) else np.where(regular, rows.metric_mean, 0.0)
    )
    s1 = n * metric
    sm2 = s1 * metric
    if products is not None:  # the day-aware baseline sums the same products per hour of day
        products.update(s1=s1, sm2=sm2)
    columns = {
        "n": n,
        "s1": s1,
        "s2": sm2 + n * rows.metric_sd * rows.metric_sd,  # rows without executions add 0 (n = 0)
        "sm2": sm2,
        "intervals": regular,  # one regular row per plan and interval (natural key)
        "failed": rows.failed,
        "executions": rows.executions,
    }
    moments = pd.DataFrame(rows.group_keys)
    for name, values in columns.items():
        moments[name] = _group_sum(rows.group, values, rows.groups)
    for name, values in (("r1", rows.logical_reads_mean), ("x1", rows.rows_examined_mean)):
        known = ~np.isnan(values) & regular
        moments[name] = (
            _group_sum(rows.group, np.where(known, n * values, np.nan), rows.groups)
            if known.any()
            else np.nan
        )
    if rows.has_cpu.all():
        moments["cpu_rows"] = moments["intervals"]
    elif rows.has_cpu.any():
        moments["cpu_rows"] = _group_sum(rows.group, regular & rows.has_cpu, rows.groups)
    else:
        moments["cpu_rows"] = 0.0
    # first/last interval matter only in the current window (do plans alternate or replace each other?)
    first, last = _group_spans(rows, rows.current & regular)
    moments["first"], moments["last"] = first, last
    return moments


def _group_codes(columns: list[np.ndarray], *, hash_all: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dense group numbers for rows keyed by several columns, and each group's key values.

    Integer and boolean keys are offset by their minimum instead of hashed (ids are integers almost
    always), so only the combined key is factorised; other keys are factorised first.
    """
    codes: list[np.ndarray] = []
    decoders: list[tuple[int, Any]] = []
    for values in columns:
        if values.dtype.kind in "iub" and len(values) and not hash_all:
            low, high = (int(values.min()), int(values.max())) if values.dtype.kind != "b" else (0, 1)
            codes.append(values.astype(np.int64) - low if low else values.astype(np.int64))
            decoders.append((high - low + 1, (low, values.dtype)))
        else:
            code, unique = pd.factorize(values)
            codes.append(code.astype(np.int64))
            decoders.append((max(len(unique), 1), np.asarray(unique)))
    if math.prod(size for size, _ in decoders) >= 2**62:  # would overflow: hash every key instead
        return _group_codes(columns, hash_all=True)
    composite = codes[0]
    for code, (size, _) in zip(codes[1:], decoders[1:], strict=True):
        composite *= size
        composite += code
    group, composite_keys = pd.factorize(composite)
    rest = np.asarray(composite_keys, dtype=np.int64)
    keys: list[np.ndarray] = []
    for size, decoder in reversed(decoders):
        rest, code = np.divmod(rest, size)
        if isinstance(decoder, tuple):
            low, dtype = decoder
            keys.append((code + low).astype(dtype))
        else:
            keys.append(decoder[code])
    return group, keys[::-1]


def _group_sum(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """Per-group sum skipping NaN; NaN where a group has no value at all (pandas' min_count=1)."""
    if values.dtype == np.bool_ or not np.isnan(values.sum()):  # no NaN (the common case): no copies
        return np.bincount(group, weights=values, minlength=groups)
    known = ~np.isnan(values)
    total = np.bincount(group, weights=np.where(known, values, 0.0), minlength=groups)
    if known.all():
        return total
    present = np.bincount(group, weights=known.astype(float), minlength=groups)
    return np.where(present > 0, total, np.nan)


def _group_spans(rows: AnalysedRows, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last interval start per group over the selected rows (NaT where none)."""
    ticks = rows.interval.view(np.int64)[selected]
    group = rows.group[selected]
    first = np.full(rows.groups, np.iinfo(np.int64).max)
    last = np.full(rows.groups, np.iinfo(np.int64).min)
    np.minimum.at(first, group, ticks)
    np.maximum.at(last, group, ticks)
    seen = np.bincount(group, minlength=rows.groups) > 0
    unit = rows.interval.dtype
    nat = np.datetime64("NaT").astype(unit)
    return np.where(seen, first.view(unit), nat), np.where(seen, last.view(unit), nat)


def _shape_keys(plans: pd.DataFrame) -> dict[Any, str]:
    """plan_id -> shape hash (plans without one are their own shape)."""
    if plans is None or plans.empty or "shape_hash" not in plans:
        return {}
    known = plans[plans["shape_hash"].notna()]
    return dict(zip(known["plan_id"], known["shape_hash"].astype(str), strict=False))


def _shapes_of(plan_ids: pd.Series, shapes: dict[Any, str]) -> pd.Series:
    shape = plan_ids.map(shapes)
    return shape.where(shape.notna(), "plan:" + plan_ids.astype(str))


def _shape_moments(moments: pd.DataFrame, shapes: dict[Any, str]) -> pd.DataFrame:
    """Per (target, query, shape, side): pooled moments, the busiest plan_id, first/last interval."""
    moments = moments[moments["n"] > 0].copy()
    moments["shape"] = _shapes_of(moments["plan_id"], shapes)
    busiest = moments.sort_values("n", ascending=False).drop_duplicates([*SHAPE_KEYS, "current"])
    grouped = moments.groupby([*SHAPE_KEYS, "current"], sort=False)
    shaped = grouped[list(_SUMS)].sum(min_count=1)
    shaped["first"] = grouped["first"].min()
    shaped["last"] = grouped["last"].max()
    shaped = shaped.reset_index().merge(
        busiest[[*SHAPE_KEYS, "current", "plan_id"]], on=[*SHAPE_KEYS, "current"], how="left"
    )
    n = shaped["n"]
    shaped["mean"] = shaped["s1"] / n
    shaped["var"] = (shaped["s2"] / n - shaped["mean"] ** 2).clip(lower=0.0)
    shaped["var_between"] = (shaped["sm2"] / n - shaped["mean"] ** 2).clip(lower=0.0)
    shaped["reads_mean"] = shaped["r1"] / n
    shaped["examined_mean"] = shaped["x1"] / n
    shaped["metric"] = np.where(shaped["cpu_rows"] > 0, "cpu_us", "duration_us")
    return shaped


# -- change points and day-aware baselines (planmon.analysis.onset) ----------------------------------


def _find_onsets(
    rows: AnalysedRows,
    plan_moments: pd.DataFrame,
    products: dict[str, np.ndarray],
    *,
    buckets: pd.DataFrame | None,
    window_start: datetime,
    window_end: datetime,
    settings: Settings,
) -> Onsets:
    """Per query: its onset inside the window, its day-aware baseline factor, the rows that stay.

    The day factors come from the baseline rows among ``rows``, or from ``buckets`` (the
    pre-aggregated baseline's sums per query and bucket) when the rows hold only the window."""
    keys = rows.group_keys
    query_of_group, (target_ids, query_ids) = _group_codes([keys["target_id"], keys["query_id"]])
    queries = len(target_ids)
    query = query_of_group[rows.group]
    frame = pd.DataFrame({"target_id": target_ids, "query_id": query_ids})
    reference, reference_plan = _best_baseline_plan(plan_moments, query_of_group, frame, settings)
    n = rows.ok_executions
    # hours since the earliest interval: the day bucket and the window slot of a row by table lookup
    unit, _count = np.datetime_data(rows.interval.dtype)
    per_hour = int(np.timedelta64(1, "h").astype(f"timedelta64[{unit}]").astype(np.int64))
    hour = rows.interval.view(np.int64) // per_hour
    first_hour = int(hour.min())
    hour -= first_hour
    hours_seen = np.datetime64(first_hour, "h") + np.arange(int(hour.max()) + 1)
    reference_of_group = keys["plan_id"] == reference_plan[query_of_group]  # small: one per group
    inputs = (
        _row_cells(
            rows,
            query,
            hour_buckets(hours_seen)[hour],
            reference=reference_of_group,
            products=products,
            queries=queries,
        )
        if buckets is None
        else _bucket_cells(buckets, frame, reference_plan)
    )
    factor_of, kind_of, support_of = day_factors(
        inputs.cell, *inputs.sums, rows=inputs.rows, queries=queries, min_executions=settings.min_executions
    )
    slot_of_hour, starts = slot_index(hours_seen, window_start=window_start, window_end=window_end)
    current = np.flatnonzero(rows.current)
    slot = slot_of_hour[hour[current]]
    counted = n[current] > 0
    executions, weighted = window_cells(
        query[current][counted], slot[counted], n[current][counted], rows.metric_mean[current][counted],
        queries=queries, slots=len(starts),
    )  # fmt: skip
    slot_factor = factor_of[:, hour_buckets(starts)]
    expected = reference[:, None] * slot_factor
    onset, moved = _at_plan_takeover(
        *change_points(executions, weighted, expected, ratio=settings.regression_ratio),
        rows=rows, query=query, current=current, slot=slot, reference_plan=reference_plan,
    )  # fmt: skip
    after = (np.arange(len(starts))[None, :] >= onset[:, None]) & (executions > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = (executions * slot_factor * after).sum(axis=1) / (executions * after).sum(axis=1)
    slot_buckets = hour_buckets(starts)
    weakest = np.where(after, kind_of[:, slot_buckets], len(BASELINE_KINDS)).min(axis=1)
    # no hour or day stood out of its noise after the onset (every shrunk factor exactly 1): the
    # expected cost is the overall baseline mean, which every baseline interval supports
    weakest[np.where(after, slot_factor == 1.0, True).all(axis=1)] = 0
    # the baseline rows the expected cost after the onset rests on: each matched bucket once
    matched = np.zeros(factor_of.shape, dtype=bool)
    for column, bucket in enumerate(slot_buckets):
        matched[:, bucket] |= after[:, column]
    support = np.where(matched, support_of, 0.0).sum(axis=1)
    onset_at = pd.to_datetime(starts[onset])
    frame["onset"] = onset_at
    frame["hours"] = (pd.Timestamp(_utc_naive(window_end)) - onset_at).total_seconds().to_numpy() / 3600.0
    frame["onset_moved"] = moved
    frame["factor"] = np.where(np.isfinite(factor), factor, 1.0)
    frame["baseline_support"] = np.where(weakest > 0, support, np.inf)  # overall: every interval counts
    frame["baseline_kind"] = np.asarray(BASELINE_KINDS)[np.minimum(weakest, len(BASELINE_KINDS) - 1)]
    keep = None
    if moved.any():
        keep = np.ones(len(query), dtype=bool)
        keep[current] = slot >= onset[query[current]]
    row_factor = None
    if not np.all(factor_of == 1.0):
        row_factor = np.ones(len(query))
        row_factor[current] = slot_factor[query[current], slot]
    hours = max((window_end - window_start).total_seconds() / 3600.0, 1e-9)
    return Onsets(frame=frame, keep=keep, row_factor=row_factor, slots=len(starts), window_hours=hours)


def _at_plan_takeover(
    onset: np.ndarray, moved: np.ndarray, *, rows: AnalysedRows, query: np.ndarray, current: np.ndarray,
    slot: np.ndarray, reference_plan: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Moved onsets put back to where the plan running after them took over, when that is not the
    baseline's reference plan and it was already the query's busiest plan in the slots just
    before: the change at the onset is then no change of plan, and a plan change is compared from
    the plan's takeover (a new plan at 1.2x since the morning whose last hours run dearer is a 1.2x
    plan, not a plan change in the evening). The reference plan's own onset stays: that is the
    same plan getting slower.

    Per moved query: the plan with the most executions after the onset; walking back from the
    onset, every slot with data whose busiest plan is that plan joins it (slots without data are
    skipped). Only the moved queries' window rows are read."""
    if not moved.any():
        return onset, moved
    mine = moved[query[current]] & (rows.ok_executions[current] > 0)  # ``slot`` is per ``current`` row
    picked = current[mine]
    frame = pd.DataFrame({"query": query[picked], "slot": slot[mine], "group": rows.group[picked],
                          "n": rows.ok_executions[picked]})  # fmt: skip
    per_slot = frame.groupby(["query", "slot", "group"], sort=False, as_index=False)["n"].sum()
    per_slot["onset"] = onset[per_slot["query"].to_numpy()]
    after = per_slot[per_slot["slot"] >= per_slot["onset"]]
    dominant = after.groupby(["query", "group"], as_index=False)["n"].sum().sort_values("n")
    dominant = dominant.drop_duplicates("query", keep="last").set_index("query")["group"]
    plan_of_group = rows.group_keys["plan_id"]
    dominant = dominant[plan_of_group[dominant.to_numpy()] != reference_plan[dominant.index.to_numpy()]]
    before = per_slot[(per_slot["slot"] < per_slot["onset"]) & per_slot["query"].isin(dominant.index)]
    busiest = before.sort_values("n").drop_duplicates(["query", "slot"], keep="last")
    busiest = busiest.sort_values(["query", "slot"], ascending=[True, False])  # back from the onset
    other = busiest["group"].to_numpy() != dominant.reindex(busiest["query"]).to_numpy()
    joined = busiest[~pd.Series(other, index=busiest.index).groupby(busiest["query"]).cummax()]
    taken = joined.groupby("query")["slot"].min()
    onset, moved = onset.copy(), moved.copy()
    numbers = taken.index.to_numpy()
    onset[numbers] = taken.to_numpy()
    moved[numbers] = onset[numbers] > 0
    return onset, moved


class _DayFactorInputs(NamedTuple):
    """``day_factors``' inputs: a cell per row, its (n, s1, sm2), the intervals it holds (None: 1)."""

    cell: np.ndarray
    sums: tuple[np.ndarray, np.ndarray, np.ndarray]
    rows: np.ndarray | None


def _row_cells(
    rows: AnalysedRows, query: np.ndarray, bucket: np.ndarray, *, reference: np.ndarray,
    products: dict[str, np.ndarray], queries: int,
) -> _DayFactorInputs:  # fmt: skip
    """``day_factors``' inputs from the rows: the baseline rows of each query's reference plan
    (``reference``: per group, is it one) in their query's bucket cell, every other row in the
    spare cell."""
    n = rows.ok_executions
    base = ~rows.current & (n > 0) & reference[rows.group]
    cell = np.where(base, query * (BUCKETS + 1) + bucket, queries * (BUCKETS + 1))
    return _DayFactorInputs(cell, (n, products["s1"], products["sm2"]), None)


def _bucket_cells(
    buckets: pd.DataFrame, queries: pd.DataFrame, reference_plan: np.ndarray
) -> _DayFactorInputs:
    """``day_factors``' inputs from pre-aggregated bucket sums: the cell of each bucket row of its
    query's reference plan (the spare cell for any other), its (n, s1, sm2) and its intervals."""
    index = pd.MultiIndex.from_frame(queries[KEYS]).get_indexer(pd.MultiIndex.from_frame(buckets[KEYS]))
    known = index >= 0
    mine = known & (buckets["plan_id"].to_numpy() == reference_plan[np.where(known, index, 0)])
    bucket = buckets["bucket"].to_numpy(np.int64)
    cell = np.where(mine, index * (BUCKETS + 1) + bucket, len(queries) * (BUCKETS + 1))
    n, s1, sm2 = (buckets[name].to_numpy(float) for name in ("n", "s1", "sm2"))
    return _DayFactorInputs(cell, (n, s1, sm2), buckets["rows"].to_numpy(float))


def _best_baseline_plan(
    plan_moments: pd.DataFrame, query_of_group: np.ndarray, queries: pd.DataFrame, settings: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """Per query (``queries`` order): the lowest baseline plan mean with enough executions, the
    reference the onsets are found against (NaN: none), and that plan's id (whose baseline rows
    give the day factors; any value where the mean is NaN). Plan moments start with the rows'
    groups in group order; a pre-aggregated baseline's rows follow and are matched by key."""
    code = np.full(len(plan_moments), -1, dtype=np.int64)
    code[: len(query_of_group)] = query_of_group
    if len(plan_moments) > len(query_of_group):
        known = pd.MultiIndex.from_frame(queries[KEYS])
        code[len(query_of_group) :] = known.get_indexer(
            pd.MultiIndex.from_frame(plan_moments.iloc[len(query_of_group) :][KEYS])
        )
    n = plan_moments["n"].to_numpy(float)
    chosen = np.flatnonzero(
        (~plan_moments["current"].to_numpy(bool)) & (n >= settings.min_executions) & (code >= 0)
    )
    means = plan_moments["s1"].to_numpy(float)[chosen] / n[chosen]
    order = np.lexsort((means, code[chosen]))  # per query, its cheapest plan first
    query = code[chosen][order]
    first = order[np.r_[True, query[1:] != query[:-1]]] if len(order) else order
    best = np.full(len(queries), np.nan)
    best[code[chosen][first]] = means[first]
    plan_ids = plan_moments["plan_id"].to_numpy()
    plan = np.zeros(len(queries), dtype=plan_ids.dtype)
    plan[code[chosen][first]] = plan_ids[chosen][first]
    return best, plan


def _without_rows(own: pd.DataFrame, rows: AnalysedRows, keep: np.ndarray) -> pd.DataFrame:
    """Plan moments (``_plan_moments(rows)``) less the rows ``keep`` drops: the sums of the dropped
    rows (few) are subtracted, and the spans of the groups that lost rows are found again."""
    dropped = rows.subset(np.flatnonzero(~keep))
    less = _plan_moments(dropped)
    moments = own.copy()
    for name in ("n", "s1", "s2", "sm2", "intervals", "failed", "executions", "cpu_rows"):
        moments[name] = moments[name].to_numpy(float) - less[name].to_numpy(float)
    for name in ("r1", "x1"):
        moments[name] = moments[name].to_numpy(float) - np.nan_to_num(less[name].to_numpy(float))
    affected = np.zeros(rows.groups, dtype=bool)
    affected[dropped.group] = True
    selected = keep & rows.current & (rows.ok_executions > 0) & affected[rows.group]
    first, last = _group_spans(rows, selected)
    moments["first"] = np.where(affected, first, moments["first"].to_numpy())
    moments["last"] = np.where(affected, last, moments["last"].to_numpy())
    return moments


def _onset_columns(frame: pd.DataFrame, onsets: Onsets, hours: float) -> pd.DataFrame:
    """``frame`` (one row per query or per query and plan) with its query's onset columns."""
    merged = frame.merge(onsets.frame, on=KEYS, how="left")
    return merged.fillna(
        {"hours": hours, "onset_moved": False, "factor": 1.0, "baseline_kind": "overall",
         "baseline_support": np.inf}
    )  # fmt: skip


# -- performance kinds -------------------------------------------------------------------------------


def _performance_regressions(
    rows: AnalysedRows,
    plan_moments: pd.DataFrame,
    moments: pd.DataFrame,
    *,
    plans: pd.DataFrame,
    shapes: dict[Any, str],
    onsets: Onsets,
    settings: Settings,
) -> list[dict[str, Any]]:
    baseline = _baseline_shapes(moments, settings)
    current = moments[moments["current"]].copy()
    if baseline.empty or current.empty:
        return []
    current["query_n"] = current.groupby(KEYS)["n"].transform("sum")
    current["share"] = current["n"] / current["query_n"]
    hours = onsets.frame[[*KEYS, "hours"]]
    current = current.merge(hours, on=KEYS, how="left").fillna({"hours": onsets.window_hours})
    sensitive = _parameter_sensitive(current, settings, last_good=baseline.set_index(KEYS)["mean"])
    dominant = current.drop(columns="hours").sort_values("n", ascending=False).drop_duplicates(KEYS)
    pairs = dominant.merge(baseline, on=KEYS, suffixes=("", "_base"))
    pairs = _day_aware(_onset_columns(pairs, onsets, onsets.window_hours))
    pairs = pairs[pairs["n"] >= settings.min_executions]
    pairs["ratio"] = pairs["mean"] / pairs["mean_base"].where(pairs["mean_base"] > 0)
    pairs["extra_per_execution"] = pairs["mean"] - pairs["mean_base"]
    pairs["impact"] = pairs["extra_per_execution"] * pairs["n"] / pairs["hours"] / 1e6
    material = pairs["impact"] >= settings.impact_floor_cpu_seconds_per_hour
    knowledge = PlanKnowledge.of(plans, shapes)
    pairs["ratio_limit"] = _ratio_limits(pairs, knowledge, settings)
    candidates = pairs[
        (pairs["ratio"] >= pairs["ratio_limit"])
        & (material | (pairs["extra_per_execution"] >= settings.min_extra_us_per_execution))
        & ~pd.MultiIndex.from_frame(pairs[KEYS]).isin(list(sensitive))
    ]
    candidates = _significant(candidates, settings, scanned=onsets.slots)
    candidates = _persistent(rows, plan_moments, candidates, shapes=shapes)
    found = [_confirm(row, settings, knowledge) for row in _records(candidates[list(_CONFIRM_COLUMNS)])]
    return found + list(sensitive.values())


def _ratio_limits(pairs: pd.DataFrame, knowledge: PlanKnowledge, settings: Settings) -> np.ndarray:
    """Per pair, the ratio its mean must reach: ``plan_change_ratio`` where the dominant shape differs
    from the baseline plan's and planmon knows both plans (a plan change: a discrete event with a
    cheap, verifiable remedy), else ``regression_ratio`` (same-plan drift, or a plan planmon never
    captured, where it cannot claim that the plan changed)."""
    changed = pairs["shape"].to_numpy() != pairs["shape_base"].to_numpy()
    if knowledge.unknown:
        unknown = list(knowledge.unknown)
        either = pairs["plan_id"].isin(unknown).to_numpy() | pairs["plan_id_base"].isin(unknown).to_numpy()
        changed &= ~either
    return np.where(changed, settings.plan_change_ratio, settings.regression_ratio)


def _day_aware(pairs: pd.DataFrame) -> pd.DataFrame:
    """The baseline side scaled by the query's day-aware factor for the analysed part: its expected
    cost at those hours and days (``mean_base_overall`` keeps the overall baseline mean)."""
    factor = pairs["factor"].to_numpy(float)
    return pairs.assign(
        mean_base_overall=pairs["mean_base"],
        mean_base=pairs["mean_base"] * factor,
        var_base=pairs["var_base"] * factor * factor,
        var_between_base=pairs["var_between_base"] * factor * factor,
        # a day-aware expectation rests on the matched hours' baseline intervals, not on all of them;
        # its between-interval variance is estimated from all of them (significance: after an onset)
        intervals_base=np.minimum(pairs["intervals_base"], pairs["baseline_support"]),
        variance_intervals_base=pairs["intervals_base"],
    )


def _baseline_shapes(moments: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The best plan (lowest mean) with enough baseline executions, per query: the last good plan."""
    base = moments[(~moments["current"]) & (moments["n"] >= settings.min_executions)]
    best = base.sort_values("mean").drop_duplicates(KEYS)
    columns = ["shape", "plan_id", "n", "mean", "var", "var_between", "intervals", "reads_mean",
               "examined_mean"]  # fmt: skip  # fmt: skip
    return best[[*KEYS, *columns]]


def significance(pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(t, one-sided p) per row that the current mean exceeds the baseline (``*_base``) mean.

    The standard error adds the between-interval variance over the number of intervals to the
    within-execution variance over the executions: executions inside one interval share its
    conditions (load, cache, blocking), so they are not independent samples of the plan's cost. The
    current side uses the larger of its own and the baseline's between-interval variance (its few
    intervals understate the noise the baseline shows).

    After a moved onset (``onset_moved``) the compared part is the 2-4 most elevated intervals the
    onset scan chose, so its own variance (1-3 degrees of freedom) says little: the current side's is
    at least the baseline's *relative* spread at the level the part runs at (a plan's interval means
    spread in proportion to its cost), which is the baseline's own variance under "no change" and
    only more conservative above it; and the degrees of freedom are those of the variance estimates
    (all the baseline's intervals, ``variance_intervals_base``, plus the part's), not the few matched
    hours a day-aware expectation rests on (docs/detection.md, "Change points inside the window").
    """
    between_b = pairs["var_between_base"].to_numpy(float)
    between_c = np.maximum(pairs["var_between"].to_numpy(float), between_b)
    k_b = np.maximum(pairs["intervals_base"].to_numpy(float), 1.0)
    k_c = np.maximum(pairs["intervals"].to_numpy(float), 1.0)
    df = np.maximum(k_b + k_c - 2.0, 1.0)
    moved = _onset_moved(pairs)
    if moved.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.maximum(pairs["mean"].to_numpy(float) / pairs["mean_base"].to_numpy(float), 1.0)
        level = np.where(np.isfinite(level), level, 1.0)
        between_c = np.where(moved, np.maximum(between_c, between_b * level * level), between_c)
        k_variance = np.maximum(pairs["variance_intervals_base"].to_numpy(float), 1.0)
        df = np.where(moved, np.maximum(k_variance + k_c - 2.0, 1.0), df)
    se2 = between_b / k_b + between_c / k_c
    se2 += pairs["var_base"].to_numpy(float) / pairs["n_base"].to_numpy(float)
    se2 += pairs["var"].to_numpy(float) / pairs["n"].to_numpy(float)
    diff = pairs["mean"].to_numpy(float) - pairs["mean_base"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se2 > 0, diff / np.sqrt(se2), np.where(diff > 0, np.inf, 0.0))
    return t, student_t_sf_many(t, df)


def _onset_moved(pairs: pd.DataFrame) -> np.ndarray:
    """Per pair: did its onset move into the window (False where the frame has no onsets)."""
    return pairs["onset_moved"].to_numpy(bool) if "onset_moved" in pairs else np.zeros(len(pairs), bool)


def _significant(pairs: pd.DataFrame, settings: Settings, *, scanned: int = 1) -> pd.DataFrame:
    """Pairs whose t-test passes; a moved onset was chosen among ``scanned`` slots, so its p-value
    must pass ``p_value_max / scanned`` (Bonferroni: scanning onsets is that many tests)."""
    if pairs.empty:
        return pairs.assign(t=[], p=[])
    t, p = significance(pairs)
    pairs = pairs.assign(t=t, p=p)
    moved = _onset_moved(pairs)
    limit = np.where(moved, settings.p_value_max / max(scanned, 1), settings.p_value_max)
    passed = pairs["p"].to_numpy(float) <= limit
    if "ratio_limit" in pairs:
        passed &= _beyond_the_plan_change_ratio(pairs, settings)
    return pairs[passed]


def _beyond_the_plan_change_ratio(pairs: pd.DataFrame, settings: Settings) -> np.ndarray:
    """Per pair: True, or, where the lower plan change ratio applies, whether the mean is at least
    PLAN_CHANGE_MARGIN_SE standard errors above that ratio times the baseline (the t statistic of
    the same test against the scaled baseline).

    The plan change ratio sits close to what an equivalent plan's interval noise reaches: a new plan
    at 1.15x whose window happens to average 1.28x passes "at least 1.25x" and "slower than the
    baseline", but not "over 1.25x the baseline by a standard error". The regression ratio is far
    enough from that noise to keep the plain comparison."""
    lowered = pairs["ratio_limit"].to_numpy(float) < settings.regression_ratio
    if not lowered.any():
        return np.ones(len(pairs), dtype=bool)
    ratio = pairs["ratio_limit"].to_numpy(float)
    scaled = pairs.assign(
        mean_base=pairs["mean_base"] * ratio,
        var_base=pairs["var_base"] * ratio * ratio,
        var_between_base=pairs["var_between_base"] * ratio * ratio,
    )
    t, _p = significance(scaled)
    return ~lowered | (t >= PLAN_CHANGE_MARGIN_SE)


def _persistent(
    rows: AnalysedRows,
    plan_moments: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    shapes: dict[Any, str],
) -> pd.DataFrame:
    """Candidates elevated in at least half of the current intervals (two, when there are two or more).

    Per candidate shape and current interval, the execution-weighted mean of the regular rows,
    against the candidate's ratio (``ratio_limit``: the plan change ratio or the regression ratio)
    over the baseline mean. Rows are picked through their group number, so only the candidates' rows
    are touched.
    """
    if candidates.empty:
        return candidates.assign(elevated=[], current_intervals=[])
    groups = plan_moments.loc[plan_moments["current"], PLAN_KEYS].reset_index(names="group")
    groups["shape"] = _shapes_of(groups["plan_id"], shapes)
    limits = candidates[SHAPE_KEYS].reset_index(drop=True)
    ratio = candidates["ratio_limit"].to_numpy(float)
    limits["limit"] = candidates["mean_base_overall"].to_numpy(float) * ratio
    chosen = groups.merge(limits.reset_index(names="candidate"), on=SHAPE_KEYS)
    candidate_of_group = np.full(len(plan_moments), -1, dtype=np.int64)
    candidate_of_group[chosen["group"].to_numpy()] = chosen["candidate"].to_numpy()
    candidate = candidate_of_group[rows.group]
    picked = (candidate >= 0) & (rows.ok_executions > 0)
    if rows.keep is not None:
        picked &= rows.keep
    candidate = candidate[picked]
    interval_code, intervals = pd.factorize(rows.interval[picked])
    cell = candidate * len(intervals) + interval_code
    size = len(candidates) * max(len(intervals), 1)
    n = np.bincount(cell, weights=rows.ok_executions[picked], minlength=size)
    weighted = rows.ok_executions * rows.metric_mean
    if rows.factor is not None:  # each interval against its own hours' expected cost
        weighted = weighted / rows.factor
    w = np.bincount(cell, weights=weighted[picked], minlength=size)
    n, w = n.reshape(len(candidates), -1), w.reshape(len(candidates), -1)
    limit = limits["limit"].to_numpy(float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        elevated = ((n > 0) & (w / np.where(n > 0, n, 1.0) >= limit)).sum(axis=1)
    current_intervals = (n > 0).sum(axis=1)
    merged = candidates.assign(elevated=elevated, current_intervals=current_intervals)
    enough = (merged["elevated"] >= np.minimum(2, merged["current_intervals"])) & (
        merged["elevated"] >= 0.5 * merged["current_intervals"]
    )
    # after a moved onset the new behaviour must hold for MIN_ONSET_SLOTS intervals of its own: a
    # transient plan in one interval at the window's end is a spike, not an onset
    enough &= ~merged["onset_moved"].astype(bool) | (merged["elevated"] >= MIN_ONSET_SLOTS)
    return merged[enough]


@dataclass(frozen=True, slots=True)
class PlanKnowledge:
    """What the plans frame says about plan identity (both columns optional: an offline Query Store
    export names every plan, so without them every plan is known and needs no capture)."""

    unknown: frozenset[Any]  # plan ids no document was captured for, where statistics name no plan
    captured: frozenset[tuple[Any, Any, str]] | None  # (target, query, shape) captured in the window

    @classmethod
    def of(cls, plans: pd.DataFrame | None, shapes: dict[Any, str]) -> PlanKnowledge:
        if plans is None or plans.empty:
            return cls(frozenset(), None)
        unknown: frozenset[Any] = frozenset()
        if "identity_known" in plans:
            unknown = frozenset(plans.loc[~plans["identity_known"].astype(bool), "plan_id"])
        captured = None
        if "captured_in_window" in plans:
            seen = plans[plans["captured_in_window"].astype(bool)]
            captured = frozenset(
                zip(seen["target_id"], seen["query_id"], _shapes_of(seen["plan_id"], shapes), strict=True)
            )
        return cls(unknown, captured)

    def why_unknown(self, row: Any, kind: str) -> str | None:
        """Why this detection cannot say whether the plan changed, or None when it can."""
        if not self.unknown and self.captured is None:  # every plan known and seen (Query Store export)
            return None
        sides = [side for side, plan_id in (("baseline", row.plan_id_base), ("current", row.plan_id))
                 if plan_id in self.unknown]  # fmt: skip
        if sides:
            return (
                f"no plan was ever captured for the {' and '.join(sides)} side: its statistics have no plan"
            )
        in_window = self.captured is None or (row.target_id, row.query_id, row.shape_base) in self.captured
        if kind == RegressionKind.SAME_PLAN and not in_window:
            return (
                "no plan was captured inside the window: this engine's statistics name no plan, so "
                "they were charged to the plan captured before it, which may no longer be the one running"
            )
        return None


def _confirm(row: Any, settings: Settings, knowledge: PlanKnowledge) -> dict[str, Any]:
    """The detection row of a candidate that passed every gate: kind, corroboration, evidence."""
    t, p = float(row.t), float(row.p)
    kind = RegressionKind.SAME_PLAN if row.shape == row.shape_base else RegressionKind.PLAN_CHANGE
    unknown = knowledge.why_unknown(row, kind)
    corroboration = _corroboration(row)
    floor = settings.impact_floor_cpu_seconds_per_hour
    material = row.impact >= floor
    plan_change_gate = row.ratio_limit < settings.regression_ratio  # a known plan change's lower ratio
    which = "plan change ratio" if plan_change_gate else "regression ratio"
    evidence = {
        "rule": f"{row.metric} mean x{row.ratio:.2f} >= {row.ratio_limit:g} ({which}), t={t:.1f} p={p:.2g}, "
        + (
            f"impact {row.impact:.1f}s/h >= {floor}"
            if material
            else f"impact {row.impact:.1f}s/h < {floor} (info), "
            f"+{row.extra_per_execution:.0f}us/execution >= {settings.min_extra_us_per_execution:g}"
        ),
        "elevated_intervals": int(row.elevated),
        "current_intervals": int(row.current_intervals),
        "corroboration": corroboration,
        "onset": row.onset.isoformat(),
        "onset_moved": bool(row.onset_moved),  # the change began inside the window, at ``onset``
        "baseline": {
            "kind": str(row.baseline_kind),  # overall / hour_of_day / hour_of_day_and_daytype
            "factor": round(float(row.factor), 4),  # expected cost at the analysed hours / overall mean
            "overall_mean": float(row.mean_base_overall),
        },
        "baseline_plan": _plan_evidence(row, "_base"),
        "current_plan": _plan_evidence(row, ""),
    }
    severity = _severity(row.impact) if material else Severity.INFO
    if unknown is not None:
        kind = RegressionKind.PLAN_UNKNOWN
        evidence.update(plan_unknown=True, plan_unknown_reason=unknown, hint=PLAN_UNKNOWN_HINT)
    slower_same_work = corroboration["status"] == "not_corroborated"
    if row.metric == "duration_us" and kind == RegressionKind.SAME_PLAN and slower_same_work:
        evidence["classification"] = "waits_or_blocking"  # slower, but the work done did not grow
        severity = Severity.LOW if material else Severity.INFO
    return _detection(row, kind, t=t, p=p, severity=severity, evidence=evidence)


def _corroboration(row: Any) -> dict[str, Any]:
    """For duration-only engines: did the work per execution (reads, rows examined) grow too?"""
    for name, now, then in (
        ("logical_reads", row.reads_mean, row.reads_mean_base),
        ("rows_examined", row.examined_mean, row.examined_mean_base),
    ):
        if pd.notna(now) and pd.notna(then) and then > 0:
            ratio = now / then
            status = "corroborated" if ratio >= CORROBORATION_RATIO else "not_corroborated"
            return {"status": status, "by": name, "ratio": round(float(ratio), 3)}
    if row.metric == "cpu_us":
        return {"status": "corroborated", "by": "cpu_us", "ratio": round(float(row.ratio), 3)}
    return {"status": "unknown", "by": None, "ratio": None}


def _parameter_sensitive(
    current: pd.DataFrame, settings: Settings, *, last_good: pd.Series | None = None
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """Queries whose current window alternates two or more substantial plans that differ by the ratio,
    the slowest also the ratio above the query's last good plan (``last_good``: its baseline mean per
    query, where it has one): a plan that happened to run cheap in the window does not make the other
    one, at its usual cost, a regression."""
    shared = current[
        (current["share"] >= PARAMETER_SENSITIVE_SHARE) & (current["n"] >= settings.min_executions)
    ]
    if shared.empty:
        return {}
    ordered = shared.sort_values("mean")
    best = ordered.drop_duplicates(KEYS, keep="first")
    worst = ordered.drop_duplicates(KEYS, keep="last")
    pairs = best.merge(worst, on=KEYS, suffixes=("_base", "")).set_index(KEYS)
    reference = pd.Series(np.nan, index=pairs.index) if last_good is None else last_good.reindex(pairs.index)
    alternating = (
        (reference.isna() | (pairs["mean"] >= reference * settings.regression_ratio))
        & (pairs["shape"] != pairs["shape_base"])
        & (pairs["mean"] >= pairs["mean_base"] * settings.regression_ratio)
        & (pairs["first"] < pairs["last_base"])
        & (pairs["first_base"] < pairs["last"])
        & (pairs["intervals"] >= 2)
        & (pairs["intervals_base"] >= 2)
    )
    pairs = pairs[alternating]
    if pairs.empty:
        return {}
    extra = shared.merge(pairs[["mean_base"]].reset_index(), on=KEYS)
    extra["extra"] = (extra["mean"] - extra["mean_base"]) * extra["n"] / extra["hours"] / 1e6
    pairs = pairs.join(extra.groupby(KEYS)["extra"].sum().rename("impact"))
    # under the impact floor it is severity info, as the other performance kinds: when the slowest
    # plan costs at least min_extra_us_per_execution more per execution than the fastest
    material = pairs["impact"] >= settings.impact_floor_cpu_seconds_per_hour
    pairs = pairs[material | (pairs["mean"] - pairs["mean_base"] >= settings.min_extra_us_per_execution)]
    if pairs.empty:
        return {}
    t, p = significance(pairs)
    pairs = pairs.assign(t=t, p=p)
    pairs = pairs[pairs["p"] <= settings.p_value_max]
    chosen = shared[pd.MultiIndex.from_frame(shared[KEYS]).isin(pairs.index)]
    plans_of = dict(iter(chosen.groupby(KEYS, sort=False)))
    found: dict[tuple[Any, Any], dict[str, Any]] = {}
    for key, row in zip(pairs.index, _records(pairs), strict=True):
        found[(key[0], key[1])] = _sensitive_detection(
            key, row, plans_of[key], t=float(row.t), p=float(row.p), settings=settings
        )
    return found


def _sensitive_detection(
    key: Any, row: Any, plans: pd.DataFrame, *, t: float, p: float, settings: Settings
) -> dict[str, Any]:
    floor = settings.impact_floor_cpu_seconds_per_hour
    material = row.impact >= floor
    evidence = {
        "rule": f"{len(plans)} plans alternate, each >= {PARAMETER_SENSITIVE_SHARE:.0%} of executions, "
        f"slowest x{row.mean / row.mean_base:.2f} the fastest, "
        + (
            f"impact {row.impact:.1f}s/h >= {floor}"
            if material
            else f"impact {row.impact:.1f}s/h < {floor} (info), "
            f"+{row.mean - row.mean_base:.0f}us/execution >= {settings.min_extra_us_per_execution:g}"
        ),
        "plans": [
            {"plan_id": _native(r.plan_id), "shape": r.shape, "executions": float(r.n), "mean": float(r.mean),
             "share": float(r.share)}
            for r in _records(plans)
        ],
    }  # fmt: skip
    return {
        "target_id": _native(key[0]),
        "query_id": _native(key[1]),
        "kind": RegressionKind.PARAMETER_SENSITIVE,
        "metric": row.metric,
        "baseline_plan_id": _native(row.plan_id_base),
        "current_plan_id": _native(row.plan_id),
        "baseline_mean": float(row.mean_base),
        "current_mean": float(row.mean),
        "baseline_stdev": math.sqrt(float(row.var_base)),
        "current_stdev": math.sqrt(float(row.var)),
        "baseline_executions": float(row.n_base),
        "current_executions": float(row.n),
        "ratio": float(row.mean / row.mean_base),
        "impact": float(row.impact),
        "t_statistic": float(t),
        "p_value": float(p),
        "severity": _severity(float(row.impact)) if material else Severity.INFO,
        "evidence": evidence,
    }


# -- errors and forcing --------------------------------------------------------------------------------


def _error_regressions(
    plan_moments: pd.DataFrame, onsets: Onsets, settings: Settings
) -> list[dict[str, Any]]:
    sides = plan_moments.groupby([*KEYS, "current"])[["failed", "executions"]].sum()
    table = sides.unstack("current").fillna(0.0)
    if table.empty or ("failed", True) not in table.columns:
        return []
    failed_now, total_now = table[("failed", True)], table[("executions", True)]
    zero = pd.Series(0.0, index=table.index)
    failed_before = table[("failed", False)] if ("failed", False) in table.columns else zero
    total_before = table[("executions", False)] if ("executions", False) in table.columns else zero
    rate_now = failed_now / total_now.where(total_now > 0)
    rate_before = (failed_before / total_before.where(total_before > 0)).fillna(0.0)
    rising = (
        (failed_now >= ERROR_COUNT_FLOOR)
        & (rate_now >= ERROR_RATE_FLOOR)
        & (rate_now >= ERROR_RATE_RISE * rate_before)
    )
    keys = rate_now.index[rising.to_numpy()]
    columns = [
        c[rising.to_numpy()].to_numpy(float) for c in (failed_before, total_before, failed_now, total_now)
    ]
    hours_of = onsets.frame.set_index(KEYS)["hours"]
    found = []
    for key, *counts in zip(keys, *columns, strict=True):
        hours = float(hours_of.get(key, onsets.window_hours))
        p = two_proportion_p(*counts)
        if p <= settings.p_value_max:
            before, now = (counts[0] / counts[1] if counts[1] > 0 else 0.0), counts[2] / counts[3]
            found.append(_error_detection(key, tuple(counts), before=before, now=now, p=p, hours=hours))
    return found


def _error_detection(
    key: Any, counts: tuple[Any, ...], *, before: float, now: float, p: float, hours: float
) -> dict[str, Any]:
    _failed_before, total_before, failed_now, total_now = (float(c) for c in counts)
    return {
        "target_id": _native(key[0]),
        "query_id": _native(key[1]),
        "kind": RegressionKind.ERROR_PRONE,
        "metric": "errors",
        "baseline_plan_id": None,
        "current_plan_id": None,
        "baseline_mean": before,
        "current_mean": now,
        "baseline_stdev": None,
        "current_stdev": None,
        "baseline_executions": total_before,
        "current_executions": total_now,
        "ratio": now / before if before > 0 else None,  # undefined from a zero baseline
        "impact": failed_now / hours,
        "t_statistic": None,
        "p_value": p,
        "severity": Severity.HIGH if now >= 0.1 else Severity.MEDIUM,
        "evidence": {
            "rule": f"error rate {before:.2%} -> {now:.2%}, two-proportion p={p:.2g}",
            "failed_executions": failed_now,
        },
    }


def _forcing_failures(plans: pd.DataFrame) -> list[dict[str, Any]]:
    """Forced plans whose force_failure_count rose in the window (its level alone means nothing)."""
    needed = {"force_failure_count", "force_failure_count_before", "plan_id", "query_id", "target_id"}
    if plans is None or plans.empty or not needed <= set(plans.columns):
        return []
    now = pd.to_numeric(plans["force_failure_count"], errors="coerce")
    before = pd.to_numeric(plans["force_failure_count_before"], errors="coerce")
    risen = plans[(now > before) & before.notna()]
    return [_forcing_detection(r) for r in _records(risen)]


def _forcing_detection(r: Any) -> dict[str, Any]:
    return {
        "target_id": _native(r.target_id),
        "query_id": _native(r.query_id),
        "kind": RegressionKind.FORCED_PLAN_FAILURE,
        "metric": "force_failure_count",
        "baseline_plan_id": _native(r.plan_id),
        "current_plan_id": _native(r.plan_id),
        "baseline_mean": float(r.force_failure_count_before),
        "current_mean": float(r.force_failure_count),
        "baseline_stdev": None,
        "current_stdev": None,
        "baseline_executions": None,
        "current_executions": None,
        "ratio": None,
        "impact": float(r.force_failure_count - r.force_failure_count_before),
        "t_statistic": None,
        "p_value": None,
        "severity": Severity.HIGH,
        "evidence": {
            "rule": "force_failure_count rose while the plan is forced",
            "last_force_failure_reason": getattr(r, "last_force_failure_reason", None),
        },
    }


# -- rows --------------------------------------------------------------------------------------------


def _detection(
    row: Any, kind: str, *, t: float, p: float, severity: str, evidence: dict[str, Any]
) -> dict[str, Any]:
    return {
        "target_id": _native(row.target_id),
        "query_id": _native(row.query_id),
        "kind": kind,
        "metric": row.metric,
        "baseline_plan_id": _native(row.plan_id_base),
        "current_plan_id": _native(row.plan_id),
        "baseline_mean": float(row.mean_base),
        "current_mean": float(row.mean),
        "baseline_stdev": math.sqrt(float(row.var_base)),
        "current_stdev": math.sqrt(float(row.var)),
        "baseline_executions": float(row.n_base),
        "current_executions": float(row.n),
        "ratio": float(row.ratio),
        "impact": float(row.impact),
        "t_statistic": float(t),
        "p_value": float(p),
        "severity": severity,
        "evidence": evidence,
    }


def _plan_evidence(row: Any, suffix: str) -> dict[str, Any]:
    return {
        "plan_id": _native(getattr(row, f"plan_id{suffix}")),
        "shape": getattr(row, f"shape{suffix}"),
        "executions": float(getattr(row, f"n{suffix}")),
        "mean": float(getattr(row, f"mean{suffix}")),
        "stdev": math.sqrt(float(getattr(row, f"var{suffix}"))),
        "intervals": int(getattr(row, f"intervals{suffix}")),
    }


def _severity(impact: float) -> Severity:
    for floor, name in SEVERITY_SECONDS_PER_HOUR:
        if impact >= floor:
            return name
    return Severity.LOW


def _records(frame: pd.DataFrame) -> Iterator[Any]:
    """Rows as attribute-access tuples (typed Any: their fields are the frame's columns)."""
    return iter(frame.itertuples(index=False))


def _native(value: Any) -> Any:
    """numpy scalars to Python ones, so detections serialise to JSON and store as-is."""
    return value.item() if isinstance(value, np.generic) else value
