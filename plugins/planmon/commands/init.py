"""``planmon init``: create or upgrade the repository schema and say which revision it is at."""

from __future__ import annotations

import argparse

from planmon.commands._common import open_repository


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create or upgrade the repository schema",
        description=(
            "Create or upgrade planmon's repository (PLANMON_REPOSITORY_URL, PLANMON_REPOSITORY_CONN_ID, "
            "or the SQLite file $PLANMON_HOME/planmon.db) to the newest schema revision. Safe to re-run."
        ),
    )
    parser.set_defaults(handler=_init)


def _init(_args: argparse.Namespace) -> int:
    with open_repository(require_schema=False) as repository:
        before = repository.schema_revision()
        after = repository.init_schema()
        if before == after:
            print(f"repository {repository.location} is at revision {after} (already current)")
        else:
            print(f"repository {repository.location} upgraded from {before or 'empty'} to revision {after}")
    return 0
