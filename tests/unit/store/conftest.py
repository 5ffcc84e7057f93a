"""A fresh, migrated repository per test, on SQLite and on the harness's live PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from planmon.store import Repository
from planmon.store.connection import create_repository_engine
from tests.harness.servers import PostgresServer

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
_database_numbers = itertools.count()


def fresh_postgres_url(server: PostgresServer) -> URL:
    """A new empty database on the harness server, so tests never see each other's rows."""
    name = f"planmon_test_{next(_database_numbers)}"
    with psycopg.connect(server.dsn(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return URL.create(
        "postgresql+psycopg", username=server.user, host=server.host, port=server.port, database=name
    )


def backend_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    if backend == "sqlite":
        return URL.create("sqlite", database=str(tmp_path / "planmon.db"))
    return fresh_postgres_url(request.getfixturevalue("repository_postgres"))


@pytest.fixture(params=BACKENDS)
def empty_repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    repository = Repository(create_repository_engine(backend_url(request.param, request, tmp_path)))
    try:
        yield repository
    finally:
        repository.close()


@pytest.fixture
def repository(empty_repository: Repository) -> Repository:
    empty_repository.init_schema()
    return empty_repository
