"""Benchmark: the ``planmon`` command's start-up, as whole processes, against a bare lxml import.

planmon side: ``planmon --help`` and ``planmon plan inspect <one small plan>`` (by default
tests/fixtures/plans/sqlserver/KeyLookup.sqlplan), each a process of its own through this
environment's ``planmon`` console script. Baseline: ``python -c "import lxml.etree"``, the least a
plan-reading process pays. The three commands run round-robin (so noise hits them alike) after one
untimed warm-up each; each figure is the median wall time of its runs. Goal (issue 17): both planmon
figures within 4x the baseline. The last line is ``cli_startup: key=value ...``; exit 1 when a goal
is missed (``--no-goals`` only reports), or when a command fails.

The interpreter reuses planmon's compiled bytecode only when it is current: ``make install``
compiles it, and where PYTHONDONTWRITEBYTECODE is set (as on these machines) an edited module is
compiled again by every process. ``stale_bytecode`` counts planmon modules whose bytecode is missing
or out of date (``python -m compileall plugins/planmon`` refreshes it); the figures include that cost.

    .venv/bin/python bench/cli_startup.py [--quick] [--no-goals] [--runs 15] [--plan FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_RATIO = 4.0
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PLAN = PROJECT_ROOT / "tests" / "fixtures" / "plans" / "sqlserver" / "KeyLookup.sqlplan"
PACKAGE = PROJECT_ROOT / "plugins" / "planmon"


def planmon_command(*args: str) -> list[str]:
    """The ``planmon`` console script of this environment (else ``python -m planmon.cli``)."""
    script = Path(sys.executable).with_name("planmon")
    entry = [str(script)] if script.is_file() else ["-m", "planmon.cli"]
    return [sys.executable, *entry, *args]


def run_once(command: list[str], env: dict[str, str]) -> float:
    """Wall time of one whole process; a failing command stops the benchmark with its stderr."""
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, check=False, cwd=PROJECT_ROOT)
    seconds = time.perf_counter() - started
    if completed.returncode != 0 or (command[-1] != "import lxml.etree" and not completed.stdout):
        stderr = completed.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}: {stderr}")
    return seconds


def stale_bytecode() -> int:
    """planmon modules whose cached bytecode the interpreter would not use (missing or out of date)."""
    stale = 0
    for source in PACKAGE.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        try:
            header = cached.read_bytes()[:16]
        except OSError:
            stale += 1
            continue
        stat = source.stat()
        recorded_mtime = int.from_bytes(header[8:12], "little")
        recorded_size = int.from_bytes(header[12:16], "little")
        if (recorded_mtime, recorded_size) != (int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF):
            stale += 1
    return stale


def measure(runs: int, plan: Path) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLANMON_")}
    commands = {
        "baseline": [sys.executable, "-c", "import lxml.etree"],
        "help": planmon_command("--help"),
        "inspect": planmon_command("plan", "inspect", str(plan)),
    }
    for command in commands.values():
        run_once(command, env)  # warm-up: the OS file cache, the first compile of stale modules
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            seconds[name].append(run_once(command, env))
    return {name: statistics.median(values) for name, values in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 runs of each command (the test)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command (default 15)")
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help="the plan file to inspect")
    parser.add_argument("--no-goals", action="store_true", help="report only; exit 0 when the goal is missed")
    args = parser.parse_args(argv)
    if not args.plan.is_file():
        parser.error(f"--plan {args.plan}: no such file; pass a plan file (e.g. {DEFAULT_PLAN})")
    runs = 5 if args.quick else args.runs
    if runs < 1:
        parser.error("--runs must be at least 1")
    stale = stale_bytecode()
    if stale:
        print(f"note: {stale} planmon module(s) have stale bytecode, recompiled by every process "
              "(python -m compileall plugins/planmon refreshes it)")  # fmt: skip
    medians = measure(runs, args.plan)
    ratios = {"help_ratio": medians["help"] / medians["baseline"],
              "inspect_ratio": medians["inspect"] / medians["baseline"]}  # fmt: skip
    for name, value in medians.items():
        print(f"{name}: median of {runs} whole-process runs {value * 1000:.0f} ms")
    missed = [name for name, ratio in ratios.items() if ratio > GOAL_RATIO]
    goals = "met" if not missed else "missed:" + ",".join(missed)
    print(
        f"cli_startup: baseline_s={medians['baseline']:.4f} help_s={medians['help']:.4f} "
        f"inspect_s={medians['inspect']:.4f} help_ratio={ratios['help_ratio']:.2f} "
        f"inspect_ratio={ratios['inspect_ratio']:.2f} runs={runs} stale_bytecode={stale} "
        f"goal_ratio={GOAL_RATIO:g} goals={goals}"
    )
    return 1 if missed and not args.no_goals else 0


if __name__ == "__main__":
    sys.exit(main())
