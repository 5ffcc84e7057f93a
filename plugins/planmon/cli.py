"""The ``planmon`` command line: the same library the DAGs use, outside Airflow.

Each command group lives in ``planmon/commands/<group>.py`` and exposes
``register(subparsers)``; this module only assembles them and maps errors to exit codes.
``register`` only builds parsers: each handler imports what it uses (the store, pandas, Airflow), so
start-up stays light (tests/unit/commands/test_cli_imports.py, bench/cli_startup.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from planmon import __version__
from planmon.errors import PlanmonError

# Command groups in the order ``planmon --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "planmon.commands.config",
    "planmon.commands.init",
    "planmon.commands.targets",
    "planmon.commands.collect",
    "planmon.commands.analyze",
    "planmon.commands.probes",
    "planmon.commands.remediate",
    "planmon.commands.plan",
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planmon",
        description="Execution-plan regression monitor for SQL Server, PostgreSQL and MySQL/MariaDB.",
    )
    parser.add_argument("--version", action="version", version=f"planmon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args))
    except PlanmonError as exc:
        print(f"planmon: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
