"""runtime_stats without a surrogate id, keyed on its natural key; day partitions on PostgreSQL;
indexes leading with interval_start for the retention purge

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000

The primary key becomes (plan_id, interval_start, execution_type), the natural key every write
already upserts on; the unique constraint it replaces and the (query_id, interval_start) index go
(the UI reads one query's plans through the key). On PostgreSQL the table is rebuilt
range-partitioned by interval_start, one partition per UTC day named runtime_stats_pYYYYMMDD (the
convention of planmon.store.partitions): a partitioned twin is created, a partition for every day
that has rows, the rows are copied, the old table is dropped, and the key, foreign keys and indexes
are built on the filled table. This rewrites runtime_stats: it takes as long as copying it, inside
the migration's one transaction. SQLite rebuilds the table without the id; SQL Server alters it in
place. See docs/adr/0005-runtime-stats-partitions.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "runtime_stats"
KEY = ("plan_id", "interval_start", "execution_type")
FOREIGN_KEYS = (("target_id", "target"), ("plan_id", "plan"), ("query_id", "query"))
VALUE_COLUMNS = (
    "cpu_us_mean", "cpu_us_stdev", "cpu_us_min", "cpu_us_max",
    "duration_us_mean", "duration_us_stdev", "duration_us_min", "duration_us_max",
    "logical_reads_mean", "logical_reads_stdev", "physical_reads_mean", "rows_mean",
    "rows_examined_mean", "memory_kb_mean",
)  # fmt: skip
COLUMNS = (
    "target_id", "plan_id", "query_id", "interval_start", "interval_end", "execution_type",
    "executions", "errors", *VALUE_COLUMNS, "source",
)  # fmt: skip


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("target_id", Id, nullable=False),
        sa.Column("plan_id", Id, nullable=False, autoincrement=False),
        sa.Column("query_id", Id, nullable=False),
        sa.Column("interval_start", sa.DateTime(), nullable=False),
        sa.Column("interval_end", sa.DateTime(), nullable=False),
        sa.Column("execution_type", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in VALUE_COLUMNS),
        sa.Column("source", sa.String(length=32), nullable=False),
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
    else:
        _upgrade_in_place()
    op.create_index(
        op.f("ix_runtime_stats_rollup_interval_start"), "runtime_stats_rollup", ["interval_start"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_runtime_stats_rollup_interval_start"), table_name="runtime_stats_rollup")
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgres()
    else:
        _downgrade_in_place()


# -- SQLite (the table is rebuilt by batch mode) and SQL Server (altered in place) ----------------


def _upgrade_in_place() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtime_stats_query_id_interval_start"))
        batch_op.drop_constraint(
            batch_op.f("uq_runtime_stats_plan_id_interval_start_execution_type"), type_="unique"
        )
        batch_op.drop_constraint(batch_op.f("pk_runtime_stats"), type_="primary")
        batch_op.drop_column("id")
        batch_op.create_primary_key(batch_op.f("pk_runtime_stats"), list(KEY))
        batch_op.create_index(batch_op.f("ix_runtime_stats_interval_start"), ["interval_start"])


def _downgrade_in_place() -> None:
    # SQLite: the id first again, as 0001 made it (SQL Server appends the column; order is cosmetic)
    with op.batch_alter_table(TABLE, schema=None, partial_reordering=[("id", *COLUMNS)]) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtime_stats_interval_start"))
        batch_op.drop_constraint(batch_op.f("pk_runtime_stats"), type_="primary")
        # SQLite numbers the rows itself (an INTEGER primary key is the rowid); SQL Server: IDENTITY
        batch_op.add_column(sa.Column("id", Id, sa.Identity(), nullable=False))
        batch_op.create_primary_key(batch_op.f("pk_runtime_stats"), ["id"])
        batch_op.create_unique_constraint(
            batch_op.f("uq_runtime_stats_plan_id_interval_start_execution_type"), list(KEY)
        )
        batch_op.create_index(
            batch_op.f("ix_runtime_stats_query_id_interval_start"), ["query_id", "interval_start"]
        )


# -- PostgreSQL ------------------------------------------------------------------------------------


def _upgrade_postgres() -> None:
    bind = op.get_bind()
    op.rename_table(TABLE, "runtime_stats_0006")
    op.create_table(TABLE, *_columns(), postgresql_partition_by="RANGE (interval_start)")
    days = bind.execute(
        sa.text("SELECT DISTINCT date_trunc('day', interval_start) FROM runtime_stats_0006")
    ).scalars()
    for day in sorted(days):
        start = day.date()
        # the bounds are dates read from the table, formatted (DDL cannot bind values)
        op.execute(
            f"CREATE TABLE runtime_stats_p{start:%Y%m%d} PARTITION OF {TABLE} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
        )
    columns = ", ".join(COLUMNS)
    op.execute(
        f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM runtime_stats_0006 "  # noqa: S608
        "ORDER BY interval_start, plan_id, execution_type"
    )
    op.drop_table("runtime_stats_0006")
    _constraints_and_indexes_postgres()


def _constraints_and_indexes_postgres() -> None:
    op.create_primary_key(op.f("pk_runtime_stats"), TABLE, list(KEY))
    for column, referred in FOREIGN_KEYS:
        op.create_foreign_key(
            op.f(f"fk_runtime_stats_{column}_{referred}"), TABLE, referred, [column], ["id"]
        )
    op.create_index(op.f("ix_runtime_stats_target_id_interval_start"), TABLE, ["target_id", "interval_start"])
    op.create_index(op.f("ix_runtime_stats_interval_start"), TABLE, ["interval_start"])


def _downgrade_postgres() -> None:
    op.rename_table(TABLE, "runtime_stats_0007")
    # index names are per schema: the partitioned table's must make way for the plain table's
    for name in (
        "pk_runtime_stats",
        "ix_runtime_stats_target_id_interval_start",
        "ix_runtime_stats_interval_start",
    ):
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_0007")
    op.create_table(
        TABLE,
        sa.Column("id", Id, autoincrement=True, nullable=False),
        *_columns(),
        *(
            sa.ForeignKeyConstraint(
                [column], [f"{referred}.id"], name=op.f(f"fk_runtime_stats_{column}_{referred}")
            )
            for column, referred in FOREIGN_KEYS
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_stats")),
        sa.UniqueConstraint(*KEY, name=op.f("uq_runtime_stats_plan_id_interval_start_execution_type")),
    )
    columns = ", ".join(COLUMNS)
    op.execute(
        f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM runtime_stats_0007 "  # noqa: S608
        "ORDER BY interval_start, plan_id, execution_type"
    )
    op.drop_table("runtime_stats_0007")  # and every partition with it
    op.create_index(op.f("ix_runtime_stats_query_id_interval_start"), TABLE, ["query_id", "interval_start"])
    op.create_index(op.f("ix_runtime_stats_target_id_interval_start"), TABLE, ["target_id", "interval_start"])
