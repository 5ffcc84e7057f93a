"""Create or upgrade the repository schema with the Alembic migrations shipped in this package."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

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
