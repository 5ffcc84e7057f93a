"""collection bookkeeping

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 08:09:20.679860
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counter_snapshot",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("database_name", sa.String(length=128), nullable=False),
        sa.Column("query_key", sa.String(length=200), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("executions", sa.Float(), nullable=False),
        sa.Column("errors", sa.Float(), nullable=True),
        sa.Column("cpu_us_total", sa.Float(), nullable=True),
        sa.Column("duration_us_total", sa.Float(), nullable=True),
        sa.Column("duration_us_sum_squares", sa.Float(), nullable=True),
        sa.Column("logical_reads_total", sa.Float(), nullable=True),
        sa.Column("physical_reads_total", sa.Float(), nullable=True),
        sa.Column("rows_total", sa.Float(), nullable=True),
        sa.Column("rows_examined_total", sa.Float(), nullable=True),
        sa.Column("counters_reset_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["target_id"], ["target.id"], name=op.f("fk_counter_snapshot_target_id_target")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counter_snapshot")),
        sa.UniqueConstraint(
            "target_id",
            "database_name",
            "query_key",
            name=op.f("uq_counter_snapshot_target_id_database_name_query_key"),
        ),
    )
    op.create_table(
        "index_snapshot",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("database_name", sa.String(length=128), nullable=False),
        sa.Column("table_name", sa.String(length=200), nullable=False),
        sa.Column("index_name", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("definition_hash", sa.String(length=64), nullable=False),
        sa.Column("is_unique", sa.Boolean(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"], ["target.id"], name=op.f("fk_index_snapshot_target_id_target")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_snapshot")),
        sa.UniqueConstraint(
            "target_id",
            "database_name",
            "table_name",
            "index_name",
            "definition_hash",
            name=op.f("uq_index_snapshot_target_id_database_name_table_name_index_name_definition_hash"),
        ),
    )
    op.create_table(
        "plan_capture",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("database_name", sa.String(length=128), nullable=False),
        sa.Column("query_key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=True),
        sa.Column("captures_in_window", sa.Integer(), nullable=False),
        sa.Column("last_captured_at", sa.DateTime(), nullable=True),
        sa.Column("last_plan_key", sa.String(length=200), nullable=True),
        sa.Column("mean_us_at_capture", sa.Float(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("retry_after", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name=op.f("fk_plan_capture_target_id_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_capture")),
        sa.UniqueConstraint(
            "target_id",
            "database_name",
            "query_key",
            name=op.f("uq_plan_capture_target_id_database_name_query_key"),
        ),
    )
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counters_read_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("counters_complete", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.drop_column("counters_complete")
        batch_op.drop_column("counters_read_at")

    op.drop_table("plan_capture")
    op.drop_table("index_snapshot")
    op.drop_table("counter_snapshot")
