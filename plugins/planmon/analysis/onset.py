"""Change points inside the analysed window, and day-aware baselines (docs/detection.md).

Both work on small matrices, one row per query: the baseline's cost per hour of day (weekdays and
weekends apart) and the window's cost per time slot (an hour, coarser for windows over a week), so
the large runtime-stats input is read once more by ``np.bincount`` and never grouped by pandas.

Day-aware baseline: per query, the baseline's execution-weighted mean per (hour of day, weekday or
weekend), relative to its overall mean, is a *factor* that says how much dearer the query normally is
at that time (contention in the busy hours, heavier weekend runs). A factor is used only where the
baseline holds enough history for it (``MIN_BUCKET_ROWS`` rows and ``min_executions`` executions; else
the hour of day over all days; else none) and only as far as it stands out of its own noise (its log
is shrunk towards 0 by ``FACTOR_SE`` standard errors), so a query without a cycle keeps factor 1.

Change point: per query, the slot k of the window after which the cost, relative to the day-aware
baseline, is highest on average: the k maximising the sum over slots t >= k of
(log(mean_t / expected_t) - log(ratio) / 2), a one-sided CUSUM. The onset moves from the window's
start to k only when the part after it is at least the regression ratio over its expected cost and
spans ``MIN_ONSET_SLOTS`` slots with data; detection then compares that part (and only it) with the
baseline. A one-slot spike at the window's end never moves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from planmon.model import HOUR_BUCKETS, OTHER_HOURS_BUCKET

WEEK_SLOTS = 168  # at most this many slots per window: hourly up to a week, coarser beyond
BUCKETS = HOUR_BUCKETS  # hour of day x (weekday, weekend)
OTHER_HOURS = OTHER_HOURS_BUCKET  # pre-aggregated rows of hours the window does not cover: overall only
MIN_BUCKET_ROWS = 2  # baseline rows an hour-of-day bucket needs before its factor is used
MIN_ONSET_SLOTS = 2  # slots with data after a moved onset: one elevated slot is a spike
FACTOR_SE = 2.0  # a day factor counts only beyond this many standard errors of its own noise
BASELINE_KINDS = ("overall", "hour_of_day", "hour_of_day_and_daytype")


@dataclass(frozen=True, slots=True)
class Onsets:
    """Per query: where its analysed part starts, its day-aware baseline factor, and which rows stay.

    ``frame``: target_id, query_id, onset (Timestamp), hours (length of the analysed part),
    onset_moved (bool), factor (expected cost after the onset over the overall baseline mean,
    execution-weighted), baseline_kind (one of BASELINE_KINDS: the weakest used after the onset).
    ``keep``: rows to keep (None: all), dropping the window rows before a moved onset.
    ``row_factor``: per kept row, the day factor of its slot (1 for baseline rows); None when all 1.
    ``slots``: onsets scanned per query (for the multiple-testing correction of moved onsets).
    """

    frame: pd.DataFrame
    keep: np.ndarray | None
    row_factor: np.ndarray | None
    slots: int
    window_hours: float


def hour_buckets(interval: np.ndarray) -> np.ndarray:
    """Bucket 0-47 of each interval start: hour of day (UTC), +24 on Saturdays and Sundays."""
    hours = interval.astype("datetime64[h]").astype(np.int64)
    weekday = (hours // 24 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return (hours % 24 + 24 * (weekday >= 5)).astype(np.int64)


def day_factors(
    cell: np.ndarray,
    n: np.ndarray,
    weighted: np.ndarray,
    squares: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    queries: int,
    min_executions: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(factor, kind, support) per (query, bucket), shapes (queries, BUCKETS), from the baseline's
    regular rows: kind 0 overall, 1 hour of day, 2 hour of day and weekday/weekend; support = the
    baseline rows the bucket's expected cost rests on (its own, the hour's, or all of them).

    ``cell``: query * (BUCKETS + 1) + bucket per row, bucket OTHER_HOURS for rows that count only
    in the query's overall mean (hours the window does not cover, summed together where the data
    is), ``queries * (BUCKETS + 1)`` for rows of no query's reference plan's baseline (a spare cell,
    dropped); ``n``, ``weighted``, ``squares``: each row's
    executions, executions x mean, executions x mean^2; ``rows``: the intervals each row holds
    (None: one each; a pre-aggregated bucket holds many).

    The hour's factor is shrunk towards 1 and the weekday/weekend factor towards the hour's, each by
    FACTOR_SE of its own standard errors: a weekend bucket (two days of history in a week) departs
    from the hour of day only where the weekend really differs.
    """
    size = queries * (BUCKETS + 1)
    if len(cell) == 0:
        ones = np.ones((queries, BUCKETS))
        return ones, np.zeros((queries, BUCKETS), dtype=np.int64), ones
    with_other = [
        np.bincount(cell, weights=values, minlength=size + 1)[:size].reshape(queries, BUCKETS + 1)
        for values in (n, weighted, squares, rows)
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_overall = np.log(with_other[1].sum(axis=1) / with_other[0].sum(axis=1))[:, None]
    total_rows = with_other[3].sum(axis=1, keepdims=True)
    sums = [s[:, :BUCKETS] for s in with_other]
    hourly = [s[:, :24] + s[:, 24:] for s in sums]
    raw_hour, se_hour, hour_known = _log_mean(*hourly, min_executions=min_executions)
    by_hour = np.tile(np.where(hour_known, _soft(raw_hour - log_overall, se_hour), 0.0), 2)
    hour_known = np.tile(hour_known, 2)
    raw_day, se_day, day_known = _log_mean(*sums, min_executions=min_executions)
    by_day = by_hour + _soft(raw_day - log_overall - by_hour, se_day)
    log_factor = np.where(day_known & hour_known, by_day, by_hour)
    kind = np.where(hour_known, np.where(day_known, 2, 1), 0)
    support = np.where(kind == 2, sums[3], np.where(kind == 1, np.tile(hourly[3], 2), total_rows))
    return np.exp(log_factor), kind, support


def _log_mean(
    n: np.ndarray, weighted: np.ndarray, squares: np.ndarray, rows: np.ndarray, *, min_executions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log of the bucket's mean, its standard error, enough history) per bucket."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = np.log(weighted / n)
        # relative variance of the bucket's interval means around their mean, over its rows
        spread = np.maximum(squares * n / (weighted * weighted) - 1.0, 0.0) / np.maximum(rows, 1.0)
    se = np.sqrt(spread)
    known = (rows >= MIN_BUCKET_ROWS) & (n >= min_executions) & np.isfinite(log_mean) & np.isfinite(se)
    return log_mean, se, known


def _soft(value: np.ndarray, se: np.ndarray) -> np.ndarray:
    """``value`` shrunk towards 0 by FACTOR_SE standard errors (0 where it does not stand out)."""
    with np.errstate(invalid="ignore"):
        shrunk = np.copysign(np.maximum(np.abs(value) - FACTOR_SE * se, 0.0), value)
    return np.where(np.isfinite(shrunk), shrunk, 0.0)


def slot_width(window_start: datetime, window_end: datetime) -> timedelta:
    """An hour, or the window over WEEK_SLOTS rounded up to whole hours for longer windows."""
    hours = max((window_end - window_start).total_seconds() / 3600.0, 1e-9)
    return timedelta(hours=max(1, math.ceil(hours / WEEK_SLOTS)))


def slot_index(
    interval: np.ndarray, *, window_start: datetime, window_end: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """(slot per interval start, start of every slot) for the window's rows."""
    width = slot_width(window_start, window_end)
    stamp = pd.Timestamp(window_start)
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp  # rows are UTC-naive
    start = stamp.to_datetime64().astype("datetime64[us]")
    step = np.timedelta64(int(width.total_seconds()), "s").astype("timedelta64[us]")
    slots = max(1, math.ceil((window_end - window_start) / width))
    slot = np.clip((interval.astype("datetime64[us]") - start) // step, 0, slots - 1).astype(np.int64)
    return slot, start + step * np.arange(slots)


def hours_of_day(window_start: datetime, window_end: datetime) -> frozenset[int] | None:
    """The hours of day (UTC) whose day factors the window's slots use, or None when that is all 24
    (what to ask the repository for: ``StatsStore.baseline_sums``' ``hours``)."""
    _slot, starts = slot_index(np.array([], dtype="datetime64[us]"), window_start=window_start,
                               window_end=window_end)  # fmt: skip
    hours = frozenset(int(hour) for hour in hour_buckets(starts) % 24)
    return hours if len(hours) < 24 else None


def window_cells(
    query: np.ndarray, slot: np.ndarray, n: np.ndarray, metric: np.ndarray, *, queries: int, slots: int
) -> tuple[np.ndarray, np.ndarray]:
    """(executions, execution-weighted metric sums) per (query, slot), shapes (queries, slots)."""
    cell = query * slots + slot
    size = queries * slots
    executions = np.bincount(cell, weights=n, minlength=size).reshape(queries, slots)
    weighted = np.bincount(cell, weights=n * metric, minlength=size).reshape(queries, slots)
    return executions, weighted


def change_points(
    executions: np.ndarray, weighted: np.ndarray, expected: np.ndarray, *, ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """(onset slot, moved) per query: the one-sided CUSUM of the module doc over (queries, slots).

    ``expected``: per (query, slot) the baseline mean times the slot's day factor (NaN: no baseline).
    """
    slots = executions.shape[1]
    has = executions > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.log(np.maximum(weighted / executions, 1e-12) / expected)
    step = np.where(has & np.isfinite(level), level - 0.5 * math.log(ratio), 0.0)
    suffix = np.cumsum(step[:, ::-1], axis=1)[:, ::-1]
    count = np.cumsum(has[:, ::-1], axis=1)[:, ::-1]
    allowed = count >= MIN_ONSET_SLOTS
    allowed[:, 0] = True  # the window as a whole is always a candidate
    best = np.argmax(np.where(allowed, suffix, -np.inf), axis=1)
    after = np.arange(slots)[None, :] >= best[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        lifted = (weighted * after).sum(axis=1) / (np.where(has, executions * expected, 0.0) * after).sum(
            axis=1
        )
    moved = (best > 0) & (lifted >= ratio)
    return np.where(moved, best, 0), moved
