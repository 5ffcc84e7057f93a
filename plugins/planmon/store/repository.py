"""planmon's repository: its engine and schema, targets, plan reads, the audit log and settings, and
:class:`RepositoryView`, the base of every other concern's view of it.

Each other concern's SQL lives in its own view, made from a repository (``View(repository)``):
collection in ``store/collection.py`` (``CollectionStore``), retention in ``store/retention.py``
(``RetentionStore``), analysis' runtime stats and their roll-up in ``store/stats.py``
(``StatsStore``), regressions in ``store/regressions.py`` (``RegressionStore``), alerting in
``store/alerts.py``, remediation in ``store/remediations.py``, probes in ``store/probes.py`` and
the UI's read-only pages in ``store/ui_queries.py``. No other layer writes SQL against the
repository.

Every write is an idempotent upsert on a natural key inside one transaction per call, so a retried
task leaves the same rows, and a failure leaves nothing half-written. ``audit_log`` is append-only:
entries are appended with ``store/audit.py`` in the writer's transaction, and this module has no
path that updates or deletes one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Row, case, delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from planmon.config import Settings
from planmon.errors import ConfigError, PlanmonError, scrub_secrets
from planmon.model import ConnectionLookup, Target, TargetSpec
from planmon.store import migrate
from planmon.store.audit import AuditEntry, append_audit
from planmon.store.connection import create_repository_engine, describe_url, repository_url
from planmon.store.schema import (
    DEFAULT_SETTINGS,
    alert,
    audit_log,
    collection_run,
    plan,
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

PLAN_IDS_PER_STATEMENT = 1000  # ids per IN list: below every driver's parameter limit


class RepositoryError(PlanmonError):
    """The repository could not be reached or written; the message hides credentials."""


class RepositoryConflict(RepositoryError):
    """A write broke a constraint (duplicate natural key, missing parent row); nothing was written."""


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

    # -- plans ------------------------------------------------------------------------------------

    def plan_bodies(self, plan_ids: Iterable[int]) -> dict[int, bytes]:
        """Stored plan documents by plan id, decompressed; plans kept as a summary only are absent.
        One statement per ``PLAN_IDS_PER_STATEMENT`` ids."""
        ids = sorted(set(plan_ids))
        bodies: dict[int, bytes] = {}
        with self._errors("reading plan documents"), self.engine.connect() as connection:
            for first in range(0, len(ids), PLAN_IDS_PER_STATEMENT):
                chunk = ids[first : first + PLAN_IDS_PER_STATEMENT]
                rows = connection.execute(select(plan.c.id, plan.c.body).where(plan.c.id.in_(chunk)))
                bodies.update({int(row.id): zlib.decompress(row.body) for row in rows if row.body})
        return bodies

    def plans(self, plan_ids: Iterable[int]) -> pd.DataFrame:
        """Plans by id (without bodies): key, shape hash, engine hash, summary, forcing state."""
        columns = [c for c in plan.columns if c.name != "body"]
        with self._errors("reading plans"), self.engine.connect() as connection:
            rows = connection.execute(select(*columns).where(plan.c.id.in_(list(plan_ids)))).all()
        return pd.DataFrame(rows, columns=[c.name for c in columns])

    # -- analysis ------------------------------------------------------------------------------

    def plans_frame(self, target_ids: Sequence[int]) -> pd.DataFrame:
        """Plans of these targets without bodies: the detector's plans frame plus plan_key, the
        target's engine, whether a document was captured and when (first_seen / last_seen)."""
        columns = [plan.c[name] for name in (
            "id", "query_id", "target_id", "plan_key", "shape_hash", "is_forced", "forcing_type",
            "force_failure_count", "force_failure_count_previous", "force_failure_changed_at",
            "last_force_failure_reason", "first_seen", "last_seen",
        )]  # fmt: skip
        statement = (
            # CASE, not a bare IS NOT NULL: SQL Server cannot select a predicate
            select(*columns, case((plan.c.body.is_not(None), 1), else_=0).label("captured"), target.c.engine)
            .join(target, target.c.id == plan.c.target_id)
            .where(plan.c.target_id.in_(list(target_ids)))
        )
        with self._errors("reading plans"), self.engine.connect() as connection:
            frame = pd.read_sql(statement, connection)
        return frame.rename(columns={"id": "plan_id"})

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
    """One concern's view of the repository (collection, retention, stats, alerting, probes,
    remediation, the UI): its engine, and driver errors turned into RepositoryError the way the
    repository itself turns them."""

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
