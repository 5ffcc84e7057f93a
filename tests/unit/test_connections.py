"""Airflow connection lookup: a MySQL connection without a client extra opens through
mysql-connector-python (mysqlclient needs build headers and is not installed)."""

from __future__ import annotations

import json
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
