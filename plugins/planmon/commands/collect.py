"""``planmon collect``: the collection DAG's work, run from the command line (no Airflow scheduler)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from planmon.commands._common import iso_moment, open_repository, print_json, window_arguments
from planmon.errors import ConfigError, EngineError

DEFAULT_LOOKBACK = timedelta(minutes=15)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="collect runtime statistics and plans from targets now",
        description=(
            "Collect the enabled targets (or those named) for a window. Without --start/--end each "
            "target is collected from the end of its last collection (or the last 15 minutes) to now. "
            "Engines with cumulative counters only (PostgreSQL, MySQL) can only collect a window "
            "ending now; SQL Server Query Store can collect any past window. A window ending in the "
            "future is refused: it has no data yet."
        ),
    )
    parser.add_argument("--target", action="append", default=[], metavar="NAME", help="repeatable")
    parser.add_argument(
        "--start", type=iso_moment, help="window start, ISO 8601 (UTC unless an offset is given)"
    )
    parser.add_argument("--end", type=iso_moment, help="window end, ISO 8601, not after now")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")
    parser.set_defaults(handler=_collect)


def _collect(args: argparse.Namespace) -> int:
    from planmon.airflow.connections import connection_factory
    from planmon.collect import collect_target
    from planmon.config import load_settings
    from planmon.store.collection import CollectionStore

    window_arguments(args)
    now = datetime.now(UTC)
    _refuse_future_end(args.end, now)
    settings = load_settings()
    summaries: list[dict[str, Any]] = []
    failures = 0
    with open_repository() as repository:
        targets = [repository.get_target(n) for n in args.target] or repository.list_targets(
            enabled_only=True
        )
        if not targets:
            print("no enabled targets: add one with `planmon targets add`")
            return 0
        for target in targets:
            start, end = args.start, args.end
            if start is None:
                last = CollectionStore(repository).last_collected_until(target.id)
                start = last.replace(tzinfo=UTC) if last else now - DEFAULT_LOOKBACK
                end = now
            try:
                connect = connection_factory(target.engine, target.conn_id)
                summary = collect_target(repository, target, start, end, settings=settings, connect=connect)
            except (EngineError, ConfigError) as exc:
                failures += 1
                summaries.append({"target": target.name, "status": "error", "error": str(exc)})
                continue
            summaries.append(summary.as_dict())
    _report(summaries, as_json=args.json)
    return 1 if failures else 0


def _refuse_future_end(end: datetime | None, now: datetime) -> None:
    """A window that has not ended has no statistics for its future part: refuse it before any
    target is read, rather than store a collection that claims times still to come."""
    if end is not None and end > now:
        raise ConfigError(
            f"--end {end.isoformat()} is in the future (now is {now.isoformat(timespec='seconds')}): "
            "a collection window must have ended; give an --end at or before now, or omit --start "
            "and --end to collect each target up to now"
        )


def _report(summaries: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        print_json(summaries)
        return
    for summary in summaries:
        line = f"{summary['target']}: {summary['status']}"
        if summary.get("error"):
            print(f"{line}: {summary['error']}")
            continue
        print(
            f"{line}, {summary['rows']} rows, {summary['plans_captured']} plans, {summary['duration_ms']} ms"
        )
        for aspect, status in (summary.get("aspects") or {}).items():
            if status["status"] not in ("ok", "not_applicable") or status.get("detail"):
                print(f"  {aspect}: {status['status']}: {status.get('hint') or status.get('detail')}")
