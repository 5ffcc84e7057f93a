"""Airflow connection lookup: a MySQL connection without a client extra opens through
mysql-connector-python (mysqlclient needs build headers and is not installed)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from planmon.airflow.connections import connection_factory


def test_mysql_connections_default_to_mysql_connector_and_keep_their_extras(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    connection = {"conn_type": "mysql", "host": "db1", "login": "fix", "extra": {"ssl_ca": "/ca.pem"}}
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_FIX", json.dumps(connection))
    used: dict[str, Any] = {}

    def get_conn(self: MySqlHook) -> str:
        used.update(self.connection.extra_dejson)
        return "connected"

    monkeypatch.setattr(MySqlHook, "get_conn", get_conn)
    assert connection_factory("mysql", "shop_fix")("shop") == "connected"
    assert used == {"ssl_ca": "/ca.pem", "client": "mysql-connector-python"}


def test_outside_a_task_lookups_include_the_metadata_db(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's lookups run in Airflow's server context (env, secrets backends, metadata DB); the live
    proof is tests/integration/test_cli_airflow_connections.py."""
    from planmon.airflow.connections import PROCESS_CONTEXT_VARIABLE, get_connection

    monkeypatch.delenv(PROCESS_CONTEXT_VARIABLE, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_ENV", "postgres://u@127.0.0.1:1/shop")
    get_connection("shop_env")
    assert os.environ[PROCESS_CONTEXT_VARIABLE] == "server"


def test_a_context_airflow_chose_is_kept_and_a_task_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time import task_runner

    from planmon.airflow.connections import PROCESS_CONTEXT_VARIABLE, use_metadata_db_outside_tasks

    monkeypatch.setenv(PROCESS_CONTEXT_VARIABLE, "client")  # e.g. a triggerer's runner
    use_metadata_db_outside_tasks()
    assert os.environ[PROCESS_CONTEXT_VARIABLE] == "client"
    monkeypatch.delenv(PROCESS_CONTEXT_VARIABLE)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", object(), raising=False)  # inside a task
    use_metadata_db_outside_tasks()
    assert PROCESS_CONTEXT_VARIABLE not in os.environ
