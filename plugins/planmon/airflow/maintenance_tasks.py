"""Task callables of ``planmon_maintenance``: runtime stats rolled up as they age, the retention purge."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from planmon.airflow.connections import open_repository
from planmon.config import Settings, load_settings
from planmon.store.repository import utcnow
from planmon.store.retention import RetentionStore
from planmon.store.stats import StatsStore

log = logging.getLogger(__name__)


def retention_days(settings: Settings, retention: RetentionStore) -> int:
    """PLANMON_RETENTION_DAYS when an operator set it, else the repository's ``retention_days`` setting."""
    if "retention_days" in settings.model_fields_set:
        return settings.retention_days
    return retention.retention_days()


def purge(logical_date: datetime | None = None) -> dict[str, Any]:
    """Delete what is older than the retention, as of the run's logical date (a re-run deletes the same)."""
    settings = load_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        retention = RetentionStore(repository)
        days = retention_days(settings, retention)
        deleted = retention.purge(now=logical_date, retention_days=days)
    log.info("retention %d days: deleted %s", days, deleted)
    return {"retention_days": days, "deleted": deleted}


def roll_up(logical_date: datetime | None = None) -> dict[str, Any]:
    """Roll runtime stats up to hourly and daily rows as of the run's logical date (idempotent)."""
    settings = load_settings()
    with open_repository(settings) as repository:
        repository.require_schema()
        summary = StatsStore(repository).roll_up(
            now=logical_date or utcnow(),
            fine_days=settings.stats_fine_days,
            hourly_days=settings.stats_hourly_days,
        )
    return summary.as_dict()
