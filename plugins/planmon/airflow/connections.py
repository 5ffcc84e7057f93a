"""Airflow connection lookup, the only way planmon reaches credentials.

Works inside and outside tasks: Airflow resolves ids through ``AIRFLOW_CONN_*`` variables, secrets
backends and its metadata DB. Errors name the id and how to define it, never a credential.
"""

from __future__ import annotations

from typing import Any

from planmon.errors import ConfigError


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


def connection_exists(conn_id: str) -> bool:
    try:
        get_connection(conn_id)
    except ConfigError:
        return False
    return True
