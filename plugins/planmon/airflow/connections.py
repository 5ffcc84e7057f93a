"""Airflow connection lookup, the only way planmon reaches credentials.

Works inside and outside tasks: Airflow resolves ids through ``AIRFLOW_CONN_*`` variables, secrets
backends and its metadata DB. Errors name the id and how to define it, never a credential.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from planmon.config import Settings, load_settings
from planmon.errors import ConfigError
from planmon.store import Repository


def get_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id``, or ConfigError saying how to define it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise ConfigError(
            f"Airflow cannot resolve connection id {conn_id!r}",
            hint=(
                "define it in the Airflow UI (Admin > Connections), with "
                f"`airflow connections add {conn_id} ...`, or as the environment variable "
                f"AIRFLOW_CONN_{conn_id.upper()}"
            ),
        ) from exc


def open_repository(settings: Settings | None = None) -> Repository:
    """planmon's repository, its connection id (``PLANMON_REPOSITORY_CONN_ID``) resolved by Airflow."""
    return Repository.from_settings(settings or load_settings(), connection_lookup=get_connection)


def connection_factory(engine: str, conn_id: str) -> Callable[[str | None], Any]:
    """A function that opens a DB-API connection to the target through its Airflow hook.

    The argument names a database to connect to instead of the connection's own (None: its own).
    MySQL connections use mysql-connector-python (no build headers needed) unless the connection's
    extra names another client.
    """

    def connect(database: str | None) -> Any:
        if engine == "postgres":
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=conn_id, database=database).get_conn()
        if engine == "mysql":
            from airflow.providers.mysql.hooks.mysql import MySqlHook

            hook = MySqlHook(mysql_conn_id=conn_id, schema=database)
            # The hook caches this object and get_conn() reads it; assigning hook.connection would be
            # ignored (a backward-compatibility setter), leaving the mysqlclient default in place.
            connection = hook.connection
            extra = connection.extra_dejson or {}
            if "client" not in extra:
                connection.extra = json.dumps({**extra, "client": "mysql-connector-python"})
            return hook.get_conn()
        if engine == "sqlserver":
            from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

            return MsSqlHook(mssql_conn_id=conn_id, schema=database).get_conn()
        raise ConfigError(f"no Airflow hook for engine {engine!r}")

    get_connection(conn_id)  # fail early, with the hint, when the id does not resolve
    return connect


def connection_exists(conn_id: str) -> bool:
    try:
        get_connection(conn_id)
    except ConfigError:
        return False
    return True
