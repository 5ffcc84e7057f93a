"""Airflow's metadata DB for ``make airflow`` and ``make demo``: a PostgreSQL kept under AIRFLOW_HOME.

SQLite serialises every writer: with a scheduler, a DAG processor, a triggerer and an API server
writing at once, ``airflow backfill create`` failed with "database is locked" after creating the
backfill. So ``scripts/airflow-local.sh`` (and the demo, which writes the runs and connections
``make airflow`` then shows) keep the metadata in a PostgreSQL from :mod:`planmon.embedded`: files
under ``$AIRFLOW_HOME/postgres`` (kept between runs), 127.0.0.1 only, on the port it had before when
free. ``up`` starts it and prints the SQLAlchemy URL; ``down`` stops it. Not for production (use a
managed PostgreSQL there, as docker-compose.yml does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from planmon.embedded import PostgresServer, ServerUnavailable, kept_postgres, stop_kept_postgres

DATABASE = "airflow"


def postgres_dir(airflow_home: Path) -> Path:
    return airflow_home / "postgres"


def sqlalchemy_url(server: PostgresServer) -> str:
    """Airflow's SQL_ALCHEMY_CONN for the kept cluster (trusts loopback: no password)."""
    return f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{DATABASE}"


def metadata_up(airflow_home: Path) -> str:
    """Start (create on first use) the metadata PostgreSQL and its ``airflow`` database; its URL."""
    import psycopg

    server = kept_postgres(postgres_dir(airflow_home))
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            admin.execute(f"CREATE DATABASE {DATABASE}")
    return sqlalchemy_url(server)


def metadata_down(airflow_home: Path, *, delete: bool = False) -> None:
    """Stop it; ``delete`` also removes its files, wherever they are (make clean)."""
    stop_kept_postgres(postgres_dir(airflow_home), delete=delete)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m planmon.airflow.metadata",
        description=(
            "Airflow's metadata DB for make airflow: a PostgreSQL kept in AIRFLOW_HOME/postgres "
            "(127.0.0.1). up: start it (created on first use) and print the SQLAlchemy URL for "
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN; down: stop it (its files stay, unless --delete)."
        ),
    )
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--airflow-home", type=Path, required=True, help="Airflow's home (.airflow)")
    parser.add_argument("--delete", action="store_true", help="down: also delete its files")
    args = parser.parse_args(argv)
    home = args.airflow_home.resolve()
    try:
        if args.action == "down":
            metadata_down(home, delete=args.delete)
        else:
            print(metadata_up(home))
    except ServerUnavailable as exc:
        print(f"planmon metadata DB: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
