"""Labelled synthetic Query Store data for planmon's detection benchmarks, in the analysis frames' contract.

Shared by ``detection_quality.py`` (is each query's regression found?) and ``analyze_scale.py`` (how
long does finding them take?). One deterministic generator (``numpy.random.default_rng(seed)``) builds
per-query hourly runtime stats shaped like SQL Server Query Store (times in microseconds, aborted and
exception executions as ``execution_type`` 3 / 4 rows, ``errors`` = their executions as the SQL Server
collector records them, no rows examined) and one plans row per plan.

Windows: the analysed window is the last ``window_hours`` (default 24) hourly intervals, the baseline
the ``baseline_hours`` (default 168, i.e. 7 days) before it. A day rather than one hour, because one
hour is one interval: a one-interval spike could not be told from a regression, and an hour of a
low-volume query holds too few executions to test.

Every query gets one scenario; its label is the regression kind a DBA would want reported, or None:

    positive  plan_change_1.5x / 3x / 10x  a new plan shape takes over in the window, CPU x1.5/x3/x10
              same_plan_2x               the same shape (sometimes recompiled under a new plan_id) x2
              error_rise                 aborted/exception executions go from < 0.05% to 3-20%
    negative  steady, noisy_steady       no change (noisy: high within- and across-interval variance)
              faster_plan                a new shape takes over at 0.3-0.7x the CPU
              microsecond_change         30-80 us -> 2.2-3x with a new shape, 100-2,000 executions/h
              one_interval_spike         one window interval 5-30x (same plan, or a transient plan)
              low_executions             a 3-8x plan change at < 1 execution/hour (no evidence)
              forced_old_failures        a forced plan whose force_failure_count is high but not rising

Positives are material: once the change has happened the extra CPU is at least 30 CPU-seconds per
hour (planmon's default floor is 10). Changes happen in the first half of the window, so the new
behaviour runs for at least half of it. Hourly executions follow a daily cycle (Poisson around it).

``generate(extended=True)`` adds EXTENDED_SCENARIOS (late_plan_change_5x and small_plan_change_3x to
find, the latter as severity info; busy_hour_contention, weekend_heavier, heavy_tailed_noise and
neutral_plan_change, a new shape at 0.85-1.15x the CPU, to leave alone) and, for every query, a
second day/night traffic cycle and weekend dips, from a random stream of its own (the original mix
is unchanged).

    .venv/bin/python bench/_synthetic.py [--queries 600] [--seed 7]    # prints what it generates
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from planmon.analysis.frames import PLAN_COLUMNS, RUNTIME_STATS_COLUMNS  # noqa: E402

START = datetime(2026, 1, 1)
SLOTS = 3  # plans per query at most
ABORTED, EXCEPTION = 3, 4

# scenario -> (expected kind or None, relative weight in the mix)
SCENARIOS: dict[str, tuple[str | None, float]] = {
    "plan_change_1.5x": ("plan_change", 1.0),
    "plan_change_3x": ("plan_change", 1.0),
    "plan_change_10x": ("plan_change", 1.0),
    "same_plan_2x": ("same_plan", 1.0),
    "error_rise": ("error_prone", 1.0),
    "steady": (None, 3.0),
    "noisy_steady": (None, 1.0),
    "faster_plan": (None, 1.0),
    "microsecond_change": (None, 1.0),
    "one_interval_spike": (None, 1.0),
    "low_executions": (None, 1.0),
    "forced_old_failures": (None, 1.0),
}
SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)
# generate(extended=True) adds these (issue 19: late onset, small-but-real, cycles, contention, heavy tails)
EXTENDED_SCENARIOS: dict[str, tuple[str | None, float]] = {
    "late_plan_change_5x": ("plan_change", 1.0),  # a busy query 5x slower from 2-4 hours before the end
    "small_plan_change_3x": ("plan_change", 1.0),  # 3x slower, but its extra CPU stays under 10 s/h
    "busy_hour_contention": (None, 1.0),  # 1.6-2.5x dearer for 3-4 busy hours every day, no change
    "weekend_heavier": (None, 1.0),  # 1.6-2.2x dearer on Saturdays and Sundays, no change
    "heavy_tailed_noise": (None, 1.0),  # interval means with Student-t (df 2) noise, no change
    "neutral_plan_change": (None, 1.0),  # a new shape takes over in the window at 0.85-1.15x the CPU
}
EXTENDED_NAMES: tuple[str, ...] = (*SCENARIO_NAMES, *EXTENDED_SCENARIOS)
INFO_TIER = frozenset({"small_plan_change_3x"})  # real regressions under the impact floor: severity info
EXTENDED_START = datetime(2026, 1, 3)  # a Saturday: the analysed day is a Saturday too
PLAN_CHANGE_FACTORS = {"plan_change_1.5x": 1.5, "plan_change_3x": 3.0, "plan_change_10x": 10.0}

STATS_DTYPES: dict[str, str] = {
    "target_id": "int64",
    "query_id": "int64",
    "plan_id": "int64",
    "interval_start": "datetime64[us]",
    "interval_end": "datetime64[us]",
    "execution_type": "int64",
    "executions": "int64",
    "errors": "int64",
    "cpu_us_mean": "float64",
    "cpu_us_stdev": "float64",
    "duration_us_mean": "float64",
    "duration_us_stdev": "float64",
    "logical_reads_mean": "float64",
    "rows_examined_mean": "float64",
}
PLAN_DTYPES: dict[str, str] = {
    "plan_id": "int64",
    "query_id": "int64",
    "target_id": "int64",
    "shape_hash": "str",
    "is_forced": "bool",
    "forcing_type": "str",
    "force_failure_count": "int64",
}


@dataclass(frozen=True)
class SyntheticData:
    """Frames in the analysis contract, ground truth per (target_id, query_id), and the windows."""

    stats: pd.DataFrame
    plans: pd.DataFrame
    labels: dict[tuple[int, int], str | None]  # expected detection kind, None = nothing to report
    scenarios: dict[tuple[int, int], str]
    baseline_start: datetime
    window_start: datetime
    window_end: datetime


@dataclass
class _Queries:
    """Per-query parameters (arrays of length n) and per (query, plan slot, interval) layouts."""

    scenario: np.ndarray  # index into SCENARIO_NAMES
    cpu_us: np.ndarray  # CPU per execution of the first plan, microseconds
    rate: np.ndarray  # executions per hour
    interval_sigma: np.ndarray  # lognormal sigma of interval means around the true mean
    within_cv: np.ndarray  # within-interval coefficient of variation
    wait_ratio: np.ndarray  # duration / CPU
    us_per_read: np.ndarray
    change: np.ndarray  # interval index of the change (inside the analysed window)
    error_rate: np.ndarray  # (n, T) share of executions that fail
    share: np.ndarray  # (n, SLOTS, T) expected share of the interval's executions on each slot
    factor: np.ndarray  # (n, SLOTS, T) CPU multiplier
    shape: np.ndarray  # (n, SLOTS) shape index per slot; equal index = same plan shape
    traffic: np.ndarray | None = None  # (n, T) extra multiplier of executions (extended: cycles)


def generate(
    queries: int = 600,
    seed: int = 7,
    *,
    baseline_hours: int = 168,
    window_hours: int = 24,
    targets: int = 2,
    start: datetime = START,
    positive_share: float | None = None,
    scenario_weights: Mapping[str, float] | None = None,
    extended: bool = False,
) -> SyntheticData:
    """Generate ``queries`` labelled queries; the same arguments always give the same frames.

    ``scenario_weights`` replaces the relative weights of the scenarios it names (e.g. fewer
    one-interval spikes when the window is one hour: a spike lands in a given hour once a day);
    ``positive_share`` then rescales the weights so that regressions make up that share of the
    queries (default: the weights of SCENARIOS, about 36% positives).

    ``extended``: add EXTENDED_SCENARIOS, stronger day/night traffic and weekend dips for every
    query (the original mix, with the same seed, is unchanged without it).
    """
    if queries < 1 or window_hours < 1 or baseline_hours < 1:
        raise ValueError("need at least one query, one window interval and one baseline interval")
    rng = np.random.default_rng(seed)
    hours = baseline_hours + window_hours
    table = {**SCENARIOS, **EXTENDED_SCENARIOS} if extended else SCENARIOS
    weights = _weights(positive_share, scenario_weights or {}, table)
    q = _draw_queries(rng, queries, baseline_hours, window_hours, weights, names=tuple(table))
    if extended:
        _extend(
            np.random.default_rng([seed, 19]), q, tuple(table),
            baseline_hours=baseline_hours, window_hours=window_hours, start=start,
        )  # fmt: skip
    stats = _runtime_stats(rng, q, hours, targets, start)
    plans = _plans(rng, q, stats, targets, tuple(table))
    keys = [(1 + i % targets, i + 1) for i in range(queries)]
    names = [tuple(table)[s] for s in q.scenario]
    window_start = start + timedelta(hours=baseline_hours)
    return SyntheticData(
        stats=stats,
        plans=plans,
        labels={key: table[name][0] for key, name in zip(keys, names, strict=True)},
        scenarios=dict(zip(keys, names, strict=True)),
        baseline_start=start,
        window_start=window_start,
        window_end=window_start + timedelta(hours=window_hours),
    )


def _weights(
    positive_share: float | None,
    overrides: Mapping[str, float],
    table: Mapping[str, tuple[str | None, float]] = SCENARIOS,
) -> np.ndarray:
    unknown = set(overrides) - set(table)
    if unknown:
        raise ValueError(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(table)}")
    weights = np.array([overrides.get(name, weight) for name, (_kind, weight) in table.items()])
    if positive_share is None:
        return weights / weights.sum()
    if not 0.0 < positive_share < 1.0:
        raise ValueError("positive_share is a fraction strictly between 0 and 1")
    positive = np.array([kind is not None for kind, _weight in table.values()])
    weights[positive] *= positive_share / weights[positive].sum()
    weights[~positive] *= (1.0 - positive_share) / weights[~positive].sum()
    return weights


def _assign_scenarios(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    """Every scenario at least once when n allows, the rest drawn by weight, in shuffled order."""
    first = np.arange(min(n, len(weights)))
    rest = rng.choice(len(weights), size=n - len(first), p=weights)
    return rng.permutation(np.concatenate([first, rest]))


def _loguniform(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _draw_queries(
    rng: np.random.Generator,
    n: int,
    baseline_hours: int,
    window_hours: int,
    weights: np.ndarray,
    *,
    names: tuple[str, ...] = SCENARIO_NAMES,
) -> _Queries:
    hours = baseline_hours + window_hours
    scenario = _assign_scenarios(rng, n, weights)
    is_ = {name: scenario == index for index, name in enumerate(names)}
    cpu_us = _loguniform(rng, 2_000, 80_000, n)
    load = _loguniform(rng, 60.0, 400.0, n)  # CPU-seconds per hour, so that positives are material
    interval_sigma = rng.uniform(0.05, 0.25, n)
    within_cv = rng.uniform(0.2, 0.8, n)
    noisy = is_["noisy_steady"]
    interval_sigma[noisy] = rng.uniform(0.5, 0.9, noisy.sum())
    within_cv[noisy] = rng.uniform(1.5, 3.0, noisy.sum())
    tiny = is_["microsecond_change"]
    cpu_us[tiny] = rng.uniform(30.0, 80.0, tiny.sum())
    rate = load * 1e6 / cpu_us
    rate[tiny] = _loguniform(rng, 100.0, 2_000.0, tiny.sum())
    rare = is_["low_executions"]
    cpu_us[rare] = rng.uniform(100_000.0, 500_000.0, rare.sum())
    rate[rare] = rng.uniform(0.2, 0.7, rare.sum())
    # the change happens in the first half of the window, so the new behaviour runs >= half a day
    change = baseline_hours + rng.integers(0, max(1, window_hours // 2), n)
    q = _Queries(
        scenario=scenario,
        cpu_us=cpu_us,
        rate=rate,
        interval_sigma=interval_sigma,
        within_cv=within_cv,
        wait_ratio=rng.uniform(1.05, 2.5, n),
        us_per_read=rng.uniform(2.0, 20.0, n),
        change=change,
        error_rate=np.zeros((n, hours)),
        share=np.zeros((n, SLOTS, hours)),
        factor=np.ones((n, SLOTS, hours)),
        shape=np.tile(np.arange(SLOTS), (n, 1)),
    )
    _layout_plans(rng, q, is_, baseline_hours, window_hours)
    _layout_errors(rng, q, is_["error_rise"], hours)
    return q


def _layout_plans(
    rng: np.random.Generator, q: _Queries, is_: dict[str, np.ndarray], baseline_hours: int, window_hours: int
) -> None:
    """Which plan slot runs when, at what CPU multiplier, per scenario."""
    n, hours = len(q.scenario), baseline_hours + window_hours
    t = np.arange(hours)[None, :]
    after = t >= q.change[:, None]  # (n, T)
    q.share[:, 0, :] = 1.0
    # a new plan (slot 1) takes over at the change: different shape unless said otherwise
    switching = np.zeros(n, dtype=bool)
    for name in (*PLAN_CHANGE_FACTORS, "faster_plan", "microsecond_change", "low_executions"):
        switching |= is_[name]
    multiplier = np.ones(n)
    for name, size in PLAN_CHANGE_FACTORS.items():
        multiplier[is_[name]] = size
    multiplier[is_["faster_plan"]] = rng.uniform(0.3, 0.7, is_["faster_plan"].sum())
    multiplier[is_["microsecond_change"]] = rng.uniform(2.2, 3.0, is_["microsecond_change"].sum())
    multiplier[is_["low_executions"]] = rng.uniform(3.0, 8.0, is_["low_executions"].sum())
    # same plan slower: half of them recompiled under a new plan_id with the same shape
    slower = is_["same_plan_2x"]
    multiplier[slower] = 2.0
    recompiled = slower & (rng.random(n) < 0.5)
    q.shape[recompiled, 1] = 0
    switching |= recompiled
    in_place = slower & ~recompiled
    q.factor[in_place, 0, :] = np.where(after[in_place], 2.0, 1.0)
    q.share[switching, 0, :] = ~after[switching]
    q.share[switching, 1, :] = after[switching]
    q.factor[switching, 1, :] = multiplier[switching, None]
    _layout_background_plans(rng, q, is_, hours)
    _layout_spikes(rng, q, is_["one_interval_spike"], baseline_hours, window_hours)


def _layout_background_plans(
    rng: np.random.Generator, q: _Queries, is_: dict[str, np.ndarray], hours: int
) -> None:
    """Steady queries: some recompile to an equivalent plan, some alternate two similar shapes."""
    n = len(q.scenario)
    steady = is_["steady"] | is_["noisy_steady"] | is_["forced_old_failures"]
    draw = rng.random(n)
    movable = steady & ~is_["forced_old_failures"]  # a forced plan is the only plan that runs
    recompile = movable & (draw < 0.3)
    alternate = movable & (draw >= 0.3) & (draw < 0.5)
    moment = rng.integers(1, hours, n)[:, None]
    t = np.arange(hours)[None, :]
    q.shape[recompile, 1] = 0
    q.share[recompile, 0, :] = t[:, :] < moment[recompile]
    q.share[recompile, 1, :] = t[:, :] >= moment[recompile]
    q.share[alternate, 0, :] = 0.7
    q.share[alternate, 2, :] = 0.3
    q.shape[alternate, 2] = 1
    q.factor[alternate, 2, :] = rng.uniform(0.9, 1.1, alternate.sum())[:, None]


def _layout_spikes(
    rng: np.random.Generator, q: _Queries, spike: np.ndarray, baseline_hours: int, window_hours: int
) -> None:
    """One window interval 5-30x: on the same plan (blocking, cold cache) or a transient plan."""
    rows = np.flatnonzero(spike)
    at = baseline_hours + rng.integers(0, window_hours, rows.size)
    size = rng.uniform(5.0, 30.0, rows.size)
    transient = rng.random(rows.size) < 0.5
    same = rows[~transient]
    q.factor[same, 0, at[~transient]] = size[~transient]
    moved = rows[transient]
    q.share[moved, 0, at[transient]] = 0.0
    q.share[moved, 2, at[transient]] = 1.0
    q.factor[moved, 2, at[transient]] = size[transient]


def _layout_errors(rng: np.random.Generator, q: _Queries, rise: np.ndarray, hours: int) -> None:
    """A background failure rate for some queries; error_rise jumps to 3-20% at the change."""
    n = len(q.scenario)
    background = np.where(rng.random(n) < 0.3, _loguniform(rng, 1e-6, 5e-4, n), 0.0)
    q.error_rate[:] = background[:, None]
    after = np.arange(hours)[None, :] >= q.change[rise, None]
    q.error_rate[rise] = np.where(after, rng.uniform(0.03, 0.2, rise.sum())[:, None], background[rise, None])


def _extend(
    rng: np.random.Generator,
    q: _Queries,
    names: tuple[str, ...],
    *,
    baseline_hours: int,
    window_hours: int,
    start: datetime,
) -> None:
    """The extended mix (its own random stream): cycles for every query, and EXTENDED_SCENARIOS."""
    n, hours = len(q.scenario), baseline_hours + window_hours
    is_ = {name: q.scenario == index for index, name in enumerate(names)}
    t = np.arange(hours)
    moment = np.datetime64(start, "h") + t
    hour_of_day = (moment.astype(np.int64) % 24)[None, :]
    weekend = ((moment.astype("datetime64[D]").astype(np.int64) + 3) % 7 >= 5)[None, :]
    # day/night traffic (on top of the base cycle) and weekend dips, for every query
    phase = rng.uniform(0, 24, n)[:, None]
    night = 1.0 + rng.uniform(0.2, 0.6, n)[:, None] * np.sin(2 * np.pi * (hour_of_day + phase) / 24.0)
    dip = np.where(weekend, rng.uniform(0.3, 0.8, n)[:, None], 1.0)
    q.traffic = night * dip
    # late onset: a new plan 5x slower from 2-4 hours before the window's end
    late = is_["late_plan_change_5x"]
    q.change[late] = baseline_hours + window_hours - rng.integers(2, 5, late.sum())
    after = t[None, :] >= q.change[late, None]
    q.share[late, 0, :] = ~after
    q.share[late, 1, :] = after
    q.factor[late, 1, :] = 5.0
    # small but real: a 3x plan change whose extra CPU stays under 10 s/h even at the busiest hour
    small = is_["small_plan_change_3x"]
    q.cpu_us[small] = _loguniform(rng, 2_000, 20_000, small.sum())
    q.rate[small] = rng.uniform(0.4, 2.0, small.sum()) * 1e6 / q.cpu_us[small]
    after = t[None, :] >= q.change[small, None]
    q.share[small, 0, :] = ~after
    q.share[small, 1, :] = after
    q.factor[small, 1, :] = 3.0
    # busy-hour contention: 3-4 dearer hours every day; half of them end where the window ends
    busy = np.flatnonzero(is_["busy_hour_contention"])
    length = rng.integers(3, 5, busy.size)
    first = np.where(rng.random(busy.size) < 0.5, 24 - length, rng.integers(0, 24, busy.size))
    inside = (hour_of_day - first[:, None]) % 24 < length[:, None]
    q.factor[busy] *= np.where(inside, rng.uniform(1.6, 2.5, busy.size)[:, None], 1.0)[:, None, :]
    heavier = np.flatnonzero(is_["weekend_heavier"])
    q.factor[heavier] *= np.where(weekend, rng.uniform(1.6, 2.2, heavier.size)[:, None], 1.0)[:, None, :]
    tails = np.flatnonzero(is_["heavy_tailed_noise"])
    noise = np.exp(np.clip(0.15 * rng.standard_t(2, (tails.size, hours)), -1.5, 2.5))
    q.factor[tails] *= noise[:, None, :]
    # a recompile to an equivalent plan: a new shape (slot 1) takes over at the change, in the window's
    # first half as for the positives, and costs 0.85-1.15x; as busy and material as the positives
    neutral = is_["neutral_plan_change"]
    after = t[None, :] >= q.change[neutral, None]
    q.share[neutral, 0, :] = ~after
    q.share[neutral, 1, :] = after
    q.factor[neutral, 1, :] = rng.uniform(0.85, 1.15, neutral.sum())[:, None]


def _runtime_stats(
    rng: np.random.Generator, q: _Queries, hours: int, targets: int, start: datetime
) -> pd.DataFrame:
    """Poisson executions per (query, slot, interval), then the moments of the non-empty cells only."""
    n = len(q.scenario)
    t = np.arange(hours)
    phase = rng.uniform(0, 24, n)[:, None]
    amplitude = rng.uniform(0.0, 0.6, n)[:, None]
    diurnal = 1.0 + amplitude * np.sin(2 * np.pi * (t[None, :] + phase) / 24.0)  # (n, T)
    if q.traffic is not None:
        diurnal = diurnal * q.traffic
    expected = q.rate[:, None, None] * diurnal[:, None, :] * q.share
    executions = rng.poisson(expected)
    query, slot, interval = np.nonzero(executions)
    total = executions[query, slot, interval]
    failed = rng.binomial(total, q.error_rate[query, interval])
    aborted = rng.binomial(failed, 0.7)
    counts = {0: total - failed, ABORTED: aborted, EXCEPTION: failed - aborted}

    sigma = q.interval_sigma[query]
    true_mean = (
        q.cpu_us[query]
        * q.factor[query, slot, interval]
        * np.exp(sigma * rng.standard_normal(query.size) - sigma**2 / 2)
    )
    duration_sigma = np.where(sigma > 0.4, 0.5, 0.15)
    true_duration = (
        true_mean
        * q.wait_ratio[query]
        * np.exp(duration_sigma * rng.standard_normal(query.size) - duration_sigma**2 / 2)
    )
    # per execution type: (CPU multiplier, duration multiplier) of its executions
    cost = {0: (1.0, 1.0), ABORTED: (2.0, 5.0), EXCEPTION: (0.3, 0.3)}
    pieces = []
    for execution_type, count in counts.items():
        keep = count > 0
        cv = q.within_cv[query[keep]]
        sample_noise = cv / np.sqrt(count[keep])
        cpu = true_mean[keep] * cost[execution_type][0]
        cpu = cpu * np.maximum(0.05, 1.0 + sample_noise * rng.standard_normal(keep.sum()))
        duration = np.maximum(cpu, true_duration[keep] * cost[execution_type][1])
        single = count[keep] == 1
        pieces.append(
            {
                "target_id": 1 + query[keep] % targets,
                "query_id": query[keep] + 1,
                "plan_id": query[keep] * SLOTS + slot[keep] + 1,
                "interval": interval[keep],
                "execution_type": np.full(keep.sum(), execution_type),
                "executions": count[keep],
                "errors": count[keep] if execution_type != 0 else np.zeros(keep.sum(), dtype=np.int64),
                "cpu_us_mean": cpu,
                "cpu_us_stdev": np.where(single, 0.0, cpu * cv),
                "duration_us_mean": duration,
                "duration_us_stdev": np.where(single, 0.0, duration * cv),
                "logical_reads_mean": cpu / q.us_per_read[query[keep]],
            }
        )
    columns = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
    order = np.lexsort((columns["execution_type"], columns["plan_id"], columns["interval"]))
    columns = {name: values[order] for name, values in columns.items()}
    starts = np.datetime64(start, "us") + columns.pop("interval").astype("timedelta64[h]")
    frame = pd.DataFrame(
        {
            **{name: columns[name] for name in ("target_id", "query_id", "plan_id")},
            "interval_start": starts,
            "interval_end": starts + np.timedelta64(1, "h"),
            **{name: columns[name] for name in columns if name not in ("target_id", "query_id", "plan_id")},
            "rows_examined_mean": np.full(order.size, np.nan),  # SQL Server reports no rows examined
        }
    )
    return frame.loc[:, list(RUNTIME_STATS_COLUMNS)].astype(STATS_DTYPES)


def _plans(
    rng: np.random.Generator,
    q: _Queries,
    stats: pd.DataFrame,
    targets: int,
    names: tuple[str, ...] = SCENARIO_NAMES,
) -> pd.DataFrame:
    """One row per plan that ran; a shape hash per (query, shape); forced plans where the scenario says."""
    plan_id = np.unique(stats["plan_id"].to_numpy())
    query = (plan_id - 1) // SLOTS
    slot = (plan_id - 1) % SLOTS
    shape = q.shape[query, slot]
    salt = rng.integers(0, 2**62)
    shape_key = (query.astype(np.uint64) * np.uint64(SLOTS) + shape.astype(np.uint64)) ^ np.uint64(salt)
    forced = (q.scenario[query] == names.index("forced_old_failures")) & (slot == 0)
    failures = np.where(forced, rng.integers(3, 21, plan_id.size), 0)
    frame = pd.DataFrame(
        {
            "plan_id": plan_id,
            "query_id": query + 1,
            "target_id": 1 + query % targets,
            "shape_hash": [f"{key:016x}" for key in shape_key.tolist()],
            "is_forced": forced,
            "forcing_type": np.where(forced, "MANUAL", "NONE"),
            "force_failure_count": failures,
        }
    )
    return frame.loc[:, list(PLAN_COLUMNS)].astype(PLAN_DTYPES)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = generate(args.queries, args.seed)
    print(
        f"{len(data.stats):,} runtime-stats rows, {len(data.plans):,} plans, {len(data.labels):,} queries; "
        f"baseline {data.baseline_start:%Y-%m-%d %H:%M} .. window {data.window_start:%Y-%m-%d %H:%M}"
        f" .. {data.window_end:%Y-%m-%d %H:%M}"
    )
    counts = pd.Series(list(data.scenarios.values())).value_counts()
    for name in SCENARIO_NAMES:
        print(f"  {name:<22} {SCENARIOS[name][0] or '-':<12} {counts.get(name, 0):>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
