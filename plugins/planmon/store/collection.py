"""What the collector writes and reads back: queries, plans, runtime stats, its own bookkeeping.

All of collection's SQL lives here. Every write is an idempotent upsert on a natural key, one
transaction per call, so a retried task leaves the same rows (ADR 0002). :meth:`CollectionStore.
record_collection` writes everything one target's collection of one interval produced in a single
transaction: a failure leaves nothing of the interval. On PostgreSQL the day partitions of
``runtime_stats`` its rows need are created first, each in a short transaction of its own (ADR 0005).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection

from planmon.errors import PlanmonError, scrub_secrets
from planmon.model import PlanRecord, QueryRecord
from planmon.store import partitions
from planmon.store.repository import RepositoryView, as_utc_naive, utcnow
from planmon.store.schema import (
    collection_run,
    counter_snapshot,
    index_snapshot,
    plan,
    plan_capture,
    query,
    runtime_stats,
    target,
)
from planmon.store.upsert import Merge, upsert

RUNTIME_STATS_KEY = tuple(c.name for c in runtime_stats.primary_key.columns)  # the upserts' key
RUNTIME_STATS_COLUMNS = tuple(c.name for c in runtime_stats.columns)
LAST_COLLECTED_SCAN = 500  # newest runs looked at for the last collected interval (5 days at 15 min)


@dataclass(frozen=True, slots=True)
class CounterReading:
    """The last reading of one statement's cumulative counters (the next delta starts here)."""

    database_name: str
    query_key: str
    taken_at: datetime
    executions: float
    errors: float | None = None
    cpu_us_total: float | None = None
    duration_us_total: float | None = None
    duration_us_sum_squares: float | None = None
    logical_reads_total: float | None = None
    physical_reads_total: float | None = None
    rows_total: float | None = None
    rows_examined_total: float | None = None
    counters_reset_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlanCaptureState:
    """Plan-capture bookkeeping of one statement: budget window, last capture, failures."""

    database_name: str
    query_key: str
    window_start: datetime | None = None
    captures_in_window: int = 0
    last_captured_at: datetime | None = None
    last_plan_key: str | None = None
    mean_us_at_capture: float | None = None  # per-execution time (CPU, else elapsed) at the last capture
    stdev_us_at_capture: float | None = None  # ... its standard deviation in that interval
    rows_mean_at_capture: float | None = None  # rows returned per execution at the last capture
    work_mean_at_capture: float | None = None  # logical reads (else rows examined) per execution
    failures: int = 0
    last_error: str | None = None
    retry_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class CollectionWrite:
    """Everything one target's collection of one interval stores, written in one transaction.

    ``runtime_stats`` rows carry ``plan_key``, ``database_name`` and ``query_key`` instead of ids.
    """

    target_id: int
    interval_start: datetime
    interval_end: datetime
    status: str
    aspects: Mapping[str, Any] = field(default_factory=dict)
    queries: Sequence[QueryRecord] = ()
    plans: Sequence[PlanRecord] = ()
    runtime_stats: Sequence[Mapping[str, Any]] = ()
    counter_readings: Sequence[CounterReading] = ()
    counters_read: bool = False  # cumulative counters were read (even if none were returned)
    readings_complete: bool = True
    plan_captures: Sequence[PlanCaptureState] = ()
    index_definitions: Sequence[Any] = ()  # planmon.engines.base.IndexDefinition
    duration_ms: float | None = None
    error: str | None = None
    # when the plans were captured (the collector's clock): plan.first_seen / last_seen, which tell
    # detection whether a plan was seen inside a window; None: the time of the write
    captured_at: datetime | None = None


class CollectionStore(RepositoryView):
    """Collection's view of the repository: what the collector writes and reads back."""

    # -- queries and plans ------------------------------------------------------------------------

    def upsert_queries(self, target_id: int, queries: Sequence[QueryRecord]) -> dict[tuple[str, str], int]:
        """Store queries (idempotent); return their ids by (database_name, query_key)."""
        with self._errors("storing queries"), self.engine.begin() as connection:
            return self._upsert_queries(connection, target_id, queries)

    def _upsert_queries(
        self, connection: Connection, target_id: int, queries: Sequence[QueryRecord]
    ) -> dict[tuple[str, str], int]:
        now = utcnow()
        rows = [
            {
                "target_id": target_id,
                "database_name": q.database_name,
                "query_key": q.query_key,
                "query_hash": q.query_hash,
                "query_text": q.query_text,
                "first_seen": now,
                "last_seen": now,
            }
            for q in _unique(queries, lambda q: (q.database_name, q.query_key))
        ]
        if any(
            q.parent_query_key or q.dispatcher_plan_key or q.replica_group_id is not None for q in queries
        ):
            # SQL Server 2022+ variants / 2025 replica groups: written when an engine reported any
            unique = _unique(queries, lambda q: (q.database_name, q.query_key))
            for row, q in zip(rows, unique, strict=True):
                row.update(
                    parent_query_key=q.parent_query_key,
                    dispatcher_plan_key=q.dispatcher_plan_key,
                    replica_group_id=q.replica_group_id,
                )
        # a variant's parent and dispatcher never change (KEEP: a run that could not read them erases
        # nothing); the replica group is the one the latest statistics came from
        merge = {
            "first_seen": Merge.LEAST,
            "last_seen": Merge.GREATEST,
            "query_text": Merge.KEEP,
            "parent_query_key": Merge.KEEP,
            "dispatcher_plan_key": Merge.KEEP,
        }
        upsert(connection, query, rows, key=["target_id", "database_name", "query_key"], merge=merge)
        return self._query_ids(connection, target_id)

    def _query_ids(self, connection: Connection, target_id: int) -> dict[tuple[str, str], int]:
        result = connection.execute(
            select(query.c.database_name, query.c.query_key, query.c.id).where(query.c.target_id == target_id)
        )
        return {(r.database_name, r.query_key): r.id for r in result}

    def upsert_plans(self, target_id: int, plans: Sequence[PlanRecord]) -> dict[str, int]:
        """Store plans once per (target, plan_key), bodies compressed; return ids by plan_key.

        The queries they belong to must be stored first (:meth:`upsert_queries`).
        """
        with self._errors("storing plans"), self.engine.begin() as connection:
            return self._upsert_plans(connection, target_id, plans)

    def _upsert_plans(
        self,
        connection: Connection,
        target_id: int,
        plans: Sequence[PlanRecord],
        *,
        now: datetime | None = None,
    ) -> dict[str, int]:
        now = as_utc_naive(now) if now is not None else utcnow()
        query_ids = self._query_ids(connection, target_id)
        rows = []
        for record in _unique(plans, lambda p: p.plan_key):
            query_id = query_ids.get((record.database_name, record.query_key))
            if query_id is None:
                raise PlanmonError(
                    f"plan {record.plan_key!r} belongs to query {record.query_key!r}, which is not stored",
                    hint="store queries before their plans (CollectionStore.upsert_queries)",
                )
            rows.append(_plan_row(target_id, query_id, record, now))
        merge = {
            "body": Merge.KEEP,
            "body_format": Merge.KEEP,
            "first_seen": Merge.LEAST,
            "last_seen": Merge.GREATEST,
        }
        changed = self._forcing_changes(connection, target_id, rows, now)
        unchanged = [row for row in rows if row["plan_key"] not in changed]
        upsert(connection, plan, unchanged, key=["target_id", "plan_key"], merge=merge)
        upsert(connection, plan, list(changed.values()), key=["target_id", "plan_key"], merge=merge)
        return self._plan_ids(connection, target_id)

    @staticmethod
    def _forcing_changes(
        connection: Connection, target_id: int, rows: Sequence[dict[str, Any]], now: datetime
    ) -> dict[str, dict[str, Any]]:
        """Rows whose force_failure_count differs from the stored one, with the previous count and
        the time the change was seen added (rows without a change leave those columns alone)."""
        incoming = {row["plan_key"]: row for row in rows if row["force_failure_count"] is not None}
        if not incoming:
            return {}
        stored = dict(
            connection.execute(
                select(plan.c.plan_key, plan.c.force_failure_count).where(
                    plan.c.target_id == target_id, plan.c.plan_key.in_(list(incoming))
                )
            ).all()
        )
        return {
            key: {**row, "force_failure_count_previous": stored[key], "force_failure_changed_at": now}
            for key, row in incoming.items()
            if stored.get(key) is not None and stored[key] != row["force_failure_count"]
        }

    @staticmethod
    def _plan_ids(connection: Connection, target_id: int) -> dict[str, int]:
        result = connection.execute(select(plan.c.plan_key, plan.c.id).where(plan.c.target_id == target_id))
        return {r.plan_key: r.id for r in result}

    # -- runtime stats ----------------------------------------------------------------------------

    def upsert_runtime_stats(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store runtime stats rows (columns of ``runtime_stats``) keyed on plan, interval, execution type."""
        prepared = _runtime_stats_rows(rows)
        self._ensure_runtime_stats_days(_utc_days(prepared))
        with self._errors("storing runtime stats"), self.engine.begin() as connection:
            return upsert(connection, runtime_stats, prepared, key=RUNTIME_STATS_KEY)

    def ensure_runtime_stats_partitions(self, start: datetime, end: datetime) -> list[str]:
        """Create the missing day partitions of runtime_stats that [start, end) touches; return
        their names. PostgreSQL only (elsewhere nothing is partitioned: returns []); idempotent and
        safe when several workers write the same day at once. The writes of runtime stats call it
        for the days of their rows, each in a short transaction committed before the write."""
        days = partitions.days_between(as_utc_naive(start), as_utc_naive(end))
        return self._ensure_runtime_stats_days(set(days))

    def _ensure_runtime_stats_days(self, days: set[date]) -> list[str]:
        if not days or self.engine.dialect.name != "postgresql":
            return []
        with self._errors("creating runtime_stats partitions"):
            return partitions.ensure_day_partitions(self.engine, runtime_stats, sorted(days))

    def runtime_stats(
        self, start: datetime, end: datetime, *, target_ids: Sequence[int] | None = None
    ) -> pd.DataFrame:
        """Runtime stats of intervals starting in [start, end), one row per plan/interval/execution type."""
        conditions = [
            runtime_stats.c.interval_start >= as_utc_naive(start),
            runtime_stats.c.interval_start < as_utc_naive(end),
        ]
        if target_ids is not None:
            conditions.append(runtime_stats.c.target_id.in_(list(target_ids)))
        statement = (
            select(runtime_stats)
            .where(and_(*conditions))
            .order_by(runtime_stats.c.interval_start, runtime_stats.c.plan_id, runtime_stats.c.execution_type)
        )
        with self._errors("reading runtime stats"), self.engine.connect() as connection:
            frame = pd.read_sql(statement, connection)
        return frame

    def record_collection_run(
        self,
        target_id: int,
        interval_start: datetime,
        interval_end: datetime,
        *,
        status: str,
        aspects: Mapping[str, Any],
        rows_collected: int = 0,
        plans_captured: int = 0,
        duration_ms: float | None = None,
        error: str | None = None,
        started_at: datetime | None = None,
    ) -> None:
        """Record (or re-record, on retry) one target's collection of one interval."""
        row = {
            "target_id": target_id,
            "interval_start": as_utc_naive(interval_start),
            "interval_end": as_utc_naive(interval_end),
            "status": status,
            "aspects": dict(aspects),
            "rows_collected": rows_collected,
            "plans_captured": plans_captured,
            "duration_ms": duration_ms,
            "error": scrub_secrets(error) if error else None,
            "started_at": started_at or utcnow(),
            "finished_at": utcnow(),
        }
        with self._errors("recording a collection run"), self.engine.begin() as connection:
            upsert(connection, collection_run, [row], key=["target_id", "interval_start", "interval_end"])

    def collection_runs(self, *, target_id: int | None = None, limit: int = 100) -> pd.DataFrame:
        statement = select(collection_run).order_by(collection_run.c.interval_start.desc()).limit(limit)
        if target_id is not None:
            statement = statement.where(collection_run.c.target_id == target_id)
        with self._errors("reading collection runs"), self.engine.connect() as connection:
            return pd.read_sql(statement, connection)

    # -- collection bookkeeping ------------------------------------------------------------------

    def counter_readings(self, target_id: int) -> tuple[dict[tuple[str, str], CounterReading], bool]:
        """The last cumulative-counter readings of a target, and whether that reading was complete
        (False when there was none: then every statement's first reading is only its baseline)."""
        with self._errors("reading counter snapshots"), self.engine.connect() as connection:
            rows = connection.execute(
                select(counter_snapshot).where(counter_snapshot.c.target_id == target_id)
            )
            readings = {
                (r.database_name, r.query_key): CounterReading(
                    **{name: getattr(r, name) for name in CounterReading.__dataclass_fields__}
                )
                for r in rows
            }
            complete = connection.execute(
                select(target.c.counters_complete).where(target.c.id == target_id)
            ).scalar_one_or_none()
        return readings, bool(complete)

    def plan_captures(self, target_id: int) -> dict[tuple[str, str], PlanCaptureState]:
        with self._errors("reading plan-capture state"), self.engine.connect() as connection:
            rows = connection.execute(select(plan_capture).where(plan_capture.c.target_id == target_id))
            return {
                (r.database_name, r.query_key): PlanCaptureState(
                    **{name: getattr(r, name) for name in PlanCaptureState.__dataclass_fields__}
                )
                for r in rows
            }

    def last_collected_until(self, target_id: int) -> datetime | None:
        """End of the newest interval whose runtime statistics were collected (or that could not be).

        A run with status ``error`` may still have stored its statistics (plan capture failed after
        them): its ``runtime_stats`` aspect says which (a run that stored nothing says error there;
        migration 0009 rewrote the ``failed`` runs stored before that).
        """
        statement = (
            select(collection_run.c.interval_end, collection_run.c.status, collection_run.c.aspects)
            .where(collection_run.c.target_id == target_id)
            .order_by(collection_run.c.interval_end.desc())
            .limit(LAST_COLLECTED_SCAN)
        )
        with self._errors("reading collection runs"), self.engine.connect() as connection:
            for row in connection.execute(statement):
                runtime = (row.aspects or {}).get("runtime_stats") or {}
                if row.status != "error" or runtime.get("status") == "ok":
                    return row.interval_end  # type: ignore[no-any-return]
        return None

    def record_collection(self, write: CollectionWrite) -> None:
        """Store one target's collection of one interval in a single transaction (all or nothing).

        The runtime_stats partitions its rows need are created first, in a transaction of their own.
        """
        self._ensure_runtime_stats_days(_utc_days(write.runtime_stats))
        with self._errors("storing a collection"), self.engine.begin() as connection:
            self._record_collection(connection, write)

    def _record_collection(self, connection: Connection, write: CollectionWrite) -> None:
        now = utcnow()
        target_id = write.target_id
        query_ids = self._upsert_queries(connection, target_id, write.queries) if write.queries else {}
        plan_ids = (
            self._upsert_plans(connection, target_id, write.plans, now=write.captured_at)
            if write.plans
            else {}
        )
        missing = {
            (row["plan_key"], row["database_name"], row["query_key"])
            for row in write.runtime_stats
            if row["plan_key"] not in plan_ids
        }
        if missing:  # statistics of a statement whose plan is not captured (yet): keep them under it
            plan_ids = self._ensure_plans(connection, target_id, missing, now)
        if write.runtime_stats:
            query_ids = query_ids or self._query_ids(connection, target_id)
            rows = [_stats_with_ids(target_id, row, plan_ids, query_ids) for row in write.runtime_stats]
            upsert(connection, runtime_stats, _runtime_stats_rows(rows), key=RUNTIME_STATS_KEY)
        self._record_counters(connection, write, now)
        if write.plan_captures:
            rows = [{"target_id": target_id, **asdict(state)} for state in write.plan_captures]
            upsert(connection, plan_capture, rows, key=["target_id", "database_name", "query_key"])
        if write.index_definitions:
            upsert(
                connection,
                index_snapshot,
                [_index_row(target_id, definition, now) for definition in write.index_definitions],
                key=["target_id", "database_name", "table_name", "index_name", "definition_hash"],
                merge={"first_seen": Merge.LEAST, "last_seen": Merge.GREATEST},
            )
        upsert(
            connection,
            collection_run,
            [_collection_run_row(write, now)],
            key=["target_id", "interval_start", "interval_end"],
        )

    def _ensure_plans(
        self, connection: Connection, target_id: int, missing: set[tuple[str, str, str]], now: datetime
    ) -> dict[str, int]:
        query_ids = self._query_ids(connection, target_id)
        rows = [
            _plan_row(target_id, query_ids[(database_name, query_key)], PlanRecord(plan_key, query_key), now)
            for plan_key, database_name, query_key in sorted(missing)
        ]
        keep = {name: Merge.KEEP for name in rows[0] if name not in ("target_id", "plan_key")}
        upsert(connection, plan, rows, key=["target_id", "plan_key"], merge=keep)
        return self._plan_ids(connection, target_id)

    @staticmethod
    def _record_counters(connection: Connection, write: CollectionWrite, now: datetime) -> None:
        if not write.counters_read:
            return
        rows = [{"target_id": write.target_id, **asdict(reading)} for reading in write.counter_readings]
        upsert(connection, counter_snapshot, rows, key=["target_id", "database_name", "query_key"])
        connection.execute(
            update(target)
            .where(target.c.id == write.target_id)
            .values(counters_read_at=now, counters_complete=write.readings_complete)
        )

    def index_snapshots(self, target_id: int) -> pd.DataFrame:
        statement = select(index_snapshot).where(index_snapshot.c.target_id == target_id)
        with self._errors("reading index snapshots"), self.engine.connect() as connection:
            return pd.read_sql(
                statement.order_by(index_snapshot.c.table_name, index_snapshot.c.index_name), connection
            )


def _unique(items: Iterable[Any], key: Any) -> list[Any]:
    """Last occurrence wins; one statement must not touch the same key twice."""
    return list({key(item): item for item in items}.values())


def _plan_row(target_id: int, query_id: int, record: PlanRecord, now: datetime) -> dict[str, Any]:
    return {
        "target_id": target_id,
        "query_id": query_id,
        "plan_key": record.plan_key,
        "shape_hash": record.shape_hash,
        "engine_plan_hash": record.engine_plan_hash,
        "body_format": record.body_format,
        "body": zlib.compress(record.body, 6) if record.body else None,
        "summary": dict(record.summary),
        "is_forced": record.is_forced,
        "forcing_type": record.forcing_type,
        "force_failure_count": record.force_failure_count,
        "last_force_failure_reason": record.last_force_failure_reason,
        "first_seen": now,
        "last_seen": now,
    }


_RUNTIME_STATS_REQUIRED = frozenset(
    {"target_id", "plan_id", "query_id", "interval_start", "interval_end", "executions"}
)
_RUNTIME_STATS_ALLOWED = frozenset(RUNTIME_STATS_COLUMNS)


def _runtime_stats_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Complete and check rows before anything is written: every column present, times in UTC.

    A row that already has every column, naive (UTC) times and no missing defaults is used as is.
    """
    prepared: list[Mapping[str, Any]] = []
    checked_keys: frozenset[str] | None = None
    for row in rows:
        keys = frozenset(row)
        if keys != checked_keys:  # batches are homogeneous: check each distinct column set once
            _check_runtime_stats_columns(keys)
            checked_keys = keys
        if (
            len(keys) == len(RUNTIME_STATS_COLUMNS)
            and row["interval_start"].tzinfo is None
            and row["interval_end"].tzinfo is None
            and row["execution_type"] is not None
            and row["errors"] is not None
        ):
            prepared.append(row)
            continue
        full = dict.fromkeys(RUNTIME_STATS_COLUMNS)
        full.update(row)
        full["interval_start"] = as_utc_naive(row["interval_start"])
        full["interval_end"] = as_utc_naive(row["interval_end"])
        full["execution_type"] = full["execution_type"] or 0
        full["errors"] = full["errors"] or 0
        prepared.append(full)
    return prepared


def _utc_days(rows: Iterable[Mapping[str, Any]]) -> set[date]:
    """The UTC days the rows' intervals start on (rows without a start are refused later)."""
    starts = {row.get("interval_start") for row in rows}
    return {as_utc_naive(start).date() for start in starts if isinstance(start, datetime)}


def _check_runtime_stats_columns(keys: frozenset[str]) -> None:
    missing = _RUNTIME_STATS_REQUIRED - keys
    if missing:
        raise PlanmonError(f"runtime stats row lacks {', '.join(sorted(missing))}")
    unknown = keys - _RUNTIME_STATS_ALLOWED
    if unknown:
        raise PlanmonError(f"runtime stats row has unknown columns {', '.join(sorted(unknown))}")


def _stats_with_ids(
    target_id: int,
    row: Mapping[str, Any],
    plan_ids: Mapping[str, int],
    query_ids: Mapping[tuple[str, str], int],
) -> dict[str, Any]:
    values = {k: v for k, v in row.items() if k not in ("plan_key", "database_name", "query_key")}
    values["target_id"] = target_id
    values["plan_id"] = plan_ids[row["plan_key"]]
    values["query_id"] = query_ids[(row["database_name"], row["query_key"])]
    return values


def _index_row(target_id: int, definition: Any, now: datetime) -> dict[str, Any]:
    return {
        "target_id": target_id,
        "database_name": definition.database_name,
        "table_name": definition.table,
        "index_name": definition.index_name,
        "definition": definition.definition,
        "definition_hash": hashlib.sha256(definition.definition.encode()).hexdigest(),
        "is_unique": definition.is_unique,
        "is_primary": definition.is_primary,
        "first_seen": now,
        "last_seen": now,
    }


def _collection_run_row(write: CollectionWrite, now: datetime) -> dict[str, Any]:
    return {
        "target_id": write.target_id,
        "interval_start": as_utc_naive(write.interval_start),
        "interval_end": as_utc_naive(write.interval_end),
        "status": write.status,
        "aspects": dict(write.aspects),
        "rows_collected": len(write.runtime_stats),
        "plans_captured": sum(1 for p in write.plans if p.body is not None),
        "duration_ms": write.duration_ms,
        "error": scrub_secrets(write.error) if write.error else None,
        "started_at": now,
        "finished_at": now,
    }
