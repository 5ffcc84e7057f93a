"""remediation policy per target, verification record per remediation, one open remediation per
regression and action

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
        batch_op.add_column(sa.Column("open_key", sa.String(32), nullable=False, server_default="open"))
        batch_op.create_index(batch_op.f("ix_remediation_regression_id"), ["regression_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_remediation_query_id_action"), ["query_id", "action"], unique=False
        )
    # remediations already final keep their own id as open_key, so they never block a new proposal
    op.execute(
        "UPDATE remediation SET open_key = CAST(id AS VARCHAR(32)) "
        "WHERE state NOT IN ('proposed', 'approved', 'applied')"
    )
    with op.batch_alter_table("remediation", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_remediation_regression_id_action_open_key"),
            ["regression_id", "action", "open_key"],
        )


def downgrade() -> None:
    with op.batch_alter_table("remediation", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_remediation_regression_id_action_open_key"), type_="unique")
        batch_op.drop_column("open_key")
        batch_op.drop_index(batch_op.f("ix_remediation_query_id_action"))
        batch_op.drop_index(batch_op.f("ix_remediation_regression_id"))
        batch_op.drop_column("verification")
        batch_op.drop_column("query_id")
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.drop_column("remediation_policy")
