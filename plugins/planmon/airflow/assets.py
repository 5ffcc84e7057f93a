"""The assets that chain planmon's DAGs: collection -> analysis -> alerting. One definition each."""

from __future__ import annotations

from airflow.sdk import Asset

RUNTIME_STATS = Asset("planmon_runtime_stats", uri="planmon://runtime_stats")
REGRESSIONS = Asset("planmon_regressions", uri="planmon://regressions")
