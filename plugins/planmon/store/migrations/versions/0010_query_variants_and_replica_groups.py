"""query rows keep SQL Server's query variants and replica group

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 20:00:00.000000

- query gains ``parent_query_key`` and ``dispatcher_plan_key`` (nullable): on SQL Server 2022+ a
  parameter-sensitive plan optimisation variant has its own query id; these name its parent query and
  the parent's dispatcher plan (sys.query_store_query_variant), so pages and remediation can relate the
  variants of one parent and never take the dispatcher plan for a variant's plan.
- query gains ``replica_group_id`` (nullable): on SQL Server 2025 / Azure SQL Database, the Query Store
  replica group whose runtime statistics were stored for the query.
Rows written before this revision have none of them (NULL: not a variant / no replica groups known).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

KEY = 200


def upgrade() -> None:
    # plain ADD COLUMN on every backend: a batch (copy-and-move) of ``query`` on SQLite would drop a table
    # that plan, runtime_stats and regression refer to
    op.add_column("query", sa.Column("parent_query_key", sa.String(KEY), nullable=True))
    op.add_column("query", sa.Column("dispatcher_plan_key", sa.String(KEY), nullable=True))
    op.add_column("query", sa.Column("replica_group_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for name in ("replica_group_id", "dispatcher_plan_key", "parent_query_key"):
        if op.get_context().dialect.name == "sqlite":
            op.execute(f'ALTER TABLE query DROP COLUMN "{name}"')  # SQLite 3.35+: no table copy
        else:
            op.drop_column("query", name)
