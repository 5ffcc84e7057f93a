"""The data the detector reads and writes, as pandas frames with fixed columns.

The repository (``CollectionStore.runtime_stats``), the offline Query Store export reader and the
benchmarks' generators all produce these shapes, so the one detector serves them all.

Runtime stats (one row per plan, interval and execution type; times in microseconds):
    RUNTIME_STATS_COLUMNS. ``execution_type`` 0 regular, 3 aborted, 4 exception (Query Store);
    other engines report 0 and count failed executions in ``errors``. Means and standard
    deviations are per execution within the row's interval; ``executions`` weights them.

Plans (one row per plan_id): PLAN_COLUMNS. ``shape_hash`` says whether two plans are the same
plan; ``force_failure_count`` is the Query Store counter (alert on its rise, never its level).
Optional: ``identity_known`` and ``captured_in_window`` (bool; ``planmon.analysis.service`` adds
them), without which every plan counts as known and seen (offline Query Store exports).

Baseline moments (one row per target, query and plan): BASELINE_MOMENT_COLUMNS, the sums the
detector pools over the baseline window. They add up across rows, intervals and rollup grains, so
the repository computes them with one GROUP BY where the data is instead of shipping the rows.

Detections (the detector's output, one row per regression found): DETECTION_COLUMNS.
"""

from __future__ import annotations

import pandas as pd

from planmon.model import BASELINE_MOMENT_COLUMNS

RUNTIME_STATS_COLUMNS: tuple[str, ...] = (
    "target_id",
    "query_id",
    "plan_id",
    "interval_start",
    "interval_end",
    "execution_type",
    "executions",
    "errors",
    "cpu_us_mean",
    "cpu_us_stdev",
    "duration_us_mean",
    "duration_us_stdev",
    "logical_reads_mean",
    "rows_examined_mean",
)

PLAN_COLUMNS: tuple[str, ...] = (
    "plan_id",
    "query_id",
    "target_id",
    "shape_hash",
    "is_forced",
    "forcing_type",
    "force_failure_count",
)

# BASELINE_MOMENT_COLUMNS (planmon.model): the repository returns them, the detector reads them.

# kind: plan_change / same_plan / plan_unknown / parameter_sensitive / error_prone / forced_plan_failure
# metric: cpu_us / duration_us (engines without per-statement CPU) / errors / force_failure_count
DETECTION_COLUMNS: tuple[str, ...] = (
    "target_id",
    "query_id",
    "kind",
    "metric",
    "baseline_plan_id",
    "current_plan_id",
    "baseline_mean",
    "current_mean",
    "baseline_stdev",
    "current_stdev",
    "baseline_executions",
    "current_executions",
    "ratio",
    "impact",  # extra CPU (or duration) seconds per hour at the current execution rate
    "t_statistic",
    "p_value",
    "severity",  # low / medium / high / critical
    "evidence",  # dict: per-plan stats of both windows, corroboration, the rule that fired
)


def empty_runtime_stats() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in RUNTIME_STATS_COLUMNS})


def empty_plans() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in PLAN_COLUMNS})


def empty_baseline_moments() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="float64") for name in BASELINE_MOMENT_COLUMNS})


def empty_detections() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in DETECTION_COLUMNS})
