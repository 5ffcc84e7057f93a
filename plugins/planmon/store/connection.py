"""Where the repository lives: a URL, an Airflow connection id, or the embedded SQLite default.

Resolution order: ``PLANMON_REPOSITORY_URL``, else ``PLANMON_REPOSITORY_CONN_ID`` (looked up through
Airflow, which also sees ``AIRFLOW_CONN_*`` variables and secrets backends), else
``$PLANMON_HOME/planmon.db``. URLs are only ever shown with the password hidden.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from planmon.config import Settings
from planmon.errors import ConfigError
from planmon.model import ConnectionLookup

# Airflow connection type -> SQLAlchemy driver planmon installs.
DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mssql": "mssql+pymssql",
    "sqlite": "sqlite",
}
SQLITE_BUSY_TIMEOUT_MS = 30_000  # concurrent writers wait for the lock instead of failing


def repository_url(settings: Settings, connection_lookup: ConnectionLookup | None = None) -> URL:
    """The repository's SQLAlchemy URL from the settings (see module docstring for the order);
    ``PLANMON_REPOSITORY_CONN_ID`` is resolved through ``connection_lookup`` (Airflow's)."""
    if settings.repository_url:
        try:
            url = make_url(settings.repository_url)
        except ArgumentError as exc:
            raise ConfigError(
                "PLANMON_REPOSITORY_URL is not a valid database URL",
                hint="use e.g. postgresql+psycopg://user@host/planmon or sqlite:////abs/path/planmon.db",
            ) from exc
        return _with_installed_driver(url)
    if settings.repository_conn_id:
        if connection_lookup is None:
            raise ConfigError(
                "PLANMON_REPOSITORY_CONN_ID is set, but nothing here can resolve Airflow connections",
                hint="open the repository through planmon.airflow.connections.open_repository, "
                "or set PLANMON_REPOSITORY_URL instead",
            )
        return _url_from_connection(
            settings.repository_conn_id, connection_lookup(settings.repository_conn_id)
        )
    return URL.create("sqlite", database=str(settings.resolved_home / "planmon.db"))


def _with_installed_driver(url: URL) -> URL:
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername == "mssql":
        return url.set(drivername="mssql+pymssql")
    return url


def _url_from_connection(conn_id: str, connection: Any) -> URL:
    driver = DRIVERS.get(connection.conn_type or "")
    if driver is None:
        raise ConfigError(
            f"Airflow connection {conn_id!r} has type {connection.conn_type!r}, which cannot hold "
            "planmon's repository",
            hint=f"use a connection of type {', '.join(sorted(set(DRIVERS) - {'postgresql'}))}",
        )
    if driver == "sqlite":
        return URL.create("sqlite", database=connection.host or connection.schema)
    return URL.create(
        driver,
        username=connection.login or None,
        password=connection.password or None,
        host=connection.host or None,
        port=connection.port or None,
        database=connection.schema or None,
    )


def describe_url(url: URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return url.render_as_string(hide_password=True)


def create_repository_engine(url: URL, **engine_options: Any) -> Engine:
    """An engine for the repository; SQLite gets foreign keys, WAL and a busy timeout."""
    if url.drivername.startswith("sqlite"):
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, **engine_options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **engine_options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()
    # sqrt() for the runtime-stats roll-up (pooled standard deviations): not every SQLite has it
    dbapi_connection.create_function("sqrt", 1, _sqrt, deterministic=True)


def _sqrt(value: float | None) -> float | None:
    return None if value is None or value < 0 else math.sqrt(value)
