"""Create or upgrade the repository schema with the Alembic migrations shipped in this package, and
compare what a repository has with what ``store/schema.py`` says (:func:`schema_differences`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from planmon.store.schema import metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("planmon ships no migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` (default the newest) in one transaction; return where it is."""
    return _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> str | None:
    return _run(engine, command.downgrade, revision)


def _run(engine: Engine, action: object, revision: str) -> str | None:
    # Alembic logs every step at INFO; planmon reports the outcome itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)  # type: ignore[operator]
    return current_revision(engine)


def schema_differences(engine: Engine) -> list[Any]:
    """How the repository's schema differs from ``store/schema.py``: Alembic's comparison of tables,
    columns, types, keys and indexes (a fresh repository and an upgraded one must both give []),
    plus, on PostgreSQL, a table whose partitioning is not the metadata's
    (``("partition_by", table, expected, found)``). The partitions of a partitioned table are part
    of it, not extra tables."""
    with engine.connect() as connection:
        partitions = _partition_names(connection)

        def include_name(name: str | None, type_: str, _parents: Any) -> bool:
            return not (type_ == "table" and name in partitions)

        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
        differences: list[Any] = list(compare_metadata(context, metadata))
        differences.extend(_partitioning_differences(connection))
    return differences


def _partition_names(connection: Connection) -> set[str]:
    if connection.dialect.name != "postgresql":
        return set()
    rows = connection.execute(
        text(
            "SELECT relname FROM pg_class "
            "WHERE relispartition AND relnamespace = current_schema()::regnamespace"
        )
    )
    return set(rows.scalars())


def _partitioning_differences(connection: Connection) -> list[tuple[str, str, str | None, str | None]]:
    if connection.dialect.name != "postgresql":
        return []
    found: dict[str, str] = dict(
        connection.execute(
            text(
                "SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid WHERE c.relnamespace = current_schema()::regnamespace"
            )
        ).all()
    )
    differences: list[tuple[str, str, str | None, str | None]] = []
    for table in metadata.sorted_tables:
        expected = table.dialect_options["postgresql"].get("partition_by")
        if expected != found.get(table.name):
            differences.append(("partition_by", table.name, expected, found.get(table.name)))
    return differences
