"""Regression detection: the analysed window against its baseline window, per target and query.

Vectorised with pandas: every statistic is a groupby over the runtime-stats frame; only the few
candidates that pass the cheap filters are looked at one by one (for the t-test and the evidence).

Per query and side (baseline = [baseline_start, window_start), current = [window_start, window_end)):
- per plan, execution-weighted mean and pooled variance of the metric, from per-interval means and
  standard deviations (variance across rows: sum(n * (sd^2 + mean^2)) / sum(n) - mean^2); averages
  of averages are never taken;
- the metric is CPU where the engine reports it, else duration (PostgreSQL, MySQL), corroborated by
  logical reads or rows examined;
- the baseline plan is the best plan (lowest mean) with enough executions in the baseline window.

A regression needs all of: enough executions on both sides; current/baseline mean at or over the
ratio threshold; Welch's test significant; an impact (extra metric-seconds per hour at the current
execution rate) over the floor; and persistence (at least half of the current window's intervals
elevated, and two of them when there are two or more), so a one-interval spike is not one.
A faster plan is never a regression. Kinds:

- ``plan_change``: the current dominant plan's shape differs from the baseline plan's;
- ``same_plan``: same shape, slower (data growth, statistics, blocking);
- ``parameter_sensitive``: two or more plans share the current window and differ by the ratio;
- ``error_prone``: the share of aborted/failed executions rose (two-proportion test + floors);
- ``forced_plan_failure``: ``force_failure_count`` rose during the window (plans frame column
  ``force_failure_count_before`` holds the value at the window start; its level never counts).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from planmon.analysis.frames import DETECTION_COLUMNS, empty_detections
from planmon.analysis.statistics import Moments, two_proportion_p, welch
from planmon.config import Settings

KEYS = ["target_id", "query_id"]
PLAN_KEYS = [*KEYS, "plan_id"]
ERROR_TYPES = (3, 4)  # Query Store execution_type: aborted, exception
PARAMETER_SENSITIVE_SHARE = 0.2  # each of two plans runs at least this share of the current executions
CORROBORATION_RATIO = 1.2  # duration-only engines: reads/rows examined up by 20% corroborate a slowdown
ERROR_RATE_FLOOR = 0.01  # an error rate under 1% in the current window is noise, not a regression
ERROR_COUNT_FLOOR = 10  # ... and so are fewer than 10 failed executions
ERROR_RATE_RISE = 2.0  # the error rate at least doubled
SEVERITY_SECONDS_PER_HOUR = ((3600.0, "critical"), (600.0, "high"), (60.0, "medium"))  # else "low"


def detect(
    stats: pd.DataFrame,
    plans: pd.DataFrame,
    *,
    window_start: datetime,
    window_end: datetime,
    baseline_start: datetime,
    settings: Settings,
) -> pd.DataFrame:
    """Regressions in [window_start, window_end) against [baseline_start, window_start); see module doc."""
    frame = _prepare(stats, window_start, window_end, baseline_start)
    hours = max((window_end - window_start).total_seconds() / 3600.0, 1e-9)
    found: list[dict[str, Any]] = []
    if not frame.empty:
        moments = _plan_moments(frame)
        found += _performance_regressions(frame, moments, plans, hours, settings)
        found += _error_regressions(frame, hours, settings)
    found += _forcing_failures(plans)
    if not found:
        return empty_detections()
    return pd.DataFrame(found, columns=list(DETECTION_COLUMNS))


# -- preparation -----------------------------------------------------------------------------------


def _prepare(
    stats: pd.DataFrame, window_start: datetime, window_end: datetime, baseline_start: datetime
) -> pd.DataFrame:
    start = (
        pd.Timestamp(window_start).tz_localize(None)
        if pd.Timestamp(window_start).tzinfo
        else pd.Timestamp(window_start)
    )
    end = (
        pd.Timestamp(window_end).tz_localize(None)
        if pd.Timestamp(window_end).tzinfo
        else pd.Timestamp(window_end)
    )
    base = (
        pd.Timestamp(baseline_start).tz_localize(None)
        if pd.Timestamp(baseline_start).tzinfo
        else pd.Timestamp(baseline_start)
    )
    frame = stats.loc[:, [c for c in stats.columns if c != "id"]].copy()
    frame["interval_start"] = pd.to_datetime(frame["interval_start"])
    frame = frame[(frame["interval_start"] >= base) & (frame["interval_start"] < end)]
    if frame.empty:
        return frame
    for column in (
        "executions",
        "errors",
        "cpu_us_mean",
        "cpu_us_stdev",
        "duration_us_mean",
        "duration_us_stdev",
        "logical_reads_mean",
        "rows_examined_mean",
        "execution_type",
    ):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["current"] = frame["interval_start"] >= start
    has_cpu = frame.groupby(KEYS)["cpu_us_mean"].transform("count") > 0
    frame["metric"] = np.where(has_cpu, "cpu_us", "duration_us")
    frame["m_mean"] = np.where(has_cpu, frame["cpu_us_mean"], frame["duration_us_mean"])
    frame["m_sd"] = np.where(has_cpu, frame["cpu_us_stdev"], frame["duration_us_stdev"])
    frame["m_sd"] = frame["m_sd"].fillna(0.0)
    regular = frame["execution_type"].fillna(0).eq(0)
    frame["failed"] = np.where(regular, frame["errors"].fillna(0.0), frame["executions"])
    frame["ok_executions"] = np.where(regular, frame["executions"], 0.0)
    return frame


def _utc_naive(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _plan_moments(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (target, query, plan, side): executions, weighted mean, pooled variance, corroborating means."""
    regular = frame[frame["ok_executions"] > 0].copy()
    n = regular["ok_executions"]
    regular["s1"] = n * regular["m_mean"]
    regular["s2"] = n * (regular["m_sd"] ** 2 + regular["m_mean"] ** 2)
    regular["d1"] = n * regular["duration_us_mean"].fillna(0.0)
    regular["r1"] = n * regular["logical_reads_mean"]
    regular["x1"] = n * regular["rows_examined_mean"]
    grouped = regular.groupby([*PLAN_KEYS, "current"], sort=False).agg(
        n=("ok_executions", "sum"),
        s1=("s1", "sum"),
        s2=("s2", "sum"),
        d1=("d1", "sum"),
        r1=("r1", "sum"),
        x1=("x1", "sum"),
        intervals=("interval_start", "nunique"),
        metric=("metric", "first"),
    )
    grouped["mean"] = grouped["s1"] / grouped["n"]
    grouped["var"] = (grouped["s2"] / grouped["n"] - grouped["mean"] ** 2).clip(lower=0.0)
    grouped["duration_mean"] = grouped["d1"] / grouped["n"]
    grouped["reads_mean"] = grouped["r1"] / grouped["n"]
    grouped["examined_mean"] = grouped["x1"] / grouped["n"]
    return grouped.reset_index()


# -- performance kinds -------------------------------------------------------------------------------


def _performance_regressions(
    frame: pd.DataFrame, moments: pd.DataFrame, plans: pd.DataFrame, hours: float, settings: Settings
) -> list[dict[str, Any]]:
    baseline = _baseline_plans(moments, settings)
    current = moments[moments["current"]]
    if baseline.empty or current.empty:
        return []
    totals = current.groupby(KEYS)["n"].sum().rename("query_n")
    current = current.join(totals, on=KEYS)
    current["share"] = current["n"] / current["query_n"]
    dominant = current.sort_values("n", ascending=False).drop_duplicates(KEYS)
    pairs = dominant.merge(baseline, on=KEYS, suffixes=("", "_base"))
    pairs = pairs[(pairs["n"] >= settings.min_executions)]
    pairs["ratio"] = pairs["mean"] / pairs["mean_base"].where(pairs["mean_base"] > 0)
    pairs["impact"] = (pairs["mean"] - pairs["mean_base"]) * pairs["n"] / hours / 1e6
    candidates = pairs[
        (pairs["ratio"] >= settings.regression_ratio)
        & (pairs["impact"] >= settings.impact_floor_cpu_seconds_per_hour)
    ]
    shapes = _shape_lookup(plans)
    sensitive = _parameter_sensitive(current, baseline, hours, settings)
    interval_means = _interval_means(frame, candidates)
    found = []
    for row in _records(candidates):
        key = (row.target_id, row.query_id)
        if key in sensitive:
            continue
        detection = _confirm(interval_means, row, shapes, settings)
        if detection is not None:
            found.append(detection)
    found.extend(sensitive.values())
    return found


def _baseline_plans(moments: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The best plan (lowest mean) with enough baseline executions, per query: the last good plan."""
    base = moments[(~moments["current"]) & (moments["n"] >= settings.min_executions)]
    best = base.sort_values("mean").drop_duplicates(KEYS)
    return best[
        [*KEYS, "plan_id", "n", "mean", "var", "intervals", "duration_mean", "reads_mean", "examined_mean"]
    ]


def _shape_lookup(plans: pd.DataFrame) -> dict[Any, Any]:
    if plans is None or plans.empty or "shape_hash" not in plans:
        return {}
    return dict(zip(plans["plan_id"], plans["shape_hash"], strict=False))


def _same_shape(shapes: dict[Any, Any], plan_a: Any, plan_b: Any) -> bool:
    if plan_a == plan_b:
        return True
    shape_a, shape_b = shapes.get(plan_a), shapes.get(plan_b)
    return (
        shape_a is not None
        and shape_a == shape_b
        and not (isinstance(shape_a, float) and math.isnan(shape_a))
    )


def _confirm(
    interval_means: dict[tuple[Any, Any, Any], np.ndarray],
    row: Any,
    shapes: dict[Any, Any],
    settings: Settings,
) -> dict[str, Any] | None:
    """Significance, persistence and corroboration for one candidate; its detection row or None."""
    t, _df, p = welch(Moments(row.mean_base, row.var_base, row.n_base), Moments(row.mean, row.var, row.n))
    if p > settings.p_value_max:
        return None
    means = interval_means.get((row.target_id, row.query_id, row.plan_id), np.empty(0))
    elevated, intervals = int((means >= row.mean_base * settings.regression_ratio).sum()), len(means)
    if elevated < min(2, intervals) or elevated < 0.5 * intervals:
        return None
    kind = "same_plan" if _same_shape(shapes, row.plan_id, row.plan_id_base) else "plan_change"
    corroboration = _corroboration(row)
    evidence = {
        "rule": f"{row.metric} mean x{row.ratio:.2f} >= {settings.regression_ratio}, Welch p={p:.2g}, "
        f"impact {row.impact:.1f}s/h >= {settings.impact_floor_cpu_seconds_per_hour}",
        "elevated_intervals": int(elevated),
        "current_intervals": int(intervals),
        "corroboration": corroboration,
        "baseline_plan": _plan_evidence(row, "_base"),
        "current_plan": _plan_evidence(row, ""),
    }
    severity = _severity(row.impact)
    if row.metric == "duration_us" and kind == "same_plan" and corroboration["status"] == "not_corroborated":
        evidence["classification"] = "waits_or_blocking"  # slower, but the work done did not grow
        severity = "low"
    return _detection(row, kind, t=t, p=p, severity=severity, evidence=evidence)


def _interval_means(frame: pd.DataFrame, candidates: pd.DataFrame) -> dict[tuple[Any, Any, Any], np.ndarray]:
    """Per candidate plan, its execution-weighted metric mean of each current interval (one groupby)."""
    if candidates.empty:
        return {}
    keys = pd.MultiIndex.from_frame(candidates[PLAN_KEYS])
    rows = frame[frame["current"] & (frame["ok_executions"] > 0)]
    rows = rows[pd.MultiIndex.from_frame(rows[PLAN_KEYS]).isin(keys)]
    weighted = rows.assign(w=rows["m_mean"] * rows["ok_executions"])
    sums = weighted.groupby([*PLAN_KEYS, "interval_start"]).agg(w=("w", "sum"), n=("ok_executions", "sum"))
    sums["mean"] = sums["w"] / sums["n"]
    return {
        (key[0], key[1], key[2]): group["mean"].to_numpy()
        for key, group in sums.reset_index().groupby(PLAN_KEYS)
    }


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
    current: pd.DataFrame, baseline: pd.DataFrame, hours: float, settings: Settings
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """Queries whose current window runs two or more substantial plans that differ by the ratio."""
    shared = current[
        (current["share"] >= PARAMETER_SENSITIVE_SHARE) & (current["n"] >= settings.min_executions)
    ]
    spread = shared.groupby(KEYS).agg(
        plans=("plan_id", "nunique"),
        low=("mean", "min"),
        high=("mean", "max"),
        n=("n", "sum"),
        query_n=("query_n", "first"),
    )
    spread = spread[(spread["plans"] >= 2) & (spread["high"] >= spread["low"] * settings.regression_ratio)]
    found: dict[tuple[Any, Any], dict[str, Any]] = {}
    for group_key, group in shared[shared.set_index(KEYS).index.isin(spread.index)].groupby(KEYS):
        key = (group_key[0], group_key[1])
        best, worst = group.sort_values("mean").iloc[0], group.sort_values("mean").iloc[-1]
        impact = float(((group["mean"] - best["mean"]) * group["n"]).sum() / hours / 1e6)
        if impact < settings.impact_floor_cpu_seconds_per_hour:
            continue
        t, _df, p = welch(
            Moments(best["mean"], best["var"], best["n"]), Moments(worst["mean"], worst["var"], worst["n"])
        )
        if p > settings.p_value_max:
            continue
        evidence = {
            "rule": f"{len(group)} plans each >= {PARAMETER_SENSITIVE_SHARE:.0%} of executions, "
            f"slowest x{worst['mean'] / best['mean']:.2f} the fastest",
            "plans": [
                {
                    "plan_id": _native(r.plan_id),
                    "executions": float(r.n),
                    "mean": float(r.mean),
                    "share": float(r.share),
                }
                for r in _records(group)
            ],
        }
        found[key] = {
            "target_id": _native(key[0]),
            "query_id": _native(key[1]),
            "kind": "parameter_sensitive",
            "metric": worst["metric"],
            "baseline_plan_id": _native(best["plan_id"]),
            "current_plan_id": _native(worst["plan_id"]),
            "baseline_mean": float(best["mean"]),
            "current_mean": float(worst["mean"]),
            "baseline_stdev": math.sqrt(float(best["var"])),
            "current_stdev": math.sqrt(float(worst["var"])),
            "baseline_executions": float(best["n"]),
            "current_executions": float(worst["n"]),
            "ratio": float(worst["mean"] / best["mean"]),
            "impact": impact,
            "t_statistic": float(t),
            "p_value": float(p),
            "severity": _severity(impact),
            "evidence": evidence,
        }
    del baseline
    return found


# -- errors and forcing --------------------------------------------------------------------------------


def _error_regressions(frame: pd.DataFrame, hours: float, settings: Settings) -> list[dict[str, Any]]:
    sides = frame.groupby([*KEYS, "current"]).agg(failed=("failed", "sum"), total=("executions", "sum"))
    table = sides.unstack("current").fillna(0.0)
    if (True not in table.columns.get_level_values(1)) or table.empty:
        return []
    failed_now = table[("failed", True)]
    total_now = table[("total", True)]
    failed_before = table[("failed", False)] if ("failed", False) in table else 0.0 * failed_now
    total_before = table[("total", False)] if ("total", False) in table else 0.0 * total_now
    rate_now = failed_now / total_now.where(total_now > 0)
    rate_before = failed_before / total_before.where(total_before > 0)
    rising = (
        (failed_now >= ERROR_COUNT_FLOOR)
        & (rate_now >= ERROR_RATE_FLOOR)
        & (rate_now >= ERROR_RATE_RISE * rate_before.fillna(0.0))
    )
    found = []
    for key in rate_now[rising].index:
        p = two_proportion_p(
            float(failed_before[key]), float(total_before[key]), float(failed_now[key]), float(total_now[key])
        )
        if p > settings.p_value_max:
            continue
        errors_per_hour = float(failed_now[key]) / hours
        before = float(rate_before[key]) if pd.notna(rate_before[key]) else 0.0
        found.append(
            {
                "target_id": _native(key[0]),
                "query_id": _native(key[1]),
                "kind": "error_prone",
                "metric": "errors",
                "baseline_plan_id": None,
                "current_plan_id": None,
                "baseline_mean": before,
                "current_mean": float(rate_now[key]),
                "baseline_stdev": None,
                "current_stdev": None,
                "baseline_executions": float(total_before[key]),
                "current_executions": float(total_now[key]),
                "ratio": float(rate_now[key] / before) if before > 0 else None,  # undefined from zero
                "impact": errors_per_hour,
                "t_statistic": None,
                "p_value": p,
                "severity": "high" if rate_now[key] >= 0.1 else "medium",
                "evidence": {
                    "rule": f"error rate {before:.2%} -> {float(rate_now[key]):.2%}, "
                    f"two-proportion p={p:.2g}",
                    "failed_executions": float(failed_now[key]),
                },
            }
        )
    return found


def _forcing_failures(plans: pd.DataFrame) -> list[dict[str, Any]]:
    """Forced plans whose force_failure_count rose in the window (its level alone means nothing)."""
    needed = {"force_failure_count", "force_failure_count_before", "plan_id", "query_id", "target_id"}
    if plans is None or plans.empty or not needed <= set(plans.columns):
        return []
    now = pd.to_numeric(plans["force_failure_count"], errors="coerce")
    before = pd.to_numeric(plans["force_failure_count_before"], errors="coerce")
    risen = plans[(now > before) & before.notna()]
    return [
        {
            "target_id": _native(r.target_id),
            "query_id": _native(r.query_id),
            "kind": "forced_plan_failure",
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
            "severity": "high",
            "evidence": {
                "rule": "force_failure_count rose while the plan is forced",
                "last_force_failure_reason": getattr(r, "last_force_failure_reason", None),
            },
        }
        for r in _records(risen)
    ]


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
        "executions": float(getattr(row, f"n{suffix}")),
        "mean": float(getattr(row, f"mean{suffix}")),
        "stdev": math.sqrt(float(getattr(row, f"var{suffix}"))),
        "intervals": int(getattr(row, f"intervals{suffix}")),
    }


def _severity(impact: float) -> str:
    for floor, name in SEVERITY_SECONDS_PER_HOUR:
        if impact >= floor:
            return name
    return "low"


def _records(frame: pd.DataFrame) -> Iterator[Any]:
    """Rows as attribute-access tuples (typed Any: their fields are the frame's columns)."""
    return iter(frame.itertuples(index=False))


def _native(value: Any) -> Any:
    """numpy scalars to Python ones, so detections serialise to JSON and store as-is."""
    return value.item() if isinstance(value, np.generic) else value
