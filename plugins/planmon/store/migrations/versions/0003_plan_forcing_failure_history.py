"""plan forcing failure history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 08:53:05.231025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("force_failure_count_previous", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("force_failure_changed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_column("force_failure_changed_at")
        batch_op.drop_column("force_failure_count_previous")
