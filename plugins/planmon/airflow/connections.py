"""Airflow connection lookup, the only way planmon reaches credentials.

Works inside and outside tasks, through Airflow's own lookup: secrets backends, ``AIRFLOW_CONN_*``
variables and its metadata DB (``airflow connections add``, the UI). Inside a task Airflow's Task SDK
asks the API server, which reads all three. Outside a task (the ``planmon`` command line) the SDK
alone reads only the secrets backends and the variables; so there the lookup runs in Airflow's server
context, whose search path ends with the metadata DB: what ``airflow connections get`` does. Errors
name the id and how to define it, never a credential.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from typing import Any

from planmon.config import Settings, load_settings
from planmon.engines import get_engine
from planmon.errors import ConfigError, RefusalReason, RemediationRefused
from planmon.model import Target
from planmon.store import Repository

# Airflow's switch between its lookup chains (airflow.sdk.execution_time.supervisor
# .ensure_secrets_backend_loaded): "server" adds the metadata DB (MetastoreBackend) after the secrets
# backends and the environment. Airflow's API server, scheduler and `airflow connections get` set it.
PROCESS_CONTEXT_VARIABLE = "_AIRFLOW_PROCESS_CONTEXT"


def _in_task() -> bool:
    """Whether this process is an Airflow task runner (it reaches connections through the API server)."""
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def use_metadata_db_outside_tasks() -> None:
    """Outside a task, and unless Airflow already chose a context for this process, look connections
    up as Airflow's own command line does: secrets backends, environment, then the metadata DB.

    Process-wide on purpose: the hooks planmon opens look their connection up again themselves.
    Inside a task nothing changes (the task runner must not open the metadata DB; the API server reads
    it for the task).
    """
    if PROCESS_CONTEXT_VARIABLE not in os.environ and not _in_task():
        os.environ[PROCESS_CONTEXT_VARIABLE] = "server"


def get_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id``, or ConfigError saying how to define it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    use_metadata_db_outside_tasks()
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
    """A function that opens a DB-API connection to the target through the engine's Airflow hook.

    The argument names a database to connect to instead of the connection's own (None: its own).
    Which hook, and its defaults (MySQL: mysql-connector-python, which needs no build headers,
    unless the connection's extra names another client), is the engine's ``airflow_hook``.
    """
    spec = get_engine(engine).airflow_hook
    module_name, _, class_name = spec.hook.partition(":")

    def connect(database: str | None) -> Any:
        hook_class = getattr(importlib.import_module(module_name), class_name)
        hook = hook_class(**{spec.conn_id_argument: conn_id, spec.database_argument: database})
        missing = {key: value for key, value in spec.extra_defaults.items() if key not in _extra(hook)}
        if missing:
            # The hook caches this object and get_conn() reads it; assigning hook.connection would be
            # ignored (a backward-compatibility setter), leaving the driver default in place.
            hook.connection.extra = json.dumps({**_extra(hook), **missing})
        return hook.get_conn()

    get_connection(conn_id)  # fail early, with the hint, when the id does not resolve
    return connect


def _extra(hook: Any) -> dict[str, Any]:
    return dict(hook.connection.extra_dejson or {})


class AirflowConnections:
    """The targets' connections as Airflow resolves them: the collection connection id (read-only
    use) and the separate remediation connection id (the only one that acts)."""

    def can_collect(self, target: Target) -> bool:
        return connection_exists(target.conn_id)

    def collection(self, target: Target) -> Callable[[str | None], Any]:
        return connection_factory(target.engine, target.conn_id)

    def remediation(self, target: Target) -> Callable[[str | None], Any]:
        if not target.remediation_conn_id:
            raise RemediationRefused(
                f"target {target.name!r} has no remediation connection id", reason=RefusalReason.NO_CONNECTION
            )
        return connection_factory(target.engine, target.remediation_conn_id)


def connection_exists(conn_id: str) -> bool:
    try:
        get_connection(conn_id)
    except ConfigError:
        return False
    return True
