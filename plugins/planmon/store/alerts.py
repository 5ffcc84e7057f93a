"""Reads and writes of alerting: open regressions with what a message needs, and delivery records.

All of alerting's SQL lives here. Writes are upserts on the ``alert`` natural key
``(dedup_key, channel)`` (one transaction per call), so re-running a dispatch never duplicates rows;
the attempt count written is computed by the caller from the row it read, never incremented in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from planmon.errors import scrub_secrets
from planmon.store.repository import RepositoryView
from planmon.store.schema import alert, plan, query, regression, remediation, target
from planmon.store.upsert import Merge, upsert

ALERT_KEY = ("dedup_key", "channel")


@dataclass(frozen=True, slots=True)
class OpenRegression:
    """An open regression with its target, query and both plans' shape and findings."""

    row: Mapping[str, Any]  # the regression table's columns
    target_name: str
    engine: str
    environment: str | None
    tags: Mapping[str, str]
    query_key: str | None
    query_text: str | None
    baseline_findings: tuple[str, ...] = ()
    current_findings: tuple[str, ...] = ()

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def severity(self) -> str:
        return str(self.row["severity"])

    @property
    def kind(self) -> str:
        return str(self.row["kind"])


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One row of the ``alert`` table: a message for one channel and its delivery state."""

    dedup_key: str
    channel: str
    status: str  # pending / sent / failed
    attempts: int
    payload: Mapping[str, Any]
    created_at: datetime
    regression_id: int | None = None
    probe_result_id: int | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    id: int | None = field(default=None, compare=False)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("id")
        row["payload"] = dict(self.payload)
        row["last_error"] = scrub_secrets(self.last_error) if self.last_error else None
        return row


class AlertStore(RepositoryView):
    """Alerting's view of the repository (its engine; the repository's error conventions)."""

    # -- regressions ------------------------------------------------------------------------------

    def open_regressions(self) -> list[OpenRegression]:
        """Every open regression, oldest first, with target, query and plan findings."""
        baseline, current = plan.alias("baseline_plan"), plan.alias("current_plan")
        statement = (
            select(
                regression,
                target.c.name.label("target_name"),
                target.c.engine.label("target_engine"),
                target.c.environment.label("target_environment"),
                target.c.tags.label("target_tags"),
                query.c.query_key.label("query_key"),
                query.c.query_text.label("query_text"),
                baseline.c.summary.label("baseline_summary"),
                current.c.summary.label("current_summary"),
            )
            .join(target, target.c.id == regression.c.target_id)
            .outerjoin(query, query.c.id == regression.c.query_id)
            .outerjoin(baseline, baseline.c.id == regression.c.baseline_plan_id)
            .outerjoin(current, current.c.id == regression.c.current_plan_id)
            .where(regression.c.status == "open")
            .order_by(regression.c.id)
        )
        with self._errors("reading open regressions"), self.engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        columns = [c.name for c in regression.columns]
        return [
            OpenRegression(
                row={name: row[name] for name in columns},
                target_name=row["target_name"],
                engine=row["target_engine"],
                environment=row["target_environment"],
                tags={str(k): str(v) for k, v in (row["target_tags"] or {}).items()},
                query_key=row["query_key"],
                query_text=row["query_text"],
                baseline_findings=_findings(row["baseline_summary"]),
                current_findings=_findings(row["current_summary"]),
            )
            for row in rows
        ]

    def open_regression_counts(self) -> dict[tuple[str, str], int]:
        """Open regressions counted by (severity, kind), for the metrics gauges."""
        statement = (
            select(regression.c.severity, regression.c.kind, func.count())
            .where(regression.c.status == "open")
            .group_by(regression.c.severity, regression.c.kind)
        )
        with self._errors("counting open regressions"), self.engine.connect() as connection:
            return {(str(s), str(k)): int(n) for s, k, n in connection.execute(statement)}

    # -- alerts -----------------------------------------------------------------------------------

    def alerts_for_regressions(self, regression_ids: Iterable[int]) -> list[AlertRecord]:
        ids = sorted(set(regression_ids))
        if not ids:
            return []
        return self._alerts(alert.c.regression_id.in_(ids), "reading alerts of regressions")

    def alerts_with_key(self, dedup_key: str) -> list[AlertRecord]:
        return self._alerts(alert.c.dedup_key == dedup_key, f"reading alerts {dedup_key}")

    def retryable_alerts(self, max_attempts: int) -> list[AlertRecord]:
        """Pending or failed deliveries that have attempts left (a crash mid-send leaves pending)."""
        condition = and_(alert.c.status.in_(("pending", "failed")), alert.c.attempts < max_attempts)
        return self._alerts(condition, "reading undelivered alerts")

    def given_up_count(self, max_attempts: int) -> int:
        """Failed deliveries out of attempts: kept (never deleted silently), counted in metrics."""
        statement = select(func.count()).where(alert.c.status == "failed", alert.c.attempts >= max_attempts)
        with self._errors("counting undelivered alerts"), self.engine.connect() as connection:
            return int(connection.execute(statement.select_from(alert)).scalar_one())

    def waiting_approvals(self) -> list[tuple[AlertRecord, str]]:
        """Delivered "approval waiting" messages with the current state of their remediation."""
        # the remediation id is parsed from the key in Python (portable across the repository engines)
        records = self._alerts(
            and_(alert.c.dedup_key.like("approval:%:waiting"), alert.c.status == "sent"),
            "reading waiting approvals",
        )
        ids = {_approval_remediation_id(r.dedup_key) for r in records}
        if not ids:
            return []
        with self._errors("reading remediation states"), self.engine.connect() as connection:
            states = dict(
                connection.execute(
                    select(remediation.c.id, remediation.c.state).where(remediation.c.id.in_(sorted(ids)))
                ).all()
            )
        return [
            (record, str(states[_approval_remediation_id(record.dedup_key)]))
            for record in records
            if _approval_remediation_id(record.dedup_key) in states
        ]

    def all_alerts(self) -> list[AlertRecord]:
        return self._alerts(None, "reading alerts")

    def _alerts(self, condition: Any, doing: str) -> list[AlertRecord]:
        statement = select(alert).order_by(alert.c.id)
        if condition is not None:
            statement = statement.where(condition)
        with self._errors(doing), self.engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        return [_alert_record(row) for row in rows]

    def record(self, records: Sequence[AlertRecord]) -> None:
        """Write delivery records (one transaction): insert, or update the row with the same key.

        ``created_at`` keeps the first value: it says when the alert was first raised.
        """
        if not records:
            return
        rows = [record.as_row() for record in records]
        with self._errors("recording alert deliveries"), self.engine.begin() as connection:
            upsert(connection, alert, rows, key=ALERT_KEY, merge={"created_at": Merge.KEEP})


def _approval_remediation_id(dedup_key: str) -> int:
    """The remediation id of an ``approval:{id}:{run}:{event}`` key."""
    return int(dedup_key.split(":", 2)[1])


def _findings(summary: Any) -> tuple[str, ...]:
    if not isinstance(summary, Mapping):
        return ()
    return tuple(str(finding) for finding in summary.get("findings") or ())


def _alert_record(row: Any) -> AlertRecord:
    return AlertRecord(
        id=row["id"],
        dedup_key=row["dedup_key"],
        channel=row["channel"],
        status=row["status"],
        attempts=int(row["attempts"] or 0),
        payload=dict(row["payload"] or {}),
        created_at=row["created_at"],
        regression_id=row["regression_id"],
        probe_result_id=row["probe_result_id"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
    )
