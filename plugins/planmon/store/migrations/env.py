"""Alembic environment for planmon's repository; run through ``planmon.store.migrate``, not the CLI.

The caller passes an open connection in ``config.attributes["connection"]``; SQLite uses batch mode
so that later migrations can alter tables.
"""

from __future__ import annotations

from alembic import context

from planmon.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached when someone runs the alembic CLI directly
    raise RuntimeError("run migrations with `planmon init` (planmon.store.migrate.upgrade)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
