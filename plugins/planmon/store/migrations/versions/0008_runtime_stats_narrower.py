"""runtime stats rows narrower: no per-row source; the rollup keyed by time first

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 16:30:00.000000

- ``source`` goes from runtime_stats and runtime_stats_rollup: collection wrote its target's engine
  name there (``target.engine``) in every row, and nothing read it; 8 to 16 bytes a row. The
  downgrade puts it back from ``target.engine``, so nothing is lost either way.
- runtime_stats_rollup's primary key becomes (interval_start, grain, plan_id, execution_type), from
  (plan_id, grain, interval_start, execution_type): the roll-up writes one bucket at a time, oldest
  first, so the new key's entries append at the right of the index (about 50 bytes a row, where the
  plan-first key split its pages half-empty at 67). The (interval_start) index stays: the purge
  walks it (7 bytes a row, deduplicated).

On PostgreSQL dropping a column of the partitioned runtime_stats is a catalog change (no rewrite);
the rollup's key is rebuilt in place. SQLite rebuilds both tables (batch mode); SQL Server alters
them in place. See docs/repository.md for the bytes per row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("runtime_stats", "runtime_stats_rollup")
ROLLUP = "runtime_stats_rollup"
ROLLUP_KEY = ("interval_start", "grain", "plan_id", "execution_type")
ROLLUP_KEY_0007 = ("plan_id", "grain", "interval_start", "execution_type")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("source")
    with op.batch_alter_table(ROLLUP, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(f"pk_{ROLLUP}"), type_="primary")
        batch_op.create_primary_key(batch_op.f(f"pk_{ROLLUP}"), list(ROLLUP_KEY))


def downgrade() -> None:
    with op.batch_alter_table(ROLLUP, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(f"pk_{ROLLUP}"), type_="primary")
        batch_op.create_primary_key(batch_op.f(f"pk_{ROLLUP}"), list(ROLLUP_KEY_0007))
    for table in TABLES:
        # nullable first, filled from the target's engine (what collection wrote), then NOT NULL
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("source", sa.String(length=32), nullable=True))
        op.execute(
            f"UPDATE {table} SET source = (SELECT target.engine FROM target "  # noqa: S608 - fixed names
            f"WHERE target.id = {table}.target_id)"
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("source", existing_type=sa.String(length=32), nullable=False)
