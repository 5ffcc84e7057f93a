"""bench/cli_startup.py at its quick size, as `make bench` runs it: a process of its own whose last
line is the key=value summary. Timings are not asserted (these machines are noisy); the figures, and
that the goal verdict follows from the ratios, are."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

FIGURES = ("baseline_s", "help_s", "inspect_s", "help_ratio", "inspect_ratio")


def summary(line: str) -> dict[str, str]:
    name, _, pairs = line.partition(": ")
    assert name == "cli_startup", line
    return dict(pair.split("=", 1) for pair in pairs.split())


@pytest.mark.timeout(120)
def test_quick_cli_startup_bench_reports_every_figure() -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "cli_startup.py"), "--quick", "--no-goals"],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-4000:]
    figures = summary(completed.stdout.strip().splitlines()[-1])
    assert set(FIGURES) <= set(figures), figures
    for name in FIGURES:
        value = float(figures[name])
        assert math.isfinite(value) and value > 0, (name, figures[name])
    assert figures["runs"] == "5"
    for ratio in ("help_ratio", "inspect_ratio"):
        assert float(figures[ratio]) == pytest.approx(
            float(figures[ratio.replace("_ratio", "_s")]) / float(figures["baseline_s"]), rel=0.01
        )
    missed = [r for r in ("help_ratio", "inspect_ratio") if float(figures[r]) > float(figures["goal_ratio"])]
    assert figures["goals"] == ("missed:" + ",".join(missed) if missed else "met")


def test_cli_startup_bench_refuses_a_missing_plan_file() -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "cli_startup.py"), "--plan", "/nonexistent.sqlplan"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert completed.returncode == 2
    assert "--plan /nonexistent.sqlplan: no such file" in completed.stderr
