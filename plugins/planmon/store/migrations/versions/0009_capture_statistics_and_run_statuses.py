"""plan capture keeps the statistics a shift is judged on; older runs' statuses say what happened

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:00:00.000000

- plan_capture gains ``stdev_us_at_capture``, ``rows_mean_at_capture`` and ``work_mean_at_capture``
  (nullable): the collector forces a capture when a statement's time moved beyond its noise or its
  rows or work per execution doubled since the last capture (collect.statistics_shift). A statement
  captured before this revision has none, so only its time can shift until its next capture.
- collection_run statuses written before runs became ok / degraded / error are rewritten:
  ``partial`` and ``ok`` become the worst of the run's stored aspects (an ``ok`` run with a failed
  aspect was an overclaim), ``failed`` becomes ``error`` and every aspect it stored as ``ok`` says
  that the run failed and nothing of its interval was stored. The rule is frozen here (a copy of
  collect.run_status as of this revision), so this migration means the same whatever that function
  becomes. ``not_backfillable`` rows keep their status. The downgrade keeps the new statuses: the old
  values overclaimed and nothing reads them. Offline SQL (``alembic upgrade --sql``) cannot read the
  aspects, so it only renames ``partial`` and ``failed``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CAPTURE_COLUMNS = ("stdev_us_at_capture", "rows_mean_at_capture", "work_mean_at_capture")
RUN_RANK = {"ok": 0, "degraded": 1, "error": 2}
ASPECT_RUN_STATUS = {
    "ok": "ok",
    "not_applicable": "ok",
    "unavailable": "degraded",
    "permission_denied": "degraded",
    "error": "error",
}
FAILED_HINT = "the run failed; nothing of this interval was stored"
BATCH = 1000

collection_run = sa.table(
    "collection_run",
    sa.column("id", sa.BigInteger()),
    sa.column("status", sa.String(16)),
    sa.column("aspects", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("plan_capture", schema=None) as batch_op:
        for name in CAPTURE_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
    if op.get_context().as_sql:
        # offline SQL (alembic --sql) cannot read the aspects: rename the two statuses only
        op.execute("UPDATE collection_run SET status = 'degraded' WHERE status = 'partial'")
        op.execute("UPDATE collection_run SET status = 'error' WHERE status = 'failed'")
    else:
        _rewrite_run_statuses(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("plan_capture", schema=None) as batch_op:
        for name in reversed(CAPTURE_COLUMNS):
            batch_op.drop_column(name)


def status_of(status: str, aspects: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The (status, aspects) a run stored before 0009 has from this revision on."""
    if status == "failed":
        failed = {
            name: {**value, "status": "error", "hint": value.get("hint") or FAILED_HINT}
            if isinstance(value, dict) and value.get("status") == "ok"
            else value
            for name, value in aspects.items()
        }
        return "error", failed
    if status not in ("ok", "partial"):
        return status, aspects
    runtime = aspects.get("runtime_stats")
    if not isinstance(runtime, dict) or runtime.get("status") != "ok":
        return "error", aspects
    states = [
        ASPECT_RUN_STATUS.get(str(v.get("status")), "error") for v in aspects.values() if isinstance(v, dict)
    ]
    return max(states, key=RUN_RANK.__getitem__, default="ok"), aspects


def _rewrite_run_statuses(bind: sa.engine.Connection) -> None:
    last_id = -1
    while True:
        rows = bind.execute(
            sa.select(collection_run.c.id, collection_run.c.status, collection_run.c.aspects)
            .where(collection_run.c.id > last_id, collection_run.c.status.in_(("ok", "partial", "failed")))
            .order_by(collection_run.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            aspects = row.aspects if isinstance(row.aspects, dict) else {}
            status, new_aspects = status_of(row.status, aspects)
            if status != row.status or new_aspects != aspects:
                bind.execute(
                    sa.update(collection_run)
                    .where(collection_run.c.id == row.id)
                    .values(status=status, aspects=new_aspects)
                )
        last_id = rows[-1].id
