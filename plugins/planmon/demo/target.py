"""The demo's target after the demo: its PostgreSQL and its Airflow connections, kept for ``make airflow``.

``make demo`` leaves the shop's PostgreSQL running (files under ``<home>/postgres``, or where the
``postgres`` OS user can reach them, see :func:`planmon.embedded.kept_postgres`) and writes the
target's two connections into the Airflow metadata DB that ``make airflow`` uses: collection and
probes as the read-only ``planmon_monitor`` login, remediation as the superuser. ``make airflow``
runs ``python -m planmon.demo.target up``, which starts that PostgreSQL again when it is not running
(after a reboot) and points the connections at its port; ``make clean`` runs ``... down --delete``.
A new ``make demo`` replaces it all. Nothing here is used in production.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from planmon.demo import workload
from planmon.embedded import PostgresServer, ServerUnavailable, kept_postgres, stop_kept_postgres

CONN_ID = "planmon_demo_shop"
REMEDIATION_CONN_ID = "planmon_demo_shop_remediation"


def postgres_dir(home: Path) -> Path:
    return home / "postgres"


# The login planmon collects and runs probes through: it reads statistics and the shop's tables and
# nothing more (docs/collection.md, docs/probes.md "The probe login": a superuser's probes are refused).
# Remediation creates indexes: its connection is the cluster's superuser.
MONITOR_LOGIN = "planmon_monitor"
ADMIN_LOGIN = "postgres"


def connection_uri(port: int, login: str = MONITOR_LOGIN) -> str:
    """The demo target's Airflow connection: the kept cluster trusts loopback, no password."""
    return f"postgres://{login}@127.0.0.1:{port}/{workload.DATABASE}"


def ensure_monitor_login(server: PostgresServer) -> None:
    """Create (if missing) and grant the monitoring login, as docs/probes.md sets a probe login up:
    LOGIN, pg_monitor, SELECT on the shop's tables. Roles outlive the shop database: idempotent."""
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'planmon_monitor'").fetchone() is None:
            admin.execute("CREATE ROLE planmon_monitor LOGIN")
        admin.execute("GRANT pg_monitor TO planmon_monitor")
    with psycopg.connect(server.dsn(workload.DATABASE), autocommit=True) as shop:
        shop.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO planmon_monitor")


def write_connections(port: int) -> None:
    """Create (or repoint) the demo target's collection and remediation connections in Airflow's
    metadata DB, as ``airflow connections add`` would. Airflow must already be configured."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for conn_id, login in ((CONN_ID, MONITOR_LOGIN), (REMEDIATION_CONN_ID, ADMIN_LOGIN)):
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            session.add(
                Connection(
                    conn_id=conn_id,
                    uri=connection_uri(port, login),
                    description="planmon demo: the shop database of `make demo`",
                )
            )


def up(home: Path) -> PostgresServer | None:
    """Start the demo's PostgreSQL if the demo left one (None if not) and point its connections at it."""
    if not postgres_dir(home).is_dir():
        return None
    server = kept_postgres(postgres_dir(home), create=False)
    ensure_monitor_login(server)  # a shop kept by an older demo has no such login yet
    write_connections(server.port)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m planmon.demo.target",
        description=(
            "The PostgreSQL `make demo` leaves behind, for `make airflow`. up: start it if it is not "
            "running and write its connections (planmon_demo_shop, planmon_demo_shop_remediation) "
            "into Airflow's metadata DB (AIRFLOW_HOME's configuration); nothing to do when there is "
            "no demo. down: stop it; --delete also removes its files."
        ),
    )
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--home", type=Path, default=Path(".planmon"), help="the demo's home (.planmon)")
    parser.add_argument("--delete", action="store_true", help="down: also delete its files")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    try:
        if args.action == "down":
            stop_kept_postgres(postgres_dir(home), delete=args.delete)
            return 0
        server = up(home)
    except ServerUnavailable as exc:
        print(f"planmon demo target: {exc}; run `make demo` again", file=sys.stderr)
        return 1
    if server is not None:
        print(
            f"demo target 'shop': PostgreSQL on 127.0.0.1:{server.port} (connections {CONN_ID}, "
            f"{REMEDIATION_CONN_ID})"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
