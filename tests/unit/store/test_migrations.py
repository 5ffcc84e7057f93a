"""Migrations create exactly the schema in store/schema.py, go down a step and up again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from planmon.store import Repository, migrate
from planmon.store.schema import metadata


def _tables(repository: Repository) -> set[str]:
    return set(inspect(repository.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_creates_every_table(empty_repository: Repository) -> None:
    assert empty_repository.schema_revision() is None
    assert empty_repository.init_schema() == migrate.head_revision()
    assert _tables(empty_repository) == set(metadata.tables)


def test_migrated_schema_matches_the_metadata(repository: Repository) -> None:
    with repository.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def _differences(repository: Repository) -> list[object]:
    with repository.engine.connect() as connection:
        return list(
            compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
        )


def test_downgrade_one_step_then_upgrade_again(repository: Repository) -> None:
    head = migrate.head_revision()
    migrate.downgrade(repository.engine, "-1")
    assert repository.schema_revision() != head
    assert _differences(repository), "the last migration's downgrade changed nothing"
    assert repository.init_schema() == head
    assert _differences(repository) == []


def test_init_is_idempotent_and_keeps_data(repository: Repository) -> None:
    repository.set_setting("retention_days", "45")
    repository.init_schema()
    assert repository.retention_days() == 45
