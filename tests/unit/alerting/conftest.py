"""A fresh, migrated repository per alerting test, on SQLite and on the harness's live PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from planmon.store import Repository
from planmon.store.connection import create_repository_engine

_database_numbers = itertools.count()


def _postgres_url(request: pytest.FixtureRequest) -> URL:
    server = request.getfixturevalue("repository_postgres")
    name = f"planmon_alerting_{next(_database_numbers)}"
    with psycopg.connect(server.dsn(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return URL.create(
        "postgresql+psycopg", username=server.user, host=server.host, port=server.port, database=name
    )


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    if request.param == "sqlite":
        url = URL.create("sqlite", database=str(tmp_path / "planmon.db"))
    else:
        url = _postgres_url(request)
    repository = Repository(create_repository_engine(url))
    repository.init_schema()
    try:
        yield repository
    finally:
        repository.close()
