"""bench/analyze_fleet.py at its quick size, as `make bench` runs it: a process of its own that starts
its own PostgreSQL, and whose last line is the key=value summary of every figure."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from tests.conftest import IN_CI, PROJECT_ROOT
from tests.harness.servers import ServerUnavailable, postgres_bindir

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FIGURES = (
    "rows",
    "load_s",
    "rollup_s",
    "rolled_rows",
    "analysis_s",
    "aggregate_s",
    "analysis_ratio",
    "peak_rss_mb",
    "cli_help_s",
    "detected",
    "purge_s",
    "delete_s",
    "purge_ratio",
    "purged_rows",
    "stats_bytes_per_row",
    "rollup_bytes_per_row",
    "projection_gb",
)


def summary(line: str) -> dict[str, str]:
    name, _, pairs = line.partition(": ")
    assert name == "analyze_fleet", line
    return dict(pair.split("=", 1) for pair in pairs.split())


@pytest.mark.timeout(240)
def test_quick_fleet_bench_reports_every_figure() -> None:
    try:
        postgres_bindir()
    except ServerUnavailable as exc:
        message = f"PostgreSQL is unavailable: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI is set: integration tests must run, not skip)", pytrace=False)
        pytest.skip(message)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PLANMON_")}
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "analyze_fleet.py"), "--quick", "--no-goals"],
        capture_output=True,
        text=True,
        timeout=220,
        env=environment,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-4000:]
    figures = summary(completed.stdout.strip().splitlines()[-1])
    assert set(FIGURES) <= set(figures), figures
    for name in FIGURES:
        value = float(figures[name])
        assert math.isfinite(value) and value > 0, (name, figures[name])
    assert figures["goals"] == "met" or figures["goals"].startswith("missed:")
    # the purge removed the same rows as the plain DELETE of the copy, and the roll-up had rows to pool
    assert "WARNING" not in completed.stdout
    assert int(figures["purged_rows"]) <= int(figures["rows"])
