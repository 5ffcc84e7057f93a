"""The ``planmon`` command line: the same library the DAGs use, outside Airflow.

Each command group lives in ``planmon/commands/<group>.py`` and exposes
``register(subparsers)``; this module only assembles them, maps errors to exit codes and keeps
stdout for output alone (every log line, Airflow's too, goes to stderr: ``logs_to_stderr``).
``register`` only builds parsers: each handler imports what it uses (the store, pandas, Airflow), so
start-up stays light (tests/unit/commands/test_cli_imports.py, bench/cli_startup.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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


class _AirflowLogsToStderr(importlib.abc.MetaPathFinder):
    """Stdout carries a command's output only (``--json``: one JSON document); every log line goes to
    stderr, Airflow's too.

    Airflow configures logging when it is first imported (``airflow.settings.initialize``): its stdlib
    handler takes ``sys.stdout`` as it is then, and its structlog loggers each take ``sys.stdout`` as
    it is when they are created. Commands import Airflow only when they need it (a connection lookup),
    so this finder waits for that import, runs it with ``sys.stdout`` pointing at stderr, and then
    wraps structlog's logger factory the same way. It removes itself at the first import of airflow.
    """

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "airflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            with _stdout_is_stderr():
                execute(module)
            _structlog_to_stderr()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


@contextlib.contextmanager
def _stdout_is_stderr() -> Iterator[None]:
    """While it lasts, whatever looks up sys.stdout gets stderr (not thread-safe: only around
    Airflow's import and the making of a logger, which print nothing of a command's output)."""
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved


def _structlog_to_stderr() -> None:
    """structlog loggers made from now on write where stderr is (they look up sys.stdout when made)."""
    import structlog

    factory: Callable[..., Any] = structlog.get_config()["logger_factory"]
    if getattr(factory, "planmon_to_stderr", False):
        return  # wrapped already (main() runs more than once in one process: the tests)

    def make_logger(*args: Any) -> Any:
        with _stdout_is_stderr():
            return factory(*args)

    make_logger.planmon_to_stderr = True  # type: ignore[attr-defined]
    structlog.configure(logger_factory=make_logger)


def logs_to_stderr(*, verbose: bool) -> None:
    """Log lines go to stderr, planmon's and (once a command imports it) Airflow's."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if "airflow" in sys.modules:  # already imported (a test process): point its handlers at stderr
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
                handler.setStream(sys.stderr)
        _structlog_to_stderr()
    elif not any(isinstance(finder, _AirflowLogsToStderr) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AirflowLogsToStderr())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs_to_stderr(verbose=args.verbose)
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
