"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 07:45:38.909268
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "probe",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source_file", sa.String(length=512), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe")),
        sa.UniqueConstraint("name", name=op.f("uq_probe_name")),
    )
    op.create_table(
        "setting",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_setting")),
    )
    op.create_table(
        "target",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("conn_id", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("databases", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("remediation_mode", sa.String(length=16), nullable=False),
        sa.Column("remediation_conn_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target")),
        sa.UniqueConstraint("name", name=op.f("uq_target_name")),
    )
    op.create_table(
        "collection_run",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("interval_start", sa.DateTime(), nullable=False),
        sa.Column("interval_end", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("aspects", sa.JSON(), nullable=False),
        sa.Column("rows_collected", sa.BigInteger(), nullable=False),
        sa.Column("plans_captured", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["target_id"], ["target.id"], name=op.f("fk_collection_run_target_id_target")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_run")),
        sa.UniqueConstraint(
            "target_id",
            "interval_start",
            "interval_end",
            name=op.f("uq_collection_run_target_id_interval_start_interval_end"),
        ),
    )
    op.create_table(
        "probe_result",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("probe_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_at", sa.DateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("plan_shape_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["probe_id"], ["probe.id"], name=op.f("fk_probe_result_probe_id_probe")),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name=op.f("fk_probe_result_target_id_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_result")),
        sa.UniqueConstraint(
            "probe_id", "target_id", "run_at", name=op.f("uq_probe_result_probe_id_target_id_run_at")
        ),
    )
    with op.batch_alter_table("probe_result", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probe_result_run_at"), ["run_at"], unique=False)

    op.create_table(
        "query",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("database_name", sa.String(length=128), nullable=False),
        sa.Column("query_key", sa.String(length=200), nullable=False),
        sa.Column("query_hash", sa.String(length=200), nullable=True),
        sa.Column("query_text", sa.Text(), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name=op.f("fk_query_target_id_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_query")),
        sa.UniqueConstraint(
            "target_id", "database_name", "query_key", name=op.f("uq_query_target_id_database_name_query_key")
        ),
    )
    op.create_table(
        "plan",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("query_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_key", sa.String(length=200), nullable=False),
        sa.Column("shape_hash", sa.String(length=64), nullable=True),
        sa.Column("engine_plan_hash", sa.String(length=200), nullable=True),
        sa.Column("body_format", sa.String(length=16), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("is_forced", sa.Boolean(), nullable=False),
        sa.Column("forcing_type", sa.String(length=16), nullable=True),
        sa.Column("force_failure_count", sa.Integer(), nullable=True),
        sa.Column("last_force_failure_reason", sa.String(length=64), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["query_id"], ["query.id"], name=op.f("fk_plan_query_id_query")),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name=op.f("fk_plan_target_id_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan")),
        sa.UniqueConstraint("target_id", "plan_key", name=op.f("uq_plan_target_id_plan_key")),
    )
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_query_id"), ["query_id"], unique=False)

    op.create_table(
        "regression",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("query_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("baseline_plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("current_plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("baseline_mean", sa.Float(), nullable=True),
        sa.Column("current_mean", sa.Float(), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("impact", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=True),
        sa.Column("first_detected", sa.DateTime(), nullable=False),
        sa.Column("last_detected", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["baseline_plan_id"], ["plan.id"], name=op.f("fk_regression_baseline_plan_id_plan")
        ),
        sa.ForeignKeyConstraint(
            ["current_plan_id"], ["plan.id"], name=op.f("fk_regression_current_plan_id_plan")
        ),
        sa.ForeignKeyConstraint(["query_id"], ["query.id"], name=op.f("fk_regression_query_id_query")),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name=op.f("fk_regression_target_id_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regression")),
        sa.UniqueConstraint(
            "target_id",
            "query_id",
            "kind",
            "open_key",
            name=op.f("uq_regression_target_id_query_id_kind_open_key"),
        ),
    )
    with op.batch_alter_table("regression", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_regression_status_severity"), ["status", "severity"], unique=False
        )

    op.create_table(
        "runtime_stats",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("query_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("interval_start", sa.DateTime(), nullable=False),
        sa.Column("interval_end", sa.DateTime(), nullable=False),
        sa.Column("execution_type", sa.Integer(), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("cpu_us_mean", sa.Float(), nullable=True),
        sa.Column("cpu_us_stdev", sa.Float(), nullable=True),
        sa.Column("cpu_us_min", sa.Float(), nullable=True),
        sa.Column("cpu_us_max", sa.Float(), nullable=True),
        sa.Column("duration_us_mean", sa.Float(), nullable=True),
        sa.Column("duration_us_stdev", sa.Float(), nullable=True),
        sa.Column("duration_us_min", sa.Float(), nullable=True),
        sa.Column("duration_us_max", sa.Float(), nullable=True),
        sa.Column("logical_reads_mean", sa.Float(), nullable=True),
        sa.Column("logical_reads_stdev", sa.Float(), nullable=True),
        sa.Column("physical_reads_mean", sa.Float(), nullable=True),
        sa.Column("rows_mean", sa.Float(), nullable=True),
        sa.Column("rows_examined_mean", sa.Float(), nullable=True),
        sa.Column("memory_kb_mean", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plan.id"], name=op.f("fk_runtime_stats_plan_id_plan")),
        sa.ForeignKeyConstraint(["query_id"], ["query.id"], name=op.f("fk_runtime_stats_query_id_query")),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name=op.f("fk_runtime_stats_target_id_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_stats")),
        sa.UniqueConstraint(
            "plan_id",
            "interval_start",
            "execution_type",
            name=op.f("uq_runtime_stats_plan_id_interval_start_execution_type"),
        ),
    )
    with op.batch_alter_table("runtime_stats", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runtime_stats_query_id_interval_start"),
            ["query_id", "interval_start"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_runtime_stats_target_id_interval_start"),
            ["target_id", "interval_start"],
            unique=False,
        )

    op.create_table(
        "alert",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("regression_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("probe_result_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["probe_result_id"], ["probe_result.id"], name=op.f("fk_alert_probe_result_id_probe_result")
        ),
        sa.ForeignKeyConstraint(
            ["regression_id"], ["regression.id"], name=op.f("fk_alert_regression_id_regression")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("dedup_key", "channel", name=op.f("uq_alert_dedup_key_channel")),
    )
    op.create_table(
        "remediation",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("regression_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("sql_text", sa.Text(), nullable=False),
        sa.Column("rollback_sql", sa.Text(), nullable=True),
        sa.Column("expected_effect", sa.Text(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("outcome_reason", sa.Text(), nullable=True),
        sa.Column("dag_run_id", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["regression_id"], ["regression.id"], name=op.f("fk_remediation_regression_id_regression")
        ),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name=op.f("fk_remediation_target_id_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remediation")),
    )
    with op.batch_alter_table("remediation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_remediation_target_id_created_at"), ["target_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("remediation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remediation_target_id_created_at"))

    op.drop_table("remediation")
    op.drop_table("alert")
    with op.batch_alter_table("runtime_stats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtime_stats_target_id_interval_start"))
        batch_op.drop_index(batch_op.f("ix_runtime_stats_query_id_interval_start"))

    op.drop_table("runtime_stats")
    with op.batch_alter_table("regression", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_regression_status_severity"))

    op.drop_table("regression")
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_query_id"))

    op.drop_table("plan")
    op.drop_table("query")
    with op.batch_alter_table("probe_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_result_run_at"))

    op.drop_table("probe_result")
    op.drop_table("collection_run")
    op.drop_table("target")
    op.drop_table("setting")
    op.drop_table("probe")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
