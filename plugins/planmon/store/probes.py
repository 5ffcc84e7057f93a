"""Reads and writes of probes: definitions synced from YAML, and the ``probe_result`` time series.

All of the probes' SQL lives here. Writes are upserts on natural keys (``probe.name``;
``probe_result (probe_id, target_id, run_at)``), one transaction per call, so a retried task for the
same run leaves the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, select, update

from planmon.errors import ConfigError, scrub_secrets
from planmon.model.probes import ProbeDefinition
from planmon.store.repository import RepositoryView, as_utc_naive, utcnow
from planmon.store.schema import probe, probe_result
from planmon.store.upsert import upsert

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class StoredProbe:
    id: int
    definition: ProbeDefinition
    source_file: str | None
    enabled: bool
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass(frozen=True, slots=True)
class ProbeResultRow:
    id: int
    probe_id: int
    target_id: int
    run_at: datetime
    value: float | None
    status: str
    duration_ms: float | None
    error: str | None
    plan_shape_hash: str | None


class ProbeStore(RepositoryView):
    """Probes' view of the repository (its engine; the repository's error conventions)."""

    # -- definitions ------------------------------------------------------------------------------

    def sync(self, definitions: Sequence[tuple[ProbeDefinition, str]]) -> dict[str, int]:
        """Store these (probe, source) pairs; stored probes no longer defined anywhere are disabled.

        A probe's ``enabled`` column is its definition's ``enabled``. Disabled, never deleted: their
        results and alerts stay readable. Returns counts (synced, disabled).
        """
        now = utcnow()
        rows = [
            {
                "name": definition.name,
                "definition": definition.as_stored(),
                "source_file": source,
                "enabled": definition.enabled,
                "updated_at": now,
            }
            for definition, source in definitions
        ]
        names = [definition.name for definition, _ in definitions]
        with self._errors("syncing probe definitions"), self.engine.begin() as connection:
            upsert(connection, probe, rows, key=("name",))
            gone = and_(probe.c.enabled.is_(True), probe.c.name.not_in(names) if names else probe.c.id > 0)
            disabled = connection.execute(update(probe).where(gone).values(enabled=False, updated_at=now))
        counts = {"synced": len(rows), "disabled": int(disabled.rowcount or 0)}
        log.info("probe definitions synced: %s", counts)
        return counts

    def probes(self, *, enabled_only: bool = False) -> list[StoredProbe]:
        statement = select(probe).order_by(probe.c.name)
        if enabled_only:
            statement = statement.where(probe.c.enabled.is_(True))
        with self._errors("reading probes"), self.engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        return [_stored_probe(row) for row in rows]

    def get(self, name: str) -> StoredProbe:
        with self._errors(f"reading probe {name!r}"), self.engine.connect() as connection:
            row = connection.execute(select(probe).where(probe.c.name == name)).mappings().first()
        if row is None:
            raise ConfigError(
                f"no probe named {name!r} in the repository",
                hint="`planmon probes list` shows the probes; probe files are synced when probes run",
            )
        return _stored_probe(row)

    # -- results ----------------------------------------------------------------------------------

    def record_result(
        self,
        *,
        probe_id: int,
        target_id: int,
        run_at: datetime,
        status: str,
        value: float | None,
        duration_ms: float | None,
        error: str | None,
        plan_shape_hash: str | None,
    ) -> ProbeResultRow:
        """Write one result (insert, or replace the result of the same probe, target and run)."""
        key = {"probe_id": probe_id, "target_id": target_id, "run_at": as_utc_naive(run_at)}
        text = scrub_secrets(error)[:MAX_ERROR_CHARS] if error else None
        row = {
            **key,
            "status": status,
            "value": value,
            "duration_ms": duration_ms,
            "error": text,
            "plan_shape_hash": plan_shape_hash,
        }
        with self._errors("recording a probe result"), self.engine.begin() as connection:
            upsert(connection, probe_result, [row], key=tuple(key))
            stored = (
                connection.execute(
                    select(probe_result).where(
                        *(probe_result.c[name] == value for name, value in key.items())
                    )
                )
                .mappings()
                .one()
            )
        return _result_row(stored)

    def previous_results(
        self, probe_id: int, target_id: int, *, before: datetime, limit: int = 100
    ) -> list[ProbeResultRow]:
        """Results of (probe, target) before ``before``, newest first."""
        statement = (
            select(probe_result)
            .where(
                probe_result.c.probe_id == probe_id,
                probe_result.c.target_id == target_id,
                probe_result.c.run_at < as_utc_naive(before),
            )
            .order_by(probe_result.c.run_at.desc())
            .limit(limit)
        )
        with self._errors("reading earlier probe results"), self.engine.connect() as connection:
            return [_result_row(row) for row in connection.execute(statement).mappings()]

    def results(
        self, *, probe_id: int | None = None, target_id: int | None = None, limit: int = 100
    ) -> list[ProbeResultRow]:
        """The newest results, optionally of one probe and/or one target."""
        statement = select(probe_result).order_by(probe_result.c.run_at.desc(), probe_result.c.id.desc())
        if probe_id is not None:
            statement = statement.where(probe_result.c.probe_id == probe_id)
        if target_id is not None:
            statement = statement.where(probe_result.c.target_id == target_id)
        with self._errors("reading probe results"), self.engine.connect() as connection:
            return [_result_row(row) for row in connection.execute(statement.limit(limit)).mappings()]


def _stored_probe(row: Any) -> StoredProbe:
    try:
        definition = ProbeDefinition.model_validate(row["definition"])
    except ValidationError as exc:
        raise ConfigError(
            f"probe {row['name']!r} stored in the repository no longer validates: {exc.errors()[0]['msg']}",
            hint=f"fix {row['source_file'] or 'its definition'} and let the next run sync it",
        ) from exc
    return StoredProbe(
        id=int(row["id"]),
        definition=definition,
        source_file=row["source_file"],
        enabled=bool(row["enabled"]),
        updated_at=row["updated_at"],
    )


def _result_row(row: Any) -> ProbeResultRow:
    return ProbeResultRow(
        id=int(row["id"]),
        probe_id=int(row["probe_id"]),
        target_id=int(row["target_id"]),
        run_at=row["run_at"],
        value=row["value"],
        status=row["status"],
        duration_ms=row["duration_ms"],
        error=row["error"],
        plan_shape_hash=row["plan_shape_hash"],
    )
