"""runtime stats rolled up as they age: hourly and daily rows in runtime_stats_rollup

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 11:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runtime_stats_rollup",
        sa.Column("plan_id", Id, nullable=False, autoincrement=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("interval_start", sa.DateTime(), nullable=False),
        sa.Column("execution_type", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("target_id", Id, nullable=False),
        sa.Column("query_id", Id, nullable=False),
        sa.Column("interval_end", sa.DateTime(), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=True)
            for name in (
                "cpu_us_mean",
                "cpu_us_stdev",
                "cpu_us_min",
                "cpu_us_max",
                "duration_us_mean",
                "duration_us_stdev",
                "duration_us_min",
                "duration_us_max",
                "logical_reads_mean",
                "logical_reads_stdev",
                "physical_reads_mean",
                "rows_mean",
                "rows_examined_mean",
                "memory_kb_mean",
            )
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_rows", sa.Integer(), nullable=False),
        sa.Column("metric_mean_sq", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["plan.id"], name=op.f("fk_runtime_stats_rollup_plan_id_plan")),
        sa.ForeignKeyConstraint(
            ["query_id"], ["query.id"], name=op.f("fk_runtime_stats_rollup_query_id_query")
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["target.id"], name=op.f("fk_runtime_stats_rollup_target_id_target")
        ),
        sa.PrimaryKeyConstraint(
            "plan_id", "grain", "interval_start", "execution_type", name=op.f("pk_runtime_stats_rollup")
        ),
    )
    with op.batch_alter_table("runtime_stats_rollup", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runtime_stats_rollup_target_id_interval_start"),
            ["target_id", "interval_start"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("runtime_stats_rollup", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtime_stats_rollup_target_id_interval_start"))
    op.drop_table("runtime_stats_rollup")
