"""An unreachable repository or a bad URL gets a clear error, with no password in it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from planmon.airflow.connections import get_connection
from planmon.config import load_settings
from planmon.errors import ConfigError
from planmon.store import Repository, RepositoryError
from planmon.store.connection import create_repository_engine, repository_url
from tests.harness.servers import free_port


def test_unreachable_postgres_names_the_repository_and_hides_the_password() -> None:
    url = URL.create(
        "postgresql+psycopg",
        username="planmon",
        password="hunter2secret",
        host="127.0.0.1",
        port=free_port(),
        database="planmon",
        query={"connect_timeout": "2"},
    )
    repository = Repository(create_repository_engine(url))
    with pytest.raises(RepositoryError) as caught:
        repository.init_schema()
    message = str(caught.value)
    assert "127.0.0.1" in message and "planmon init" in message
    assert "hunter2secret" not in message


def test_bad_url_is_a_config_error_with_an_example() -> None:
    settings = load_settings({"PLANMON_REPOSITORY_URL": "not a url"})
    with pytest.raises(ConfigError, match=r"PLANMON_REPOSITORY_URL.*e\.g\."):
        repository_url(settings)


def test_unresolvable_repository_connection_id_says_how_to_define_it() -> None:
    settings = load_settings({"PLANMON_REPOSITORY_CONN_ID": "planmon_repo_missing"})
    with pytest.raises(ConfigError, match="AIRFLOW_CONN_PLANMON_REPO_MISSING"):
        repository_url(settings, get_connection)


def test_a_repository_connection_id_without_a_lookup_says_what_to_do() -> None:
    """The store imports no Airflow: whoever opens it with a connection id passes the lookup."""
    settings = load_settings({"PLANMON_REPOSITORY_CONN_ID": "planmon_repo"})
    with pytest.raises(ConfigError, match="PLANMON_REPOSITORY_CONN_ID") as caught:
        repository_url(settings)
    assert "open_repository" in str(caught.value.hint) and "PLANMON_REPOSITORY_URL" in str(caught.value.hint)


def test_repository_connection_id_resolves_through_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLANMON_REPO",
        '{"conn_type": "postgres", "host": "127.0.0.1", "port": 5433, "login": "planmon", '
        '"password": "hunter2secret", "schema": "planmon"}',
    )
    url = repository_url(load_settings({"PLANMON_REPOSITORY_CONN_ID": "planmon_repo"}), get_connection)
    assert url.drivername == "postgresql+psycopg" and url.port == 5433 and url.database == "planmon"
    assert "hunter2secret" not in url.render_as_string(hide_password=True)


def test_default_is_an_embedded_sqlite_file_in_planmon_home(tmp_path: object) -> None:
    url = repository_url(load_settings({"PLANMON_HOME": "/srv/planmon"}))
    assert url.drivername == "sqlite" and url.database == "/srv/planmon/planmon.db"


def test_commands_refuse_a_repository_without_schema(empty_repository: Repository) -> None:
    with pytest.raises(ConfigError, match="planmon init"):
        empty_repository.require_schema()
