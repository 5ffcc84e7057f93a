"""Retention: the ``retention_days`` setting, the purge of what is older, and row counts.

Every purged table goes the same way (``planmon.store.partitions.purge_before``): deleted on the
server by time range in batches, each batch its own transaction, and on PostgreSQL runtime_stats'
day partitions wholly older than the cutoff are dropped (ADR 0005). Open regressions, pending
remediations, the audit log and rows a kept row still references are never deleted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Table, and_, exists, func, select

from planmon.errors import ConfigError
from planmon.store import partitions
from planmon.store.repository import RepositoryView, as_utc_naive, utcnow
from planmon.store.schema import (
    DEFAULT_SETTINGS,
    alert,
    collection_run,
    metadata,
    probe_result,
    regression,
    remediation,
    runtime_stats,
    runtime_stats_rollup,
)

log = logging.getLogger(__name__)

PURGE_BATCH_ROWS = 5000  # rows deleted per statement: keeps locks and transaction logs short


class RetentionStore(RepositoryView):
    """Retention's view of the repository: how long data is kept, the purge, row counts."""

    def retention_days(self) -> int:
        raw = self.repository.get_setting("retention_days") or DEFAULT_SETTINGS["retention_days"]
        try:
            days = int(raw)
        except ValueError as exc:
            raise ConfigError(f"setting retention_days is {raw!r}, not a whole number of days") from exc
        if days < 1:
            raise ConfigError(f"setting retention_days is {days}; it must be at least 1")
        return days

    def purge(
        self,
        *,
        now: datetime | None = None,
        batch_rows: int = PURGE_BATCH_ROWS,
        retention_days: int | None = None,
    ) -> dict[str, int]:
        """Delete data older than ``retention_days`` (default: the setting); return rows deleted per
        table.

        Every table goes the same way (``planmon.store.partitions.purge_before``): on the server, by
        time range, in batches of ``batch_rows``; on PostgreSQL runtime_stats' day partitions wholly
        older than the cutoff are dropped. Never deletes open regressions, pending remediations or
        the audit log, nor a row that a kept row still references.
        """
        days = self.retention_days() if retention_days is None else retention_days
        if days < 1:
            raise ConfigError(f"retention of {days} days would purge everything; it must be at least 1")
        cutoff = as_utc_naive(now or utcnow()) - timedelta(days=days)
        pending = ("proposed", "approved", "applied")
        # Children first; a row still referenced by a row that stays is kept (no ON DELETE actions).
        # (table, its time column, what else a row must satisfy to go)
        plans: list[tuple[Table, str, ColumnElement[bool] | None]] = [
            (runtime_stats, "interval_start", None),
            # a rollup row goes when all of its bucket is older than the cutoff: the retention is kept
            (runtime_stats_rollup, "interval_start", runtime_stats_rollup.c.interval_end <= cutoff),
            (collection_run, "interval_start", None),
            (alert, "created_at", alert.c.status != "pending"),
            (probe_result, "run_at", ~exists().where(alert.c.probe_result_id == probe_result.c.id)),
            (remediation, "updated_at", remediation.c.state.not_in(pending)),
            (
                regression,
                "last_detected",
                and_(
                    regression.c.status != "open",
                    ~exists().where(remediation.c.regression_id == regression.c.id),
                    ~exists().where(alert.c.regression_id == regression.c.id),
                ),
            ),
        ]
        deleted: dict[str, int] = {}
        for table, time_column, condition in plans:
            with self._errors(f"purging {table.name}"):
                deleted[table.name] = partitions.purge_before(
                    self.engine, table, time_column, cutoff, batch_rows, condition=condition
                )
        log.info("purged data older than %s: %s", cutoff.isoformat(), deleted)
        return deleted

    def row_counts(self) -> dict[str, int]:
        """Rows per table (for tests and the benchmarks)."""
        with self._errors("counting rows"), self.engine.connect() as connection:
            return {
                name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in sorted(metadata.tables.items())
            }
