"""Analysis at scale: planmon's detect() vs one pandas groupby-aggregate over the same frame.

10,000 synthetic Query Store queries (bench/_synthetic.py, the detection-quality mix) x 168 hourly
intervals (the last 24 are the analysed window, the 144 before the baseline) x 1-3 plans, with
aborted/exception rows. Baseline, in the same run on the same frame: one
``groupby(["target_id", "query_id", "plan_id"]).agg(...)`` computing the execution-weighted sums
(executions, CPU x executions, duration x executions): the least work that reads every row once.
Time is the best of ``--repeat`` runs of the process's CPU time (``time.process_time``): both sides
run on one thread, so on an idle machine it equals wall-clock time, and on a shared one (other
processes competing for the cores) it is not inflated by waiting for a core. Peak memory is
tracemalloc's peak of Python and NumPy allocations during one extra, untimed call of each side
(tracemalloc slows the code it traces, so it is never on while timing); the input frame itself is
allocated before and is not counted.
Goal: planmon at most 3x the groupby's time (ratio planmon/groupby <= 3).

    .venv/bin/python bench/analyze_scale.py [--queries 10000] [--intervals 168] [--repeat 3]
                                            [--positive-share 0.05]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench._synthetic import SyntheticData, generate  # noqa: E402
from planmon.config import Settings  # noqa: E402

GOAL = 3.0
T = TypeVar("T")
WINDOW_HOURS = 24


def groupby_aggregate(stats: pd.DataFrame) -> pd.DataFrame:
    """The baseline: execution-weighted sums per plan in one groupby."""
    work = stats.assign(
        cpu_total=stats["executions"] * stats["cpu_us_mean"],
        duration_total=stats["executions"] * stats["duration_us_mean"],
    )
    return work.groupby(["target_id", "query_id", "plan_id"]).agg(
        executions=("executions", "sum"),
        cpu_total=("cpu_total", "sum"),
        duration_total=("duration_total", "sum"),
    )


def planmon_detect(data: SyntheticData, settings: Settings) -> Callable[[], pd.DataFrame]:
    from planmon.analysis.detect import detect

    def run() -> pd.DataFrame:
        return detect(
            data.stats,
            data.plans,
            window_start=data.window_start,
            window_end=data.window_end,
            baseline_start=data.baseline_start,
            settings=settings,
        )

    return run


def best_time(action: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Best CPU seconds of ``repeat`` calls, and the last call's result."""
    best = float("inf")
    result: T | None = None
    for _ in range(max(1, repeat)):
        started = time.process_time()
        result = action()
        best = min(best, time.process_time() - started)
    assert result is not None
    return best, result


def peak_memory(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--intervals", type=int, default=168, help="hourly intervals, the last 24 analysed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--positive-share",
        type=float,
        default=None,
        help="share of regressing queries (default: the detection-quality mix, about a third)",
    )
    args = parser.parse_args()
    if args.intervals <= WINDOW_HOURS:
        parser.error(f"--intervals must be more than the {WINDOW_HOURS}-hour window")
    started = time.perf_counter()
    data = generate(
        args.queries,
        args.seed,
        baseline_hours=args.intervals - WINDOW_HOURS,
        window_hours=WINDOW_HOURS,
        positive_share=args.positive_share,
    )
    generated = time.perf_counter() - started
    frame_mb = data.stats.memory_usage(deep=True).sum() / 2**20
    positives = sum(1 for kind in data.labels.values() if kind is not None)
    print(
        f"{args.queries:,} queries x {args.intervals} hourly intervals: {len(data.stats):,} runtime-stats "
        f"rows, {len(data.plans):,} plans, {positives:,} regressing queries, frame {frame_mb:,.0f} MiB "
        f"(generated in {generated:.1f} s)"
    )
    detect = planmon_detect(data, Settings())
    groupby_aggregate(data.stats)  # warm-up: pandas' first groupby pays one-off import costs
    groupby_seconds, aggregated = best_time(lambda: groupby_aggregate(data.stats), args.repeat)
    planmon_seconds, detections = best_time(detect, args.repeat)
    seconds = {"groupby": groupby_seconds, "planmon": planmon_seconds}
    peaks = {"groupby": peak_memory(lambda: groupby_aggregate(data.stats)), "planmon": peak_memory(detect)}
    print(f"  {'':<30} {'CPU s':>8} {'peak MiB':>9}  output rows")
    print(
        f"  {'pandas groupby-aggregate':<30} {seconds['groupby']:>8.2f} {peaks['groupby'] / 2**20:>9.0f}"
        f"  {len(aggregated):,} plans"
    )
    print(
        f"  {'planmon detect()':<30} {seconds['planmon']:>8.2f} {peaks['planmon'] / 2**20:>9.0f}"
        f"  {len(detections):,} detections"
    )
    ratio = seconds["planmon"] / seconds["groupby"]
    print(
        f"  ratio planmon/groupby: {ratio:.1f}x (best of {args.repeat}); peak memory ratio: "
        f"{peaks['planmon'] / peaks['groupby']:.1f}x"
    )
    print(f"  goal ratio <= {GOAL:g}: {'met' if ratio <= GOAL else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
