"""Helpers shared by command modules: opening the repository, printing tables and JSON.

Imported by every command module at registration, so it imports nothing heavy at module level: the
store (SQLAlchemy, Alembic), the settings (pydantic) and ``planmon.airflow.connections`` (Airflow) load
only when a command opens the repository (``planmon --help`` stays fast; tests/unit/commands check it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from planmon.errors import ConfigError

if TYPE_CHECKING:
    from planmon.store import Repository


def open_repository(*, require_schema: bool = True) -> Repository:
    """The repository named by the settings; by default refuses one whose schema is not current."""
    from planmon.airflow import connections
    from planmon.config import load_settings

    repository = connections.open_repository(load_settings())
    if require_schema:
        try:
            repository.require_schema()
        except BaseException:
            repository.close()
            raise
    return repository


def iso_moment(text: str) -> datetime:
    """An ISO 8601 command-line time; UTC unless it carries an offset (argparse type)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-20T13:00") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def window_arguments(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """``--start``/``--end`` checked together: both or neither, start before end."""
    if (args.start is None) != (args.end is None):
        raise ConfigError("give both --start and --end, or neither")
    if args.start is not None and args.start >= args.end:
        raise ConfigError("--start must be before --end")
    return args.start, args.end


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table (no colours: output is read by people and by grep)."""
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
