"""Read-only queries behind planmon's UI pages: bounded pages, counts and one query's timeline.

Every list is a page (LIMIT/OFFSET, a total from one COUNT) ordered on indexed columns, and every
page costs a fixed number of statements however many targets or regressions there are: the
overview of 1,000 targets and 10,000 regressions reads one page of rows, never the whole table
(``tests/unit/store/test_ui_queries.py`` counts the statements). Nothing here writes.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select

from planmon.store.repository import RepositoryView
from planmon.store.schema import (
    audit_log,
    collection_run,
    plan,
    query,
    regression,
    remediation,
    runtime_stats,
    target,
)

MAX_PAGE = 200  # largest page a caller may ask for
TIMELINE_MAX_POINTS = 20_000  # (plan, interval) points of one query's timeline, newest kept
INTERVAL_SAMPLE = 25  # the newest rows a query's typical interval is taken from
INTERVAL_LOOKBACK = timedelta(days=31)  # ... within this long before the moment asked about
HISTORY_LIMIT = 200  # remediations / audit entries shown for one regression
STATUSES = ("open", "resolved")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows and the total the filter matches."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "limit": self.limit, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class RegressionFilter:
    """Which regressions a list shows; None means any."""

    status: str | None = "open"
    severity: str | None = None
    kind: str | None = None
    target: str | None = None

    def conditions(self) -> list[Any]:
        found: list[Any] = []
        if self.status:
            found.append(regression.c.status == self.status)
        if self.severity:
            found.append(regression.c.severity == self.severity)
        if self.kind:
            found.append(regression.c.kind == self.kind)
        if self.target:
            found.append(target.c.name == self.target)
        return found


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One plan's execution-weighted means over one interval (all execution types together)."""

    plan_id: int
    interval_start: datetime
    interval_end: datetime
    executions: int
    cpu_us_mean: float | None
    duration_us_mean: float | None


@dataclass(frozen=True, slots=True)
class Timeline:
    """A query's per-plan points (oldest first) and the plans they belong to."""

    points: list[TimelinePoint] = field(default_factory=list)
    plans: dict[int, dict[str, Any]] = field(default_factory=dict)
    truncated: bool = False


def clamp_page(limit: int, offset: int) -> tuple[int, int]:
    """A page size in 1..MAX_PAGE and a non-negative offset."""
    return max(1, min(int(limit), MAX_PAGE)), max(0, int(offset))


class UIQueries(RepositoryView):
    """The UI's read-only view of the repository."""

    # -- overview ---------------------------------------------------------------------------------

    def targets_page(self, *, limit: int = 50, offset: int = 0) -> Page:
        """Targets by name with their newest collection run and open regression count.

        Four statements per page: the count, the page of targets, their newest runs, their counts.
        """
        limit, offset = clamp_page(limit, offset)
        columns = (target.c.id, target.c.name, target.c.engine, target.c.environment, target.c.enabled)
        page = select(*columns).order_by(target.c.name).limit(limit).offset(offset)
        with self._errors("reading targets"), self.engine.connect() as connection:
            total = int(connection.execute(select(func.count()).select_from(target)).scalar_one())
            rows = [dict(row) for row in connection.execute(page).mappings()]
            ids = [row["id"] for row in rows]
            runs = self._last_runs(connection, ids)
            open_counts = self._open_counts_by_target(connection, ids)
        items = [
            {**row, "last_collection": runs.get(row["id"]), "open_regressions": open_counts.get(row["id"], 0)}
            for row in rows
        ]
        return Page(items, total, limit, offset)

    @staticmethod
    def _last_runs(connection: Any, target_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not target_ids:
            return {}
        newest = (
            select(collection_run.c.target_id, func.max(collection_run.c.interval_end).label("newest"))
            .where(collection_run.c.target_id.in_(list(target_ids)))
            .group_by(collection_run.c.target_id)
            .subquery()
        )
        statement = (
            select(collection_run)
            .join(
                newest,
                and_(
                    collection_run.c.target_id == newest.c.target_id,
                    collection_run.c.interval_end == newest.c.newest,
                ),
            )
            .order_by(collection_run.c.interval_start)
        )
        runs: dict[int, dict[str, Any]] = {}
        for row in connection.execute(statement).mappings():
            runs[row["target_id"]] = {  # the longest interval ending last wins (ordered by start)
                "status": row["status"],
                "interval_start": row["interval_start"],
                "interval_end": row["interval_end"],
                "aspects": dict(row["aspects"] or {}),
                "rows_collected": row["rows_collected"],
                "plans_captured": row["plans_captured"],
                "error": row["error"],
                "finished_at": row["finished_at"],
            }
        return runs

    @staticmethod
    def _open_counts_by_target(connection: Any, target_ids: Sequence[int]) -> dict[int, int]:
        if not target_ids:
            return {}
        statement = (
            select(regression.c.target_id, func.count())
            .where(regression.c.status == "open", regression.c.target_id.in_(list(target_ids)))
            .group_by(regression.c.target_id)
        )
        return {int(t): int(n) for t, n in connection.execute(statement)}

    def open_regression_counts(self) -> dict[str, Any]:
        """Open regressions by severity and by kind, and their total (one grouped statement)."""
        statement = (
            select(regression.c.severity, regression.c.kind, func.count())
            .where(regression.c.status == "open")
            .group_by(regression.c.severity, regression.c.kind)
        )
        by_severity: dict[str, int] = {}
        by_kind: dict[str, int] = {}
        with self._errors("counting open regressions"), self.engine.connect() as connection:
            for severity, kind, count in connection.execute(statement):
                by_severity[str(severity)] = by_severity.get(str(severity), 0) + int(count)
                by_kind[str(kind)] = by_kind.get(str(kind), 0) + int(count)
        return {"total": sum(by_severity.values()), "by_severity": by_severity, "by_kind": by_kind}

    # -- regressions ------------------------------------------------------------------------------

    def regressions_page(
        self, selection: RegressionFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> Page:
        """Regressions newest first (by id: the primary key), with target and query identity.

        Two statements: the count and the page.
        """
        selection = selection or RegressionFilter()
        limit, offset = clamp_page(limit, offset)
        conditions = selection.conditions()
        counted = select(func.count()).select_from(
            regression.join(target, target.c.id == regression.c.target_id)
        )
        statement = (
            select(
                regression.c.id,
                regression.c.kind,
                regression.c.status,
                regression.c.severity,
                regression.c.metric,
                regression.c.baseline_mean,
                regression.c.current_mean,
                regression.c.ratio,
                regression.c.impact,
                regression.c.p_value,
                regression.c.first_detected,
                regression.c.last_detected,
                regression.c.baseline_plan_id,
                regression.c.current_plan_id,
                target.c.name.label("target"),
                target.c.engine,
                query.c.query_key,
                query.c.database_name,
                func.substr(query.c.query_text, 1, 200).label("query_text"),
            )
            .join(target, target.c.id == regression.c.target_id)
            .join(query, query.c.id == regression.c.query_id)
            .order_by(regression.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if conditions:
            counted, statement = counted.where(*conditions), statement.where(*conditions)
        with self._errors("reading regressions"), self.engine.connect() as connection:
            total = int(connection.execute(counted).scalar_one())
            items = [dict(row) for row in connection.execute(statement).mappings()]
        return Page(items, total, limit, offset)

    def regression(self, regression_id: int) -> dict[str, Any] | None:
        """One regression with its target, query and both plans' identity; None when unknown."""
        base, current = plan.alias("baseline_plan"), plan.alias("current_plan")
        statement = (
            select(
                regression,
                target.c.name.label("target"),
                target.c.engine,
                target.c.environment,
                target.c.remediation_mode,
                query.c.query_key,
                query.c.database_name,
                query.c.query_text,
                query.c.parent_query_key,
                query.c.dispatcher_plan_key,
                base.c.plan_key.label("baseline_plan_key"),
                base.c.shape_hash.label("baseline_shape_hash"),
                current.c.plan_key.label("current_plan_key"),
                current.c.shape_hash.label("current_shape_hash"),
            )
            .join(target, target.c.id == regression.c.target_id)
            .join(query, query.c.id == regression.c.query_id)
            .outerjoin(base, base.c.id == regression.c.baseline_plan_id)
            .outerjoin(current, current.c.id == regression.c.current_plan_id)
            .where(regression.c.id == regression_id)
        )
        with self._errors(f"reading regression {regression_id}"), self.engine.connect() as connection:
            row = connection.execute(statement).mappings().first()
        return dict(row) if row is not None else None

    def query_variants(
        self, target_id: int, database_name: str, parent_query_key: str
    ) -> list[dict[str, Any]]:
        """SQL Server PSP: the stored variants of a parent query (each its own query), with their open
        regressions' ids; empty for any other query."""
        open_regression = (
            select(regression.c.id)
            .where(regression.c.query_id == query.c.id, regression.c.status == "open")
            .order_by(regression.c.id)
            .limit(1)
            .scalar_subquery()
        )
        statement = (
            select(
                query.c.id,
                query.c.query_key,
                query.c.dispatcher_plan_key,
                open_regression.label("regression_id"),
            )
            .where(
                query.c.target_id == target_id,
                query.c.database_name == database_name,
                query.c.parent_query_key == parent_query_key,
            )
            .order_by(query.c.query_key)
        )
        with (
            self._errors(f"reading the variants of query {parent_query_key}"),
            self.engine.connect() as connection,
        ):
            return [dict(row) for row in connection.execute(statement).mappings()]

    def timeline(self, query_id: int, start: datetime, end: datetime) -> Timeline:
        """Per plan and interval starting in [start, end): executions and weighted CPU/duration means.

        One grouped statement over primary-key ranges (the query's plans, each over the window)
        plus one for the plans. A plan belongs to one query, so the plan ids find its rows;
        ``query_id`` stays a filter.
        """
        executions = func.sum(runtime_stats.c.executions)
        cpu_weight = func.sum(case((runtime_stats.c.cpu_us_mean.is_not(None), runtime_stats.c.executions)))
        duration_weight = func.sum(
            case((runtime_stats.c.duration_us_mean.is_not(None), runtime_stats.c.executions))
        )
        statement = (
            select(
                runtime_stats.c.plan_id,
                runtime_stats.c.interval_start,
                func.max(runtime_stats.c.interval_end).label("interval_end"),
                executions.label("executions"),
                (
                    func.sum(runtime_stats.c.executions * runtime_stats.c.cpu_us_mean)
                    / func.nullif(cpu_weight, 0)
                ).label("cpu_us_mean"),
                (
                    func.sum(runtime_stats.c.executions * runtime_stats.c.duration_us_mean)
                    / func.nullif(duration_weight, 0)
                ).label("duration_us_mean"),
            )
            .where(
                runtime_stats.c.plan_id.in_(select(plan.c.id).where(plan.c.query_id == query_id)),
                runtime_stats.c.query_id == query_id,
                runtime_stats.c.interval_start >= start,
                runtime_stats.c.interval_start < end,
            )
            .group_by(runtime_stats.c.plan_id, runtime_stats.c.interval_start)
            .order_by(runtime_stats.c.interval_start.desc())
            .limit(TIMELINE_MAX_POINTS + 1)
        )  # fmt: skip
        with self._errors(f"reading the timeline of query {query_id}"), self.engine.connect() as connection:
            rows = connection.execute(statement).all()
            plan_ids = sorted({int(row.plan_id) for row in rows})
            plans = self._plans_identity(connection, plan_ids)
        truncated = len(rows) > TIMELINE_MAX_POINTS
        points = [
            TimelinePoint(
                plan_id=int(row.plan_id),
                interval_start=row.interval_start,
                interval_end=row.interval_end,
                executions=int(row.executions or 0),
                cpu_us_mean=_float(row.cpu_us_mean),
                duration_us_mean=_float(row.duration_us_mean),
            )
            for row in reversed(rows[:TIMELINE_MAX_POINTS])
        ]
        return Timeline(points=points, plans=plans, truncated=truncated)

    def query_interval(self, query_id: int, before: datetime) -> timedelta | None:
        """The query's typical interval length (the median of its newest rows starting before
        ``before``, within a month); None when it has none. One statement on the primary key."""
        statement = (
            select(runtime_stats.c.interval_start, runtime_stats.c.interval_end)
            .where(
                runtime_stats.c.plan_id.in_(select(plan.c.id).where(plan.c.query_id == query_id)),
                runtime_stats.c.query_id == query_id,
                runtime_stats.c.interval_start >= before - INTERVAL_LOOKBACK,
                runtime_stats.c.interval_start < before,
            )
            .order_by(runtime_stats.c.interval_start.desc())
            .limit(INTERVAL_SAMPLE)
        )
        with self._errors(f"reading the interval of query {query_id}"), self.engine.connect() as connection:
            lengths = sorted(row.interval_end - row.interval_start for row in connection.execute(statement))
        lengths = [length for length in lengths if length > timedelta(0)]
        return lengths[len(lengths) // 2] if lengths else None

    @staticmethod
    def _plans_identity(connection: Any, plan_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not plan_ids:
            return {}
        columns = (plan.c.id, plan.c.plan_key, plan.c.shape_hash, plan.c.is_forced, plan.c.body_format)
        statement = select(*columns).where(plan.c.id.in_(list(plan_ids)))
        return {int(row["id"]): dict(row) for row in connection.execute(statement).mappings()}

    # -- plans ------------------------------------------------------------------------------------

    def plan(self, plan_id: int) -> dict[str, Any] | None:
        """One stored plan with its target, query and decompressed document; None when unknown."""
        statement = (
            select(
                plan,
                target.c.name.label("target"),
                target.c.engine,
                query.c.query_key,
                query.c.database_name,
                query.c.query_text,
            )
            .join(target, target.c.id == plan.c.target_id)
            .join(query, query.c.id == plan.c.query_id)
            .where(plan.c.id == plan_id)
        )
        with self._errors(f"reading plan {plan_id}"), self.engine.connect() as connection:
            row = connection.execute(statement).mappings().first()
        if row is None:
            return None
        found = dict(row)
        found["body"] = zlib.decompress(row["body"]) if row["body"] else None
        return found

    # -- remediation history and audit ------------------------------------------------------------

    def remediations(self, target_id: int, query_id: int) -> list[dict[str, Any]]:
        """Remediations of every regression of this query on this target, newest first (the ledger)."""
        statement = (
            select(remediation, regression.c.kind.label("regression_kind"))
            .join(regression, regression.c.id == remediation.c.regression_id)
            .where(remediation.c.target_id == target_id, regression.c.query_id == query_id)
            .order_by(remediation.c.created_at.desc(), remediation.c.id.desc())
            .limit(HISTORY_LIMIT)
        )
        with self._errors("reading remediations"), self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(statement).mappings()]

    def audit_entries(self, subjects: Sequence[str]) -> list[dict[str, Any]]:
        """Audit log entries about these subjects (``regression:12``, ``remediation:3``), oldest first."""
        if not subjects:
            return []
        statement = (
            select(audit_log)
            .where(audit_log.c.subject.in_(list(subjects)))
            .order_by(audit_log.c.at, audit_log.c.id)
            .limit(HISTORY_LIMIT)
        )
        with self._errors("reading the audit log"), self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(statement).mappings()]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def jsonable(value: Any) -> Any:
    """Datetimes as ISO strings, recursively; everything else as is (for JSON responses)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return None
    return value
