"""remediation policy per target, verification record per remediation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 23:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remediation_policy", sa.JSON(), nullable=True))
    with op.batch_alter_table("remediation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("query_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("verification", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_remediation_regression_id"), ["regression_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_remediation_query_id_action"), ["query_id", "action"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("remediation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remediation_query_id_action"))
        batch_op.drop_index(batch_op.f("ix_remediation_regression_id"))
        batch_op.drop_column("verification")
        batch_op.drop_column("query_id")
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.drop_column("remediation_policy")
