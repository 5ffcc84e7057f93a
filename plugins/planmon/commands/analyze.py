"""``planmon analyze`` and ``planmon regressions``: detection on the repository or on an offline
Query Store export, outside Airflow."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from planmon.commands._common import iso_moment, open_repository, print_json, window_arguments

STATUSES = ("open", "resolved")
SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")  # planmon.model.SEVERITIES, least first


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    analyze = subparsers.add_parser(
        "analyze",
        help="detect regressions for a window (repository or Query Store export)",
        description=(
            "Detect regressions in [--start, --end) against the baseline window before it (default the "
            "PLANMON_BASELINE_DAYS days before --start). On the repository the default window is the last "
            "complete hour and regressions are stored; with --query-store-export DIR the CSV files of a "
            "Query Store export are analysed in memory (default: the last 24 hours of the export)."
        ),
    )
    analyze.add_argument(
        "--start", type=iso_moment, help="window start, ISO 8601 (UTC unless an offset is given)"
    )
    analyze.add_argument("--end", type=iso_moment, help="window end, ISO 8601")
    analyze.add_argument("--baseline-start", type=iso_moment, help="baseline window start, ISO 8601")
    analyze.add_argument("--target", action="append", default=[], metavar="NAME", help="repeatable")
    analyze.add_argument(
        "--query-store-export", type=Path, metavar="DIR", help="folder of Query Store CSV files"
    )
    analyze.add_argument("--json", action="store_true", help='print {"regressions": [...]}')
    analyze.set_defaults(handler=_analyze)

    regressions = subparsers.add_parser(
        "regressions",
        help="list stored regressions",
        description=(
            "List stored regressions, severity info included (statistically solid, under the impact "
            "floor PLANMON_IMPACT_FLOOR_CPU_SECONDS_PER_HOUR: known, never alerted or proposed)."
        ),
    )
    regressions.add_argument("--status", choices=STATUSES, help="only open or only resolved ones")
    regressions.add_argument(
        "--severity", action="append", choices=SEVERITY_NAMES, metavar="SEVERITY", default=[],
        help=f"only these severities (repeatable): {', '.join(SEVERITY_NAMES)}",
    )  # fmt: skip
    regressions.add_argument("--json", action="store_true", help='print {"regressions": [...]}')
    regressions.set_defaults(handler=_regressions)


def _analyze(args: argparse.Namespace) -> int:
    from planmon.analysis.report import regressions_json
    from planmon.config import load_settings

    start, end = window_arguments(args)
    settings = load_settings()
    if args.query_store_export is not None:
        from planmon.analysis.querystore_export import analyze_export

        found = analyze_export(
            args.query_store_export,
            start=start,
            end=end,
            baseline_start=args.baseline_start,
            settings=settings,
        )
        _print(found, as_json=args.json)
        return 0
    from planmon.analysis.service import analyze_repository
    from planmon.store.regressions import RegressionStore

    if start is None or end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(hours=1)
    with open_repository() as repository:
        summary = analyze_repository(
            repository, window_start=start, window_end=end, settings=settings,
            baseline_start=args.baseline_start, target_names=args.target,
        )  # fmt: skip
        frame = RegressionStore(repository).regressions()
        frame = frame[frame["id"].isin(summary.regression_ids)]
        found = regressions_json(frame)
    if not args.json:
        print(f"analysed {summary.window_start} .. {summary.window_end}: {summary.detected} regression(s), "
              f"{summary.resolved} resolved")  # fmt: skip
    _print(found, as_json=args.json)
    return 0


def _regressions(args: argparse.Namespace) -> int:
    from planmon.analysis.report import regressions_json
    from planmon.store.regressions import RegressionStore

    with open_repository() as repository:
        frame = RegressionStore(repository).regressions(status=args.status)
        if args.severity:
            frame = frame[frame["severity"].isin(args.severity)]
        found = regressions_json(frame)
    _print(found, as_json=args.json)
    return 0


def _print(found: list[dict[str, Any]], *, as_json: bool) -> None:
    from planmon.analysis.report import line

    if as_json:
        print_json({"regressions": found})
        return
    if not found:
        print("no regressions")
    for regression in found:
        print(line(regression))
        if regression.get("diff"):
            print("  " + str(regression["diff"]).replace("\n", "\n  "))
