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
ratio threshold; a significant t-test whose standard error includes the between-interval variance
(executions within an interval are not independent samples of a plan's cost); an impact (extra
metric-seconds per hour at the current execution rate) over the floor; and persistence (at least
half of the current window's intervals elevated, and two of them when there are two or more), so a
one-interval spike is not one. A faster plan is never a regression. Kinds:

- ``plan_change``: the current dominant plan's shape differs from the baseline plan's;
- ``same_plan``: same shape, slower (data growth, statistics, blocking);
- ``parameter_sensitive``: two or more plans *alternate* in the current window (their spans of
  intervals overlap: one replacing the other is a plan change), each with a substantial share,
  the slowest the ratio slower than the fastest;
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
from planmon.analysis.statistics import student_t_sf, two_proportion_p
from planmon.config import Settings

KEYS = ["target_id", "query_id"]
PLAN_KEYS = [*KEYS, "plan_id"]
SHAPE_KEYS = [*KEYS, "shape"]
PARAMETER_SENSITIVE_SHARE = 0.2  # each of two plans runs at least this share of the current executions
CORROBORATION_RATIO = 1.2  # duration-only engines: reads/rows examined up by 20% corroborate a slowdown
ERROR_RATE_FLOOR = 0.01  # an error rate under 1% in the current window is noise, not a regression
ERROR_COUNT_FLOOR = 10  # ... and so are fewer than 10 failed executions
ERROR_RATE_RISE = 2.0  # the error rate at least doubled
SEVERITY_SECONDS_PER_HOUR = ((3600.0, "critical"), (600.0, "high"), (60.0, "medium"))  # else "low"
_NUMERIC = (
    "executions", "errors", "cpu_us_mean", "cpu_us_stdev", "duration_us_mean", "duration_us_stdev",
    "logical_reads_mean", "rows_examined_mean", "execution_type",
)  # fmt: skip
_SUMS = ("n", "s1", "s2", "sm2", "r1", "x1", "cpu_rows", "intervals")


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
        shapes = _shape_keys(plans)
        plan_moments = _plan_moments(frame)
        moments = _shape_moments(plan_moments, shapes)
        found += _performance_regressions(frame, moments, shapes, hours, settings)
        found += _error_regressions(plan_moments, hours, settings)
    found += _forcing_failures(plans)
    if not found:
        return empty_detections()
    return pd.DataFrame(found, columns=list(DETECTION_COLUMNS))


def query_moments(stats: pd.DataFrame, *, start: datetime, end: datetime) -> pd.DataFrame:
    """Per (target, query): executions, execution-weighted mean and pooled variance of the metric in
    [start, end), over all its plans, computed exactly as detection computes them (remediation's
    verification compares these with a regression's baseline and regressed plans)."""
    columns = [*KEYS, "n", "mean", "var", "metric"]
    frame = _prepare(stats, start, end, start) if not stats.empty else pd.DataFrame()
    if frame.empty:
        return pd.DataFrame(columns=columns)
    sums = _plan_moments(frame).groupby(KEYS, sort=False)[["n", "s1", "s2", "cpu_rows"]].sum().reset_index()
    sums = sums[sums["n"] > 0]
    sums["mean"] = sums["s1"] / sums["n"]
    sums["var"] = (sums["s2"] / sums["n"] - sums["mean"] ** 2).clip(lower=0.0)
    sums["metric"] = np.where(sums["cpu_rows"] > 0, "cpu_us", "duration_us")
    return sums[columns].reset_index(drop=True)


# -- preparation -----------------------------------------------------------------------------------


def _utc_naive(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _prepare(
    stats: pd.DataFrame, window_start: datetime, window_end: datetime, baseline_start: datetime
) -> pd.DataFrame:
    """The rows of both windows with the numbers detection needs, one metric column per row."""
    start, end, base = (_utc_naive(moment) for moment in (window_start, window_end, baseline_start))
    interval_start = pd.to_datetime(stats["interval_start"])
    keep = (interval_start >= base) & (interval_start < end)
    frame = pd.DataFrame({name: stats[name][keep] for name in PLAN_KEYS})
    frame["interval_start"] = interval_start[keep]
    for column in _NUMERIC:
        values = stats[column][keep]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        frame[column] = values.astype(float) if numeric else pd.to_numeric(values, errors="coerce")
    if frame.empty:
        return frame
    frame["current"] = frame["interval_start"] >= start
    has_cpu = frame["cpu_us_mean"].notna()
    frame["cpu_row"] = has_cpu.astype(float)
    frame["m_mean"] = frame["cpu_us_mean"].where(has_cpu, frame["duration_us_mean"])
    frame["m_sd"] = frame["cpu_us_stdev"].where(has_cpu, frame["duration_us_stdev"]).fillna(0.0)
    regular = frame["execution_type"].fillna(0).eq(0)
    frame["failed"] = np.where(regular, frame["errors"].fillna(0.0), frame["executions"])
    frame["ok_executions"] = np.where(regular & frame["m_mean"].notna(), frame["executions"], 0.0)
    return frame


def _plan_moments(frame: pd.DataFrame) -> pd.DataFrame:
    """Sums per (target, query, plan, side) that add up across plans of one shape: the only pass
    over the large frame (performance moments of regular executions, and failures of all).

    Sums are np.bincount over one factorised group code: several times cheaper than a pandas
    groupby-sum of the same columns, and this is the hot path of the analysis.
    """
    n = frame["ok_executions"].to_numpy(float)
    regular = n > 0
    metric = np.where(regular, frame["m_mean"].to_numpy(float), 0.0)
    spread = np.where(regular, frame["m_sd"].to_numpy(float), 0.0)
    columns = {
        "n": n,
        "s1": n * metric,
        "s2": n * (spread**2 + metric**2),
        "sm2": n * metric**2,
        "r1": np.where(regular, n * frame["logical_reads_mean"].to_numpy(float), np.nan),
        "x1": np.where(regular, n * frame["rows_examined_mean"].to_numpy(float), np.nan),
        "cpu_rows": np.where(regular, frame["cpu_row"].to_numpy(float), 0.0),
        "intervals": regular.astype(float),  # one regular row per plan and interval (natural key)
        "failed": frame["failed"].to_numpy(float),
        "executions": np.nan_to_num(frame["executions"].to_numpy(float)),
    }
    group, keys = _group_codes([frame[name].to_numpy() for name in (*PLAN_KEYS, "current")])
    groups = len(keys[0])
    moments = pd.DataFrame(dict(zip([*PLAN_KEYS, "current"], keys, strict=True)))
    for name, values in columns.items():
        moments[name] = _group_sum(group, values, groups)
    # first/last interval matter only in the current window (do plans alternate or replace each other?)
    current = frame[frame["current"] & regular]
    spans = current.groupby(PLAN_KEYS, sort=False)["interval_start"].agg(first="min", last="max")
    return moments.merge(spans.reset_index().assign(current=True), on=[*PLAN_KEYS, "current"], how="left")


def _group_codes(columns: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dense group numbers for rows keyed by several columns, and each group's key values."""
    codes, uniques = zip(*(pd.factorize(values) for values in columns), strict=True)
    composite = np.zeros(len(columns[0]), dtype=np.int64)
    for code, unique in zip(codes, uniques, strict=True):
        composite = composite * len(unique) + code.astype(np.int64)
    group, composite_keys = pd.factorize(composite)
    rest = np.asarray(composite_keys, dtype=np.int64)
    keys: list[np.ndarray] = []
    for unique in reversed(uniques):
        keys.append(np.asarray(unique)[rest % len(unique)])
        rest = rest // len(unique)
    return group, keys[::-1]


def _group_sum(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """Per-group sum skipping NaN; NaN where a group has no value at all (pandas' min_count=1)."""
    known = ~np.isnan(values)
    total = np.bincount(group, weights=np.where(known, values, 0.0), minlength=groups)
    if known.all():
        return total
    present = np.bincount(group, weights=known.astype(float), minlength=groups)
    return np.where(present > 0, total, np.nan)


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


# -- performance kinds -------------------------------------------------------------------------------


def _performance_regressions(
    frame: pd.DataFrame, moments: pd.DataFrame, shapes: dict[Any, str], hours: float, settings: Settings
) -> list[dict[str, Any]]:
    baseline = _baseline_shapes(moments, settings)
    current = moments[moments["current"]].copy()
    if baseline.empty or current.empty:
        return []
    current["query_n"] = current.groupby(KEYS)["n"].transform("sum")
    current["share"] = current["n"] / current["query_n"]
    sensitive = _parameter_sensitive(current, hours, settings)
    dominant = current.sort_values("n", ascending=False).drop_duplicates(KEYS)
    pairs = dominant.merge(baseline, on=KEYS, suffixes=("", "_base"))
    pairs = pairs[pairs["n"] >= settings.min_executions]
    pairs["ratio"] = pairs["mean"] / pairs["mean_base"].where(pairs["mean_base"] > 0)
    pairs["impact"] = (pairs["mean"] - pairs["mean_base"]) * pairs["n"] / hours / 1e6
    candidates = pairs[
        (pairs["ratio"] >= settings.regression_ratio)
        & (pairs["impact"] >= settings.impact_floor_cpu_seconds_per_hour)
        & ~pd.MultiIndex.from_frame(pairs[KEYS]).isin(list(sensitive))
    ]
    candidates = _significant(candidates, settings)
    candidates = _persistent(frame, candidates, shapes, settings)
    found = [_confirm(row, settings) for row in _records(candidates)]
    return found + list(sensitive.values())


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
    """
    between_b = pairs["var_between_base"].to_numpy(float)
    between_c = np.maximum(pairs["var_between"].to_numpy(float), between_b)
    k_b = np.maximum(pairs["intervals_base"].to_numpy(float), 1.0)
    k_c = np.maximum(pairs["intervals"].to_numpy(float), 1.0)
    se2 = between_b / k_b + between_c / k_c
    se2 += pairs["var_base"].to_numpy(float) / pairs["n_base"].to_numpy(float)
    se2 += pairs["var"].to_numpy(float) / pairs["n"].to_numpy(float)
    diff = pairs["mean"].to_numpy(float) - pairs["mean_base"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se2 > 0, diff / np.sqrt(se2), np.where(diff > 0, np.inf, 0.0))
    df = np.maximum(k_b + k_c - 2.0, 1.0)
    p = np.fromiter((student_t_sf(float(a), float(b)) for a, b in zip(t, df, strict=True)), float, len(t))
    return t, p


def _significant(pairs: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    if pairs.empty:
        return pairs.assign(t=[], p=[])
    t, p = significance(pairs)
    pairs = pairs.assign(t=t, p=p)
    return pairs[pairs["p"] <= settings.p_value_max]


def _persistent(
    frame: pd.DataFrame, candidates: pd.DataFrame, shapes: dict[Any, str], settings: Settings
) -> pd.DataFrame:
    """Candidates elevated in at least half of the current intervals (two, when there are two or more)."""
    if candidates.empty:
        return candidates.assign(elevated=[], current_intervals=[])
    rows = frame[frame["current"] & (frame["ok_executions"] > 0)]
    rows = rows[pd.MultiIndex.from_frame(rows[KEYS]).isin(pd.MultiIndex.from_frame(candidates[KEYS]))]
    per_interval = (
        pd.DataFrame(
            {
                **{name: rows[name] for name in KEYS},
                "shape": _shapes_of(rows["plan_id"], shapes),
                "interval_start": rows["interval_start"],
                "w": rows["m_mean"] * rows["ok_executions"],
                "n": rows["ok_executions"],
            }
        )
        .groupby([*SHAPE_KEYS, "interval_start"])[["w", "n"]]
        .sum()
    )
    per_interval = per_interval.reset_index()
    per_interval["mean"] = per_interval["w"] / per_interval["n"]
    threshold = candidates[[*SHAPE_KEYS]].assign(limit=candidates["mean_base"] * settings.regression_ratio)
    per_interval = per_interval.merge(threshold, on=SHAPE_KEYS)
    per_interval["elevated"] = per_interval["mean"] >= per_interval["limit"]
    counts = per_interval.groupby(SHAPE_KEYS).agg(
        elevated=("elevated", "sum"), current_intervals=("elevated", "size")
    )
    merged = candidates.merge(counts.reset_index(), on=SHAPE_KEYS, how="left").fillna(
        {"elevated": 0, "current_intervals": 0}
    )
    enough = (merged["elevated"] >= np.minimum(2, merged["current_intervals"])) & (
        merged["elevated"] >= 0.5 * merged["current_intervals"]
    )
    return merged[enough]


def _confirm(row: Any, settings: Settings) -> dict[str, Any]:
    """The detection row of a candidate that passed every gate: kind, corroboration, evidence."""
    t, p = float(row.t), float(row.p)
    kind = "same_plan" if row.shape == row.shape_base else "plan_change"
    corroboration = _corroboration(row)
    evidence = {
        "rule": f"{row.metric} mean x{row.ratio:.2f} >= {settings.regression_ratio}, t={t:.1f} p={p:.2g}, "
        f"impact {row.impact:.1f}s/h >= {settings.impact_floor_cpu_seconds_per_hour}",
        "elevated_intervals": int(row.elevated),
        "current_intervals": int(row.current_intervals),
        "corroboration": corroboration,
        "baseline_plan": _plan_evidence(row, "_base"),
        "current_plan": _plan_evidence(row, ""),
    }
    severity = _severity(row.impact)
    if row.metric == "duration_us" and kind == "same_plan" and corroboration["status"] == "not_corroborated":
        evidence["classification"] = "waits_or_blocking"  # slower, but the work done did not grow
        severity = "low"
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
    current: pd.DataFrame, hours: float, settings: Settings
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """Queries whose current window alternates two or more substantial plans that differ by the ratio."""
    shared = current[
        (current["share"] >= PARAMETER_SENSITIVE_SHARE) & (current["n"] >= settings.min_executions)
    ]
    if shared.empty:
        return {}
    ordered = shared.sort_values("mean")
    best = ordered.drop_duplicates(KEYS, keep="first")
    worst = ordered.drop_duplicates(KEYS, keep="last")
    pairs = best.merge(worst, on=KEYS, suffixes=("_base", "")).set_index(KEYS)
    alternating = (
        (pairs["shape"] != pairs["shape_base"])
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
    extra["extra"] = (extra["mean"] - extra["mean_base"]) * extra["n"] / hours / 1e6
    pairs = pairs.join(extra.groupby(KEYS)["extra"].sum().rename("impact"))
    pairs = pairs[pairs["impact"] >= settings.impact_floor_cpu_seconds_per_hour]
    if pairs.empty:
        return {}
    t, p = significance(pairs)
    pairs = pairs.assign(t=t, p=p)
    pairs = pairs[pairs["p"] <= settings.p_value_max]
    found: dict[tuple[Any, Any], dict[str, Any]] = {}
    for key, row in zip(pairs.index, _records(pairs), strict=True):
        plans = shared[(shared["target_id"] == key[0]) & (shared["query_id"] == key[1])]
        found[(key[0], key[1])] = _sensitive_detection(key, row, plans, t=float(row.t), p=float(row.p))
    return found


def _sensitive_detection(key: Any, row: Any, plans: pd.DataFrame, *, t: float, p: float) -> dict[str, Any]:
    evidence = {
        "rule": f"{len(plans)} plans alternate, each >= {PARAMETER_SENSITIVE_SHARE:.0%} of executions, "
        f"slowest x{row.mean / row.mean_base:.2f} the fastest",
        "plans": [
            {"plan_id": _native(r.plan_id), "shape": r.shape, "executions": float(r.n), "mean": float(r.mean),
             "share": float(r.share)}
            for r in _records(plans)
        ],
    }  # fmt: skip
    return {
        "target_id": _native(key[0]),
        "query_id": _native(key[1]),
        "kind": "parameter_sensitive",
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
        "severity": _severity(float(row.impact)),
        "evidence": evidence,
    }


# -- errors and forcing --------------------------------------------------------------------------------


def _error_regressions(plan_moments: pd.DataFrame, hours: float, settings: Settings) -> list[dict[str, Any]]:
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
    found = []
    for key, *counts in zip(keys, *columns, strict=True):
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
        "kind": "error_prone",
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
        "severity": "high" if now >= 0.1 else "medium",
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
