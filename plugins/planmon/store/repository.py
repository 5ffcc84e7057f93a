"""The typed read/write API over planmon's repository; no other layer writes SQL against it.

Every write is an idempotent upsert on a natural key inside one transaction per call, so a retried
task leaves the same rows, and a failure leaves nothing half-written. ``audit_log`` is append-only:
this module has no path that updates or deletes it.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Row, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from planmon.config import Settings
from planmon.errors import ConfigError, PlanmonError, scrub_secrets
from planmon.model import ConnectionLookup, PlanRecord, QueryRecord, Target, TargetSpec
from planmon.store import migrate, partitions
from planmon.store.audit import AuditEntry, append_audit
from planmon.store.connection import create_repository_engine, describe_url, repository_url
from planmon.store.schema import (
    DEFAULT_SETTINGS,
    alert,
    audit_log,
    collection_run,
    counter_snapshot,
    index_snapshot,
    plan,
    plan_capture,
    probe_result,
    query,
    regression,
    remediation,
    runtime_stats,
    runtime_stats_rollup,
    setting,
    target,
)
from planmon.store.upsert import Merge, upsert

RUNTIME_STATS_KEY = ("plan_id", "interval_start", "execution_type")  # its primary key
RUNTIME_STATS_COLUMNS = tuple(c.name for c in runtime_stats.columns)


class RepositoryError(PlanmonError):
    """The repository could not be reached or written; the message hides credentials."""


class RepositoryConflict(RepositoryError):
    """A write broke a constraint (duplicate natural key, missing parent row); nothing was written."""


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
    mean_us_at_capture: float | None = None
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


def utcnow() -> datetime:
    """Now in UTC without tzinfo, the repository's timestamp convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_utc_naive(moment: datetime) -> datetime:
    """A timestamp in the repository's convention (UTC, no tzinfo); naive input is taken as UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class Repository:
    """planmon's store. Create with :meth:`from_settings` (or an engine in tests); close when done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_settings(
        cls, settings: Settings, connection_lookup: ConnectionLookup | None = None
    ) -> Repository:
        """The repository the settings name; a connection id there is resolved by ``connection_lookup``
        (the store imports no Airflow: ``planmon.airflow.connections.open_repository`` passes Airflow's)."""
        return cls(create_repository_engine(repository_url(settings, connection_lookup)))

    @property
    def location(self) -> str:
        return describe_url(self.engine.url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- schema -----------------------------------------------------------------------------------

    def init_schema(self) -> str | None:
        """Create or upgrade the schema to the newest revision; return the revision it is at."""
        with self._errors("migrating the schema"):
            revision = migrate.upgrade(self.engine)
            self._seed_settings()
        return revision

    def schema_revision(self) -> str | None:
        with self._errors("reading the schema revision"):
            return migrate.current_revision(self.engine)

    def require_schema(self) -> None:
        """Raise ConfigError unless the schema is at the revision this planmon expects."""
        current, head = self.schema_revision(), migrate.head_revision()
        if current != head:
            raise ConfigError(
                f"the repository at {self.location} is at schema revision {current or 'none'}, "
                f"this planmon needs {head}",
                hint="run `planmon init` to create or upgrade it",
            )

    def _seed_settings(self) -> None:
        rows = [{"key": k, "value": v, "updated_at": utcnow()} for k, v in DEFAULT_SETTINGS.items()]
        with self.engine.begin() as connection:
            upsert(
                connection, setting, rows, key=["key"], merge={"value": Merge.KEEP, "updated_at": Merge.KEEP}
            )

    # -- targets ----------------------------------------------------------------------------------

    def add_target(self, spec: TargetSpec) -> Target:
        spec.validate()
        now = utcnow()
        values = {
            "name": spec.name,
            "engine": spec.engine,
            "conn_id": spec.conn_id,
            "environment": spec.environment,
            "tags": dict(spec.tags),
            "databases": list(spec.databases),
            "enabled": spec.enabled,
            "remediation_mode": spec.remediation_mode,
            "remediation_conn_id": spec.remediation_conn_id,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._errors(f"adding target {spec.name!r}"), self.engine.begin() as connection:
                connection.execute(insert(target).values(**values))
                append_audit(
                    connection,
                    AuditEntry(
                        actor="planmon",
                        action="target.add",
                        target_id=None,
                        subject=f"target:{spec.name}",
                        details={"engine": spec.engine},
                    ),
                )
        except RepositoryConflict as exc:
            raise ConfigError(
                f"a target named {spec.name!r} already exists",
                hint="choose another name, or `planmon targets remove` the old one first",
            ) from exc
        return self.get_target(spec.name)

    def get_target(self, name: str) -> Target:
        with self._errors(f"reading target {name!r}"), self.engine.connect() as connection:
            row = connection.execute(select(target).where(target.c.name == name)).first()
        if row is None:
            raise ConfigError(
                f"no target named {name!r}", hint="`planmon targets list` shows the registered ones"
            )
        return _target_from_row(row)

    def list_targets(self, *, enabled_only: bool = False) -> list[Target]:
        statement = select(target).order_by(target.c.name)
        if enabled_only:
            statement = statement.where(target.c.enabled.is_(True))
        with self._errors("listing targets"), self.engine.connect() as connection:
            return [_target_from_row(row) for row in connection.execute(statement)]

    def set_target_enabled(self, name: str, enabled: bool, *, actor: str = "planmon") -> Target:
        existing = self.get_target(name)
        with self._errors(f"updating target {name!r}"), self.engine.begin() as connection:
            connection.execute(
                update(target).where(target.c.id == existing.id).values(enabled=enabled, updated_at=utcnow())
            )
            action = "target.enable" if enabled else "target.disable"
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action=action,
                    target_id=existing.id,
                    subject=f"target:{name}",
                    details={},
                ),
            )
        return self.get_target(name)

    def remove_target(self, name: str, *, actor: str = "planmon") -> None:
        """Remove a target and everything collected from it; the audit log keeps the record."""
        existing = self.get_target(name)
        owned_regressions = select(regression.c.id).where(regression.c.target_id == existing.id)
        owned_results = select(probe_result.c.id).where(probe_result.c.target_id == existing.id)
        with self._errors(f"removing target {name!r}"), self.engine.begin() as connection:
            connection.execute(
                delete(alert).where(
                    or_(
                        alert.c.regression_id.in_(owned_regressions),
                        alert.c.probe_result_id.in_(owned_results),
                    )
                )
            )
            # children before parents: no ON DELETE actions (see store/schema.py)
            children = (remediation, regression, runtime_stats, runtime_stats_rollup, plan, query)
            for table in (*children, collection_run, probe_result):
                connection.execute(delete(table).where(table.c.target_id == existing.id))
            connection.execute(delete(target).where(target.c.id == existing.id))
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action="target.remove",
                    target_id=existing.id,
                    subject=f"target:{name}",
                    details={},
                ),
            )

    # -- collected data ---------------------------------------------------------------------------

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
        merge = {"first_seen": Merge.LEAST, "last_seen": Merge.GREATEST, "query_text": Merge.KEEP}
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
        self, connection: Connection, target_id: int, plans: Sequence[PlanRecord]
    ) -> dict[str, int]:
        now = utcnow()
        query_ids = self._query_ids(connection, target_id)
        rows = []
        for record in _unique(plans, lambda p: p.plan_key):
            query_id = query_ids.get((record.database_name, record.query_key))
            if query_id is None:
                raise PlanmonError(
                    f"plan {record.plan_key!r} belongs to query {record.query_key!r}, which is not stored",
                    hint="store queries before their plans (Repository.upsert_queries)",
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

    def plan_body(self, plan_id: int) -> bytes | None:
        """The stored plan document, decompressed (None when only the summary was kept)."""
        with self._errors(f"reading plan {plan_id}"), self.engine.connect() as connection:
            body = connection.execute(select(plan.c.body).where(plan.c.id == plan_id)).scalar_one_or_none()
        return zlib.decompress(body) if body else None

    def plans(self, plan_ids: Iterable[int]) -> pd.DataFrame:
        """Plans by id (without bodies): key, shape hash, engine hash, summary, forcing state."""
        columns = [c for c in plan.columns if c.name != "body"]
        with self._errors("reading plans"), self.engine.connect() as connection:
            rows = connection.execute(select(*columns).where(plan.c.id.in_(list(plan_ids)))).all()
        return pd.DataFrame(rows, columns=[c.name for c in columns])

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

    # -- analysis ------------------------------------------------------------------------------

    def plans_frame(self, target_ids: Sequence[int]) -> pd.DataFrame:
        """Plans of these targets without bodies: the detector's plans frame plus plan_key."""
        columns = [plan.c[name] for name in (
            "id", "query_id", "target_id", "plan_key", "shape_hash", "is_forced", "forcing_type",
            "force_failure_count", "force_failure_count_previous", "force_failure_changed_at",
            "last_force_failure_reason",
        )]  # fmt: skip
        statement = select(*columns).where(plan.c.target_id.in_(list(target_ids)))
        with self._errors("reading plans"), self.engine.connect() as connection:
            frame = pd.read_sql(statement, connection)
        return frame.rename(columns={"id": "plan_id"})

    def record_regressions(
        self, detections: Sequence[Mapping[str, Any]], *, detected_at: datetime
    ) -> list[int]:
        """Open or update one regression per (target, query, kind); return their ids.

        ``detected_at`` is the analysed window's end, so re-running an interval writes the same values
        and an older interval re-run after a newer one never overwrites the newer detection.
        """
        detected_at = as_utc_naive(detected_at)
        ids = []
        with self._errors("storing regressions"), self.engine.begin() as connection:
            for detection in detections:
                ids.append(self._record_regression(connection, detection, detected_at))
        return ids

    def _record_regression(
        self, connection: Connection, detection: Mapping[str, Any], detected_at: datetime
    ) -> int:
        key = (
            (regression.c.target_id == detection["target_id"])
            & (regression.c.query_id == detection["query_id"])
            & (regression.c.kind == detection["kind"])
            & (regression.c.open_key == "open")
        )
        columns = (regression.c.id, regression.c.first_detected, regression.c.last_detected)
        existing = connection.execute(select(*columns).where(key)).first()
        values = {name: detection.get(name) for name in _REGRESSION_VALUES}
        if existing is None:
            row = {
                "target_id": detection["target_id"],
                "query_id": detection["query_id"],
                "kind": detection["kind"],
                "status": "open",
                "open_key": "open",
                "first_detected": detected_at,
                "last_detected": detected_at,
                **values,
            }
            inserted = connection.execute(insert(regression).values(**row).returning(regression.c.id))
            new_id = int(inserted.scalar_one())
            details = {"kind": detection["kind"], "severity": detection.get("severity")}
            append_audit(
                connection,
                AuditEntry(
                    actor="planmon",
                    action="regression.open",
                    target_id=detection["target_id"],
                    subject=f"regression:{new_id}",
                    details=details,
                ),
            )
            return new_id
        changes: dict[str, Any] = {"first_detected": min(existing.first_detected, detected_at)}
        if detected_at >= existing.last_detected:
            changes.update(values, last_detected=detected_at)
        connection.execute(update(regression).where(regression.c.id == existing.id).values(**changes))
        return int(existing.id)

    def resolve_regressions(
        self, regression_ids: Sequence[int], *, resolved_at: datetime, reason: str
    ) -> int:
        """Close these open regressions (the query is back at its baseline); return how many closed."""
        resolved_at = as_utc_naive(resolved_at)
        closed = 0
        with self._errors("resolving regressions"), self.engine.begin() as connection:
            for regression_id in regression_ids:
                result = connection.execute(
                    update(regression)
                    .where((regression.c.id == regression_id) & (regression.c.status == "open"))
                    .values(status="resolved", open_key=str(regression_id), resolved_at=resolved_at)
                )
                if result.rowcount:
                    closed += 1
                    append_audit(
                        connection,
                        AuditEntry(
                            actor="planmon",
                            action="regression.resolve",
                            target_id=None,
                            subject=f"regression:{regression_id}",
                            details={"reason": reason},
                        ),
                    )
        return closed

    def regressions(
        self, *, status: str | None = None, target_ids: Sequence[int] | None = None
    ) -> pd.DataFrame:
        """Regressions with their target name, the engine's query identity and text, and plan keys."""
        base_plan, current_plan = plan.alias("base_plan"), plan.alias("current_plan")
        statement = (
            select(
                regression,
                target.c.name.label("target"),
                query.c.query_key,
                query.c.query_text,
                base_plan.c.plan_key.label("baseline_plan_key"),
                current_plan.c.plan_key.label("current_plan_key"),
            )
            .join(target, target.c.id == regression.c.target_id)
            .join(query, query.c.id == regression.c.query_id)
            .outerjoin(base_plan, base_plan.c.id == regression.c.baseline_plan_id)
            .outerjoin(current_plan, current_plan.c.id == regression.c.current_plan_id)
            .order_by(regression.c.id)
        )
        if status is not None:
            statement = statement.where(regression.c.status == status)
        if target_ids is not None:
            statement = statement.where(regression.c.target_id.in_(list(target_ids)))
        with self._errors("reading regressions"), self.engine.connect() as connection:
            return pd.read_sql(statement, connection)

    def open_regressions(self, *, target_id: int | None = None) -> pd.DataFrame:
        statement = select(regression).where(regression.c.status == "open").order_by(regression.c.id)
        if target_id is not None:
            statement = statement.where(regression.c.target_id == target_id)
        with self._errors("reading open regressions"), self.engine.connect() as connection:
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
        """End of the newest interval collected from the target without failing."""
        with self._errors("reading collection runs"), self.engine.connect() as connection:
            return connection.execute(
                select(func.max(collection_run.c.interval_end)).where(
                    collection_run.c.target_id == target_id, collection_run.c.status != "failed"
                )
            ).scalar_one_or_none()

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
        plan_ids = self._upsert_plans(connection, target_id, write.plans) if write.plans else {}
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

    # -- audit and settings -----------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        *,
        target_id: int | None = None,
        subject: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append to the audit log (there is no way to change or delete an entry)."""
        with self._errors("writing the audit log"), self.engine.begin() as connection:
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action=action,
                    target_id=target_id,
                    subject=subject,
                    details=details or {},
                ),
            )

    def audit_entries(self, *, limit: int = 100) -> pd.DataFrame:
        statement = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        with self._errors("reading the audit log"), self.engine.connect() as connection:
            return pd.read_sql(statement, connection)

    def get_setting(self, key: str) -> str | None:
        with self._errors(f"reading setting {key!r}"), self.engine.connect() as connection:
            value = connection.execute(
                select(setting.c.value).where(setting.c.key == key)
            ).scalar_one_or_none()
        return value if value is not None else DEFAULT_SETTINGS.get(key)

    def set_setting(self, key: str, value: str, *, actor: str = "planmon") -> None:
        row = {"key": key, "value": value, "updated_at": utcnow()}
        with self._errors(f"writing setting {key!r}"), self.engine.begin() as connection:
            upsert(connection, setting, [row], key=["key"])
            append_audit(
                connection,
                AuditEntry(
                    actor=actor,
                    action="setting.set",
                    target_id=None,
                    subject=f"setting:{key}",
                    details={"value": value},
                ),
            )

    # -- errors -----------------------------------------------------------------------------------

    def _errors(self, doing: str) -> _RepositoryErrors:
        return _RepositoryErrors(self.location, doing)


class RepositoryView:
    """One concern's view of the repository (alerting, probes, remediation, the UI): its engine, and
    driver errors turned into RepositoryError the way the repository itself turns them."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.engine = repository.engine

    def _errors(self, doing: str) -> _RepositoryErrors:
        return self.repository._errors(doing)


class _RepositoryErrors:
    """Turn driver errors into RepositoryError naming the repository (password hidden) and a hint."""

    def __init__(self, location: str, doing: str) -> None:
        self.location = location
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if exc is None or isinstance(exc, PlanmonError):
            return
        if isinstance(exc, IntegrityError):
            raise RepositoryConflict(
                f"the repository at {self.location} refused a write while {self.doing}: "
                f"{scrub_secrets(str(exc.orig) if exc.orig else str(exc)).strip().splitlines()[0]}",
                hint="the batch was rolled back; the rows reference something missing or repeat a key",
            ) from exc
        if isinstance(exc, OperationalError):
            raise RepositoryError(
                f"the repository at {self.location} failed while {self.doing}: "
                f"{scrub_secrets(str(exc.orig) if exc.orig else str(exc)).strip()}",
                hint="check that it is reachable and PLANMON_REPOSITORY_URL / _CONN_ID are right; "
                "run `planmon init` if the schema is missing",
            ) from exc
        if isinstance(exc, SQLAlchemyError):
            raise RepositoryError(
                f"the repository at {self.location} refused a statement while {self.doing}: "
                f"{scrub_secrets(str(exc)).splitlines()[0]}",
                hint="run `planmon init` to bring the schema up to date",
            ) from exc


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
    {"target_id", "plan_id", "query_id", "interval_start", "interval_end", "executions", "source"}
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


_REGRESSION_VALUES = (
    "severity", "metric", "baseline_plan_id", "current_plan_id", "baseline_mean", "current_mean",
    "ratio", "impact", "p_value", "evidence", "diff",
)  # fmt: skip


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


def _target_from_row(row: Row[Any]) -> Target:
    return Target(
        id=row.id,
        name=row.name,
        engine=row.engine,
        conn_id=row.conn_id,
        environment=row.environment,
        tags=dict(row.tags or {}),
        databases=tuple(row.databases or ()),
        enabled=bool(row.enabled),
        remediation_mode=row.remediation_mode,
        remediation_conn_id=row.remediation_conn_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        remediation_policy=dict(row.remediation_policy or {}),
    )
