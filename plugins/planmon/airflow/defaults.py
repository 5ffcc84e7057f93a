"""Defaults every planmon DAG uses, so retries, back-off and timeouts are the same everywhere.

The DAG integrity tests (tests/dags) enforce the policy these encode: tag ``planmon``, an owner,
retries with exponential back-off, and an ``execution_timeout`` on every task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

PLANMON_TAG = "planmon"
OWNER = "planmon"


def default_args(*, execution_timeout: timedelta = timedelta(minutes=30), retries: int = 2) -> dict[str, Any]:
    """``default_args`` for a planmon DAG: retried with exponential back-off, bounded in time."""
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": execution_timeout,
    }
